//! `run --pin FILE`: the relay stage that hides listed items that are new or changed since they
//! were pinned, refuses calls to them, and re-checks the server's lists itself when it says they
//! changed (hosts may ignore `notifications/*/list_changed`, so the guard cannot).

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::lockfile::{digest, Kind, Lockfile};
use crate::filter::{Context, Direction, Verdict};
use crate::protocol::{codes, parse_line, Message, Parsed, RequestId};

/// Something the pin did, for the audit log.
#[derive(Debug, Clone)]
pub struct PinEvent {
    pub kind: Kind,
    pub key: String,
    /// `new`, `changed`, `refused` or `instructions`.
    pub what: &'static str,
}

pub struct PinGuard {
    lock: Lockfile,
    /// `mcp-guard pin diff …` and `mcp-guard pin --update …` for this server.
    review_hint: String,
    /// Items seen in a listing this session and matching the pin.
    verified: HashMap<Kind, HashSet<String>>,
    /// Items seen in a listing and not matching the pin.
    hidden: HashMap<Kind, HashSet<String>>,
    /// The guard's own list requests in flight: id → kind.
    own: HashMap<String, Kind>,
    own_prefix: String,
    own_seq: u64,
    outgoing: Vec<Vec<u8>>,
    events: Vec<PinEvent>,
}

impl PinGuard {
    pub fn new(lock: Lockfile, lock_path: &str, command: &[String], session: &str) -> Self {
        let cmd = command
            .iter()
            .map(|a| shell_word(a))
            .collect::<Vec<_>>()
            .join(" ");
        let file = shell_word(lock_path);
        Self {
            lock,
            review_hint: format!(
                "review with `mcp-guard pin diff {file} -- {cmd}` and re-approve with \
                 `mcp-guard pin --update -o {file} -- {cmd}`"
            ),
            verified: HashMap::new(),
            hidden: HashMap::new(),
            own: HashMap::new(),
            own_prefix: format!("mcp-guard-pin-{session}-"),
            own_seq: 0,
            outgoing: Vec::new(),
            events: Vec::new(),
        }
    }

    pub fn review_hint(&self) -> &str {
        &self.review_hint
    }

    /// The guard's own requests to send to the server.
    pub fn take_outgoing(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outgoing)
    }

    pub fn take_events(&mut self) -> Vec<PinEvent> {
        std::mem::take(&mut self.events)
    }

    /// A response to one of the guard's own list requests: consumed here, never forwarded.
    pub fn absorb(&mut self, message: &Message<'_>) -> bool {
        let Some(RequestId::String(id)) = message.response_id() else {
            return false;
        };
        let Some(kind) = self.own.remove(id.as_str()) else {
            return false;
        };
        if let Message::Result { result, .. } = message {
            if let Ok(result) = serde_json::from_str::<Value>(result.get()) {
                let _ = self.filter_listing(kind, &result);
                if let Some(cursor) = result.get("nextCursor").and_then(Value::as_str) {
                    self.request_list(kind, Some(cursor));
                }
            }
        }
        true
    }

    /// The pin's decision after the firewall's.
    pub fn inspect(
        &mut self,
        message: &Message<'_>,
        context: &Context<'_>,
        verdict: Verdict,
    ) -> Verdict {
        if matches!(verdict, Verdict::Refuse { .. }) {
            return verdict;
        }
        match (context.direction, message) {
            (Direction::HostToServer, Message::Request { id, method, .. }) => self
                .check_use(id, method, message.body_text())
                .unwrap_or(verdict),
            (Direction::HostToServer, Message::Notification { method, .. })
                if method == "notifications/initialized" =>
            {
                // Check the lists up front: a host may call what it cached from an earlier session.
                for kind in [Kind::Tools, Kind::Prompts] {
                    self.request_list(kind, None);
                }
                verdict
            }
            (Direction::ServerToHost, Message::Notification { method, .. }) => {
                let kind = match &**method {
                    "notifications/tools/list_changed" => Some(Kind::Tools),
                    "notifications/prompts/list_changed" => Some(Kind::Prompts),
                    "notifications/resources/list_changed" => Some(Kind::Resources),
                    _ => None,
                };
                if let Some(kind) = kind {
                    // Nothing of this kind is trusted until the guard has seen the new list.
                    self.verified.remove(&kind);
                    self.request_list(kind, None);
                }
                verdict
            }
            (Direction::ServerToHost, Message::Result { .. }) => {
                self.filter_result(message, context.answered_method, verdict)
            }
            _ => verdict,
        }
    }

    /// Refuse a call, get or read of an item that is not (or no longer) approved.
    fn check_use(&mut self, id: &RequestId, method: &str, params: Option<&str>) -> Option<Verdict> {
        let (kind, field) = match method {
            "tools/call" => (Kind::Tools, "name"),
            "prompts/get" => (Kind::Prompts, "name"),
            "resources/read" | "resources/subscribe" => (Kind::Resources, "uri"),
            _ => return None,
        };
        let params: Value = params.and_then(|p| serde_json::from_str(p).ok())?;
        let key = params.get(field).and_then(Value::as_str)?.to_owned();
        let allowed = match kind {
            // Resources may come from templates; refuse only those seen and not approved.
            Kind::Resources => !self.hidden.get(&kind).is_some_and(|h| h.contains(&key)),
            _ => self.verified.get(&kind).is_some_and(|v| v.contains(&key)),
        };
        if allowed {
            return None;
        }
        let pinned = self
            .lock
            .items
            .get(&kind)
            .is_some_and(|m| m.contains_key(&key));
        let state = match (
            pinned,
            self.hidden.get(&kind).is_some_and(|h| h.contains(&key)),
        ) {
            (true, true) => "has changed since it was pinned",
            (false, _) => "was not pinned",
            (true, false) => "has not been checked against the pin yet (list it first)",
        };
        let reason = format!("pin: {} `{key}` {state}; {}", kind.noun(), self.review_hint);
        self.events.push(PinEvent {
            kind,
            key,
            what: "refused",
        });
        Some(Verdict::Refuse {
            reply_to_sender: Some(error_reply(id, &format!("mcp-guard: {reason}"))),
            reason,
            reply_to_receiver: None,
        })
    }

    fn filter_result(
        &mut self,
        message: &Message<'_>,
        answered: Option<&str>,
        verdict: Verdict,
    ) -> Verdict {
        let Some(method) = answered else {
            return verdict;
        };
        let kind = Kind::from_list_method(method);
        if kind.is_none() && method != "initialize" {
            return verdict;
        }
        // Work on what the firewall passes on: its replacement, or the message itself.
        let (id, mut result) = match &verdict {
            Verdict::Replace(bytes) => match parse_line(bytes) {
                Ok(Parsed::Single(Message::Result { id, result })) => {
                    match serde_json::from_str::<Value>(result.get()) {
                        Ok(v) => (id, v),
                        Err(_) => return verdict,
                    }
                }
                _ => return verdict,
            },
            _ => match message {
                Message::Result { id, result } => match serde_json::from_str::<Value>(result.get())
                {
                    Ok(v) => (id.clone(), v),
                    Err(_) => return verdict,
                },
                _ => return verdict,
            },
        };
        let changed = match kind {
            Some(kind) => self.filter_listing(kind, &result).map(|kept| {
                result[kind.result_member()] = Value::Array(kept);
            }),
            None => self.check_initialize(&mut result),
        };
        match changed {
            Some(()) => Verdict::Replace(result_message(&id, &result)),
            None => verdict,
        }
    }

    /// Record which listed items match the pin; `Some(kept)` when some must be hidden.
    fn filter_listing(&mut self, kind: Kind, result: &Value) -> Option<Vec<Value>> {
        let items = result.get(kind.result_member())?.as_array()?;
        let mut kept = Vec::with_capacity(items.len());
        let mut hid = false;
        for item in items {
            let Some(key) = kind.key_of(item) else {
                hid = true;
                continue;
            };
            if self.lock.approves(kind, &key, &digest(item)) {
                self.verified.entry(kind).or_default().insert(key);
                kept.push(item.clone());
            } else {
                let what = if self
                    .lock
                    .items
                    .get(&kind)
                    .is_some_and(|m| m.contains_key(&key))
                {
                    "changed"
                } else {
                    "new"
                };
                if let Some(v) = self.verified.get_mut(&kind) {
                    v.remove(&key);
                }
                if self.hidden.entry(kind).or_default().insert(key.clone()) {
                    self.events.push(PinEvent { kind, key, what });
                }
                hid = true;
            }
        }
        hid.then_some(kept)
    }

    /// Changed instructions are removed from the `initialize` result.
    fn check_initialize(&mut self, result: &mut Value) -> Option<()> {
        let now = result.get("instructions").and_then(Value::as_str);
        if now.is_none() || now == self.lock.instructions.as_deref() {
            return None;
        }
        result.as_object_mut()?.remove("instructions");
        self.events.push(PinEvent {
            kind: Kind::Tools,
            key: "(server instructions)".into(),
            what: "instructions",
        });
        Some(())
    }

    fn request_list(&mut self, kind: Kind, cursor: Option<&str>) {
        self.own_seq += 1;
        let id = format!("{}{}", self.own_prefix, self.own_seq);
        let params = match cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let request =
            json!({"jsonrpc": "2.0", "id": id, "method": kind.list_method(), "params": params});
        self.outgoing
            .push(serde_json::to_vec(&request).unwrap_or_default());
        self.own.insert(id, kind);
    }
}

fn error_reply(id: &RequestId, message: &str) -> Vec<u8> {
    let mut out = br#"{"jsonrpc":"2.0","id":"#.to_vec();
    out.extend_from_slice(id.to_json().as_bytes());
    out.extend_from_slice(br#","error":"#);
    let _ = serde_json::to_writer(
        &mut out,
        &json!({"code": codes::INVALID_PARAMS, "message": message}),
    );
    out.push(b'}');
    out
}

fn result_message(id: &RequestId, result: &Value) -> Vec<u8> {
    let mut out = br#"{"jsonrpc":"2.0","id":"#.to_vec();
    out.extend_from_slice(id.to_json().as_bytes());
    out.extend_from_slice(br#","result":"#);
    let _ = serde_json::to_writer(&mut out, result);
    out.push(b'}');
    out
}

/// Quote a word for a shell command line when needed.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
