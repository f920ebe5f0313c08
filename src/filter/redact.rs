//! Secret redaction in both directions: the one maintained pattern set (the audit log's
//! redactor and `scan` are built from it too) plus the policy's patterns; each secret is
//! replaced by `[REDACTED:<kind>]`, unless an allow-list entry matches it.
//!
//! A cheap literal pre-filter runs over the raw JSON text; only a message that may hold a
//! secret is parsed and walked string by string.

use std::ops::Range;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Captures, Regex, RegexSet};
use serde_json::Value;

use crate::protocol::needle::Needle;

/// The maintained set: kind → pattern. A pattern with a `secret` group redacts only that group
/// in messages (the password of a connection string, not the whole URL). Order matters: a more
/// specific kind first (Anthropic keys also start with `sk-`). Every pattern must contain one of
/// the `TRIGGERS`.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "private_key",
        // An unterminated block (cut short) is redacted to the end of the text.
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)",
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
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b",
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
        r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,}",
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
/// in the spellings that occur; searched all at once by one Aho-Corasick automaton (the
/// firewall's, `raw_scan.rs`, in the same pass as the other literals it looks for).
/// A connection string is recognised by `://` together with `@` (see `may_contain_secret`).
pub(crate) const TRIGGERS: &[&str] = &[
    "PRIVATE KEY",
    "AKIA",
    "ASIA",
    "ABIA",
    "ACCA",
    // The AWS secret, Azure key and SAS patterns ignore case: these cover every spelling a
    // config or a URL really uses (`AwsSecretAccessKey=`, `Accountkey=`, `SIG=`).
    "ecret",
    "ECRET",
    "ccountKey=",
    "ccountkey=",
    "CCOUNTKEY=",
    "sig=",
    "Sig=",
    "SIG=",
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

/// Shorter values are not redacted as secrets: values such as `1`, `true`, `debug` or `8080`
/// are configuration, and replacing every occurrence of them would mangle ordinary text; a
/// password or token worth hiding is at least this long.
pub const MIN_SECRET_CHARS: usize = 8;

/// Variables whose values are not secrets but words, paths or locales that turn up in
/// ordinary text (redacting `HOME` would mangle every path under it).
const NOT_SECRET: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "PWD", "TMPDIR",
];
const NOT_SECRET_PREFIXES: &[&str] = &["LC_", "XDG_"];

/// Values the server is given that must not come back out of it: the `--env` values, each
/// redacted wherever it appears as `[REDACTED:env:NAME]`. `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct KnownSecrets {
    /// kind (`env:NAME`) → the value.
    values: Vec<(String, String)>,
}

impl std::fmt::Debug for KnownSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl KnownSecrets {
    /// The value of variable `name`, unless too short or of a variable that holds no secret.
    pub fn add_env(&mut self, name: &str, value: &str) {
        let plain =
            NOT_SECRET.contains(&name) || NOT_SECRET_PREFIXES.iter().any(|p| name.starts_with(p));
        if plain || value.chars().count() < MIN_SECRET_CHARS {
            return;
        }
        self.values.push((format!("env:{name}"), value.to_owned()));
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The variables' names.
    pub fn names(&self) -> Vec<&str> {
        self.values
            .iter()
            .map(|(kind, _)| kind.trim_start_matches("env:"))
            .collect()
    }

    /// kind → a pattern matching the value literally.
    pub fn patterns(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(kind, value)| (kind.clone(), regex::escape(value)))
            .collect()
    }

    /// Literals one of which raw JSON text holds when it may spell a value: the value as JSON
    /// writes it, or an escape that may spell any of it differently (`\u0041`, `\/`).
    fn triggers(&self) -> Vec<String> {
        let mut triggers: Vec<String> = self
            .values
            .iter()
            .map(|(_, value)| {
                let quoted = serde_json::to_string(value).unwrap_or_default();
                quoted.trim_matches('"').to_owned()
            })
            .collect();
        if !triggers.is_empty() {
            triggers.extend(["\\u".to_owned(), "\\/".to_owned()]);
        }
        triggers
    }
}

#[derive(Debug, thiserror::Error)]
#[error("bad redaction pattern `{kind}`: {source}")]
pub struct PatternError {
    kind: String,
    #[source]
    source: regex::Error,
}

fn compile(kind: &str, re: &str) -> Result<Regex, PatternError> {
    Regex::new(re).map_err(|source| PatternError {
        kind: kind.to_owned(),
        source,
    })
}

#[derive(Debug, Clone)]
struct Rule {
    kind: String,
    re: Regex,
}

/// Secret patterns (built-ins and the policy's) with the allow-list of false positives:
/// what the firewall's and the audit log's redactors share. Compiled on first use: compiling
/// them all costs several milliseconds at start-up, and most sessions never need them.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    /// kind → pattern, in the order they are applied.
    sources: Vec<(String, String)>,
    rules: OnceLock<Vec<Rule>>,
    /// All rules in one set, for callers that first ask which of them match at all.
    set: OnceLock<RegexSet>,
    /// Anchored: an allow-list entry must match a whole secret.
    allow: Vec<Regex>,
}

impl Patterns {
    /// `builtin`: kind → pattern (`BUILTIN`, possibly renamed, or nothing); `patterns`: the
    /// policy's, checked now so that a typo is an error at start-up; `allow`: regexes of false
    /// positives.
    pub fn new(
        builtin: &[(&str, &str)],
        patterns: &[(String, String)],
        allow: &[String],
    ) -> Result<Patterns, PatternError> {
        let mut sources: Vec<(String, String)> = builtin
            .iter()
            .map(|(k, re)| ((*k).to_owned(), (*re).to_owned()))
            .collect();
        for (kind, re) in patterns {
            compile(kind, re)?;
            sources.push((kind.clone(), re.clone()));
        }
        let allow = allow
            .iter()
            .map(|re| compile("allow", &format!("^(?:{re})$")))
            .collect::<Result<_, _>>()?;
        Ok(Patterns {
            sources,
            rules: OnceLock::new(),
            set: OnceLock::new(),
            allow,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The same rules and then `known`'s values.
    pub fn with_known(mut self, known: &KnownSecrets) -> Patterns {
        self.sources.extend(known.patterns());
        // Compiled on first use: nothing compiled yet is stale, but be sure.
        self.rules = OnceLock::new();
        self.set = OnceLock::new();
        self
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

    /// The indices of the rules that match `text`, from one pass over it.
    pub fn matching(&self, text: &str) -> impl Iterator<Item = usize> {
        self.set
            .get_or_init(|| {
                RegexSet::new(self.rules().iter().map(|r| r.re.as_str()))
                    .unwrap_or_else(|_| RegexSet::empty())
            })
            .matches(text)
            .into_iter()
    }

    /// The kind of rule `i`.
    pub fn kind(&self, i: usize) -> &str {
        self.rules().get(i).map_or("", |r| r.kind.as_str())
    }

    /// The rules' count: `0..len()` are all of them.
    pub fn len(&self) -> usize {
        self.rules().len()
    }

    /// `text` with the matches of the rules `candidates` (in order; each runs over the previous
    /// one's output) replaced by `[REDACTED:<kind>]`; `None` when nothing was replaced. `span`
    /// picks what of a match is replaced (`None`: nothing); `hit` hears each kind replaced and
    /// how many times.
    pub fn redact(
        &self,
        text: &str,
        candidates: impl IntoIterator<Item = usize>,
        span: impl Fn(usize, &Captures<'_>, &str) -> Option<Range<usize>>,
        mut hit: impl FnMut(&str, u64),
    ) -> Option<String> {
        let rules = self.rules();
        let mut current: Option<String> = None;
        for i in candidates {
            let Some(rule) = rules.get(i) else { continue };
            let source = current.as_deref().unwrap_or(text);
            if !rule.re.is_match(source) {
                continue;
            }
            let mut out = String::with_capacity(source.len());
            let mut last = 0;
            let mut hits = 0;
            for caps in rule.re.captures_iter(source) {
                let Some(secret) = span(i, &caps, source) else {
                    continue;
                };
                // A span may run past its match (the audit's whole URL) over later matches.
                if secret.start < last
                    || self
                        .allow
                        .iter()
                        .any(|a| a.is_match(&source[secret.clone()]))
                {
                    continue;
                }
                out.push_str(&source[last..secret.start]);
                out.push_str("[REDACTED:");
                out.push_str(&rule.kind);
                out.push(']');
                last = secret.end;
                hits += 1;
            }
            if hits > 0 {
                out.push_str(&source[last..]);
                hit(&rule.kind, hits);
                current = Some(out);
            }
        }
        current
    }
}

/// The firewall's redactor: the patterns behind a pre-filter over each message's raw text.
#[derive(Debug, Default)]
pub struct Redactor {
    patterns: Patterns,
    /// The maintained set is on: look for its `TRIGGERS`, and for `user:password@` after a
    /// `://`.
    builtin: bool,
    builtin_trigger: Option<AhoCorasick>,
    /// The policy's own patterns, run over the raw text as their own pre-filter.
    custom_trigger: Option<RegexSet>,
    /// The known secrets' literals ([`KnownSecrets`]).
    known_trigger: Option<AhoCorasick>,
}

impl Redactor {
    /// `patterns`: kind → regex from the policy; `allow`: regexes of false positives.
    pub fn new(
        builtin: bool,
        patterns: &[(String, String)],
        allow: &[String],
    ) -> Result<Redactor, PatternError> {
        let builtins = if builtin { BUILTIN } else { &[] };
        // Leftmost-first: only then does the automaton search with its SIMD prefilter (Teddy);
        // a match is a match either way. A handful of short literals cannot exceed its limits;
        // were it to fail, every message is walked (see `may_contain_secret`).
        let builtin_trigger = builtin
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(TRIGGERS)
                    .ok()
            })
            .flatten();
        let custom_trigger = (!patterns.is_empty())
            .then(|| {
                RegexSet::new(patterns.iter().map(|(_, re)| re)).map_err(|source| PatternError {
                    kind: "patterns".into(),
                    source,
                })
            })
            .transpose()?;
        Ok(Redactor {
            patterns: Patterns::new(builtins, patterns, allow)?,
            builtin,
            builtin_trigger,
            custom_trigger,
            known_trigger: None,
        })
    }

    /// The same redactor, redacting `known`'s values too.
    pub fn with_known(self, known: &KnownSecrets) -> Redactor {
        if known.is_empty() {
            return self;
        }
        // Should the automaton fail to build, one that matches everywhere takes its place:
        // every message is then walked, none let through unchecked.
        let known_trigger = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(known.triggers())
            .or_else(|_| AhoCorasick::new([""]))
            .ok();
        Redactor {
            patterns: self.patterns.with_known(known),
            known_trigger,
            ..self
        }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the raw JSON text may hold a secret (false: no need to parse it).
    pub fn may_contain_secret(&self, raw: &str) -> bool {
        let trigger = self.builtin
            && self
                .builtin_trigger
                .as_ref()
                .is_none_or(|t| t.is_match(raw));
        self.may_contain_secret_given(raw, trigger)
    }

    /// The built-in triggers, when the built-in patterns are on: a caller that searches the
    /// raw text anyway looks for them in the same pass ([`Redactor::may_contain_secret_given`]).
    pub fn builtin_triggers(&self) -> Option<&'static [&'static str]> {
        self.builtin.then_some(TRIGGERS)
    }

    /// [`Redactor::may_contain_secret`], told whether the text holds one of the
    /// [`Redactor::builtin_triggers`].
    pub fn may_contain_secret_given(&self, raw: &str, trigger: bool) -> bool {
        static SCHEME_SEPARATOR: Needle = Needle::new(b"://");
        let bytes = raw.as_bytes();
        let builtin = self.builtin
            && (trigger
                || (memchr::memchr(b'@', bytes).is_some() && SCHEME_SEPARATOR.is_in(bytes)));
        builtin
            || self
                .custom_trigger
                .as_ref()
                .is_some_and(|t| t.is_match(raw))
            || self.known_trigger.as_ref().is_some_and(|t| t.is_match(raw))
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
        let secret = |_: usize, caps: &Captures<'_>, _: &str| {
            caps.name("secret")
                .or_else(|| caps.get(0))
                .map(|m| m.range())
        };
        self.patterns
            .redact(text, 0..self.patterns.len(), secret, |kind, _| {
                if !kinds.iter().any(|k| k == kind) {
                    kinds.push(kind.to_owned());
                }
            })
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

    #[test]
    fn redact_known_secrets_however_json_spells_them() {
        let mut known = KnownSecrets::default();
        known.add_env("API_TOKEN", "tok/\"quoted\"-123");
        known.add_env("PORT", "8080");
        known.add_env("HOME", "/home/someone");
        assert_eq!(known.names(), ["API_TOKEN"]);
        assert_eq!(format!("{known:?}"), r#"["API_TOKEN"]"#);
        let r = Redactor::new(false, &[], &[]).unwrap().with_known(&known);
        let secret = "tok/\"quoted\"-123";
        assert_eq!(
            redact(&r, &format!("the token is {secret}.")),
            "the token is [REDACTED:env:API_TOKEN]."
        );
        // The pre-filter reads raw JSON: the value as written, or escaped in any way.
        assert!(r.may_contain_secret(r#"{"t":"tok/\"quoted\"-123"}"#));
        assert!(r.may_contain_secret(r#"{"t":"tok\/\"quoted\"-123"}"#));
        assert!(r.may_contain_secret(r#"{"t":"\u0074ok/\"quoted\"-123"}"#));
        assert!(!r.may_contain_secret(r#"{"t":"nothing here, port 8080"}"#));
    }

    #[test]
    fn redact_what_the_audit_log_caught() {
        let r = Redactor::new(true, &[], &[]).unwrap();
        let cases = [
            (
                "key -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r",
                "key [REDACTED:private_key]",
            ),
            (
                "github_pat_0123456789abcdefghijABCDEFGHIJ0123456789",
                "[REDACTED:github_token]",
            ),
            ("eyJhbGciOi.eyJzdWIiOi.abcdefgh", "[REDACTED:jwt]"),
        ];
        for (text, want) in cases {
            assert_eq!(redact(&r, text), want, "{text}");
            assert!(r.may_contain_secret(text), "{text}");
        }
    }

    #[test]
    fn redact_case_variants_pass_the_prefilter() {
        // These patterns ignore case; the literal prefilter once let these spellings through.
        let r = Redactor::new(true, &[], &[]).unwrap();
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let aws = format!("AwsSecretAccessKey={secret}");
        let azure = format!("Accountkey={}", "A".repeat(64));
        let sas = format!(
            "https://x.blob.core.windows.net/c?sv=1&SIG={}",
            "b".repeat(32)
        );
        for text in [aws.as_str(), azure.as_str(), sas.as_str()] {
            assert!(r.may_contain_secret(text), "{text}");
            assert!(redact(&r, text).contains("[REDACTED:"), "{text}");
        }
    }
}
