//! What the audit log must not keep: values under sensitive key names, text matching the secret
//! patterns, and anything long (truncated). `scan` reuses the patterns to find secrets in output.

use std::sync::OnceLock;

use regex::{Regex, RegexSet};
use serde_json::Value;

/// The marker that replaces a redacted value; names the kind, never the secret.
pub fn marker(kind: &str) -> String {
    format!("[REDACTED:{kind}]")
}

/// Built-in secret patterns: kind → regular expression. Kept short and specific, so that
/// ordinary text (ids, hashes) does not trip them.
const BUILTIN: &[(&str, &str)] = &[
    (
        "private_key",
        r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )?PRIVATE KEY-----|$)",
    ),
    ("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    (
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b",
    ),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_\-]{20,}\b"),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),
    ("stripe_key", r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{20,}\b"),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}\b"),
    ("openai_key", r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{32,}\b"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\b",
    ),
    ("bearer", r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{20,}=*"),
    (
        "connection_password",
        r"\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:[^/\s@]+@[^\s]+",
    ),
];

#[derive(Debug, thiserror::Error)]
#[error("bad redaction pattern `{kind}`: {source}")]
pub struct PatternError {
    kind: String,
    #[source]
    source: regex::Error,
}

/// Redaction rules for audit events.
#[derive(Debug, Clone)]
pub struct Redactor {
    /// Lower-case key names whose values are always redacted.
    keys: Vec<String>,
    /// kind → pattern source; compiled on first use (compiling the set costs milliseconds, which
    /// a session that never audits a value should not pay at start-up).
    sources: Vec<(String, String)>,
    compiled: OnceLock<Compiled>,
    max_value_bytes: usize,
}

#[derive(Debug, Clone)]
struct Compiled {
    /// One pass over a text tells which patterns match at all; most texts match none.
    set: RegexSet,
    patterns: Vec<(String, Regex)>,
}

impl Redactor {
    /// `extra` are the policy's `[redaction] patterns` (kind → regex).
    pub fn new(
        keys: &[String],
        builtin: bool,
        extra: &[(String, String)],
        max_value_bytes: usize,
    ) -> Result<Self, PatternError> {
        let builtin_iter = BUILTIN
            .iter()
            .filter(|_| builtin)
            .map(|(k, p)| ((*k).to_owned(), (*p).to_owned()));
        // The policy's own patterns are checked now, so a typo is an error at start-up.
        for (kind, pattern) in extra {
            Regex::new(pattern).map_err(|source| PatternError {
                kind: kind.clone(),
                source,
            })?;
        }
        Ok(Self {
            keys: keys.iter().map(|k| k.to_ascii_lowercase()).collect(),
            sources: builtin_iter.chain(extra.iter().cloned()).collect(),
            compiled: OnceLock::new(),
            max_value_bytes: max_value_bytes.max(16),
        })
    }

    fn compiled(&self) -> &Compiled {
        self.compiled.get_or_init(|| {
            // Every source was checked in `new` (built-ins by the tests).
            let patterns: Vec<(String, Regex)> = self
                .sources
                .iter()
                .filter_map(|(kind, p)| Regex::new(p).ok().map(|re| (kind.clone(), re)))
                .collect();
            let set = RegexSet::new(patterns.iter().map(|(_, re)| re.as_str()))
                .unwrap_or_else(|_| RegexSet::empty());
            Compiled { set, patterns }
        })
    }

    /// The built-in patterns only (for `scan`).
    pub fn builtin() -> Self {
        Self::new(&[], true, &[], usize::MAX).unwrap_or(Self {
            keys: Vec::new(),
            sources: Vec::new(),
            compiled: OnceLock::new(),
            max_value_bytes: usize::MAX,
        })
    }

    /// Whether a key name is sensitive: exact, or containing a listed name (`x_api_key`).
    pub fn sensitive_key(&self, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        self.keys.iter().any(|k| key.contains(k.as_str()))
    }

    /// The kinds of secrets found in `text`.
    pub fn find_secrets<'s>(&'s self, text: &str) -> Vec<&'s str> {
        let compiled = self.compiled();
        compiled
            .set
            .matches(text)
            .into_iter()
            .map(|i| compiled.patterns[i].0.as_str())
            .collect()
    }

    /// Redact `value` in place; returns how many values were redacted.
    pub fn redact(&self, value: &mut Value) -> u64 {
        match value {
            Value::Object(map) => {
                let mut count = 0;
                for (key, v) in map.iter_mut() {
                    if self.sensitive_key(key) && !v.is_null() {
                        *v = Value::String(marker("key"));
                        count += 1;
                    } else {
                        count += self.redact(v);
                    }
                }
                count
            }
            Value::Array(items) => items.iter_mut().map(|v| self.redact(v)).sum(),
            Value::String(text) => {
                let (redacted, count) = self.redact_text(text);
                *text = truncate(&redacted, self.max_value_bytes);
                count
            }
            _ => 0,
        }
    }

    /// `text` with every pattern match replaced by its marker, and the number of matches.
    pub fn redact_text(&self, text: &str) -> (String, u64) {
        let compiled = self.compiled();
        let mut out = text.to_owned();
        let mut count = 0;
        for i in compiled.set.matches(text).into_iter() {
            let (kind, re) = &compiled.patterns[i];
            if re.is_match(&out) {
                count += re.find_iter(&out).count() as u64;
                out = re.replace_all(&out, marker(kind).as_str()).into_owned();
            }
        }
        (out, count)
    }

    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }
}

/// At most `max` bytes of `text` (on a character boundary), saying how much was cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated {} bytes]", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redactor() -> Redactor {
        Redactor::new(
            &["password".into(), "token".into()],
            true,
            &[("ticket".into(), r"TICKET-\d+".into())],
            32,
        )
        .unwrap()
    }

    #[test]
    fn redact_by_key_pattern_and_length() {
        let mut v = json!({
            "user": "ann",
            "Password": "hunter2",
            "auth": {"access_token": "abc"},
            "note": "key AKIAABCDEFGHIJKLMNOP and TICKET-42",
            "long": "x".repeat(100),
        });
        let n = redactor().redact(&mut v);
        assert_eq!(n, 4);
        assert_eq!(v["Password"], "[REDACTED:key]");
        assert_eq!(v["auth"]["access_token"], "[REDACTED:key]");
        let note = v["note"].as_str().unwrap();
        assert!(note.contains("[REDACTED:aws_access_key]") && !note.contains("AKIA"));
        assert!(v["long"].as_str().unwrap().contains("truncated 68 bytes"));
    }

    #[test]
    fn builtin_patterns_compile() {
        for (kind, pattern) in BUILTIN {
            assert!(Regex::new(pattern).is_ok(), "{kind}");
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let t = truncate("ééééé", 3);
        assert!(t.starts_with('é') && t.contains("truncated"));
    }

    #[test]
    fn builtin_patterns_ignore_plain_text() {
        let r = Redactor::builtin();
        assert!(r
            .find_secrets("the quick brown fox 0123456789abcdef")
            .is_empty());
        assert_eq!(
            r.find_secrets("postgres://app:s3cret@db.local/x"),
            ["connection_password"]
        );
    }
}
