//! Sections read by the message firewall and the audit log: parsed and validated here, enforced
//! by the relay's filters.

use std::collections::BTreeMap;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::values::{
    spanned_error, Count, DurationText, NameGlob, RateLimit, RegexText, Size, UriPattern, Val,
};
use super::vars::PathPattern;
use crate::protocol::schema::Fault;

/// `[tools]` and `[prompts]`: which items the host may see and use. No `allow` in any layer
/// means every item; `deny` wins. Any other table in the section, `[tools.NAME]` (NAME a name or
/// a name glob), holds settings for the items it matches.
#[derive(Debug, Clone, Default)]
pub struct Items {
    pub allow: Vec<Val<NameGlob>>,
    pub deny: Vec<Val<NameGlob>>,
    /// For the whole method (`tools/call`, `prompts/get`).
    pub rate_limit: Option<Val<RateLimit>>,
    /// Per item, by exact name.
    pub rate_limits: BTreeMap<String, Val<RateLimit>>,
    /// Item name → argument name → rule.
    pub arguments: BTreeMap<String, BTreeMap<String, Val<ArgumentRule>>>,
    /// How long a call waits for the user's answer (`confirm = true`) before it is refused.
    pub confirm_timeout: Option<Val<DurationText>>,
    /// `[tools.NAME]` tables: item name or name glob → its settings.
    pub each: BTreeMap<String, Val<ItemSettings>>,
}

/// `[tools.NAME]`: settings for the items NAME matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ItemSettings {
    /// Ask the user (MCP elicitation, through the host) before each call is forwarded.
    pub confirm: Option<bool>,
}

/// The keys of `[tools]` itself; any other key must be a `[tools.NAME]` table.
const ITEMS_KEYS: &[&str] = &[
    "allow",
    "deny",
    "rate_limit",
    "rate_limits",
    "arguments",
    "confirm_timeout",
];

// By hand, not derived: serde cannot both refuse unknown keys and collect the `[tools.NAME]`
// tables (`flatten` turns `deny_unknown_fields` off and loses the spans `Val` keeps).
impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ItemsVisitor)
    }
}

struct ItemsVisitor;

impl<'de> Visitor<'de> for ItemsVisitor {
    type Value = Items;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table of item rules")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Items, A::Error> {
        let mut items = Items::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "allow" => items.allow = map.next_value()?,
                "deny" => items.deny = map.next_value()?,
                "rate_limit" => items.rate_limit = map.next_value()?,
                "rate_limits" => items.rate_limits = map.next_value()?,
                "arguments" => items.arguments = map.next_value()?,
                "confirm_timeout" => items.confirm_timeout = map.next_value()?,
                _ => {
                    let value: Val<toml::Value> = map.next_value()?;
                    // Not a table: a mistyped key (`alow = [...]`), reported as serde would, at
                    // the value (its line names the key and the section).
                    if !value.value.is_table() {
                        let known: Vec<String> =
                            ITEMS_KEYS.iter().map(|k| format!("`{k}`")).collect();
                        let message = format!(
                            "unknown field `{key}`, expected one of {}",
                            known.join(", ")
                        );
                        return Err(spanned_error(value.span, &message));
                    }
                    let settings = ItemSettings::deserialize(value.value).map_err(|e| {
                        let message = format!(
                            "in the table for `{key}`: {}; it takes `confirm = true` or `confirm = false`",
                            e.message().trim_end()
                        );
                        spanned_error::<A::Error>(value.span.clone(), &message)
                    })?;
                    if globset::Glob::new(&key).is_err() || key.is_empty() {
                        return Err(spanned_error(
                            value.span,
                            &format!("`{key}` is not a name or a name glob; escape a literal `*`, `?`, `[` or `{{` as `[*]`"),
                        ));
                    }
                    items.each.insert(
                        key,
                        Val {
                            value: settings,
                            span: value.span,
                            origin: None,
                        },
                    );
                }
            }
        }
        Ok(items)
    }
}

/// A check on one named argument of a call.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArgumentRule {
    /// The argument is a path that must lie under one of these.
    pub under: Vec<PathPattern>,
    /// The whole argument must match this regular expression.
    pub pattern: Option<RegexText>,
    /// At most this many characters.
    pub max_length: Option<u64>,
}

/// `[resources]`: resources and resource templates, by URI pattern.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    pub allow: Vec<Val<UriPattern>>,
    pub deny: Vec<Val<UriPattern>>,
    /// For `resources/read` and `resources/subscribe`.
    pub rate_limit: Option<Val<RateLimit>>,
    /// `file://` URIs must lie under one of these (after normalisation).
    pub file_roots: Vec<Val<PathPattern>>,
}

/// `[server_requests]`: what the server may ask of the host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerRequests {
    /// `sampling/createMessage`.
    pub sampling: Option<Val<Permission>>,
    /// `elicitation/create`.
    pub elicitation: Option<Val<Permission>>,
    /// `roots/list`.
    pub roots: Option<Val<Permission>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    Allow,
    Deny,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Allow => "allow",
            Permission::Deny => "deny",
        }
    }
}

/// `[redaction]`: secrets replaced by a marker in both directions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Redaction {
    pub enabled: Option<Val<bool>>,
    /// The maintained pattern set (keys, tokens, JWTs, connection strings).
    pub builtin: Option<Val<bool>>,
    /// Extra patterns: kind name (shown in the marker) → regular expression.
    pub patterns: BTreeMap<String, Val<RegexText>>,
    /// Matches of these are never redacted (false positives).
    pub allow: Vec<Val<RegexText>>,
}

/// `[errors]`: what the host learns from the server's error messages.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Errors {
    /// Reduce server errors to code + generic message.
    pub sanitize: Option<Val<bool>>,
}

/// `[sanitize]`: hiding characters (terminal escapes, Unicode tags, zero-width, bidi) in what
/// the server returns as text. Descriptions and instructions are always stripped.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sanitize {
    /// Tool results, prompt messages and resource contents.
    pub results: Option<Val<ResultsMode>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResultsMode {
    /// Remove them and record the counts.
    #[default]
    Strip,
    /// Forward them unchanged and record the counts.
    Flag,
    /// Neither look nor record.
    Off,
}

impl ResultsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultsMode::Strip => "strip",
            ResultsMode::Flag => "flag",
            ResultsMode::Off => "off",
        }
    }
}

/// `[validation]`: how the server's messages are held to the MCP schema of the version in force.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Validation {
    /// Refuse server → host messages that fail the schema (default: forward and record them).
    pub strict: Option<Val<bool>>,
    /// Refuse a `tools/call` of a tool the server has not listed in this session.
    pub require_listing: Option<Val<bool>>,
    /// Schema faults of sloppy servers that are neither refused nor recorded.
    pub tolerate: Vec<Val<Fault>>,
}

/// `[audit]`: the JSON Lines decision log.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Audit {
    pub enabled: Option<Val<bool>>,
    /// Default: under the XDG state directory.
    pub path: Option<Val<PathPattern>>,
    /// Stop the server when the log cannot be written.
    pub required: Option<Val<bool>>,
    pub on_suspicious: Option<Val<OnSuspicious>>,
    /// Refusals within `suspicious_window` that make a session suspicious.
    pub suspicious_refusals: Option<Val<Count>>,
    pub suspicious_window: Option<Val<DurationText>>,
    /// Field names whose values are always redacted in the log.
    pub redact_keys: Vec<Val<String>>,
    /// Longer values are truncated in the log.
    pub max_value_bytes: Option<Val<Size>>,
    /// The log is rotated (`audit.jsonl` → `audit.jsonl.1` …) before it grows past this.
    pub max_size: Option<Val<Size>>,
    /// Rotated files kept (`audit.jsonl.1` … `.N`); older ones are removed.
    pub keep: Option<Val<Count>>,
    /// An OpenTelemetry collector (OTLP over HTTP) that also receives the events and the
    /// counters; `""` keeps `OTEL_EXPORTER_OTLP_ENDPOINT` from turning the export on.
    pub otlp_endpoint: Option<Val<String>>,
    /// How much of a call's arguments a line carries (default 0: none, metadata only).
    pub excerpts: Option<Val<Size>>,
    /// A line per forwarded message, or counts of them per method.
    pub forwards: Option<Val<Forwards>>,
}

/// `[audit] forwards`: what the log says about messages forwarded unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Forwards {
    /// A line of its own for each.
    Every,
    /// Counted per direction, method and target in `forwards` lines.
    Count,
    /// A line each while fewer than [`Forwards::AUTO_LINES_PER_SECOND`] came this second,
    /// counted beyond: every call of an interactive session, a bounded cost for a flood.
    Auto,
}

impl Forwards {
    pub const AUTO_LINES_PER_SECOND: u32 = 200;

    pub fn as_str(self) -> &'static str {
        match self {
            Forwards::Every => "every",
            Forwards::Count => "count",
            Forwards::Auto => "auto",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnSuspicious {
    Log,
    Kill,
}

impl OnSuspicious {
    pub fn as_str(self) -> &'static str {
        match self {
            OnSuspicious::Log => "log",
            OnSuspicious::Kill => "kill",
        }
    }
}
