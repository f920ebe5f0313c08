//! The two directions of the relay, message by message. The whole per-message pipeline of each
//! direction is in [`Relay::host_line`] and [`Relay::server_line`].

use std::cell::RefCell;
use std::time::{Duration, Instant};

use tokio::io::AsyncRead;

use super::output::Output;
use super::replies::{cancelled_notification, error_response};
use super::session::{Answer, Session};
use crate::protocol::id_recovery::recover_id;
use crate::protocol::version::{allows_batches, MetaPeek, ParamsPeek};
use crate::protocol::{codes, parse_line, Frame, Invalid, LineReader, Message, Parsed, RequestId};

/// Longest excerpt of a dropped line shown in a log message.
const LOG_EXCERPT: usize = 200;

pub struct Relay {
    pub session: RefCell<Session>,
    /// The host's stdout.
    pub to_host: Output,
    /// The server's stdin.
    pub to_server: Output,
    pub max_message_bytes: usize,
}

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Host,
    Server,
}

impl Relay {
    /// Relay the host's input until it ends (EOF or read error).
    pub async fn pump_host<R: AsyncRead + Unpin>(&self, input: R) {
        let mut reader = LineReader::new(input, self.max_message_bytes);
        let mut scratch = Vec::with_capacity(64 * 1024);
        loop {
            let frame = match reader.next_frame().await {
                Ok(frame) => frame,
                Err(e) => {
                    tracing::warn!("reading from the host failed: {e}");
                    break;
                }
            };
            match frame {
                Frame::Line(line) => self.host_line(line, &mut scratch).await,
                Frame::Oversize { len, head, tail } => {
                    let id = recover_id(&head, &tail);
                    let message = format!(
                        "Invalid Request: message of {len} bytes exceeds the limit of {} bytes (mcp-guard --max-message-bytes)",
                        self.max_message_bytes
                    );
                    tracing::warn!(len, id = ?id, "oversize message from the host refused");
                    self.reply_to_host(&error_response(
                        id.as_ref(),
                        codes::INVALID_REQUEST,
                        &message,
                    ))
                    .await;
                }
                Frame::Eof { partial } => {
                    if let Some(line) = partial {
                        self.host_line(line, &mut scratch).await;
                    }
                    break;
                }
            }
            if !reader.has_buffered_line() {
                let _ = self.to_server.flush().await;
            }
        }
        let _ = self.to_server.flush().await;
    }

    /// Relay the server's output until it ends.
    pub async fn pump_server<R: AsyncRead + Unpin>(&self, output: R) {
        let mut reader = LineReader::new(output, self.max_message_bytes);
        let mut scratch = Vec::with_capacity(64 * 1024);
        loop {
            let frame = match reader.next_frame().await {
                Ok(frame) => frame,
                Err(e) => {
                    tracing::warn!("reading from the server failed: {e}");
                    break;
                }
            };
            match frame {
                Frame::Line(line) => self.server_line(line, &mut scratch).await,
                Frame::Oversize { len, head, tail } => {
                    self.server_oversize(len, &head, &tail).await
                }
                Frame::Eof { partial } => {
                    if let Some(line) = partial {
                        // Forwarded only if it is a whole valid message (server_line checks).
                        tracing::warn!(bytes = line.len(), "server output ended without a newline");
                        self.server_line(line, &mut scratch).await;
                    }
                    break;
                }
            }
            if !reader.has_buffered_line() {
                let _ = self.to_host.flush().await;
            }
        }
        let _ = self.to_host.flush().await;
    }

    /// One line from the host: frame → envelope → tracking → server.
    async fn host_line(&self, line: &[u8], scratch: &mut Vec<u8>) {
        let parsed = match parse_line(line) {
            Ok(parsed) => parsed,
            Err(invalid) => {
                tracing::warn!(
                    "refused from the host: {} ({})",
                    invalid.message(),
                    excerpt(line)
                );
                return self.reply_to_host(&invalid_reply(&invalid)).await;
            }
        };
        scratch.clear();
        match parsed {
            Parsed::Single(message) => {
                if let Err(reply) = self.admit(Side::Host, &message) {
                    return self.reply_to_host(&reply).await;
                }
                message.write_to(scratch);
            }
            Parsed::Batch(items) => {
                let version = self.session.borrow().version.clone();
                if !allows_batches(version.as_deref()) {
                    let message = format!(
                        "Invalid Request: JSON-RPC batches are not allowed in MCP protocol version {}",
                        version.as_deref().unwrap_or("(none negotiated yet)")
                    );
                    return self
                        .reply_to_host(&error_response(None, codes::INVALID_REQUEST, &message))
                        .await;
                }
                let mut refusals: Vec<Vec<u8>> = Vec::new();
                scratch.push(b'[');
                for item in items {
                    match item
                        .map_err(|i| invalid_reply(&i))
                        .and_then(|m| self.admit(Side::Host, &m).map(|()| m))
                    {
                        Ok(message) => {
                            if scratch.len() > 1 {
                                scratch.push(b',');
                            }
                            message.write_to(scratch);
                        }
                        Err(reply) => refusals.push(reply),
                    }
                }
                scratch.push(b']');
                if !refusals.is_empty() {
                    self.reply_to_host(&batch_of(&refusals)).await;
                }
                if scratch.len() == 2 {
                    return;
                }
            }
        }
        if let Err(e) = self.to_server.send(scratch, false).await {
            tracing::debug!("cannot write to the server: {e}");
            self.fail_unsendable(scratch).await;
        }
    }

    /// One line from the server: frame → envelope → tracking → host.
    async fn server_line(&self, line: &[u8], scratch: &mut Vec<u8>) {
        let parsed = match parse_line(line) {
            Ok(parsed) => parsed,
            Err(invalid) => {
                // Banners and debug prints on stdout are common; they must never reach the host.
                tracing::warn!(
                    "dropped server output that is not JSON-RPC: {} ({})",
                    invalid.message(),
                    excerpt(line)
                );
                return;
            }
        };
        scratch.clear();
        match parsed {
            Parsed::Single(message) => match self.admit(Side::Server, &message) {
                Ok(()) => message.write_to(scratch),
                Err(reply) => return self.reply_to_server(&reply).await,
            },
            Parsed::Batch(items) => {
                if !allows_batches(self.session.borrow().version.as_deref()) {
                    tracing::warn!("dropped a batch from the server: batches are not allowed in this protocol version");
                    return;
                }
                scratch.push(b'[');
                for item in items {
                    let Ok(message) = item else {
                        tracing::warn!("dropped an invalid message inside a batch from the server");
                        continue;
                    };
                    match self.admit(Side::Server, &message) {
                        Ok(()) => {
                            if scratch.len() > 1 {
                                scratch.push(b',');
                            }
                            message.write_to(scratch);
                        }
                        Err(reply) => self.reply_to_server(&reply).await,
                    }
                }
                scratch.push(b']');
                if scratch.len() == 2 {
                    return;
                }
            }
        }
        if let Err(e) = self.to_host.send(scratch, false).await {
            tracing::debug!("cannot write to the host: {e}");
        }
    }

    /// Track `message` from `side`; `Err` carries the error reply to send back to the sender
    /// (an empty reply means: drop silently).
    fn admit(&self, side: Side, message: &Message<'_>) -> Result<(), Vec<u8>> {
        let mut session = self.session.borrow_mut();
        let session = &mut *session;
        let (own, other) = match side {
            Side::Host => (&mut session.host_requests, &mut session.server_requests),
            Side::Server => (&mut session.server_requests, &mut session.host_requests),
        };
        match message {
            Message::Request { id, method, params } => {
                if own.contains(id) {
                    return Err(error_response(
                        Some(id),
                        codes::INVALID_REQUEST,
                        "Invalid Request: this id is already in use by a request still in flight",
                    ));
                }
                let meta = ParamsPeek::meta_of(*params);
                let version = meta.as_ref().and_then(|m| m.protocol_version.clone());
                let pending = Pending::new(method, meta.as_ref(), session.request_timeout);
                match side {
                    Side::Host => session.host_requests.insert(id.clone(), pending),
                    Side::Server => session.server_requests.insert(id.clone(), pending),
                }
                if let Some(v) = version {
                    session.observe_version(&v, "request _meta");
                }
                Ok(())
            }
            Message::Notification { method, params } => {
                match &**method {
                    "notifications/cancelled" => {
                        // The sender gave up on its own request: a late answer is expected.
                        if let Some(id) = ParamsPeek::of(*params)
                            .request_id
                            .and_then(RequestId::from_raw)
                        {
                            own.abandon(&id);
                        }
                    }
                    "notifications/progress" => {
                        if let Some(token) = ParamsPeek::of(*params).progress_token {
                            other.touch_progress(token.get(), session.request_timeout);
                        }
                    }
                    _ => {}
                }
                Ok(())
            }
            Message::Result { id, result } => match other.answer(id) {
                Answer::Expected(method) => {
                    if side == Side::Server && &*method == "initialize" {
                        if let Some(v) = ParamsPeek::of(Some(result)).protocol_version {
                            session.observe_version(&v, "initialize result");
                        }
                    }
                    Ok(())
                }
                answer => Err(unexpected_answer(side, id, answer)),
            },
            Message::Error { id: Some(id), .. } => match other.answer(id) {
                Answer::Expected(_) => Ok(()),
                answer => Err(unexpected_answer(side, id, answer)),
            },
            Message::Error { id: None, error } => {
                tracing::warn!(from = ?side, "dropped an error response with a null id: {}", error.get());
                Err(Vec::new())
            }
        }
    }

    async fn server_oversize(&self, len: u64, head: &[u8], tail: &[u8]) {
        let id = recover_id(head, tail);
        tracing::warn!(len, id = ?id, "dropped an oversize message from the server");
        let Some(id) = id else { return };
        if self
            .session
            .borrow_mut()
            .host_requests
            .abandon(&id)
            .is_some()
        {
            let message = format!(
                "The MCP server's response of {len} bytes exceeds the limit of {} bytes (mcp-guard --max-message-bytes)",
                self.max_message_bytes
            );
            self.reply_to_host(&error_response(Some(&id), codes::INTERNAL_ERROR, &message))
                .await;
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
                if self
                    .session
                    .borrow_mut()
                    .host_requests
                    .abandon(&id)
                    .is_some()
                {
                    let reply = error_response(
                        Some(&id),
                        codes::SERVER_EXITED,
                        "The MCP server is no longer running",
                    );
                    self.reply_to_host(&reply).await;
                }
            }
        }
    }

    /// An error from the guard to the host, flushed at once.
    pub async fn reply_to_host(&self, reply: &[u8]) {
        if reply.is_empty() {
            return;
        }
        if let Err(e) = self.to_host.send(reply, true).await {
            tracing::debug!("cannot write to the host: {e}");
        }
    }

    pub async fn reply_to_server(&self, reply: &[u8]) {
        if reply.is_empty() {
            return;
        }
        if let Err(e) = self.to_server.send(reply, true).await {
            tracing::debug!("cannot write to the server: {e}");
        }
    }

    /// Answer host requests whose deadline passed, and tell the server they are cancelled.
    pub async fn expire_requests(&self) {
        let (expired, timeout) = {
            let mut session = self.session.borrow_mut();
            (
                session.host_requests.expire(Instant::now()),
                session.request_timeout,
            )
        };
        for (id, pending) in expired {
            tracing::warn!(id = %id, method = %pending.method, "request timed out after {timeout:?}");
            let message = format!(
                "Request timed out: the MCP server did not answer {} within {} (mcp-guard --request-timeout)",
                pending.method,
                humantime::format_duration(timeout)
            );
            self.reply_to_host(&error_response(Some(&id), codes::REQUEST_TIMEOUT, &message))
                .await;
            self.reply_to_server(&cancelled_notification(&id, "mcp-guard: request timed out"))
                .await;
        }
        // Server → host requests are the host's business: it has its own timeouts.
    }

    /// How often to look for expired requests.
    pub fn expiry_tick(&self) -> Duration {
        (self.session.borrow().request_timeout / 10)
            .clamp(Duration::from_millis(10), Duration::from_millis(250))
    }

    /// The server is gone: every host request still waiting gets an error.
    pub async fn fail_pending_host_requests(&self, why: &str) {
        let pending = self.session.borrow_mut().host_requests.drain();
        for (id, p) in pending {
            let message = format!("The MCP server exited before answering {}: {why}", p.method);
            self.reply_to_host(&error_response(Some(&id), codes::SERVER_EXITED, &message))
                .await;
        }
        let _ = self.to_host.flush().await;
    }

    /// The host is gone: answer the server's own requests so it is free to exit.
    pub async fn fail_pending_server_requests(&self) {
        let pending = self.session.borrow_mut().server_requests.drain();
        for (id, p) in pending {
            let message = format!("The MCP client disconnected before answering {}", p.method);
            self.reply_to_server(&error_response(Some(&id), codes::INTERNAL_ERROR, &message))
                .await;
        }
    }
}

use super::session::Pending;

impl Pending {
    fn new(method: &str, meta: Option<&MetaPeek<'_>>, timeout: Duration) -> Self {
        Pending {
            method: method.into(),
            deadline: Instant::now() + timeout,
            progress_token: meta
                .and_then(|m| m.progress_token)
                .map(|raw| Box::from(raw.get())),
        }
    }
}

fn invalid_reply(invalid: &Invalid) -> Vec<u8> {
    error_response(invalid.id(), invalid.code(), &invalid.message())
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

fn batch_of(replies: &[Vec<u8>]) -> Vec<u8> {
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
