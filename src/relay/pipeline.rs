//! The two directions of the relay, message by message. The whole per-message pipeline of each
//! direction is in [`Relay::relay_line`] and [`Relay::judge`].

mod consent;
mod pin_stage;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use tokio::io::AsyncRead;

use super::output::Output;
use super::session::Session;
use crate::audit::{Audit, Severity};
use crate::conversation::{Answer, Entry, Origin, Refusal, Side};
use crate::filter::{Absorbed, Context, Direction, Firewall, Verdict};
use crate::protocol::id_recovery::recover_id;
use crate::protocol::needle::Needle;
use crate::protocol::reply::{cancelled_notification, error_response};
use crate::protocol::version::{allows_batches, ParamsPeek};
use crate::protocol::{
    codes, parse_line, parse_line_with, Frame, Invalid, LineReader, Message, Parsed, RequestId,
};

/// Longest excerpt of a dropped line shown in a log message.
const LOG_EXCERPT: usize = 200;

pub struct Relay {
    pub session: RefCell<Session>,
    pub firewall: RefCell<Firewall>,
    pub audit: Audit,
    /// The host's stdout.
    pub to_host: Output,
    /// The server's stdin.
    pub to_server: Output,
    /// The pin stage (`run --pin`, or trust on first use), after the firewall's.
    pub pin: Option<RefCell<crate::pin::PinGuard>>,
    pub max_message_bytes: usize,
    /// Wakes the host's input when the guard's own `tools/list` is complete.
    pub listing_done: tokio::sync::Notify,
    /// When the last message passed (for busy polling).
    pub activity: super::activity::Activity,
}

/// Replies the guard owes after judging one line (a batch collects them into one array).
#[derive(Default)]
struct Judged {
    batch: bool,
    to_sender: Vec<Vec<u8>>,
    to_receiver: Vec<Vec<u8>>,
    /// The requests of a batch that were forwarded (only batches fill this).
    forwarded: Vec<RequestId>,
}

impl Judged {
    fn reply_to_sender(&mut self, reply: Vec<u8>) {
        if !reply.is_empty() {
            self.to_sender.push(reply);
        }
    }
}

impl Relay {
    /// Relay the host's input until it ends (EOF or read error).
    pub async fn pump_host<R: AsyncRead + Unpin>(&self, input: R) {
        self.pump(Side::Host, input).await;
    }

    /// Relay the server's output until it ends.
    pub async fn pump_server<R: AsyncRead + Unpin>(&self, output: R) {
        self.pump(Side::Server, output).await;
    }

    /// Relay what `from` writes, line by line, until it ends. Output to the other side is
    /// flushed whenever the input pauses (no complete line buffered), so bursts are written in
    /// large chunks and a lone message goes out at once.
    async fn pump<R: AsyncRead + Unpin>(&self, from: Side, input: R) {
        let mut reader = LineReader::new(input, self.max_message_bytes);
        let mut scratch = Vec::with_capacity(64 * 1024);
        let to = self.output(from.other());
        loop {
            let frame = match reader.next_frame().await {
                Ok(frame) => frame,
                Err(e) => {
                    tracing::warn!("reading from the {from:?} failed: {e}");
                    break;
                }
            };
            match frame {
                Frame::Line(line) => {
                    if from == Side::Host {
                        self.list_tools_before_calls(line).await;
                    }
                    self.relay_line(from, line, &mut scratch).await
                }
                Frame::Oversize { len, head, tail } => match from {
                    Side::Host => self.host_oversize(len, &head, &tail).await,
                    Side::Server => self.server_oversize(len, &head, &tail).await,
                },
                Frame::Eof { partial } => {
                    if let Some(line) = partial {
                        // Forwarded only if it is a whole valid message (relay_line checks).
                        tracing::warn!(
                            bytes = line.len(),
                            "input from the {from:?} ended without a newline"
                        );
                        self.relay_line(from, line, &mut scratch).await;
                    }
                    break;
                }
            }
            if !reader.has_buffered_line() {
                let _ = to.flush().await;
                self.activity.saw_message();
            }
        }
        let _ = to.flush().await;
    }

    /// A host line with a `tools/call` while the firewall does not know the server's current
    /// tools: the guard lists them itself and holds the host's input (keeping its order) until
    /// the listing is complete, fails, or times out.
    async fn list_tools_before_calls(&self, line: &[u8]) {
        static TOOLS_CALL: Needle = Needle::new(b"tools/call");
        if !self.firewall.borrow().needs_listing() || !TOOLS_CALL.is_in(line) {
            return;
        }
        let Ok(parsed) = parse_line(line) else { return };
        let call_params = match &parsed {
            Parsed::Single(message) => tools_call_params(message),
            Parsed::Batch(items) => items.iter().flatten().find_map(tools_call_params),
        };
        let Some(params) = call_params else { return };
        // Should the server exit meanwhile, the held requests are answered like pending ones.
        let held = match &parsed {
            Parsed::Single(message) => request_id(message).into_iter().collect(),
            Parsed::Batch(items) => items.iter().flatten().filter_map(request_id).collect(),
        };
        self.session.borrow_mut().ledger.hold_unjudged(held);
        let request = self.firewall.borrow_mut().request_listing(params);
        if let Some(request) = request {
            tracing::debug!("listing the server's tools before the host's first call");
            self.send_own(request, Origin::GuardListing);
        }
        let timeout = self.session.borrow().request_timeout;
        let wait = async {
            loop {
                let done = self.listing_done.notified();
                if !self.firewall.borrow().listing_in_progress() {
                    break;
                }
                done.await;
            }
        };
        if tokio::time::timeout(timeout, wait).await.is_err() {
            self.firewall.borrow_mut().listing_failed(&format!(
                "no answer to tools/list within {} (mcp-guard --request-timeout)",
                humantime::format_duration(timeout)
            ));
        }
        self.session.borrow_mut().ledger.release_unjudged();
    }

    async fn host_oversize(&self, len: u64, head: &[u8], tail: &[u8]) {
        let id = recover_id(head, tail);
        let message = format!(
            "Invalid Request: message of {len} bytes exceeds the limit of {} bytes (mcp-guard --max-message-bytes)",
            self.max_message_bytes
        );
        tracing::warn!(len, id = ?id, "oversize message from the host refused");
        self.audit.invalid(Direction::HostToServer, &message);
        self.reply(
            Side::Host,
            &error_response(id.as_ref(), codes::INVALID_REQUEST, &message, None),
        )
        .await;
    }

    /// One line from `from`: frame → envelope → tracking → firewall → audit → the other side.
    async fn relay_line(&self, from: Side, line: &[u8], scratch: &mut Vec<u8>) {
        // Blank lines carry no message; skipping them loses nothing.
        if line.first().is_none_or(u8::is_ascii_whitespace)
            && line.iter().all(u8::is_ascii_whitespace)
        {
            return;
        }
        // When the firewall will look inside the bodies, the parse builds their trees too.
        let bodies = self.firewall.borrow().bodies_for(line.len());
        let parsed = match parse_line_with(line, bodies) {
            Ok(parsed) => parsed,
            Err(invalid) => {
                self.audit.invalid(from.direction(), &invalid.message());
                if from == Side::Host {
                    tracing::warn!(
                        "refused from the host: {} ({})",
                        invalid.message(),
                        excerpt(line)
                    );
                    self.reply(Side::Host, &invalid_reply(&invalid)).await;
                } else {
                    // Banners and debug prints on stdout are common; they must never reach the host.
                    tracing::warn!(
                        "dropped server output that is not JSON-RPC: {} ({})",
                        invalid.message(),
                        excerpt(line)
                    );
                }
                return;
            }
        };
        scratch.clear();
        let mut judged = Judged::default();
        match parsed {
            Parsed::Single(message) => self.judge(from, &message, scratch, &mut judged),
            Parsed::Batch(items) => {
                let version = self.session.borrow().version;
                if !allows_batches(version) {
                    let message = format!(
                        "Invalid Request: JSON-RPC batches are not allowed in MCP protocol version {}",
                        version.unwrap_or("(none negotiated yet)")
                    );
                    tracing::warn!(from = ?from, "refused a batch: {message}");
                    if from == Side::Host {
                        self.reply(
                            Side::Host,
                            &error_response(None, codes::INVALID_REQUEST, &message, None),
                        )
                        .await;
                    }
                    return;
                }
                judged.batch = true;
                scratch.push(b'[');
                // Answers to requests of a batch whose refused members' errors the guard holds:
                // those errors join this array (see `conversation::InFlight::hold` for the rule).
                let mut merged = Vec::new();
                {
                    let mut session = self.session.borrow_mut();
                    let waiting = session.ledger.sent_by(from.other());
                    if waiting.has_held() {
                        for message in items.iter().flatten() {
                            if let Some(id) = message.response_id() {
                                waiting.take_held_for(id, &mut merged);
                            }
                        }
                    }
                }
                for item in items {
                    match item {
                        Ok(message) => self.judge(from, &message, scratch, &mut judged),
                        Err(invalid) if from == Side::Host => {
                            self.audit.invalid(from.direction(), &invalid.message());
                            judged.to_sender.push(invalid_reply(&invalid))
                        }
                        Err(invalid) => {
                            self.audit.invalid(from.direction(), &invalid.message());
                            tracing::warn!(
                                "dropped an invalid message in a batch from the server: {}",
                                invalid.message()
                            )
                        }
                    }
                }
                // The guard's errors in place of refused answers belong in the same array.
                for reply in judged.to_receiver.drain(..).chain(merged) {
                    if scratch.len() > 1 {
                        scratch.push(b',');
                    }
                    scratch.extend_from_slice(&reply);
                }
                scratch.push(b']');
                if scratch.len() == 2 {
                    scratch.clear();
                }
                if !judged.to_sender.is_empty() && !judged.forwarded.is_empty() {
                    // Held before anything is sent, so the answers cannot come first.
                    (self.session.borrow_mut().ledger.sent_by(from)).hold(
                        std::mem::take(&mut judged.forwarded),
                        std::mem::take(&mut judged.to_sender),
                    );
                }
            }
        }
        let to = from.other();
        if !judged.to_sender.is_empty() {
            self.reply(from, &join(&judged.to_sender, judged.batch))
                .await;
        }
        if !scratch.is_empty() {
            if let Err(e) = self.output(to).send(scratch, false).await {
                tracing::debug!("cannot write to the {to:?}: {e}");
                if to == Side::Server {
                    self.fail_unsendable(scratch).await;
                }
            }
        }
        if !judged.to_receiver.is_empty() {
            self.reply(to, &join(&judged.to_receiver, judged.batch))
                .await;
        }
        self.release_settled_batches().await;
    }

    /// Send the held batch errors whose forwarded requests are all settled, one array per
    /// batch. Costs one check when nothing is held (the usual case).
    async fn release_settled_batches(&self) {
        for side in [Side::Host, Side::Server] {
            let settled = {
                let mut session = self.session.borrow_mut();
                let own = session.ledger.sent_by(side);
                if !own.has_held() {
                    continue;
                }
                own.take_settled()
            };
            for replies in settled {
                self.reply(side, &join(&replies, true)).await;
            }
        }
    }

    /// Admit one message into the session and pass it through the firewall and the audit;
    /// append what is to be forwarded to `out`, and any error replies to `judged`.
    fn judge(&self, from: Side, message: &Message<'_>, out: &mut Vec<u8>, judged: &mut Judged) {
        if from == Side::Host
            && (self.consent_answer(message, out, judged)
                || self.consent_withdrawn(message, judged))
        {
            return; // about a call held for the user's approval (`consent.rs`)
        }
        // Admission, before any stage sees the message: a response must answer a request in
        // flight (its entry comes back with it); a request must not reuse an id in flight.
        let is_response =
            message.response_id().is_some() || matches!(message, Message::Error { .. });
        let entry = match self.admit(from, message) {
            Ok(entry) => entry,
            Err(reply) => return judged.reply_to_sender(reply),
        };
        if let Some(own) = entry.as_ref().filter(|e| is_response && e.is_guards()) {
            return self.guards_answer(message, own);
        }
        // The version is one of the known &'static strs: no allocation per message.
        let version = self.session.borrow().version;
        let context = Context {
            direction: from.direction(),
            version,
            request: entry.as_ref(),
        };
        let verdict = self.firewall.borrow_mut().inspect(message, &context);
        for finding in self.firewall.borrow_mut().take_findings() {
            self.audit.finding(
                finding_severity(finding.rule),
                finding.rule,
                &finding.detail,
            );
        }
        let verdict = self.pin_stage(message, &context, verdict);
        let (verdict, held) = self.consent_gate(from, message, verdict, judged);
        self.audit.message(&context, message, &verdict);
        if held {
            return; // waits for the user (`consent.rs`)
        }
        let replacement = match verdict {
            Verdict::Forward => None,
            Verdict::Replace(bytes) => Some(bytes),
            Verdict::Refuse {
                reason,
                reply_to_sender,
                reply_to_receiver,
            } => {
                let method = message.method().or(context.answered_method()).unwrap_or("");
                tracing::info!(from = ?from, method, "refused: {reason}");
                judged.to_sender.extend(reply_to_sender);
                judged.to_receiver.extend(reply_to_receiver);
                return;
            }
        };
        if !is_response {
            self.forwarded(from, message, entry);
            if judged.batch {
                judged.forwarded.extend(request_id(message));
            }
        }
        if judged.batch && out.len() > 1 {
            out.push(b',');
        }
        match replacement {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => message.write_to(out),
        }
    }

    /// The server's answer to one of the guard's own requests: the guard's, never forwarded.
    fn guards_answer(&self, message: &Message<'_>, own: &Entry) {
        match own.origin {
            Origin::GuardPin => self.pin_absorbs(message, own),
            Origin::GuardListing => {
                let absorbed = self.firewall.borrow_mut().absorb_listing(message);
                match absorbed {
                    Absorbed::NextPage(request) => self.send_own(request, Origin::GuardListing),
                    Absorbed::Done => self.listing_done.notify_waiters(),
                }
            }
            Origin::Host | Origin::Server => {}
        }
    }

    fn output(&self, side: Side) -> &Output {
        match side {
            Side::Host => &self.to_host,
            Side::Server => &self.to_server,
        }
    }

    /// A message from the guard itself to `side`. To the host it is written at once (flushed);
    /// to the server it is queued, because an untrusted server that stops reading must not
    /// stall the relay.
    async fn reply(&self, side: Side, reply: &[u8]) {
        if reply.is_empty() {
            return;
        }
        match side {
            Side::Host => {
                if let Err(e) = self.to_host.send(reply, true).await {
                    tracing::debug!("cannot write to the host: {e}");
                }
            }
            Side::Server => self.to_server.enqueue(reply.to_vec()),
        }
    }

    /// Admission of `message` from `side` before any stage: a request's id must be free (its
    /// entry is returned, opened in the ledger only once forwarded); a response must answer a
    /// request of the other side in flight (that request's entry is returned, settled). `Err`
    /// carries the error reply to the sender (empty: drop silently).
    fn admit(&self, side: Side, message: &Message<'_>) -> Result<Option<Entry>, Vec<u8>> {
        let mut session = self.session.borrow_mut();
        let session = &mut *session;
        match message {
            Message::Request { id, .. } => {
                // A call held for the user's approval keeps its id too (`consent.rs`).
                let held = side == Side::Host
                    && self.firewall.try_borrow().is_ok_and(|fw| fw.holds_call(id));
                let admitted = match session.ledger.admit(side, id) {
                    Ok(()) if held => Err(Refusal::DuplicateId),
                    admitted => admitted,
                };
                let origin = match side {
                    Side::Host => Origin::Host,
                    Side::Server => Origin::Server,
                };
                let entry = Entry::of_request(message, origin, session.request_timeout);
                if let Err(Refusal::DuplicateId) = admitted {
                    let reason =
                        "Invalid Request: this id is already in use by a request still in flight";
                    let reply = error_response(Some(id), codes::INVALID_REQUEST, reason, None);
                    let refusal = Verdict::Refuse {
                        reason: reason.to_owned(),
                        reply_to_sender: Some(reply.clone()),
                        reply_to_receiver: None,
                    };
                    let context = Context {
                        direction: side.direction(),
                        version: session.version,
                        request: entry.as_ref(),
                    };
                    tracing::warn!(from = ?side, id = %id, "refused a request reusing an id in flight");
                    self.audit.message(&context, message, &refusal);
                    return Err(reply);
                }
                Ok(entry)
            }
            Message::Notification { .. } => Ok(None),
            Message::Result { id, result } => match session.ledger.answer(side, id) {
                Answer::Expected(entry) => {
                    if side == Side::Server && entry.method == "initialize" {
                        if let Some(v) = ParamsPeek::of(Some(result.get())).protocol_version {
                            session.observe_version(&v, "initialize result");
                        }
                    }
                    Ok(Some(entry))
                }
                answer => Err(unexpected_answer(side, id, answer)),
            },
            Message::Error { id: Some(id), .. } => match session.ledger.answer(side, id) {
                Answer::Expected(entry) => Ok(Some(entry)),
                answer => Err(unexpected_answer(side, id, answer)),
            },
            Message::Error { id: None, error } => {
                tracing::warn!(from = ?side, "dropped an error response with a null id: {}", error.get());
                Err(Vec::new())
            }
        }
    }

    /// A request or notification from `side` passed every stage: a request is in flight from
    /// now on; cancellations and progress act on the ledger.
    fn forwarded(&self, side: Side, message: &Message<'_>, entry: Option<Entry>) {
        let mut session = self.session.borrow_mut();
        let session = &mut *session;
        match message {
            Message::Request { id, .. } => {
                let Some(entry) = entry else { return };
                let version = entry.meta_version.clone();
                session.ledger.open(side, id.clone(), entry);
                if let Some(v) = version {
                    session.observe_version(&v, "request _meta");
                }
            }
            Message::Notification { method, .. } => match &**method {
                "notifications/cancelled" => {
                    // The sender gave up on its own request: a late answer is expected.
                    if let Some(id) = ParamsPeek::of(message.body_text())
                        .request_id
                        .and_then(RequestId::from_raw)
                    {
                        session.ledger.abandon(side, &id);
                    }
                }
                "notifications/progress" => {
                    if let Some(token) = ParamsPeek::of(message.body_text()).progress_token {
                        let timeout = session.request_timeout;
                        (session.ledger).touch_progress(side.other(), token.get(), timeout);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    async fn server_oversize(&self, len: u64, head: &[u8], tail: &[u8]) {
        let id = recover_id(head, tail);
        tracing::warn!(len, id = ?id, "dropped an oversize message from the server");
        self.audit.invalid(
            Direction::ServerToHost,
            &format!("oversize message of {len} bytes"),
        );
        let Some(id) = id else { return };
        let abandoned = self.session.borrow_mut().ledger.abandon(Side::Host, &id);
        if abandoned.is_some() {
            let message = format!(
                "The MCP server's response of {len} bytes exceeds the limit of {} bytes (mcp-guard --max-message-bytes)",
                self.max_message_bytes
            );
            self.reply(
                Side::Host,
                &error_response(Some(&id), codes::INTERNAL_ERROR, &message, None),
            )
            .await;
            self.release_settled_batches().await;
        }
    }

    /// The server's stdin is closed: answer whatever requests `bytes` carried.
    async fn fail_unsendable(&self, bytes: &[u8]) {
        let Ok(parsed) = parse_line(bytes) else {
            return;
        };
        let messages = match parsed {
            Parsed::Single(m) => vec![m],
            Parsed::Batch(items) => items.into_iter().flatten().collect(),
        };
        for message in messages {
            if let Message::Request { id, .. } = message {
                let abandoned = self.session.borrow_mut().ledger.abandon(Side::Host, &id);
                if abandoned.is_some() {
                    let reply = error_response(
                        Some(&id),
                        codes::SERVER_EXITED,
                        "The MCP server is no longer running",
                        None,
                    );
                    self.reply(Side::Host, &reply).await;
                }
            }
        }
    }

    /// Answer host requests whose deadline passed, and tell the server they are cancelled.
    pub async fn expire_requests(&self) {
        let (expired, timeout) = {
            let mut session = self.session.borrow_mut();
            (
                session.ledger.expire(Side::Host, Instant::now()),
                session.request_timeout,
            )
        };
        for (id, pending) in expired {
            if pending.is_guards() {
                self.own_request_expired(&id, &pending);
                continue;
            }
            tracing::warn!(id = %id, method = %pending.method, "request timed out after {timeout:?}");
            let message = format!(
                "Request timed out: the MCP server did not answer {} within {} (mcp-guard --request-timeout)",
                pending.method,
                humantime::format_duration(timeout)
            );
            self.reply(
                Side::Host,
                &error_response(Some(&id), codes::REQUEST_TIMEOUT, &message, None),
            )
            .await;
            self.reply(
                Side::Server,
                &cancelled_notification(&id, "mcp-guard: request timed out"),
            )
            .await;
        }
        self.expire_consents().await;
        self.release_settled_batches().await;
        // Server → host requests are the host's business: it has its own timeouts.
    }

    /// One of the guard's own requests got no answer in time: nobody but the guard is told.
    fn own_request_expired(&self, id: &RequestId, own: &Entry) {
        tracing::warn!(id = %id, method = %own.method, "the server did not answer the guard's own request in time");
        self.to_server
            .enqueue(cancelled_notification(id, "mcp-guard: request timed out"));
        if own.origin == Origin::GuardListing {
            let timeout = self.session.borrow().request_timeout;
            self.firewall.borrow_mut().listing_failed(&format!(
                "no answer to tools/list within {} (mcp-guard --request-timeout)",
                humantime::format_duration(timeout)
            ));
            self.listing_done.notify_waiters();
        }
    }

    /// How often to look for expired requests.
    pub fn expiry_tick(&self) -> Duration {
        (self.session.borrow().request_timeout / 10)
            .clamp(Duration::from_millis(10), Duration::from_millis(250))
    }

    /// The server is gone: every host request still waiting gets an error.
    pub async fn fail_pending_host_requests(&self, why: &str) {
        let mut pending: Vec<(RequestId, CompactString)> =
            (self.session.borrow_mut().ledger.drain(Side::Host))
                .into_iter()
                .filter(|(_, p)| !p.is_guards())
                .map(|(id, p)| (id, p.method))
                .collect();
        let held = self.session.borrow_mut().ledger.take_unjudged();
        pending.extend(
            held.into_iter()
                .map(|id| (id, "a request held for the tool listing".into())),
        );
        let consents = self.firewall.borrow_mut().drain_consents();
        pending.extend(consents.into_iter().map(|(id, tool)| {
            let audit = format!("tool `{tool}` (call {id}): refused: the server is gone");
            self.audit.finding(Severity::Medium, "consent", &audit);
            let what = format!("tools/call `{tool}` (held for the user's approval)");
            (id, what.into())
        }));
        for (id, method) in pending {
            let message = format!("The MCP server exited before answering {method}: {why}");
            self.reply(
                Side::Host,
                &error_response(Some(&id), codes::SERVER_EXITED, &message, None),
            )
            .await;
        }
        self.release_settled_batches().await;
        let _ = self.to_host.flush().await;
    }

    /// The host is gone: answer the server's own requests so it is free to exit.
    pub async fn fail_pending_server_requests(&self) {
        let pending = self.session.borrow_mut().ledger.drain(Side::Server);
        for (id, p) in pending {
            let message = format!("The MCP client disconnected before answering {}", p.method);
            self.reply(
                Side::Server,
                &error_response(Some(&id), codes::INTERNAL_ERROR, &message, None),
            )
            .await;
        }
        self.release_settled_batches().await;
    }
}

fn request_id(message: &Message<'_>) -> Option<RequestId> {
    match message {
        Message::Request { id, .. } => Some(id.clone()),
        _ => None,
    }
}

/// The params of `message` when it is a `tools/call` request.
fn tools_call_params<'m>(message: &'m Message<'_>) -> Option<Option<&'m str>> {
    match message {
        Message::Request { method, .. } if method == "tools/call" => Some(message.body_text()),
        _ => None,
    }
}

/// How serious a firewall finding is, for the audit log: as `scan` rates it (docs/ci-scan.md).
fn finding_severity(rule: &str) -> Severity {
    match rule {
        "injection" | "redacted" | "sanitized" => Severity::High,
        "hidden_text" | "schema" | "duplicates" => Severity::Medium,
        _ => Severity::Low,
    }
}

fn invalid_reply(invalid: &Invalid) -> Vec<u8> {
    error_response(invalid.id(), invalid.code(), &invalid.message(), None)
}

fn unexpected_answer(from: Side, id: &RequestId, answer: Answer) -> Vec<u8> {
    match answer {
        Answer::Late => {
            tracing::info!(from = ?from, id = %id, "dropped a late answer to an abandoned request")
        }
        _ => {
            tracing::warn!(from = ?from, id = %id, "dropped a response to a request that was never made or was already answered")
        }
    }
    Vec::new()
}

/// One reply as it is, or several (answering a batch) as a JSON array.
fn join(replies: &[Vec<u8>], batch: bool) -> Vec<u8> {
    if !batch && replies.len() == 1 {
        return replies[0].clone();
    }
    let mut out = vec![b'['];
    for (i, reply) in replies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(reply);
    }
    out.push(b']');
    out
}

fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(LOG_EXCERPT)]);
    if line.len() > LOG_EXCERPT {
        format!("{text:?}… ({} bytes)", line.len())
    } else {
        format!("{text:?}")
    }
}
