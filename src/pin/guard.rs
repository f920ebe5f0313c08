//! The pin stage of `run`: hides listed items that are new or changed since they were pinned,
//! refuses calls to them, and re-checks the server's lists itself when it says they changed
//! (hosts may ignore `notifications/*/list_changed`, so the guard cannot).
//!
//! Two sources of approval: `--pin FILE` (the file is the whole approval and is never written),
//! and trust on first use (the default): the first session pins what the host is shown, and
//! later additions wait in the pin file for `mcp-guard pin approve`. An item whose text looks
//! like prompt injection is quarantined the same way (`[pin] injection = "quarantine"`), and so
//! is a tool that shadows another server's (the fleet ledger, `fleet.rs` and `shadowing.rs`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::fleet_check::FleetMember;
use super::identity::ServerId;
use super::lockfile::{digest, Kind, Lockfile, PendingItem, PendingReason, ServerIdentity};
use super::record::{apply, Change};
use crate::conversation::{Entry, TargetKind};
use crate::filter::{as_forwarded, item_injections};
use crate::filter::{Context, Direction, Verdict};
use crate::protocol::reply::{error_response, result_response};
use crate::protocol::{codes, parse_line, Message, Parsed, RequestId};

/// How long after `notifications/initialized` a kind pinned on first use stays open to
/// additions, if the host uses nothing meanwhile. Servers register capability-gated items
/// once they have seen the host's capabilities and say `list_changed` (server-everything
/// does, within milliseconds); an item added before the host has used anything is trusted
/// like one in the first listing. After the first use, or this long, additions are new.
const FIRST_USE_SETTLE: Duration = Duration::from_secs(3);

/// Something the pin did, for the audit log.
#[derive(Debug, Clone)]
pub struct PinEvent {
    pub kind: Kind,
    pub key: String,
    /// `new`, `changed`, `quarantined`, `refused`, `instructions` (changed) or
    /// `quarantined-instructions` (first use), `shadowing`.
    pub what: &'static str,
    /// Why, when the word above does not say it all (how a tool shadows another's).
    pub note: Option<String>,
}

/// Trust on first use: where the pin lives and whether this is its first session.
struct Tofu {
    path: PathBuf,
    server: ServerId,
    /// No pin file existed when the session started: the server's identity and instructions
    /// are pinned from its `initialize` result.
    first_session: bool,
    /// Changes not yet written to the pin file.
    changes: Vec<Change>,
    /// Its part in the fleet ledger shared with the other guards (`None`: no state directory).
    fleet: Option<FleetMember>,
}

/// A listed item the pin hides, as last seen.
#[derive(Debug, Clone)]
struct Seen {
    reason: PendingReason,
    findings: Vec<String>,
    digest: String,
    item: Value,
}

pub struct PinGuard {
    lock: Lockfile,
    tofu: Option<Tofu>,
    /// Hide items whose text looks like prompt injection until approved.
    quarantine: bool,
    /// How to review and approve, for messages.
    review_hint: String,
    /// Items seen in a listing this session and matching the pin.
    verified: HashMap<Kind, HashSet<String>>,
    /// Items seen in a listing and not matching the pin.
    hidden: HashMap<Kind, HashMap<String, Seen>>,
    /// Kinds whose first listing ever is being shown to the host (trust on first use pins it,
    /// page by page, until a page without `nextCursor`).
    pinning: HashSet<Kind>,
    /// Kinds this session pinned on first use, and until when they take additions (see
    /// [`FIRST_USE_SETTLE`]); closed by the host's first use of anything.
    first_use: HashSet<Kind>,
    settle_until: Option<Instant>,
    own_prefix: String,
    own_seq: u64,
    outgoing: Vec<Vec<u8>>,
    events: Vec<PinEvent>,
}

impl PinGuard {
    /// `run --pin FILE`: `lock` is the whole approval.
    pub fn file(lock: Lockfile, lock_path: &str, command: &[String], session: &str) -> Self {
        let cmd = command
            .iter()
            .map(|a| crate::shell::quote_word(a))
            .collect::<Vec<_>>()
            .join(" ");
        let file = crate::shell::quote_word(lock_path);
        let hint = format!(
            "review with `mcp-guard pin diff {file} -- {cmd}` and re-approve with \
             `mcp-guard pin --update -o {file} -- {cmd}`"
        );
        Self::with(lock, None, false, hint, session)
    }

    /// Trust on first use, with the pin at `path` (`None`: the server was never pinned).
    pub fn tofu(
        lock: Option<Lockfile>,
        path: PathBuf,
        server: ServerId,
        quarantine: bool,
        session: &str,
    ) -> Self {
        let hint = format!(
            "review with `mcp-guard pin diff {id}` and approve with `mcp-guard pin approve {id} ITEM…`",
            id = server.id
        );
        let tofu = Tofu {
            path,
            fleet: FleetMember::of(&server),
            server,
            first_session: lock.is_none(),
            changes: Vec::new(),
        };
        Self::with(
            lock.unwrap_or_default(),
            Some(tofu),
            quarantine,
            hint,
            session,
        )
    }

    fn with(
        lock: Lockfile,
        tofu: Option<Tofu>,
        quarantine: bool,
        review_hint: String,
        session: &str,
    ) -> Self {
        Self {
            lock,
            tofu,
            quarantine,
            review_hint,
            verified: HashMap::new(),
            hidden: HashMap::new(),
            pinning: HashSet::new(),
            first_use: HashSet::new(),
            settle_until: None,
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

    /// The answer to one of the guard's own list requests (the relay's ledger knows them and
    /// names the `method` asked): consumed here, never forwarded.
    pub fn absorb(&mut self, message: &Message<'_>, method: &str) {
        let Some(kind) = Kind::ALL.into_iter().find(|k| k.list_method() == method) else {
            return;
        };
        if let Message::Result { result, .. } = message {
            if let Ok(result) = serde_json::from_str::<Value>(result.get()) {
                let _ = self.filter_listing(kind, &result, &result, false);
                if let Some(cursor) = result.get("nextCursor").and_then(Value::as_str) {
                    self.request_list(kind, Some(cursor));
                }
            }
        }
        self.save();
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
        let verdict = match (context.direction, message) {
            (Direction::HostToServer, Message::Request { id, method, .. }) => self
                .check_use(id, method, context.request)
                .unwrap_or(verdict),
            (Direction::HostToServer, Message::Notification { method, .. })
                if method == "notifications/initialized" =>
            {
                self.settle_until = Some(Instant::now() + FIRST_USE_SETTLE);
                // Check the lists up front: a host may call what it cached from an earlier
                // session. A kind with nothing pinned yet has nothing to check against.
                for kind in [Kind::Tools, Kind::Prompts] {
                    if self.tofu.is_none() || self.lock.items.contains_key(&kind) {
                        self.request_list(kind, None);
                    }
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
                self.filter_result(message, context.answered_method(), verdict)
            }
            _ => verdict,
        };
        self.save();
        verdict
    }

    /// Refuse a call, get or read of an item that is not (or no longer) approved.
    fn check_use(
        &mut self,
        id: &RequestId,
        method: &str,
        request: Option<&Entry>,
    ) -> Option<Verdict> {
        // Unsubscribing only stops updates: nothing of the item reaches the host.
        if method == "resources/unsubscribe" {
            return None;
        }
        // The ledger's entry already names the target: no second look into the params.
        let target = request?.target.as_ref()?;
        let kind = match target.kind {
            TargetKind::Tool => Kind::Tools,
            TargetKind::Prompt => Kind::Prompts,
            TargetKind::Uri => Kind::Resources,
        };
        // The first use ends the first-use window: from now on additions are new.
        self.settle_until = None;
        let key = target.value.to_string();
        if self.allowed(kind, &key) || self.approved_meanwhile(kind, &key) {
            return None;
        }
        let reason = match self.hidden.get(&kind).and_then(|h| h.get(&key)).cloned() {
            Some(seen) => {
                self.record_pending(kind, &key, &seen);
                self.hidden_reason(kind, &key, &seen)
            }
            None => {
                let pinned = self
                    .lock
                    .items
                    .get(&kind)
                    .is_some_and(|m| m.contains_key(&key));
                let state = if pinned || self.tofu.is_some() {
                    "has not been checked against the pin yet (list it first)"
                } else {
                    "was not pinned"
                };
                format!("pin: {} `{key}` {state}; {}", kind.noun(), self.review_hint)
            }
        };
        self.events.push(PinEvent {
            kind,
            key,
            what: "refused",
            note: None,
        });
        Some(Verdict::Refuse {
            reply_to_sender: Some(error_response(
                Some(id),
                codes::INVALID_PARAMS,
                &format!("mcp-guard: {reason}"),
                None,
            )),
            reason,
            reply_to_receiver: None,
        })
    }

    fn allowed(&self, kind: Kind, key: &str) -> bool {
        let hidden = self.hidden.get(&kind).is_some_and(|h| h.contains_key(key));
        if kind == Kind::Resources || hidden {
            // Resources may come from templates; refuse only those seen and not approved.
            return !hidden;
        }
        if self.verified.get(&kind).is_some_and(|v| v.contains(key)) {
            return true;
        }
        // Trust on first use does not make a host list before it calls (the guard's own
        // check may still be on its way): a pinned name passes until a listing shows it
        // changed, and before anything of the kind is pinned there is nothing to refuse.
        // Also right after `list_changed` (server-everything says it as soon as the host is
        // initialised, and hosts call at once): what the model was shown was checked, and a
        // change reaches it only through a listing, which this stage filters.
        self.tofu.is_some()
            && self
                .lock
                .items
                .get(&kind)
                .is_none_or(|m| m.contains_key(key))
    }

    /// Trust on first use: the user may have run `pin approve` since the item was hidden;
    /// the file is read again (only on this refusal path) so a retry then passes.
    fn approved_meanwhile(&mut self, kind: Kind, key: &str) -> bool {
        let Some(tofu) = &self.tofu else { return false };
        let Some(seen) = self.hidden.get(&kind).and_then(|h| h.get(key)) else {
            return false;
        };
        let Ok(Some(lock)) = super::store::load(&tofu.path) else {
            return false;
        };
        if !lock.approves(kind, key, &seen.digest) {
            return false;
        }
        self.lock = lock;
        if let Some(h) = self.hidden.get_mut(&kind) {
            h.remove(key);
        }
        self.verified
            .entry(kind)
            .or_default()
            .insert(key.to_owned());
        true
    }

    /// Why a hidden item is refused, with the command that approves it.
    fn hidden_reason(&self, kind: Kind, key: &str, seen: &Seen) -> String {
        let noun = kind.noun();
        let Some(tofu) = &self.tofu else {
            let state = match seen.reason {
                PendingReason::Changed => "has changed since it was pinned",
                _ => "was not pinned",
            };
            return format!("pin: {noun} `{key}` {state}; {}", self.review_hint);
        };
        let id = &tofu.server.id;
        let approve = format!(
            "mcp-guard pin approve {id} {}",
            crate::shell::quote_word(key)
        );
        let injection = if seen.findings.is_empty() {
            String::new()
        } else {
            format!(
                " and its text looks like prompt injection ({})",
                seen.findings.join(", ")
            )
        };
        match seen.reason {
            PendingReason::New => format!(
                "{noun} `{key}` is new since this server was pinned{injection}; review with \
                 `mcp-guard pin diff {id}` and approve it with `{approve}`"
            ),
            PendingReason::Changed => format!(
                "{noun} `{key}` has changed since this server was pinned{injection}; review \
                 with `mcp-guard pin diff {id}` and approve it with `{approve}`"
            ),
            PendingReason::Shadowing => format!(
                "{noun} `{key}` is quarantined: it {}; review with `mcp-guard pin diff {id}` \
                 and approve it only if you trust it: `{approve}`",
                seen.findings.join("; it ")
            ),
            PendingReason::Quarantined => format!(
                "{noun} `{key}` is quarantined: its text looks like prompt injection ({}); \
                 review with `mcp-guard pin diff {id}` and approve it only if you trust it: \
                 `{approve}`",
                seen.findings.join(", ")
            ),
        }
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
        // What the server sent (injection is checked on it: the firewall strips what hides
        // phrases), and what the firewall passes on: its replacement, or the message itself.
        let Message::Result { id, result } = message else {
            return verdict;
        };
        let Ok(sent) = serde_json::from_str::<Value>(result.get()) else {
            return verdict;
        };
        let mut result = match &verdict {
            Verdict::Replace(bytes) => match parse_line(bytes) {
                Ok(Parsed::Single(Message::Result { result, .. })) => {
                    match serde_json::from_str::<Value>(result.get()) {
                        Ok(v) => v,
                        Err(_) => return verdict,
                    }
                }
                _ => return verdict,
            },
            _ => sent.clone(),
        };
        let changed = match kind {
            Some(kind) => self.filter_listing(kind, &result, &sent, true).map(|kept| {
                result[kind.result_member()] = Value::Array(kept);
            }),
            None => self.check_initialize(&mut result, &sent),
        };
        match changed {
            Some(()) => Verdict::Replace(result_response(Some(id), &result)),
            None => verdict,
        }
    }

    /// Record which listed items match the pin; `Some(kept)` when some must be hidden.
    /// `sent` is the listing as the server sent it; `to_host` whether the host sees this one
    /// (what only the guard's own re-list finds is recorded as awaiting approval when the host
    /// tries to use it: the re-list also sees what the policy hides from the host).
    fn filter_listing(
        &mut self,
        kind: Kind,
        result: &Value,
        sent: &Value,
        to_host: bool,
    ) -> Option<Vec<Value>> {
        let items = result.get(kind.result_member())?.as_array()?;
        let findings = self.findings_of(kind, sent);
        let shadows = self.shadowing_of(kind, sent);
        let never_listed = self.tofu.is_some() && !self.lock.items.contains_key(&kind);
        if never_listed {
            // Trust on first use pins the session's first listing of a kind (the guard's own
            // check, or the host's; both see what this host may use). Items that appear after
            // it (a list that changes mid-session: the rug pull) are new, as in any later
            // session, except while the server settles before the host's first use.
            self.pinning.insert(kind);
            self.first_use.insert(kind);
            self.change(Change::PinKind(kind));
        }
        let settling =
            self.first_use.contains(&kind) && self.settle_until.is_some_and(|t| Instant::now() < t);
        let pinning = self.pinning.contains(&kind) || settling;
        if pinning && result.get("nextCursor").is_none() {
            self.pinning.remove(&kind);
        }
        let mut kept = Vec::with_capacity(items.len());
        let mut hid = false;
        for item in items {
            let Some(key) = kind.key_of(item) else {
                hid = true;
                continue;
            };
            let shown = as_forwarded(item);
            let item_digest = digest(&shown);
            let found = findings.get(&key).cloned().unwrap_or_default();
            let shadow = shadows.get(&key).cloned().unwrap_or_default();
            let quarantined = (self.quarantine && !found.is_empty()) || !shadow.is_empty();
            if self.lock.approves(kind, &key, &item_digest) {
                self.verified.entry(kind).or_default().insert(key.clone());
                if let Some(h) = self.hidden.get_mut(&kind) {
                    h.remove(&key);
                }
                kept.push(item.clone());
                continue;
            }
            if pinning && !quarantined {
                self.lock.insert(kind, shown.clone());
                self.change(Change::Pin(kind, shown));
                self.verified.entry(kind).or_default().insert(key);
                kept.push(item.clone());
                continue;
            }
            let pinned = self
                .lock
                .items
                .get(&kind)
                .is_some_and(|m| m.contains_key(&key));
            let reason = match (pinning, pinned) {
                _ if !shadow.is_empty() => PendingReason::Shadowing,
                (true, _) => PendingReason::Quarantined,
                (false, true) => PendingReason::Changed,
                (false, false) => PendingReason::New,
            };
            if let Some(v) = self.verified.get_mut(&kind) {
                v.remove(&key);
            }
            // Said once per item and version.
            let before = self.hidden.get(&kind).and_then(|h| h.get(&key));
            let news = before.is_none_or(|b| b.digest != item_digest);
            // The same version seen again (the guard's own re-list) keeps its first reason:
            // quarantined on first use stays quarantined, not "new".
            let reason = match before {
                Some(b) if !news => b.reason,
                _ => reason,
            };
            let shadowed = (!shadow.is_empty()).then(|| shadow.join("; "));
            let findings = if shadow.is_empty() {
                found.iter().map(|f| (*f).to_owned()).collect()
            } else {
                shadow
            };
            let seen = Seen {
                reason,
                findings,
                digest: item_digest,
                item: shown,
            };
            let quarantine = matches!(
                reason,
                PendingReason::Quarantined | PendingReason::Shadowing
            );
            if to_host || quarantine {
                self.record_pending(kind, &key, &seen);
            }
            self.hidden
                .entry(kind)
                .or_default()
                .insert(key.clone(), seen);
            if news {
                self.events.push(PinEvent {
                    kind,
                    key,
                    what: reason.as_str(),
                    note: shadowed,
                });
            }
            hid = true;
        }
        hid.then_some(kept)
    }

    /// Per item key, the injection phrases in the item as sent (none unless quarantining).
    fn findings_of(&self, kind: Kind, sent: &Value) -> HashMap<String, Vec<&'static str>> {
        let mut out = HashMap::new();
        if self.tofu.is_none() {
            return out;
        }
        let items = sent.get(kind.result_member()).and_then(Value::as_array);
        for item in items.into_iter().flatten() {
            let found = item_injections(item);
            if let (false, Some(key)) = (found.is_empty(), kind.key_of(item)) {
                out.insert(key, found);
            }
        }
        out
    }

    /// Trust on first use, tools: how each listed tool shadows another server's.
    fn shadowing_of(&mut self, kind: Kind, sent: &Value) -> HashMap<String, Vec<String>> {
        let member = self.tofu.as_mut().and_then(|t| t.fleet.as_mut());
        match member {
            Some(member) if kind == Kind::Tools => member.check(sent),
            _ => HashMap::new(),
        }
    }

    /// The server's instructions reach the model as trusted text: changed ones (and, on
    /// first use, ones that look like injection) are removed from the `initialize` result.
    fn check_initialize(&mut self, result: &mut Value, sent: &Value) -> Option<()> {
        let now = result
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(member) = self.tofu.as_mut().and_then(|t| t.fleet.as_mut()) {
            member.name = text_of(result.get("serverInfo"), "name");
        }
        let first = self.tofu.as_ref().is_some_and(|t| t.first_session);
        if first {
            if let Some(tofu) = &mut self.tofu {
                tofu.first_session = false;
                let server = ServerIdentity {
                    name: text_of(result.get("serverInfo"), "name"),
                    version: text_of(result.get("serverInfo"), "version"),
                };
                let change = Change::Server {
                    server,
                    command: tofu.server.command.clone(),
                    identity: tofu.server.identity.clone(),
                };
                tofu.changes.push(change);
            }
        }
        let now = now?;
        if now.as_str() == self.lock.instructions.as_deref().unwrap_or_default() {
            return None;
        }
        let found = sent
            .get("instructions")
            .and_then(Value::as_str)
            .map(crate::filter::injection::injection_phrases)
            .unwrap_or_default();
        let quarantined = self.quarantine && !found.is_empty();
        if first && !quarantined {
            self.lock.instructions = Some(now.clone());
            self.change(Change::Instructions(Some(now)));
            return None;
        }
        if self.tofu.is_some() {
            let reason = match (first, self.lock.instructions.is_some()) {
                (true, _) => PendingReason::Quarantined,
                (false, true) => PendingReason::Changed,
                (false, false) => PendingReason::New,
            };
            self.change(Change::PendingInstructions(PendingItem {
                reason,
                findings: found.iter().map(|f| (*f).to_owned()).collect(),
                digest: digest(&Value::String(now.clone())),
                item: Value::String(now),
            }));
        }
        result.as_object_mut()?.remove("instructions");
        self.events.push(PinEvent {
            note: None,
            kind: Kind::Tools,
            key: "(server instructions)".into(),
            what: if first {
                "quarantined-instructions"
            } else {
                "instructions"
            },
        });
        Some(())
    }

    fn record_pending(&mut self, kind: Kind, key: &str, seen: &Seen) {
        let pending = PendingItem {
            reason: seen.reason,
            findings: seen.findings.iter().map(|f| (*f).to_owned()).collect(),
            digest: seen.digest.clone(),
            item: seen.item.clone(),
        };
        self.change(Change::Pending(kind, key.to_owned(), pending));
    }

    fn change(&mut self, change: Change) {
        if let Some(tofu) = &mut self.tofu {
            tofu.changes.push(change);
        }
    }

    /// Write what trust on first use learned to the pin file, and take the file as it now is
    /// (approvals made meanwhile included). A pin that cannot be written is said and the
    /// session goes on: what is hidden stays hidden.
    fn save(&mut self) {
        let Some(tofu) = &mut self.tofu else { return };
        if tofu.changes.is_empty() {
            return;
        }
        let changes = std::mem::take(&mut tofu.changes);
        match super::store::update(&tofu.path, |lock| apply(lock, changes)) {
            Ok(lock) => {
                // Keep this session's own first-use pins even if another guard raced it.
                let mine = std::mem::replace(&mut self.lock, lock);
                for (kind, items) in mine.items {
                    let theirs = self.lock.items.entry(kind).or_default();
                    for (key, item) in items {
                        theirs.entry(key).or_insert(item);
                    }
                }
            }
            Err(e) => tracing::warn!("pin: cannot record in {}: {e}", tofu.path.display()),
        }
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
    }
}

fn text_of(v: Option<&Value>, key: &str) -> Option<String> {
    v.and_then(|v| v.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}
