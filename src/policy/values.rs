//! Value types of the policy file. Each validates itself while it is deserialized, so a bad value
//! is reported by toml with its exact span; the messages say what to write instead.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::error::closest;
use super::Origin;
use crate::protocol::schema::Fault;

/// A value from one layer: where it sits in its file (for errors) and which layer set it (for
/// `policy show`). Equality and ordering look at the value only.
#[derive(Debug, Clone)]
pub struct Val<T> {
    pub value: T,
    pub span: Option<Range<usize>>,
    /// Set by the merge from the layer, unless the layer (CLI flags) named it already.
    pub origin: Option<Origin>,
}

impl<T> Val<T> {
    /// A value that comes from no file (built in code, or a CLI flag).
    pub fn new(value: T, origin: Option<Origin>) -> Self {
        Val {
            value,
            span: None,
            origin,
        }
    }

    /// The layer that set this value, for annotations.
    pub fn origin_label(&self) -> String {
        self.origin
            .as_ref()
            .map(Origin::to_string)
            .unwrap_or_else(|| "built-in".into())
    }
}

impl<T: PartialEq> PartialEq for Val<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Val<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // toml reports an error inside an array at the whole array; going through a spanned
        // `toml::Value` keeps this element's span, carried in the message (see `span_marker`).
        let spanned = toml::Spanned::<toml::Value>::deserialize(d)?;
        let span = spanned.span();
        match T::deserialize(spanned.into_inner()) {
            Ok(value) => Ok(Val {
                value,
                span: Some(span),
                origin: None,
            }),
            Err(e) => Err(de::Error::custom(format!(
                "{SPAN_MARK}{}-{}{SPAN_MARK}{}",
                span.start,
                span.end,
                e.message()
            ))),
        }
    }
}

/// Brackets a `start-end` span at the front of an error message.
const SPAN_MARK: char = '\u{1}';

/// An error at `span` (when known), in the form [`span_marker`] reads back.
pub fn spanned_error<E: de::Error>(span: Option<Range<usize>>, message: &str) -> E {
    match span {
        Some(span) => E::custom(format!(
            "{SPAN_MARK}{}-{}{SPAN_MARK}{message}",
            span.start, span.end
        )),
        None => E::custom(message),
    }
}

/// Split a message made by `Val`'s deserializer into its span and the message proper.
pub fn span_marker(message: &str) -> Option<(Range<usize>, &str)> {
    let rest = message.strip_prefix(SPAN_MARK)?;
    let (span, text) = rest.split_once(SPAN_MARK)?;
    let (start, end) = span.split_once('-')?;
    Some((start.parse().ok()?..end.parse().ok()?, text))
}

/// Any TOML scalar, so the types below can accept `512` as well as `"512MiB"`.
enum Scalar {
    Int(i64),
    Float(f64),
    Str(String),
}

struct ScalarVisitor(&'static str);

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        i64::try_from(v)
            .map(Scalar::Int)
            .map_err(|_| E::custom(format!("{v} is too large")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D, expecting: &'static str) -> Result<Scalar, D::Error> {
    d.deserialize_any(ScalarVisitor(expecting))
}

fn is_unlimited(s: &str) -> bool {
    matches!(s, "unlimited" | "none")
}

/// A byte size: `"512MiB"`, `"2GB"`, `4096`, or `"unlimited"` (which lifts a lower layer's limit).
#[derive(Debug, Clone, PartialEq)]
pub struct Size {
    pub bytes: Option<u64>,
    /// As written, for `policy show`.
    pub text: String,
}

impl Size {
    pub fn parse(text: &str) -> Result<Size, String> {
        if is_unlimited(text) {
            return Ok(Size {
                bytes: None,
                text: text.into(),
            });
        }
        text.parse::<bytesize::ByteSize>()
            .map(|b| Size { bytes: Some(b.as_u64()), text: text.into() })
            .map_err(|_| format!("`{text}` is not a size; write e.g. \"512MiB\", \"2GiB\", 4096 or \"unlimited\""))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match scalar(d, "a size such as \"512MiB\"")? {
            Scalar::Int(n) if n >= 0 => Ok(Size {
                bytes: Some(n as u64),
                text: n.to_string(),
            }),
            Scalar::Str(s) => Size::parse(&s).map_err(de::Error::custom),
            _ => Err(de::Error::custom(
                "expected a size; write e.g. \"512MiB\", \"2GiB\", 4096 or \"unlimited\"",
            )),
        }
    }
}

/// A duration: `"30s"`, `"5m"`, `"1h 30m"`, or `"unlimited"`.
#[derive(Debug, Clone, PartialEq)]
pub struct DurationText {
    pub duration: Option<Duration>,
    pub text: String,
}

impl DurationText {
    pub fn parse(text: &str) -> Result<DurationText, String> {
        if is_unlimited(text) {
            return Ok(DurationText {
                duration: None,
                text: text.into(),
            });
        }
        humantime::parse_duration(text)
            .map(|d| DurationText { duration: Some(d), text: text.into() })
            .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. \"500ms\", \"30s\", \"5m\", \"1h\" or \"unlimited\""))
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match scalar(d, "a duration such as \"30s\"")? {
            Scalar::Str(s) => DurationText::parse(&s).map_err(de::Error::custom),
            Scalar::Int(n) => Err(de::Error::custom(format!(
                "a bare number has no unit; write \"{n}s\" (or ms, m, h)"
            ))),
            Scalar::Float(_) => Err(de::Error::custom(
                "expected a duration; write e.g. \"30s\", \"5m\" or \"unlimited\"",
            )),
        }
    }
}

/// A count (pids, open files): a positive integer or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Count(pub Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match scalar(d, "a positive integer or \"unlimited\"")? {
            Scalar::Int(n) if n > 0 => Ok(Count(Some(n as u64))),
            Scalar::Str(s) if is_unlimited(&s) => Ok(Count(None)),
            _ => Err(de::Error::custom(
                "expected a positive integer or \"unlimited\"; write e.g. 256",
            )),
        }
    }
}

/// CPU bandwidth in cores (`1.5`), or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpus(pub Option<f64>);

impl Cpus {
    pub fn parse(text: &str) -> Result<Cpus, String> {
        if is_unlimited(text) {
            return Ok(Cpus(None));
        }
        match text.parse::<f64>() {
            Ok(v) if v > 0.0 && v.is_finite() => Ok(Cpus(Some(v))),
            _ => Err(format!(
                "`{text}` is not a number of cores; write e.g. 1, 0.5 or 2.5"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match scalar(d, "a number of cores")? {
            Scalar::Int(n) if n > 0 => Ok(Cpus(Some(n as f64))),
            Scalar::Float(v) if v > 0.0 && v.is_finite() => Ok(Cpus(Some(v))),
            Scalar::Str(s) => Cpus::parse(&s).map_err(de::Error::custom),
            _ => Err(de::Error::custom(
                "expected a positive number of cores; write e.g. 1, 0.5 or 2.5",
            )),
        }
    }
}

/// A token-bucket rate: `"10/s"`, `"100/min"`, `"1000/h"`. The burst equals the count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

impl RateLimit {
    pub fn parse(text: &str) -> Result<RateLimit, String> {
        let bad =
            || format!("`{text}` is not a rate; write e.g. \"10/s\", \"100/min\" or \"1000/h\"");
        let (count, unit) = text.split_once('/').ok_or_else(bad)?;
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(bad)?;
        let secs = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => return Err(bad()),
        };
        Ok(RateLimit {
            count,
            per: Duration::from_secs(secs),
        })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RateLimit::parse(&s).map_err(de::Error::custom)
    }
}

/// A glob over names (tools, prompts): `"read_*"`, `"git_{status,diff}"`.
#[derive(Debug, Clone, PartialEq)]
pub struct NameGlob(pub String);

impl<'de> Deserialize<'de> for NameGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Err(de::Error::custom(
                "an empty name matches nothing; write a name or a glob such as \"read_*\"",
            ));
        }
        globset::Glob::new(&s)
            .map(|_| NameGlob(s.clone()))
            .map_err(|e| {
                de::Error::custom(format!(
                    "bad glob `{s}`: {}; escape a literal `*`, `?`, `[` or `{{` as `[*]`",
                    glob_kind(&e)
                ))
            })
    }
}

/// A resource URI pattern: a glob over the normalised URI, `"file:///home/*/notes/**"`,
/// `"memory://*"`, or `"*"`.
#[derive(Debug, Clone, PartialEq)]
pub struct UriPattern(pub String);

impl<'de> Deserialize<'de> for UriPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s != "*" && !s.contains("://") {
            return Err(de::Error::custom(format!(
                "`{s}` is not a URI pattern; write a scheme and a glob, e.g. \"file:///srv/docs/**\" or \"memory://*\""
            )));
        }
        let scheme_end = s.find("://").unwrap_or(0);
        if s[..scheme_end].chars().any(|c| c.is_ascii_uppercase()) {
            let fixed = format!(
                "{}{}",
                s[..scheme_end].to_ascii_lowercase(),
                &s[scheme_end..]
            );
            return Err(de::Error::custom(format!(
                "URI schemes are matched in lower case; write \"{fixed}\""
            )));
        }
        globset::Glob::new(&s)
            .map(|_| UriPattern(s.clone()))
            .map_err(|e| de::Error::custom(format!("bad URI glob `{s}`: {}", glob_kind(&e))))
    }
}

/// A regular expression (Rust `regex` syntax), checked when the policy is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct RegexText(pub String);

impl<'de> Deserialize<'de> for RegexText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::Regex::new(&s).map(|_| RegexText(s.clone())).map_err(|e| {
            let detail = e.to_string();
            let last = detail.lines().last().unwrap_or("invalid").trim().to_owned();
            de::Error::custom(format!("bad regular expression `{s}`: {last}; in TOML prefer a literal string ('...') so backslashes stay as written"))
        })
    }
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvName(pub String);

impl EnvName {
    pub fn parse(s: &str) -> Result<EnvName, String> {
        let mut chars = s.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(EnvName(s.into()))
        } else {
            Err(format!("`{s}` is not an environment variable name; write letters, digits and `_`, e.g. \"NODE_ENV\""))
        }
    }
}

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EnvName::parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// A protected name, relative to each writable root: `.vscode`, `.config/fish` (no `..`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProtectName(pub String);

impl<'de> Deserialize<'de> for ProtectName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if crate::sandbox::protect::is_relative_name(std::path::Path::new(&s)) {
            Ok(ProtectName(s))
        } else {
            Err(de::Error::custom(format!("`{s}` is not a protected name; write a path relative to each writable directory, going down only, e.g. \".vscode\" or \"tools/hooks\"")))
        }
    }
}

/// A syscall name as in `man 2 syscalls`: lower-case letters, digits and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SyscallName(pub String);

impl<'de> Deserialize<'de> for SyscallName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(SyscallName(s))
        } else {
            Err(de::Error::custom(format!("`{s}` is not a syscall name; write the name from `man 2 syscalls`, e.g. \"ptrace\"")))
        }
    }
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Fault::from_name(&s).ok_or_else(|| {
            let names: Vec<&str> = Fault::ALL.iter().map(|f| f.as_str()).collect();
            let hint = closest(&s, names.iter().copied())
                .map(|c| format!(" (did you mean \"{c}\"?)"))
                .unwrap_or_default();
            de::Error::custom(format!(
                "`{s}` is not a schema fault mcp-guard can tolerate{hint}; write one of \"{}\"",
                names.join("\", \"")
            ))
        })
    }
}

/// What globset found wrong, without its repetition of the whole glob.
fn glob_kind(e: &globset::Error) -> String {
    e.kind().to_string()
}
