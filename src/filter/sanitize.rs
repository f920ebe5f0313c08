//! Descriptions and instructions reach a model as trusted text: strip what can hide or disguise
//! text (ANSI escapes, C0/C1 controls, Unicode tag characters, bidi overrides, zero-width
//! characters), and flag phrases typical of prompt injection (flagged, never rewritten). The
//! same characters, counted per class, for the text of results (`result_text.rs`).

/// The kinds of hiding character, counted separately in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Unicode tag characters (invisible ASCII look-alikes).
    Tag,
    /// Zero-width and invisible formatting characters.
    ZeroWidth,
    /// Bidi embeddings, overrides, isolates and marks.
    Bidi,
    /// A terminal escape sequence (ESC …), counted once per sequence.
    Escape,
    /// Other C0 controls (BEL, backspace, …), DEL and C1 controls.
    Control,
}

const CLASSES: [Class; 5] = [
    Class::Tag,
    Class::ZeroWidth,
    Class::Bidi,
    Class::Escape,
    Class::Control,
];

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Tag => "tag",
            Class::ZeroWidth => "zero-width",
            Class::Bidi => "bidi",
            Class::Escape => "escape",
            Class::Control => "control",
        }
    }
}

/// How many hiding characters of each class a text held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts([usize; 5]);

impl Counts {
    pub fn add(&mut self, class: Class, n: usize) {
        self.0[class as usize] += n;
    }

    pub fn get(&self, class: Class) -> usize {
        self.0[class as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|n| *n == 0)
    }
}

/// `tag 3, escape 1` (classes found only, in a fixed order) for the audit log.
impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for class in CLASSES.iter().filter(|c| self.get(**c) > 0) {
            let sep = if first { "" } else { ", " };
            write!(f, "{sep}{} {}", class.as_str(), self.get(*class))?;
            first = false;
        }
        Ok(())
    }
}

/// `text` without hiding characters; `None` when there was nothing to strip.
pub fn strip_hidden(text: &str) -> Option<String> {
    strip_counted(text, &mut Counts::default())
}

/// [`strip_hidden`], adding what it stripped to `counts`.
pub fn strip_counted(text: &str, counts: &mut Counts) -> Option<String> {
    if !holds_hidden(text) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    walk(text, counts, Some(&mut out));
    Some(out)
}

/// Count the hiding characters of `text` without changing it.
pub fn count_hidden(text: &str, counts: &mut Counts) {
    if holds_hidden(text) {
        walk(text, counts, None);
    }
}

fn holds_hidden(text: &str) -> bool {
    // Most text is printable ASCII: check its bytes before decoding characters.
    let plain = |b: &u8| matches!(b, b' '..=b'~' | b'\t' | b'\n' | b'\r');
    !(text.as_bytes().iter().all(plain) || text.chars().all(|c| class_of(c).is_none()))
}

/// One pass over `text`: count each hiding character (an escape sequence once) and, given
/// `out`, copy the rest there.
fn walk(text: &str, counts: &mut Counts, mut out: Option<&mut String>) {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match class_of(c) {
            Some(Class::Escape) => {
                skip_escape(&mut chars);
                counts.add(Class::Escape, 1);
            }
            Some(class) => counts.add(class, 1),
            None => {
                if let Some(out) = out.as_deref_mut() {
                    out.push(c);
                }
            }
        }
    }
}

/// Whether a message's raw JSON text may hold a hiding character, before any tree is walked:
/// spelled out in UTF-8 (every class starts with one of a few lead bytes, DEL is one byte), or
/// as an escape (`\u001b`: the only way JSON text holds ESC or BEL, and how servers that escape
/// all non-ASCII write the rest; `\b`, `\f`). Candidates are decoded and looked up in
/// [`class_of`], so typical punctuation (`“ ” — ©`) does not count.
pub fn may_hide(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let hides_at = |i: usize| {
        raw.get(i..)
            .and_then(|rest| rest.chars().next())
            .and_then(class_of)
            .is_some()
    };
    memchr::memchr3_iter(0xC2, 0xE2, 0xF3, bytes).any(hides_at)
        || memchr::memchr3_iter(0xD8, 0xE1, 0xEF, bytes).any(hides_at)
        || memchr::memchr(0x7F, bytes).is_some()
        || memchr::memchr_iter(b'\\', bytes).any(|i| escape_hides(&bytes[i + 1..]))
}

/// What follows a `\` in JSON text: `\b` or `\f` (backspace, form feed), or a `\u` escape of
/// a hiding character or of the high surrogate of a tag character (U+E0000–E007F are
/// `\udb40\udc00`–`\udb40\udc7f`).
fn escape_hides(escape: &[u8]) -> bool {
    let digits = match escape.split_first() {
        Some((b'b' | b'f', _)) => return true,
        Some((b'u', digits)) => digits,
        _ => return false,
    };
    let Some(code) = digits
        .get(..4)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| u32::from_str_radix(d, 16).ok())
    else {
        return false;
    };
    code == 0xDB40 || char::from_u32(code).and_then(class_of).is_some()
}

/// Skip the rest of an escape sequence after ESC: CSI (`ESC [ … final`), OSC/DCS/PM/APC
/// strings (up to BEL or `ESC \`), or a two-character escape.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => {
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
        Some(']' | 'P' | '^' | '_' | 'X') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    if chars.peek() == Some(&'\\') {
                        chars.next();
                    }
                    break;
                }
            }
        }
        _ => {}
    }
}

/// The class of a hiding character; `None` for every other character. The one list of them:
/// the raw-text prefilter ([`may_hide`]) is derived from it (a unit test holds them together).
fn class_of(c: char) -> Option<Class> {
    Some(match c {
        '\t' | '\n' | '\r' => return None,
        '\u{1b}' => Class::Escape,
        // C0 controls and DEL, C1 controls.
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => Class::Control,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}' => {
            Class::Bidi
        }
        '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{180e}' | '\u{ad}' => {
            Class::ZeroWidth
        }
        '\u{e0000}'..='\u{e007f}' => Class::Tag,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_hiding_characters() {
        assert_eq!(strip_hidden("plain text\n"), None);
        assert_eq!(
            strip_hidden("red \u{1b}[31mALERT\u{1b}[0m done").as_deref(),
            Some("red ALERT done")
        );
        assert_eq!(
            strip_hidden("title\u{1b}]0;pwned\u{7} x").as_deref(),
            Some("title x")
        );
        assert_eq!(
            strip_hidden("a\u{e0049}\u{e0047}b\u{202e}c\u{200b}d\u{0}e\u{85}f").as_deref(),
            Some("abcdef")
        );
    }

    #[test]
    fn sanitize_counts_each_class_and_flags_without_changing() {
        let text = "a\u{e0049}\u{e0047}b\u{202e}c\u{200b}\u{200d}d\u{1b}[31me\u{7}f";
        let mut counts = Counts::default();
        assert_eq!(strip_counted(text, &mut counts).as_deref(), Some("abcdef"));
        assert_eq!(
            counts.to_string(),
            "tag 2, zero-width 2, bidi 1, escape 1, control 1"
        );
        let mut flagged = Counts::default();
        count_hidden(text, &mut flagged);
        assert_eq!(flagged, counts);
        let mut none = Counts::default();
        count_hidden("plain “quoted” text — ©", &mut none);
        assert!(none.is_empty() && none.to_string().is_empty());
    }

    #[test]
    fn sanitize_prefilter_sees_every_hiding_character_raw_or_escaped() {
        let hidden: Vec<char> = (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|c| class_of(*c).is_some())
            .collect();
        assert!(hidden.len() > 200, "{}", hidden.len());
        for c in hidden {
            // As serde_json writes it (controls escaped, the rest raw UTF-8) …
            let raw = serde_json::to_string(&format!("x{c}y")).expect("json");
            assert!(may_hide(&raw), "{c:?} in {raw}");
            // … and as an ASCII-only writer does (`\uXXXX`, surrogate pairs).
            let mut units = [0u16; 2];
            let escaped: String = c
                .encode_utf16(&mut units)
                .iter()
                .map(|u| format!("\\u{u:04x}"))
                .collect();
            assert!(may_hide(&format!("\"x{escaped}y\"")), "{c:?} as {escaped}");
        }
        for clean in [
            r#"{"content":[{"type":"text","text":"plain ASCII\n"}]}"#,
            "{\"text\":\"“quoted” — © 5 € 日本語 emoji 😀\"}",
            r#"{"text":"caf\u00e9 \u201cq\u201d \ud83d\ude00"}"#,
        ] {
            assert!(!may_hide(clean), "{clean}");
        }
    }
}
