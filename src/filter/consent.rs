//! Explicit consent for sensitive tool calls (`[tools.NAME] confirm = true`). Before such a
//! `tools/call` goes on, the guard asks the user through the host (MCP `elicitation/create`,
//! form mode, one boolean "approve" field) and holds the call. Only an `accept` with
//! `approve: true` forwards it, unchanged; a decline, a cancel, an error or no answer within
//! `confirm_timeout` refuses it, and a host that did not declare elicitation is refused at once.
//! Nothing ever approves a call on the user's behalf.
//!
//! The relay calls [`Firewall::ask_consent`] once a host call has passed every other rule (the
//! user is never asked about a call the policy refuses anyway), hands every host response to
//! [`Firewall::settle_consent`] first, and [`Firewall::expire_consents`] on its timer; other
//! messages keep flowing while a call waits.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use globset::{Glob, GlobMatcher};
use serde_json::{json, Value};

use super::names::PatternError;
use super::reply::{error_response, tool_error_result};
use super::Firewall;
use crate::maps::Map;
use crate::policy::firewall::ItemSettings;
use crate::policy::values::Val;
use crate::protocol::version::{tool_input_errors_are_results, ParamsPeek};
use crate::protocol::{Message, RequestId};

/// How long a call waits for the user's answer unless `[tools] confirm_timeout` says otherwise.
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(120);

/// The JSON-RPC error code of a call the user did not approve (protocols before 2025-11-25;
/// later ones get a tool result marked `isError`).
pub const NOT_APPROVED: i64 = -32004;

/// Longest argument text shown to the user; the rest is cut (a call is not a document).
const MAX_SHOWN: usize = 2000;

/// Which tools need the user's approval: `[tools.NAME] confirm`.
#[derive(Debug, Default)]
pub struct ConfirmRules {
    /// Names written without glob characters: these decide for their tool.
    exact: HashMap<String, bool>,
    /// Name globs: any that matches with `confirm = true` asks (the safer answer wins).
    patterns: Vec<(GlobMatcher, bool)>,
    /// Some entry says `confirm = true` (else no call is looked at).
    any: bool,
    pub timeout: Duration,
}

impl ConfirmRules {
    pub fn compile(
        each: &BTreeMap<String, Val<ItemSettings>>,
        timeout: Option<Duration>,
    ) -> Result<ConfirmRules, PatternError> {
        let mut rules = ConfirmRules {
            timeout: timeout.unwrap_or(DEFAULT_CONFIRM_TIMEOUT),
            ..ConfirmRules::default()
        };
        for (name, settings) in each {
            let Some(confirm) = settings.value.confirm else {
                continue;
            };
            rules.any |= confirm;
            if name.contains(['*', '?', '[', '{']) {
                let glob = Glob::new(name).map_err(|source| PatternError::new(name, source))?;
                rules.patterns.push((glob.compile_matcher(), confirm));
            } else {
                rules.exact.insert(name.clone(), confirm);
            }
        }
        Ok(rules)
    }

    /// Whether a call of `tool` must wait for the user.
    pub fn requires(&self, tool: &str) -> bool {
        match self.exact.get(tool) {
            Some(confirm) => *confirm,
            None => self.patterns.iter().any(|(g, c)| *c && g.is_match(tool)),
        }
    }

    fn is_empty(&self) -> bool {
        !self.any
    }
}

/// Calls waiting for the user, by the id of the guard's `elicitation/create`.
#[derive(Debug, Default)]
pub struct Consents {
    /// Ids are `mcp-guard/consent/<nonce>/<n>`: neither the host nor the server picks such an
    /// id by accident, so the host's answer cannot be mistaken for one to the server.
    nonce: String,
    sequence: u64,
    held: Map<String, Held>,
    /// The host declared form elicitation in `initialize`.
    pub host_asks_forms: bool,
}

#[derive(Debug)]
struct Held {
    call_id: RequestId,
    /// The call as the firewall would forward it.
    call: Vec<u8>,
    tool: String,
    deadline: Instant,
    version: Option<&'static str>,
}

/// What [`Firewall::ask_consent`] decided about a host call.
#[derive(Debug)]
pub enum Ask {
    /// No confirmation needed: judge it as usual.
    NotNeeded,
    /// The call is held; send `request` (`elicitation/create`) to the host.
    Asked { request: Vec<u8>, audit: String },
    /// Refused at once; `reply` goes back to the host.
    Refused {
        reply: Vec<u8>,
        reason: String,
        audit: String,
    },
}

/// What became of a held call.
#[derive(Debug)]
pub enum Outcome {
    /// Approved: send this call on to the server.
    Forward(Vec<u8>),
    /// Not approved: send this answer to the host's call.
    Refuse(Vec<u8>),
}

#[derive(Debug)]
pub struct Settled {
    pub outcome: Outcome,
    pub approved: bool,
    /// The audit line.
    pub audit: String,
}

/// A held call that ran out of time.
#[derive(Debug)]
pub struct Expired {
    /// The refusal of the host's call.
    pub reply: Vec<u8>,
    /// The guard's `elicitation/create` id, to cancel at the host.
    pub elicitation_id: RequestId,
    pub audit: String,
}

impl Firewall {
    /// Whether the host's `initialize` capabilities offer form elicitation: `elicitation: {}`
    /// (form implied, as before 2025-11-25) or one naming `form`.
    pub(super) fn note_host_elicitation(&mut self, capabilities: Option<&Value>) {
        let elicitation = capabilities
            .and_then(|c| c.get("elicitation"))
            .and_then(Value::as_object);
        self.consents.host_asks_forms =
            elicitation.is_some_and(|e| e.is_empty() || e.contains_key("form"));
    }

    /// Decide about a host `tools/call` that passed every other rule; `call` builds the bytes
    /// that would be forwarded (only when the call is held).
    pub fn ask_consent(
        &mut self,
        message: &Message<'_>,
        call: impl FnOnce() -> Vec<u8>,
        version: Option<&'static str>,
        in_batch: bool,
    ) -> Ask {
        if !self.active || self.rules.confirm.is_empty() {
            return Ask::NotNeeded;
        }
        let Message::Request { id, method, .. } = message else {
            return Ask::NotNeeded;
        };
        if method != "tools/call" {
            return Ask::NotNeeded;
        }
        // The name first, without building a tree of the arguments. No name read this way
        // (a repeated `name`, say) is no answer: the whole parse below reads it as the firewall
        // forwards it, the last one.
        let name = ParamsPeek::of(message.body_text()).name;
        if name.is_some_and(|name| !self.rules.confirm.requires(&name)) {
            return Ask::NotNeeded;
        }
        let params: Value = message
            .body_text()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null);
        let tool = params.get("name").and_then(Value::as_str).unwrap_or("");
        if !self.rules.confirm.requires(tool) {
            return Ask::NotNeeded;
        }
        let refuse = |why: String| Ask::Refused {
            reply: refusal(Some(id), version, &why),
            audit: format!("tool `{tool}` (call {id}): refused without asking: {why}"),
            reason: why,
        };
        if !self.consents.host_asks_forms {
            // A 2026-07-28 session may never initialize; its input requests ride on results,
            // which the guard does not originate.
            let cause = match self.host_capabilities {
                Some(_) => "this client did not declare the `elicitation` capability (form mode)",
                None => {
                    "this session has no `initialize` (protocol 2026-07-28 without a handshake)"
                }
            };
            let why = format!(
                "mcp-guard: the tool `{tool}` needs the user's approval for each call \
                 ([tools.{tool}] confirm = true), and {cause}, so the guard cannot ask. Use a \
                 client that supports elicitation, or set `confirm = false` for this tool in the \
                 policy."
            );
            return refuse(why);
        }
        if in_batch {
            let why = format!(
                "mcp-guard: the tool `{tool}` needs the user's approval; send its call on its own, \
                 not in a batch"
            );
            return refuse(why);
        }
        let own_id = self.next_consent_id();
        let request = self.elicitation(&own_id, tool, params.get("arguments"), version);
        let timeout = self.rules.confirm.timeout;
        self.consents.held.insert(
            own_id.clone(),
            Held {
                call_id: id.clone(),
                call: call(),
                tool: tool.to_owned(),
                deadline: Instant::now() + timeout,
                version,
            },
        );
        Ask::Asked {
            request,
            audit: format!(
                "tool `{tool}` (call {id}): held; asked the user ({own_id}), waiting up to {}",
                humantime::format_duration(timeout)
            ),
        }
    }

    /// Take the host's answer to one of the guard's confirmation requests (never forwarded);
    /// `None` when `message` is something else.
    pub fn settle_consent(&mut self, message: &Message<'_>) -> Option<Settled> {
        if self.consents.held.is_empty() {
            return None;
        }
        let (RequestId::String(own) | RequestId::Escaped(own, _)) = message.response_id()? else {
            return None;
        };
        let held = self.consents.held.remove(own.as_str())?;
        let answer = match message {
            Message::Result { result, .. } => {
                serde_json::from_str::<Value>(result.get()).unwrap_or(Value::Null)
            }
            Message::Error { error, .. } => {
                let why = format!(
                    "the client answered the confirmation request with an error: {}",
                    error.get()
                );
                return Some(held.refused(&why));
            }
            _ => Value::Null,
        };
        let action = answer.get("action").and_then(Value::as_str);
        let approve = answer.pointer("/content/approve");
        Some(match (action, approve) {
            (Some("accept"), Some(Value::Bool(true))) => Settled {
                audit: format!(
                    "tool `{}` (call {}): approved by the user; forwarded",
                    held.tool, held.call_id
                ),
                approved: true,
                outcome: Outcome::Forward(held.call),
            },
            (Some("accept"), _) => held.refused("the user did not tick `approve`"),
            (Some("decline"), _) => held.refused("the user declined it"),
            (Some("cancel"), _) => held.refused("the user dismissed the question (cancel)"),
            _ => held
                .refused("the client's answer to the confirmation request has no valid `action`"),
        })
    }

    /// The held calls whose time ran out, oldest first.
    pub fn expire_consents(&mut self, now: Instant) -> Vec<Expired> {
        if self.consents.held.is_empty() {
            return Vec::new();
        }
        let mut due: Vec<(Instant, String)> = (self.consents.held.iter())
            .filter(|(_, h)| h.deadline <= now)
            .map(|(id, h)| (h.deadline, id.clone()))
            .collect();
        due.sort();
        let timeout = self.rules.confirm.timeout;
        due.into_iter()
            .filter_map(|(_, own)| {
                let held = self.consents.held.remove(&own)?;
                let why = format!(
                    "no answer from the user within {} ([tools] confirm_timeout)",
                    humantime::format_duration(timeout)
                );
                let settled = held.refused(&why);
                let Outcome::Refuse(reply) = settled.outcome else {
                    return None;
                };
                Some(Expired {
                    reply,
                    elicitation_id: RequestId::String(own.into()),
                    audit: settled.audit,
                })
            })
            .collect()
    }

    /// The host gave up on its held call `call_id` (`notifications/cancelled`): forget it; the
    /// guard's question (its id returned, to withdraw at the host) no longer matters.
    pub fn withdraw_consent(&mut self, call_id: &RequestId) -> Option<(RequestId, String)> {
        let own = (self.consents.held.iter())
            .find(|(_, h)| h.call_id == *call_id)
            .map(|(own, _)| own.clone())?;
        let held = self.consents.held.remove(&own)?;
        let audit = format!(
            "tool `{}` (call {call_id}): withdrawn by the client before the user answered; not sent",
            held.tool
        );
        Some((RequestId::String(own.into()), audit))
    }

    /// Whether the host's call `call_id` is held for the user's approval (its id is in use: the
    /// ledger refuses another request with it, as it does for requests in flight).
    pub fn holds_call(&self, call_id: &RequestId) -> bool {
        self.consents.held.values().any(|h| h.call_id == *call_id)
    }

    /// Every held call (the server is gone): their ids and tools.
    pub fn drain_consents(&mut self) -> Vec<(RequestId, String)> {
        self.consents
            .held
            .drain()
            .map(|(_, h)| (h.call_id, h.tool))
            .collect()
    }

    fn next_consent_id(&mut self) -> String {
        let c = &mut self.consents;
        if c.nonce.is_empty() {
            c.nonce = super::own_listing::nonce();
        }
        c.sequence += 1;
        format!("mcp-guard/consent/{}/{}", c.nonce, c.sequence)
    }

    /// The guard's `elicitation/create`: who wants to run what, the arguments with secrets
    /// redacted and hiding characters removed, and one boolean to tick.
    fn elicitation(
        &self,
        own_id: &str,
        tool: &str,
        arguments: Option<&Value>,
        version: Option<&'static str>,
    ) -> Vec<u8> {
        let mut shown = arguments.cloned().unwrap_or_else(|| json!({}));
        if let Some(redactor) = &self.rules.redactor {
            redactor.redact_value(&mut shown, &mut Vec::new());
        }
        let text = serde_json::to_string_pretty(&shown).unwrap_or_default();
        let mut server = self.rules.options.server_label.clone();
        if let Some(redactor) = &self.rules.redactor {
            // A token on the server's command line stays there.
            server = redactor
                .redact_str(&server, &mut Vec::new())
                .unwrap_or(server);
        }
        let message = format!(
            "mcp-guard: approve this tool call?\n\nServer: {server}\nTool: {tool}\n\
             Arguments (secrets redacted):\n{}",
            cut(&text)
        );
        // What the model wrote must not hide anything from the user who approves it.
        let message = super::sanitize::strip_hidden(&message).unwrap_or(message);
        let mut params = json!({
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": {
                    "approve": {
                        "type": "boolean",
                        "title": "Approve this call",
                        "description": format!("Let `{tool}` run once with the arguments shown"),
                        "default": false
                    }
                },
                "required": ["approve"]
            }
        });
        // `mode` exists from 2025-11-25 on; older clients know form elicitation only.
        if tool_input_errors_are_results(version) {
            params["mode"] = json!("form");
        }
        let request = json!({
            "jsonrpc": "2.0",
            "id": own_id,
            "method": "elicitation/create",
            "params": params,
        });
        serde_json::to_vec(&request).unwrap_or_default()
    }
}

impl Held {
    fn refused(self, why: &str) -> Settled {
        let text = format!(
            "mcp-guard: the call of `{}` was not approved: {why}. It was not sent to the server.",
            self.tool
        );
        Settled {
            audit: format!(
                "tool `{}` (call {}): refused: {why}",
                self.tool, self.call_id
            ),
            approved: false,
            outcome: Outcome::Refuse(refusal(Some(&self.call_id), self.version, &text)),
        }
    }
}

/// The answer to a call that was not approved: a tool result marked `isError` where the
/// protocol answers tool-level failures that way (2025-11-25 on), else a JSON-RPC error.
fn refusal(id: Option<&RequestId>, version: Option<&str>, message: &str) -> Vec<u8> {
    if tool_input_errors_are_results(version) {
        tool_error_result(id, message)
    } else {
        error_response(id, NOT_APPROVED, message, None)
    }
}

/// `text`, cut to [`MAX_SHOWN`] bytes at a character boundary.
fn cut(text: &str) -> String {
    if text.len() <= MAX_SHOWN {
        return text.to_owned();
    }
    let mut end = MAX_SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n… ({} more bytes not shown)",
        &text[..end],
        text.len() - end
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_policy;
    use crate::protocol::{parse_line, Parsed};

    fn rules(tables: &str) -> ConfirmRules {
        let policy = parse_policy("t.toml", &format!("version = 1\n{tables}")).expect("policy");
        ConfirmRules::compile(&policy.tools.each, None).expect("rules")
    }

    #[test]
    fn consent_exact_names_decide_and_any_matching_glob_asks() {
        let r = rules(
            "[tools.\"delete_*\"]\nconfirm = true\n[tools.delete_tmp]\nconfirm = false\n\
             [tools.\"*_file\"]\nconfirm = false\n[tools.write_file]\nconfirm = true",
        );
        assert!(r.requires("delete_all") && r.requires("write_file"));
        assert!(!r.requires("delete_tmp") && !r.requires("read_file"));
        // A glob saying `false` does not lift another glob's `true`.
        assert!(r.requires("delete_file"));
        assert_eq!(r.timeout, DEFAULT_CONFIRM_TIMEOUT);
        assert!(rules("[tools.x]\nconfirm = false").is_empty());
    }

    #[test]
    fn consent_tables_parse_and_mistyped_keys_are_still_errors() {
        let text = |t: &str| {
            parse_policy("t.toml", &format!("version = 1\n{t}"))
                .expect_err(t)
                .to_string()
        };
        let e = text("[tools]\nalow = [\"x\"]");
        assert!(
            e.contains("unknown key `alow`") && e.contains("allow"),
            "{e}"
        );
        let e = text("[tools.echo]\nconfrim = true");
        assert!(e.contains("confrim") && e.contains("confirm"), "{e}");
        let e = text("[tools]\nconfirm_timeout = \"soon\"");
        assert!(e.contains("confirm_timeout"), "{e}");
    }

    /// A firewall whose host declared `capabilities`, asked about `call`.
    fn ask(policy: &str, capabilities: Value, call: &str) -> (Firewall, Ask) {
        let mut fw = Firewall::for_tests(policy);
        fw.note_host_elicitation(Some(&capabilities));
        let Ok(Parsed::Single(message)) = parse_line(call.as_bytes()) else {
            panic!("not a message: {call}");
        };
        let ask = fw.ask_consent(
            &message,
            || call.as_bytes().to_vec(),
            Some("2025-11-25"),
            false,
        );
        (fw, ask)
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"rm","arguments":{"path":"/"}}}"#;

    #[test]
    fn consent_question_hides_nothing_and_shows_no_secret() {
        let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"rm","arguments":{"path":"/tmp/\u202egnp.exe","key":"AKIAZZZZZZZZZZZZZZZZ"}}}"#;
        let policy = "version = 1\n[tools.rm]\nconfirm = true";
        let (_, ask) = ask(policy, json!({"elicitation": {"form": {}}}), call);
        let Ask::Asked { request, .. } = ask else {
            panic!("not asked: {ask:?}")
        };
        let request: Value = serde_json::from_slice(&request).expect("json");
        let message = request["params"]["message"].as_str().expect("message");
        assert!(message.contains("/tmp/gnp.exe"), "{message}");
        assert!(
            !message.contains('\u{202e}') && !message.contains("AKIAZ"),
            "{message}"
        );
        assert_eq!(request["params"]["mode"], "form");
    }

    #[test]
    fn consent_is_never_assumed() {
        let policy = "version = 1\n[tools.rm]\nconfirm = true";
        // A repeated `name` is read as it is forwarded: the last one.
        let twice =
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ls","name":"rm"}}"#;
        let (_, asked) = ask(policy, json!({"elicitation": {}}), twice);
        assert!(matches!(asked, Ask::Asked { .. }), "{asked:?}");
        // No elicitation, or URL mode only: refused at once.
        for caps in [json!({}), json!({"elicitation": {"url": {}}})] {
            let (_, ask) = ask(policy, caps, CALL);
            assert!(matches!(ask, Ask::Refused { .. }), "{ask:?}");
        }
        // An accept without `content`, or with an approve that is not `true`, is no approval.
        for result in [
            json!({"action": "accept"}),
            json!({"action": "accept", "content": {"approve": "yes"}}),
            json!({"action": "later"}),
        ] {
            let (mut fw, ask) = ask(policy, json!({"elicitation": {}}), CALL);
            let Ask::Asked { request, .. } = ask else {
                panic!("not asked: {ask:?}")
            };
            let request: Value = serde_json::from_slice(&request).expect("json");
            let line = json!({"jsonrpc": "2.0", "id": request["id"], "result": result});
            let line = line.to_string();
            let Ok(Parsed::Single(answer)) = parse_line(line.as_bytes()) else {
                panic!("not a message: {line}")
            };
            let settled = fw
                .settle_consent(&answer)
                .expect("the answer is the guard's");
            assert!(!settled.approved, "{result}");
            assert!(matches!(settled.outcome, Outcome::Refuse(_)));
            // Settled once: the same answer again is not taken.
            assert!(fw.settle_consent(&answer).is_none());
        }
    }
}
