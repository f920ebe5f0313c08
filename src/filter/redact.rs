//! Secret redaction in both directions: a maintained pattern set plus the policy's patterns;
//! each secret is replaced by `[REDACTED:<kind>]`, unless an allow-list entry matches it.
//!
//! A cheap literal pre-filter runs over the raw JSON text; only a message that may hold a
//! secret is parsed and walked string by string.

use std::sync::OnceLock;

use crate::protocol::needle::Needle;
use memchr::memmem::Finder;
use regex::{Regex, RegexSet};
use serde_json::Value;

/// The maintained set: kind → pattern. A pattern with a `secret` group redacts only that group
/// (the password of a connection string, not the whole URL). Order matters: a more specific
/// kind first (Anthropic keys also start with `sk-`).
const BUILTIN: &[(&str, &str)] = &[
    (
        "private_key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    ),
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    (
        "aws_secret_key",
        r#"(?i)aws_?secret_?access_?key["'\s]*[:=]\s*["']?(?P<secret>[A-Za-z0-9/+=]{40})"#,
    ),
    ("gcp_api_key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    (
        "azure_storage_key",
        r"(?i)AccountKey=(?P<secret>[A-Za-z0-9+/=]{60,})",
    ),
    (
        "azure_sas_signature",
        r"(?i)[?&]sig=(?P<secret>[A-Za-z0-9%+/=]{30,})",
    ),
    (
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})\b",
    ),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    ("slack_token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}"),
    (
        "slack_webhook",
        r"https://hooks\.slack\.com/services/[A-Za-z0-9/_]+",
    ),
    ("stripe_key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
    (
        "openai_key",
        r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    ),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}",
    ),
    (
        "bearer_token",
        r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9\-._~+/]{16,}=*)",
    ),
    (
        "connection_string_password",
        r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]+:(?P<secret>[^\s@/]+)@",
    ),
];

/// Literals at least one of which every built-in secret contains (as it appears in JSON text),
/// in the spellings that occur; plain literals let the regex engine search them all at once.
/// A connection string is recognised by `://` together with `@` (see `may_contain_secret`).
const TRIGGERS: &[&str] = &[
    "PRIVATE KEY",
    "AKIA",
    "ASIA",
    "ABIA",
    "ACCA",
    "aws_secret",
    "AWS_SECRET",
    "awsSecret",
    "aws_Secret",
    "AccountKey=",
    "accountkey=",
    "ACCOUNTKEY=",
    "sig=",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xox",
    "hooks.slack",
    "_live_",
    "_test_",
    "sk-",
    "eyJ",
    "Bearer",
    "bearer",
    "BEARER",
    "\\u",
];

#[derive(Debug, thiserror::Error)]
#[error("bad redaction pattern `{kind}`: {source}")]
pub struct PatternError {
    kind: String,
    #[source]
    source: regex::Error,
}

#[derive(Debug)]
struct Rule {
    kind: String,
    re: Regex,
}

#[derive(Debug, Default)]
pub struct Redactor {
    /// kind → pattern, compiled into `rules` on first use: compiling them all costs several
    /// milliseconds at start-up, and most sessions never carry anything the triggers flag.
    sources: Vec<(String, String)>,
    rules: OnceLock<Vec<Rule>>,
    allow: Vec<Regex>,
    builtin_trigger: Option<Regex>,
    /// Look for `user:password@` after a `://`.
    connection_strings: bool,
    /// The policy's own patterns, run over the raw text as their own pre-filter.
    custom_trigger: Option<RegexSet>,
}

impl Redactor {
    /// `patterns`: kind → regex from the policy; `allow`: regexes of false positives.
    pub fn new(
        builtin: bool,
        patterns: &[(String, String)],
        allow: &[String],
    ) -> Result<Redactor, PatternError> {
        let compile = |kind: &str, re: &str| {
            Regex::new(re).map_err(|source| PatternError {
                kind: kind.to_owned(),
                source,
            })
        };
        let mut sources: Vec<(String, String)> = Vec::new();
        if builtin {
            sources.extend(
                BUILTIN
                    .iter()
                    .map(|(k, re)| ((*k).to_owned(), (*re).to_owned())),
            );
        }
        for (kind, re) in patterns {
            // The policy's own patterns are checked now, so a typo is an error at start-up.
            compile(kind, re)?;
            sources.push((kind.clone(), re.clone()));
        }
        let allow = allow
            .iter()
            .map(|re| compile("allow", &format!("^(?:{re})$")))
            .collect::<Result<_, _>>()?;
        let literals: Vec<String> = TRIGGERS.iter().map(|t| regex::escape(t)).collect();
        let builtin_trigger = builtin
            .then(|| compile("triggers", &literals.join("|")))
            .transpose()?;
        let connection_strings = builtin;
        let custom_trigger = (!patterns.is_empty())
            .then(|| {
                RegexSet::new(patterns.iter().map(|(_, re)| re)).map_err(|source| PatternError {
                    kind: "patterns".into(),
                    source,
                })
            })
            .transpose()?;
        Ok(Redactor {
            sources,
            rules: OnceLock::new(),
            allow,
            builtin_trigger,
            connection_strings,
            custom_trigger,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    fn rules(&self) -> &[Rule] {
        self.rules.get_or_init(|| {
            // Built-ins are checked by a unit test, the policy's patterns in `new`.
            self.sources
                .iter()
                .filter_map(|(kind, re)| {
                    Regex::new(re).ok().map(|re| Rule {
                        kind: kind.clone(),
                        re,
                    })
                })
                .collect()
        })
    }

    /// Whether the raw JSON text may hold a secret (false: no need to parse it).
    pub fn may_contain_secret(&self, raw: &str) -> bool {
        static SCHEME_SEPARATOR: Needle = Needle::new(|| Finder::new(b"://"));
        let bytes = raw.as_bytes();
        self.builtin_trigger
            .as_ref()
            .is_some_and(|t| t.is_match(raw))
            || (self.connection_strings
                && memchr::memchr(b'@', bytes).is_some()
                && SCHEME_SEPARATOR.is_in(bytes))
            || self
                .custom_trigger
                .as_ref()
                .is_some_and(|t| t.is_match(raw))
    }

    /// Redact every string in `value` (keys are left alone); the kinds found are appended.
    pub fn redact_value(&self, value: &mut Value, kinds: &mut Vec<String>) -> bool {
        match value {
            Value::String(s) => match self.redact_str(s, kinds) {
                Some(new) => {
                    *s = new;
                    true
                }
                None => false,
            },
            Value::Array(items) => {
                let mut changed = false;
                for item in items {
                    changed |= self.redact_value(item, kinds);
                }
                changed
            }
            Value::Object(map) => {
                let mut changed = false;
                for item in map.values_mut() {
                    changed |= self.redact_value(item, kinds);
                }
                changed
            }
            _ => false,
        }
    }

    /// `text` with its secrets replaced; `None` when there were none.
    pub fn redact_str(&self, text: &str, kinds: &mut Vec<String>) -> Option<String> {
        let mut current: Option<String> = None;
        for rule in self.rules() {
            let source = current.as_deref().unwrap_or(text);
            if !rule.re.is_match(source) {
                continue;
            }
            let mut out = String::with_capacity(source.len());
            let mut last = 0;
            let mut hit = false;
            for caps in rule.re.captures_iter(source) {
                let Some(whole) = caps.get(0) else { continue };
                let secret = caps.name("secret").unwrap_or(whole);
                if self.allow.iter().any(|a| a.is_match(secret.as_str())) {
                    continue;
                }
                out.push_str(&source[last..secret.start()]);
                out.push_str("[REDACTED:");
                out.push_str(&rule.kind);
                out.push(']');
                last = secret.end();
                hit = true;
            }
            if hit {
                out.push_str(&source[last..]);
                if !kinds.contains(&rule.kind) {
                    kinds.push(rule.kind.clone());
                }
                current = Some(out);
            }
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(r: &Redactor, text: &str) -> String {
        r.redact_str(text, &mut Vec::new())
            .unwrap_or_else(|| text.to_owned())
    }

    #[test]
    fn builtin_patterns_compile() {
        for (kind, re) in BUILTIN {
            assert!(Regex::new(re).is_ok(), "{kind}");
        }
    }

    #[test]
    fn redact_builtin_kinds() {
        let r = Redactor::new(true, &[], &[]).unwrap();
        let cases = [
            ("key AKIAIOSFODNN7EXAMPLE here", "key [REDACTED:aws_access_key] here"),
            (
                "token ghp_0123456789abcdefghijABCDEFGHIJ012345",
                "token [REDACTED:github_token]",
            ),
            (
                "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
                "[REDACTED:anthropic_key]",
            ),
            (
                "OPENAI=sk-proj-abcdefghijklmnopqrstuvwxyz0123",
                "OPENAI=[REDACTED:openai_key]",
            ),
            (
                "postgres://admin:hunter2secret@db:5432/x",
                "postgres://admin:[REDACTED:connection_string_password]@db:5432/x",
            ),
            (
                "Authorization: Bearer abcdefghijklmnop.qrstuvwx",
                "Authorization: Bearer [REDACTED:bearer_token]",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
                "[REDACTED:private_key]",
            ),
            (
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                "[REDACTED:jwt]",
            ),
            ("xoxb-1234567890-abcdefghij", "[REDACTED:slack_token]"),
            ("sk_live_abcdefghijklmnop1234", "[REDACTED:stripe_key]"),
            ("glpat-abcdefghij0123456789", "[REDACTED:gitlab_token]"),
            ("AIzaSyA-abcdefghijklmnopqrstuvwxyz01234", "[REDACTED:gcp_api_key]"),
            ("just some text about AKIA", "just some text about AKIA"),
        ];
        for (text, want) in cases {
            assert_eq!(redact(&r, text), want, "{text}");
        }
    }

    #[test]
    fn redact_policy_patterns_and_allow_list() {
        let r = Redactor::new(
            true,
            &[("internal_token".into(), "itk_[A-Za-z0-9]{8}".into())],
            &["sk_test_[0-9a-z]+".into()],
        )
        .unwrap();
        assert_eq!(redact(&r, "t=itk_ABCDEFGH"), "t=[REDACTED:internal_token]");
        assert_eq!(
            redact(&r, "sk_test_abcdefghijklmnop12"),
            "sk_test_abcdefghijklmnop12"
        );
        assert!(r.may_contain_secret(r#"{"a":"itk_ABCDEFGH"}"#));
        assert!(!r.may_contain_secret(r#"{"a":"hello world"}"#));
    }
}
