//! One session's recorder: builds the events, keeps the counters, watches for bursts of
//! refusals, and decides when to write and when to ask for the server to be stopped.

use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};

use super::chain::{ChainWriter, Destination};
use super::config::AuditConfig;
use super::counters::{BurstDetector, Counters};
use super::event::{arguments_of, id_text, Clock, MessageEvent};
use super::excerpt::{excerpt, redact_bounded};
use super::forwarded::Forwarded;
use super::AuditError;
use crate::filter::{Context, Direction, Verdict};
use crate::launch::SupervisorEvent;
use crate::policy::firewall::{Forwards, OnSuspicious};
use crate::protocol::Message;

/// Write when this much is buffered, even before the next tick.
const FLUSH_BYTES: usize = 32 * 1024;

/// What the session start event says besides the sandbox report.
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    pub command: Vec<String>,
    /// SHA-256 of the effective policy as `policy show` prints it.
    pub policy_digest: String,
    pub pin_file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

pub struct Recorder {
    session: String,
    info: SessionInfo,
    config: AuditConfig,
    writer: Option<ChainWriter>,
    seq: u64,
    started: bool,
    /// `session_end` is written (by `server_exit`, else when the recorder is dropped).
    ended: bool,
    counters: Counters,
    burst: BurstDetector,
    stop_reason: Option<String>,
    clock: Clock,
    /// Findings recorded since the last message line: they are about the next one.
    findings_pending: u32,
    /// Forwards counted, not yet written (`forwards = "count"`, `"auto"`).
    forwarded: Forwarded,
    /// `forwards = "auto"`: the current second (since the epoch) and the forwards given a
    /// line in it.
    forward_lines: (u64, u32),
}

impl Recorder {
    pub fn open(config: AuditConfig, info: SessionInfo) -> Result<Self, AuditError> {
        let writer = match &config.destination {
            None => None,
            Some(destination) => match ChainWriter::open_rotating(destination, config.rotation) {
                Ok(w) => Some(w),
                Err(source) if config.required => {
                    return Err(AuditError::Open {
                        destination: destination.clone(),
                        source,
                    })
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot open the audit log {destination}: {e}; relaying without an audit log (audit is best effort)"
                    );
                    None
                }
            },
        };
        Ok(Self {
            session: new_session_id(),
            burst: BurstDetector::new(config.suspicious_refusals, config.suspicious_window),
            info,
            config,
            writer,
            seq: 0,
            started: false,
            ended: false,
            counters: Counters::default(),
            stop_reason: None,
            clock: Clock::default(),
            findings_pending: 0,
            forwarded: Forwarded::default(),
            forward_lines: (0, 0),
        })
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    pub fn stop_reason(&self) -> Option<String> {
        self.stop_reason.clone()
    }

    pub fn message(
        &mut self,
        context: &Context<'_>,
        message: &Message<'_>,
        verdict: &Verdict,
    ) -> bool {
        self.ensure_started();
        self.counters.messages += 1;
        let direction = context.direction;
        let (decision, reason) = match verdict {
            Verdict::Forward => {
                self.counters.forwarded += 1;
                ("forward", None)
            }
            Verdict::Replace(_) => {
                self.counters.modified += 1;
                ("modify", None)
            }
            Verdict::Refuse { reason, .. } => {
                self.counters.refused(reason);
                ("refuse", Some(reason.as_str()))
            }
        };
        // Only refusals of the server's messages are the server's faults: a host that keeps
        // sending what the policy refuses must not get the server stopped.
        let server_fault = decision == "refuse" && direction == Direction::ServerToHost;
        if self.writer.is_none() {
            // Nothing is written (--no-audit): only the counters and the refusal bursts count.
            return self.after_refusal(server_fault, reason);
        }
        let (mut target, mut arguments, mut latency_ms, mut method) =
            (None, None, None, message.method());
        match message {
            Message::Request { .. } => {
                // The ledger's entry names the target: no second look into the params, and
                // the arguments are read only when excerpts are asked for.
                target = context.request.and_then(|entry| entry.target.clone());
                if self.config.excerpts > 0 && target.is_some() {
                    arguments = arguments_of(message.body_text());
                }
            }
            Message::Result { .. } | Message::Error { id: Some(_), .. } => {
                // The ledger's entry for the request it answers: its start and its target.
                if let Some(entry) = context.request {
                    let elapsed = entry.started.elapsed().as_secs_f64();
                    latency_ms = Some((elapsed * 1e6).round() / 1e3);
                    target = entry.target.clone();
                }
                method = context.answered_method();
            }
            _ => {}
        }
        let findings = std::mem::take(&mut self.findings_pending);
        let countable =
            decision == "forward" && findings == 0 && !matches!(message, Message::Error { .. });
        let aggregate = countable && self.count_this_forward();
        let bytes = message.body_text().map_or(0, str::len);
        if aggregate {
            self.forwarded
                .add(direction, message, method, target.as_ref(), bytes);
            return false;
        }
        self.record_forwarded();
        // Cut before it is scanned: the redaction patterns never run over more than the
        // excerpt (and a margin), however large the call.
        let arguments = arguments
            .filter(|_| self.config.excerpts > 0)
            .and_then(|raw| excerpt(&self.config.redactor, raw.get(), self.config.excerpts))
            .map(|(value, redactions)| {
                self.counters.redactions += redactions;
                value
            });
        let reason = reason.map(|r| {
            let max = self.config.redactor.max_value_bytes();
            let (text, n) = redact_bounded(&self.config.redactor, r, max);
            self.counters.redactions += n;
            text
        });
        self.seq += 1;
        let id = match message {
            Message::Request { id, .. }
            | Message::Result { id, .. }
            | Message::Error { id: Some(id), .. } => Some(id_text(id)),
            _ => None,
        };
        let mut event = MessageEvent {
            ts: self.clock.now(),
            session: &self.session,
            seq: self.seq,
            event: "message",
            direction,
            kind: message.kind().as_str(),
            method,
            tool: None,
            prompt: None,
            uri: None,
            id,
            decision,
            reason: reason.as_deref(),
            bytes,
            findings: (findings > 0).then_some(findings),
            latency_ms,
            arguments,
        };
        event.set_target(target.as_ref());
        crate::telemetry::event(&event);
        if let Some(w) = &mut self.writer {
            w.push_event(&event);
        }
        let refused = decision == "refuse";
        let mut stop = self.after_refusal(server_fault, reason.as_deref());
        if refused
            || self
                .writer
                .as_ref()
                .is_some_and(|w| w.buffered() >= FLUSH_BYTES)
        {
            stop |= self.flush();
        }
        stop
    }

    /// Whether this forwarded message is counted rather than given a line (`[audit] forwards`).
    fn count_this_forward(&mut self) -> bool {
        match self.config.forwards {
            Forwards::Every => false,
            Forwards::Count => true,
            Forwards::Auto => {
                let second = self.clock.second();
                if second != self.forward_lines.0 {
                    self.forward_lines = (second, 0);
                }
                self.forward_lines.1 += 1;
                self.forward_lines.1 > Forwards::AUTO_LINES_PER_SECOND
            }
        }
    }

    /// The forwards counted since the last line (`forwards = "count"`), as a line of their own
    /// before the next one, so the log keeps the order of events.
    fn record_forwarded(&mut self) {
        if let Some(fields) = self.forwarded.take() {
            self.record("forwards", fields);
        }
    }

    /// Count a refusal of the server's message towards a burst; record and act on a
    /// suspicious one.
    fn after_refusal(&mut self, server_fault: bool, reason: Option<&str>) -> bool {
        if !server_fault {
            return false;
        }
        let Some(count) = self.burst.refusal(Instant::now()) else {
            return false;
        };
        self.counters.suspicious += 1;
        let window = humantime::format_duration(self.config.suspicious_window).to_string();
        let kill = self.config.on_suspicious == OnSuspicious::Kill;
        let action = if kill { "kill" } else { "log" };
        tracing::warn!(
            "suspicious activity: {count} refusals of the server's messages within {window} (last: {})",
            reason.unwrap_or("")
        );
        self.record(
            "suspicious",
            json!({"refusals": count, "window": window, "action": action}),
        );
        let mut stop = self.flush();
        if kill && self.stop_reason.is_none() {
            self.stop_reason = Some(format!(
                "suspicious activity: {count} refusals of the server's messages within {window}; stopping the server (policy [audit] on_suspicious = \"kill\")"
            ));
            stop = true;
        }
        stop
    }

    pub fn invalid(&mut self, direction: Direction, reason: &str) -> bool {
        self.ensure_started();
        self.counters.invalid += 1;
        let max = self.config.redactor.max_value_bytes();
        let reason = redact_bounded(&self.config.redactor, reason, max).0;
        self.record("invalid", json!({"direction": direction, "reason": reason}));
        false
    }

    pub fn finding(&mut self, severity: super::Severity, kind: &str, detail: &str) -> bool {
        self.ensure_started();
        self.counters.findings += 1;
        if self.writer.is_none() {
            return false;
        }
        // The firewall's findings come just before the line of the message they are about;
        // consent's also come on their own (a request that timed out, a withdrawal).
        if kind != "consent" {
            self.findings_pending += 1;
        }
        let max = self.config.redactor.max_value_bytes();
        let detail = redact_bounded(&self.config.redactor, detail, max).0;
        self.record(
            "finding",
            json!({"severity": severity, "kind": kind, "detail": detail}),
        );
        self.flush()
    }

    pub fn egress(&mut self, record: &crate::egress::ConnectionRecord) -> bool {
        self.ensure_started();
        let mut fields = serde_json::to_value(record).unwrap_or(Value::Null);
        // The requested name may carry a secret in its labels (exfiltration by DNS name).
        if let Some(host) = fields.get_mut("host") {
            if let Some(text) = host.as_str() {
                *host = Value::String(self.config.redactor.redact_text(text).0);
            }
        }
        self.record("egress", fields);
        // Refusals are written at once, like findings; allowed connections with the next batch.
        if record.decision == crate::egress::Decision::Deny {
            return self.flush();
        }
        false
    }

    pub fn pin_event(&mut self, detail: &str, hidden: bool) -> bool {
        self.ensure_started();
        if hidden {
            self.counters.pin_hidden += 1;
        }
        self.record("pin", json!({"detail": detail}));
        self.flush()
    }

    pub fn supervisor_event(&mut self, event: &SupervisorEvent) -> bool {
        match event {
            SupervisorEvent::Confined { report } => {
                let sandbox = serde_json::to_value(report).unwrap_or(Value::Null);
                if self.started {
                    // Messages were judged before the report was read: record it on its own.
                    self.record("sandbox", json!({ "sandbox": sandbox }));
                } else {
                    self.started = true;
                    self.record_start(sandbox);
                }
            }
            SupervisorEvent::SpawnFailed { error } => {
                self.ensure_started();
                self.record("spawn_failed", json!({"error": error}));
            }
            SupervisorEvent::ConnectRefused {
                destination,
                family,
                reason,
            } => {
                // A connection around the egress proxy: the same kind of line as the proxy's.
                self.ensure_started();
                self.record(
                    "egress",
                    json!({"protocol": "direct", "family": family, "host": destination,
                           "decision": "deny", "reason": reason}),
                );
            }
            SupervisorEvent::ProtectedNameMoved {
                path,
                moved_to,
                error,
            } => {
                self.ensure_started();
                self.record(
                    "protected",
                    json!({"path": path, "decision": if moved_to.is_some() { "moved-aside" } else { "failed" },
                           "moved_to": moved_to, "error": error}),
                );
            }
            _ => return false,
        }
        self.flush()
    }

    pub fn limit_hit(&mut self, limit: &str) -> bool {
        self.ensure_started();
        self.record("limit", json!({"limit": limit}));
        self.flush()
    }

    pub fn server_exit(
        &mut self,
        status: u8,
        exited: Option<&SupervisorEvent>,
        limit: Option<&str>,
        why: &str,
    ) {
        self.ensure_started();
        let (code, signal, kernel_limit) = match exited {
            Some(SupervisorEvent::Exited {
                code,
                signal,
                limit,
            }) => (*code, *signal, limit.clone()),
            _ => (None, None, None),
        };
        let limit = kernel_limit.or(limit.map(str::to_owned));
        if limit.is_some() {
            self.counters.limit_kills += 1;
        }
        self.record(
            "server_exit",
            json!({"status": status, "code": code, "signal": signal, "limit": limit, "description": why}),
        );
        self.record_end();
        let _ = self.flush();
        if let Some(path) = &self.config.metrics_file {
            if let Err(e) = std::fs::write(path, self.counters.prometheus(&self.session)) {
                tracing::warn!("cannot write the metrics file {}: {e}", path.display());
            }
        }
        if self.config.summary {
            eprint!("{}", self.counters.summary(&self.session));
        }
    }

    /// Write what is buffered; `true` when the server must be stopped.
    pub fn flush(&mut self) -> bool {
        self.record_forwarded();
        let Some(writer) = &mut self.writer else {
            return false;
        };
        let Err(e) = writer.flush() else {
            return false;
        };
        let destination = self
            .config
            .destination
            .as_ref()
            .map_or_else(String::new, Destination::to_string);
        self.writer = None;
        if self.config.required {
            let why = format!(
                "cannot write the audit log {destination}: {e}; stopping the server because the policy requires the audit log ([audit] required = true)"
            );
            tracing::error!("{why}");
            self.stop_reason.get_or_insert(why);
            true
        } else {
            tracing::warn!(
                "cannot write the audit log {destination}: {e}; relaying goes on without an audit log (audit is best effort)"
            );
            false
        }
    }

    fn record_end(&mut self) {
        self.ended = true;
        let counters =
            serde_json::to_value(CounterView::from(&self.counters)).unwrap_or(Value::Null);
        self.record("session_end", json!({"counters": counters}));
    }

    fn ensure_started(&mut self) {
        if !self.started {
            self.started = true;
            self.record_start(Value::Null);
        }
    }

    fn record_start(&mut self, sandbox: Value) {
        let info = &self.info;
        let fields = json!({
            "guard_version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "command": info.command,
            "policy_digest": info.policy_digest,
            "pin_file": info.pin_file,
            "sandbox": sandbox,
        });
        self.record("session_start", fields);
    }

    /// Queue one event of `kind` with `fields` (an object).
    fn record(&mut self, kind: &str, fields: Value) {
        if self.writer.is_none() {
            return;
        }
        if kind != "forwards" {
            self.record_forwarded();
        }
        self.seq += 1;
        let mut event = json!({"ts": self.clock.now(), "session": self.session, "seq": self.seq, "event": kind});
        if let (Some(map), Value::Object(extra)) = (event.as_object_mut(), fields) {
            map.extend(extra);
        }
        crate::telemetry::event(&event);
        if let Some(writer) = &mut self.writer {
            writer.push_event(&event);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // A guard that stops on an error still closes the session it opened in the log.
        if self.started && !self.ended {
            self.record_end();
        }
        let _ = self.flush();
    }
}

#[derive(Serialize)]
struct CounterView<'a> {
    messages: u64,
    modified: u64,
    invalid: u64,
    refusals: &'a std::collections::BTreeMap<String, u64>,
    rate_limited: u64,
    redactions: u64,
    pin_hidden: u64,
    findings: u64,
    suspicious: u64,
    limit_kills: u64,
}

impl<'a> From<&'a Counters> for CounterView<'a> {
    fn from(c: &'a Counters) -> Self {
        CounterView {
            messages: c.messages,
            modified: c.modified,
            invalid: c.invalid,
            refusals: &c.refusals,
            rate_limited: c.rate_limited,
            redactions: c.redactions,
            pin_hidden: c.pin_hidden,
            findings: c.findings,
            suspicious: c.suspicious,
            limit_kills: c.limit_kills,
        }
    }
}

/// 16 hex digits from the clock and the pid: unique enough to tell sessions apart in one log.
fn new_session_id() -> String {
    use sha2::{Digest, Sha256};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!("{nanos}:{}", std::process::id());
    super::chain::hex(&Sha256::digest(seed.as_bytes())[..8])
}
