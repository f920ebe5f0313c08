//! The message firewall: validation and policy filters applied to every message the relay
//! passes (issue 5). The relay calls [`Firewall::inspect`] once per message, after parsing and
//! (for responses) after matching the response to its request.
//!
//! The whole per-message pipeline is the ordered list [`STAGES`]; each stage lives in the file
//! of its rule family. The relay's parse builds each body's tree in the same pass as the
//! envelope ([`Firewall::bodies_for`]); for a large message it does not, and a large message no
//! stage needs to look inside is never parsed into a JSON tree (stages peek at the raw text
//! first). What the stages find without refusing (schema faults forwarded by default, injection
//! phrases, redactions) is kept for the audit log: [`Firewall::take_findings`] after each
//! [`Firewall::inspect`].

mod access;
mod arguments;
pub mod config;
pub mod consent;
mod content;
mod errors;
pub mod injection;
mod inspection;
mod lists;
pub mod names;
mod own_listing;
pub mod rate;
mod raw_scan;
pub mod redact;
mod reply;
mod result_text;
pub mod sanitize;
mod schema_check;
mod server_requests;
mod tools;
pub mod uris;

use std::borrow::Cow;
use std::sync::Arc;

pub use crate::protocol::Direction;
pub use config::{FirewallError, Options};
use inspection::{Inspection, Kind, Step};
pub use lists::{as_forwarded, item_injections};
pub use own_listing::Absorbed;
pub use reply::codes;

use crate::conversation::Entry;
use crate::policy::{EffectivePolicy, Vars};
use crate::protocol::schema::Schemas;
use crate::protocol::{Bodies, Message};

/// What the firewall knows about a message beyond the message itself.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub direction: Direction,
    /// The protocol version in force, when known.
    pub version: Option<&'a str>,
    /// The ledger's entry: for a response, the request it answers; for a request, the entry
    /// the ledger opens for it if it is forwarded.
    pub request: Option<&'a Entry>,
}

impl<'a> Context<'a> {
    /// For a response: the method of the request it answers (for a request, its own).
    pub fn answered_method(&self) -> Option<&'a str> {
        self.request.map(|entry| &*entry.method)
    }
}

/// The firewall's decision on one message.
#[derive(Debug)]
pub enum Verdict {
    /// Pass it on unchanged.
    Forward,
    /// Pass on this re-serialised message instead (one JSON-RPC message, no newline).
    Replace(Vec<u8>),
    /// Do not pass it on. `reply_to_sender` (a JSON-RPC error response) goes back to whoever
    /// sent it, when it is a request; `reply_to_receiver` takes its place on the way, when the
    /// receiver is waiting for it (e.g. an error in place of a refused result).
    Refuse {
        reason: String,
        reply_to_sender: Option<Vec<u8>>,
        reply_to_receiver: Option<Vec<u8>>,
    },
}

/// Something a stage noticed and let through (or changed): for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The rule family: `schema`, `injection`, `sanitized`, `redacted`, `unlisted`, …
    pub rule: &'static str,
    pub direction: Direction,
    pub method: Option<String>,
    pub detail: String,
}

type Stage = fn(&mut Firewall, &mut Inspection<'_>) -> Step;

/// Every message passes these, in this order, until one refuses it.
const STAGES: &[(&str, Stage)] = &[
    ("track", Firewall::track),
    ("rate", Firewall::rate),
    ("schema", schema_check::stage),
    ("server_requests", server_requests::stage),
    ("access", access::stage),
    ("arguments", arguments::stage),
    ("lists", lists::stage),
    ("content", content::stage),
    // Before redaction: a secret split by zero-width characters is whole again.
    ("result_text", result_text::stage),
    ("redact", Firewall::redact),
    ("errors", errors::stage),
];

/// Lines up to this size are parsed into trees at once. A larger message that no stage looks
/// into (a method without a schema, say) is then relayed without a tree; one that a stage does
/// look into costs one more syntax pass, small beside building its tree.
const EAGER_TREES_UP_TO: usize = 256 * 1024;

/// The compiled policy filters; built once at start-up, never per message.
#[derive(Debug, Default)]
pub struct Firewall {
    /// `false`: forward everything (no policy).
    active: bool,
    rules: config::Rules,
    schemas: Option<Arc<Schemas>>,
    /// With the built-in redaction on: one pass over each message for every literal looked for.
    raw_scan: Option<raw_scan::RawScan>,
    rates: rate::RateLimits,
    tools: tools::ToolCache,
    own_listing: own_listing::OwnListing,
    /// The host's `initialize` capabilities (`sampling`, `elicitation`, `roots`), once seen.
    host_capabilities: Option<Vec<String>>,
    /// `tools/call`s held for the user's approval.
    consents: consent::Consents,
    findings: Vec<Finding>,
}

impl Firewall {
    /// A firewall that forwards everything (no policy filters).
    pub fn permissive() -> Self {
        Self::default()
    }

    /// The firewall for `policy` (its `[tools]`, `[prompts]`, `[resources]`,
    /// `[server_requests]`, `[redaction]`, `[errors]` and `[sanitize]` sections).
    pub fn from_policy(policy: &EffectivePolicy, options: Options) -> Result<Self, FirewallError> {
        Self::from_policy_with_vars(policy, options, &Vars::from_env(None))
    }

    pub fn from_policy_with_vars(
        policy: &EffectivePolicy,
        options: Options,
        vars: &Vars,
    ) -> Result<Self, FirewallError> {
        let background = options.compile_schemas_in_background;
        let (rules, rates) = config::compile(policy, options, vars)?;
        let schemas = Schemas::new();
        if background {
            schemas.warm_in_background(Some("2025-06-18"));
        } else {
            schemas.compile_all();
        }
        let raw_scan = rules
            .redactor
            .as_ref()
            .and_then(|r| r.builtin_triggers())
            .and_then(raw_scan::RawScan::new);
        Ok(Firewall {
            active: true,
            rules,
            schemas: Some(schemas),
            raw_scan,
            rates,
            ..Firewall::default()
        })
    }

    /// A firewall for `policy` (TOML, the built-in layer alone, no environment variables),
    /// schemas compiled at once: what the unit tests build.
    #[cfg(test)]
    pub(crate) fn for_tests(policy: &str) -> Firewall {
        use crate::policy::{merge, parse_policy, Origin};
        let layer = parse_policy("test.toml", policy).expect("policy");
        let merged = merge(vec![(Origin::Builtin, layer)]);
        let options = Options {
            compile_schemas_in_background: false,
            ..Options::default()
        };
        Firewall::from_policy_with_vars(&merged, options, &Vars::from_pairs(&[])).expect("firewall")
    }

    /// How the relay should parse a line of `len` bytes for [`Firewall::inspect`]: with the
    /// bodies' trees built in the same pass (almost every message has a schema to be checked
    /// against), except for large lines, whose trees are built only if a stage looks inside.
    pub fn bodies_for(&self, len: usize) -> Bodies {
        if self.active && len <= EAGER_TREES_UP_TO {
            Bodies::Trees
        } else {
            Bodies::Raw
        }
    }

    pub fn inspect(&mut self, message: &Message<'_>, context: &Context<'_>) -> Verdict {
        if !self.active {
            return Verdict::Forward;
        }
        let mut m = Inspection::new(message, context.direction, context.request);
        m.facts = self
            .raw_scan
            .as_ref()
            .zip(m.raw())
            .map(|(s, raw)| s.scan(raw));
        (m.version, m.version_from_meta) = self.version_of(&m, context.version);
        for (_name, stage) in STAGES {
            if let Step::Stop(verdict) = stage(self, &mut m) {
                self.findings.append(&mut m.findings);
                return verdict;
            }
        }
        self.findings.append(&mut m.findings);
        m.finish()
    }

    /// What the stages noticed since the last call (for the audit log), oldest first.
    pub fn take_findings(&mut self) -> Vec<Finding> {
        std::mem::take(&mut self.findings)
    }

    /// The version a message is checked against: its own `_meta` version, else the version of
    /// the request it answers, else the session's; `initialize` names its own. (`server/discover`
    /// without a `_meta` version is checked against nothing but the envelope: it may be a probe
    /// sent before any version is agreed.)
    fn version_of(
        &self,
        m: &Inspection<'_>,
        session: Option<&str>,
    ) -> (Option<Cow<'static, str>>, bool) {
        use crate::protocol::version::{interned, ParamsPeek};
        let raw = m.raw();
        if matches!(m.kind, Kind::Request | Kind::Result) && m.method == Some("initialize") {
            if let Some(v) = ParamsPeek::of(raw).protocol_version {
                return (Some(interned(&v)), false);
            }
        }
        let meta = m
            .mentions(raw_scan::Member::Meta)
            .then(|| ParamsPeek::of(raw).meta)
            .flatten();
        if let Some(v) = meta.and_then(|meta| meta.protocol_version) {
            return (Some(interned(&v)), true);
        }
        if let Some(v) = m.request.and_then(|entry| entry.meta_version.clone()) {
            return (Some(v), false);
        }
        // Known versions are static strings: no allocation per message.
        (session.map(interned), false)
    }

    /// Bookkeeping before any rule: the host's capabilities and stale tool listings (the
    /// request a response answers is taken out in [`Firewall::inspect`]).
    fn track(&mut self, m: &mut Inspection<'_>) -> Step {
        match (m.direction, m.kind, m.method) {
            (Direction::HostToServer, Kind::Request, Some("initialize")) => {
                let capabilities = m.body().and_then(|b| b.get("capabilities"));
                self.note_host_elicitation(capabilities);
                let caps = capabilities
                    .and_then(|c| c.as_object())
                    .map(|c| c.keys().cloned().collect());
                self.host_capabilities = caps;
            }
            (
                Direction::ServerToHost,
                Kind::Notification,
                Some("notifications/tools/list_changed"),
            ) => {
                self.tools.invalidate();
            }
            _ => {}
        }
        Step::Next
    }

    /// Token buckets on the requests that do work: `tools/call`, `prompts/get`, resource reads.
    fn rate(&mut self, m: &mut Inspection<'_>) -> Step {
        if m.direction != Direction::HostToServer || m.kind != Kind::Request {
            return Step::Next;
        }
        let family = match m.method {
            Some("tools/call") => rate::Family::Tools,
            Some("prompts/get") => rate::Family::Prompts,
            Some("resources/read" | "resources/subscribe") => rate::Family::Resources,
            _ => return Step::Next,
        };
        let name = if self.rates.has_items() {
            m.body()
                .and_then(|b| b.get("name"))
                .and_then(|n| n.as_str())
                .map(str::to_owned)
        } else {
            None
        };
        match self.rates.check(family, name.as_deref()) {
            Ok(()) => Step::Next,
            Err(wait) => {
                let retry_after = (wait.as_secs_f64() * 1000.0).ceil() / 1000.0;
                Step::Stop(reply::refuse(
                    m,
                    codes::RATE_LIMITED,
                    "Rate limit exceeded",
                    Some(serde_json::json!({ "retryAfter": retry_after })),
                ))
            }
        }
    }

    /// Secrets replaced by a marker, in both directions.
    fn redact(&mut self, m: &mut Inspection<'_>) -> Step {
        let Some(redactor) = &self.rules.redactor else {
            return Step::Next;
        };
        let may = m.raw().is_some_and(|raw| match m.facts {
            Some(facts) => redactor.may_contain_secret_given(raw, facts.trigger),
            None => redactor.may_contain_secret(raw),
        });
        if !may {
            return Step::Next;
        }
        let mut kinds = Vec::new();
        m.edit_body(|body| redactor.redact_value(body, &mut kinds));
        if !kinds.is_empty() {
            // Name what carried the secret the way `scan` reports locations ("tool x: …").
            let subject = match (m.request.and_then(Entry::tool), m.method) {
                (Some(tool), _) => format!("tool `{tool}`"),
                (None, Some(method)) => format!("{method} message"),
                (None, None) => "message".to_owned(),
            };
            m.find(
                "redacted",
                format!("{subject}: secrets replaced: {}", kinds.join(", ")),
            );
        }
        Step::Next
    }
}
