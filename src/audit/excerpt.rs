//! A call's arguments as an audit line carries them when the policy asks (`[audit] excerpts`):
//! at most a budget of bytes, cut *before* the secret patterns scan them, so a megabyte
//! argument costs the log what a short one does.

use serde_json::{Map, Value};

use super::redact::{marker, truncate, Redactor};

/// Scanned past the cut, so that a secret straddling it is still recognised and hidden whole
/// (a 4096-bit RSA key in PEM is about 3.3 KiB).
const MARGIN: usize = 4096;

/// What a scalar, a key or a marker counts against the budget (their text is short).
const SMALL: usize = 8;

/// An excerpt of `arguments` (JSON text) of about `budget` bytes of content: sensitive keys
/// and secret patterns redacted, long strings truncated, members and items past the budget
/// dropped (with a marker saying how many). `None` when the text is not JSON.
pub fn excerpt(redactor: &Redactor, arguments: &str, budget: usize) -> Option<(Value, u64)> {
    let mut value: Value = serde_json::from_str(arguments).ok()?;
    let mut cut = Cut {
        redactor,
        left: budget,
        redactions: 0,
    };
    cut.value(&mut value);
    Some((value, cut.redactions))
}

struct Cut<'r> {
    redactor: &'r Redactor,
    /// Budget still unspent.
    left: usize,
    redactions: u64,
}

impl Cut<'_> {
    fn spend(&mut self, bytes: usize) {
        self.left = self.left.saturating_sub(bytes);
    }

    fn value(&mut self, value: &mut Value) {
        match value {
            Value::Object(map) => self.object(map),
            Value::Array(items) => {
                let total = items.len();
                let mut kept = 0;
                for item in items.iter_mut() {
                    if self.left == 0 {
                        break;
                    }
                    self.value(item);
                    kept += 1;
                }
                if kept < total {
                    items.truncate(kept);
                    items.push(Value::String(format!("…[{} more items]", total - kept)));
                }
            }
            Value::String(text) => *text = self.string(text),
            _ => self.spend(SMALL),
        }
    }

    fn object(&mut self, map: &mut Map<String, Value>) {
        let total = map.len();
        let mut kept = 0;
        let mut out = Map::new();
        for (key, mut v) in std::mem::take(map) {
            if self.left == 0 {
                break;
            }
            kept += 1;
            self.spend(key.len());
            if self.redactor.sensitive_key(&key) && !v.is_null() {
                v = Value::String(marker("key"));
                self.redactions += 1;
                self.spend(SMALL);
            } else {
                self.value(&mut v);
            }
            out.insert(key, v);
        }
        if kept < total {
            out.insert(
                "…".into(),
                Value::String(format!("[{} more members]", total - kept)),
            );
        }
        *map = out;
    }

    /// The string cut to what is left (and to `max_value_bytes`), scanned only that far and
    /// a margin beyond.
    fn string(&mut self, text: &str) -> String {
        let keep = self.left.min(self.redactor.max_value_bytes());
        let scanned = &text[..floor_char_boundary(text, keep.saturating_add(MARGIN))];
        let (redacted, count) = self.redactor.redact_text(scanned);
        self.redactions += count;
        let unscanned = text.len() - scanned.len();
        let kept = if unscanned == 0 && redacted.len() <= keep {
            redacted
        } else {
            let end = floor_char_boundary(&redacted, keep);
            let cut = redacted.len() - end + unscanned;
            format!("{}…[truncated {cut} bytes]", &redacted[..end])
        };
        self.spend(kept.len().max(1));
        kept
    }
}

/// The largest character boundary at or below `at` (`str::floor_char_boundary` is unstable).
fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    let mut end = at;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// `text` cut to `max` bytes before it is scanned (for reasons and other short texts that
/// could be long).
pub fn redact_bounded(redactor: &Redactor, text: &str, max: usize) -> (String, u64) {
    if text.len() <= max {
        return redactor.redact_text(text);
    }
    let scanned = &text[..floor_char_boundary(text, max.saturating_add(MARGIN))];
    let (redacted, count) = redactor.redact_text(scanned);
    (truncate(&redacted, max), count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(&["password".into()], true, &[], 4096).unwrap()
    }

    #[test]
    fn small_arguments_are_kept_whole_and_redacted() {
        let (v, n) = excerpt(
            &redactor(),
            r#"{"user":"ann","password":"hunter2","note":"AKIAABCDEFGHIJKLMNOP"}"#,
            512,
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(v["user"], "ann");
        assert_eq!(v["password"], "[REDACTED:key]");
        assert_eq!(v["note"], "[REDACTED:aws_access_key]");
    }

    #[test]
    fn a_long_string_is_cut_to_the_budget() {
        let text = format!(r#"{{"text":"{}"}}"#, "a".repeat(1 << 20));
        let (v, _) = excerpt(&redactor(), &text, 100).unwrap();
        let kept = v["text"].as_str().unwrap();
        assert!(kept.starts_with(&"a".repeat(96)), "{kept}");
        assert!(kept.len() < 200, "{kept}");
        assert!(
            kept.ends_with(&format!("…[truncated {} bytes]", (1 << 20) - 96)),
            "{kept}"
        );
    }

    #[test]
    fn a_secret_straddling_the_cut_is_hidden_whole() {
        let text = format!(
            r#"{{"text":"{} AKIAABCDEFGHIJKLMNOP tail"}}"#,
            "a".repeat(90)
        );
        let (v, n) = excerpt(&redactor(), &text, 100).unwrap();
        let kept = v["text"].as_str().unwrap();
        assert_eq!(n, 1);
        assert!(!kept.contains("AKIA"), "{kept}");
    }

    #[test]
    fn members_and_items_past_the_budget_are_dropped_and_counted() {
        let items: Vec<String> = (0..1000).map(|i| format!("\"item {i}\"")).collect();
        let text = format!(r#"{{"a":[{}],"b":1,"c":2}}"#, items.join(","));
        let (v, _) = excerpt(&redactor(), &text, 64).unwrap();
        let a = v["a"].as_array().unwrap();
        assert!(a.len() < 20, "{v}");
        assert!(
            a.last().unwrap().as_str().unwrap().contains("more items"),
            "{v}"
        );
        assert!(v["…"].as_str().unwrap().contains("2 more members"), "{v}");
    }
}
