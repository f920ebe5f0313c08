//! What the audit log must not keep: values under sensitive key names, text matching the secret
//! patterns, and anything long (truncated). `scan` reuses the patterns to find secrets in output.

use regex::Captures;
use serde_json::Value;

use crate::filter::redact::{KnownSecrets, PatternError, Patterns, BUILTIN};

/// The marker that replaces a redacted value; names the kind, never the secret.
pub fn marker(kind: &str) -> String {
    format!("[REDACTED:{kind}]")
}

/// The names the log has always given three of the built-in kinds (`scan` reports them too).
const LOG_NAMES: &[(&str, &str)] = &[
    ("gcp_api_key", "google_api_key"),
    ("bearer_token", "bearer"),
    ("connection_string_password", "connection_password"),
];

/// The built-in kind whose matches the log hides through the end of the URL (user and host
/// included), where the firewall replaces only the password.
const WHOLE_URL: &str = "connection_string_password";

/// Redaction rules for audit events.
#[derive(Debug, Clone)]
pub struct Redactor {
    /// Lower-case key names whose values are always redacted.
    keys: Vec<String>,
    /// The firewall's built-in patterns under the log's names, then the policy's.
    patterns: Patterns,
    /// The index of the `WHOLE_URL` rule, when the built-ins are on.
    whole_url: Option<usize>,
    max_value_bytes: usize,
}

impl Redactor {
    /// `extra` are the policy's `[redaction] patterns` (kind → regex).
    pub fn new(
        keys: &[String],
        builtin: bool,
        extra: &[(String, String)],
        max_value_bytes: usize,
    ) -> Result<Self, PatternError> {
        let builtins: Vec<(&str, &str)> = BUILTIN
            .iter()
            .filter(|_| builtin)
            .map(|&(kind, re)| {
                let name = LOG_NAMES.iter().find(|(k, _)| *k == kind);
                (name.map_or(kind, |(_, log)| *log), re)
            })
            .collect();
        Ok(Self {
            keys: keys.iter().map(|k| k.to_ascii_lowercase()).collect(),
            // The log has never applied the `[redaction] allow` list; it still does not.
            patterns: Patterns::new(&builtins, extra, &[])?,
            whole_url: BUILTIN
                .iter()
                .position(|(k, _)| *k == WHOLE_URL)
                .filter(|_| builtin),
            max_value_bytes: max_value_bytes.max(16),
        })
    }

    /// The same redactor, redacting `known`'s values too (after the other rules, so the
    /// `WHOLE_URL` rule keeps its place).
    pub fn with_known(self, known: &KnownSecrets) -> Self {
        Self {
            patterns: self.patterns.with_known(known),
            ..self
        }
    }

    /// The built-in patterns only (for `scan`).
    pub fn builtin() -> Self {
        Self::new(&[], true, &[], usize::MAX).unwrap_or(Self {
            keys: Vec::new(),
            patterns: Patterns::default(),
            whole_url: None,
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
        self.patterns
            .matching(text)
            .map(|i| self.patterns.kind(i))
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
        // The whole match, not only a `secret` group; a URL through to its end.
        let span = |i: usize, caps: &Captures<'_>, source: &str| {
            let m = caps.get(0)?;
            let end = if Some(i) == self.whole_url {
                source[m.end()..]
                    .find(char::is_whitespace)
                    .map_or(source.len(), |n| m.end() + n)
            } else {
                m.end()
            };
            Some(m.start()..end)
        };
        let mut count = 0;
        let redacted = self
            .patterns
            .redact(text, self.patterns.matching(text), span, |_, n| count += n);
        (redacted.unwrap_or_else(|| text.to_owned()), count)
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
    fn known_secrets_are_redacted_by_name() {
        let mut known = KnownSecrets::default();
        known.add_env("DB_PASSWORD", "correct-horse-battery");
        let r = redactor().with_known(&known);
        let mut v = json!({"q": "login correct-horse-battery"});
        assert_eq!(r.redact(&mut v), 1);
        assert_eq!(v["q"], "login [REDACTED:env:DB_PASSWORD]");
        assert_eq!(
            r.redact_text("pg://u:correct-horse-battery@h x").0,
            "[REDACTED:connection_password] x"
        );
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

    #[test]
    fn log_keeps_its_names_and_hides_whole_urls() {
        let r = Redactor::builtin();
        let cases = [
            (
                "Authorization: Bearer abcdefghijklmnopqrst",
                "Authorization: [REDACTED:bearer]",
                1,
            ),
            (
                "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
                "[REDACTED:google_api_key]",
                1,
            ),
            (
                "a=pg://u:p1@h,b=pg://v:p2@h2 end",
                "a=[REDACTED:connection_password] end",
                1,
            ),
        ];
        for (text, want, n) in cases {
            assert_eq!(r.redact_text(text), (want.to_owned(), n), "{text}");
        }
    }

    #[test]
    fn log_gains_the_firewall_patterns() {
        let r = Redactor::builtin();
        let cases = [
            ("ABIAIOSFODNN7EXAMPLE", "[REDACTED:aws_access_key]"),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "[REDACTED:aws_secret_key]",
            ),
            (
                "AccountName=a;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;",
                "AccountName=a;[REDACTED:azure_storage_key];",
            ),
            (
                "https://a.blob.core.windows.net/c?sv=2022&sig=abcdefghijklmnopqrstuvwxyz012345%3D",
                "https://a.blob.core.windows.net/c?sv=2022[REDACTED:azure_sas_signature]",
            ),
            ("xoxe-1234567890-abcdef", "[REDACTED:slack_token]"),
            (
                "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
                "[REDACTED:slack_webhook]",
            ),
            ("sk_live_abcdefghij123456", "[REDACTED:stripe_key]"),
            ("sk-svcacct-abcdefghijklmnopqrst", "[REDACTED:openai_key]"),
            ("eyJhbGci.eyJzdWIi.abcdefghij", "[REDACTED:jwt]"),
            ("Bearer abcdefghijklmnop", "[REDACTED:bearer]"),
            (
                "Postgres://app:s3cret@ x",
                "[REDACTED:connection_password] x",
            ),
            (
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----",
                "[REDACTED:private_key]",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(r.redact_text(text), (want.to_owned(), 1), "{text}");
        }
    }
}
