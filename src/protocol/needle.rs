//! Substrings looked for in the raw text of every message. Building a substring searcher costs
//! more than running it over a kilobyte, so each needle's searcher is built once, on first use:
//! `static META: Needle = Needle::new(b"\"_meta\"");`.

use std::sync::OnceLock;

use memchr::memmem::Finder;

pub struct Needle {
    bytes: &'static [u8],
    finder: OnceLock<Finder<'static>>,
}

impl Needle {
    pub const fn new(bytes: &'static [u8]) -> Self {
        Needle {
            bytes,
            finder: OnceLock::new(),
        }
    }

    /// Whether `haystack` contains the needle.
    pub fn is_in(&self, haystack: &[u8]) -> bool {
        self.finder
            .get_or_init(|| Finder::new(self.bytes))
            .find(haystack)
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static META: Needle = Needle::new(b"\"_meta\"");

    #[test]
    fn needle_finds_and_misses() {
        assert!(META.is_in(br#"{"a":1,"_meta":{}}"#));
        assert!(!META.is_in(br#"{"a":"meta","_met":1}"#));
        assert!(!META.is_in(b""));
    }
}
