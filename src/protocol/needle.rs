//! Substrings looked for in the raw text of every message. Building a substring searcher costs
//! more than running it over a kilobyte, so each needle's searcher is built once, on first use.

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// A substring with its searcher, built on first use: `static X: Needle = Needle::new(...)`.
pub struct Needle {
    finder: LazyLock<Finder<'static>>,
}

impl Needle {
    pub const fn new(build: fn() -> Finder<'static>) -> Self {
        Needle {
            finder: LazyLock::new(build),
        }
    }

    /// Whether `haystack` contains the needle.
    pub fn is_in(&self, haystack: &[u8]) -> bool {
        self.finder.find(haystack).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static META: Needle = Needle::new(|| Finder::new(b"\"_meta\""));

    #[test]
    fn needle_finds_and_misses() {
        assert!(META.is_in(br#"{"a":1,"_meta":{}}"#));
        assert!(!META.is_in(br#"{"a":"meta","_met":1}"#));
        assert!(!META.is_in(b""));
    }
}
