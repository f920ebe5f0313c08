//! From an audit event to OTLP: the log record's attributes and the counters' metrics.
//!
//! Attribute names follow the OpenTelemetry semantic conventions for MCP where they exist
//! (open-telemetry/semantic-conventions-genai, docs/gen-ai/mcp.md, status Development):
//! `mcp.session.id`, `mcp.method.name`, `mcp.resource.uri`, `jsonrpc.request.id`,
//! `gen_ai.tool.name`, `gen_ai.prompt.name`. The guard's own fields, which no convention
//! covers, are under `mcp_guard.*`.

use std::time::SystemTime;

use opentelemetry::logs::{AnyValue, LogRecord, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use serde_json::{Map, Value};

/// The event's field and the attribute it becomes.
const ATTRIBUTES: &[(&str, &str)] = &[
    ("session", "mcp.session.id"),
    ("method", "mcp.method.name"),
    ("tool", "gen_ai.tool.name"),
    ("prompt", "gen_ai.prompt.name"),
    ("uri", "mcp.resource.uri"),
    ("id", "jsonrpc.request.id"),
    ("event", "mcp_guard.event"),
    ("seq", "mcp_guard.seq"),
    ("direction", "mcp_guard.direction"),
    ("kind", "mcp_guard.message.kind"),
    ("decision", "mcp_guard.decision"),
    ("reason", "mcp_guard.reason"),
    ("latency_ms", "mcp_guard.latency_ms"),
    ("severity", "mcp_guard.finding.severity"),
];

/// Events that want a reviewer's eye are logged at WARN.
const WARN_EVENTS: &[&str] = &["finding", "suspicious", "limit", "spawn_failed", "pin"];

/// Fill `record` from the event's `fields`; the body is the whole event line.
pub fn fill(record: &mut impl LogRecord, fields: &Map<String, Value>, line: String) {
    record.set_timestamp(SystemTime::now());
    record.set_event_name(event_name(fields));
    let refused = fields.get("decision").and_then(Value::as_str) == Some("refuse")
        || fields.get("decision").and_then(Value::as_str) == Some("deny");
    let event = fields.get("event").and_then(Value::as_str).unwrap_or("");
    let (severity, text) = if refused || WARN_EVENTS.contains(&event) {
        (Severity::Warn, "WARN")
    } else {
        (Severity::Info, "INFO")
    };
    record.set_severity_number(severity);
    record.set_severity_text(text);
    record.set_body(AnyValue::String(line.into()));
    for (field, key) in ATTRIBUTES {
        let value = match fields.get(*field) {
            Some(Value::String(s)) => AnyValue::String(s.clone().into()),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => AnyValue::Int(i),
                None => AnyValue::Double(n.as_f64().unwrap_or_default()),
            },
            Some(Value::Bool(b)) => AnyValue::Boolean(*b),
            _ => continue,
        };
        record.add_attribute(*key, value);
    }
}

/// A `'static` event name (the SDK's type), one per kind of audit event.
fn event_name(fields: &Map<String, Value>) -> &'static str {
    match fields.get("event").and_then(Value::as_str).unwrap_or("") {
        "message" => "mcp_guard.message",
        "invalid" => "mcp_guard.invalid",
        "finding" => "mcp_guard.finding",
        "egress" => "mcp_guard.egress",
        "pin" => "mcp_guard.pin",
        "suspicious" => "mcp_guard.suspicious",
        "limit" => "mcp_guard.limit",
        "session_start" => "mcp_guard.session_start",
        "session_end" => "mcp_guard.session_end",
        "server_exit" => "mcp_guard.server_exit",
        _ => "mcp_guard.audit",
    }
}

/// The counters of the `session_end` event, as OTLP sums (one data point each, per session).
pub fn record_counters(provider: &SdkMeterProvider, counters: &Value, fields: &Map<String, Value>) {
    let meter = provider.meter("mcp-guard");
    let session = fields
        .get("session")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let base = [KeyValue::new("mcp.session.id", session)];
    let get = |name: &str| counters.get(name).and_then(Value::as_u64).unwrap_or(0);
    let refusals: Vec<(String, u64)> = counters
        .get("refusals")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let refused: u64 = refusals.iter().map(|(_, n)| n).sum();
    // Every judged message is forwarded, forwarded modified, or refused.
    let forwarded = get("messages")
        .saturating_sub(get("modified"))
        .saturating_sub(refused);
    let add = |name: &'static str, unit: &'static str, value: u64, attrs: &[KeyValue]| {
        meter
            .u64_counter(name)
            .with_unit(unit)
            .build()
            .add(value, attrs);
    };
    add("mcp_guard.messages", "{message}", get("messages"), &base);
    add("mcp_guard.forwarded", "{message}", forwarded, &base);
    add("mcp_guard.modified", "{message}", get("modified"), &base);
    add("mcp_guard.invalid", "{message}", get("invalid"), &base);
    add(
        "mcp_guard.rate_limited",
        "{message}",
        get("rate_limited"),
        &base,
    );
    add("mcp_guard.redactions", "{value}", get("redactions"), &base);
    add("mcp_guard.pin_hidden", "{item}", get("pin_hidden"), &base);
    add("mcp_guard.findings", "{finding}", get("findings"), &base);
    add("mcp_guard.suspicious", "{burst}", get("suspicious"), &base);
    add("mcp_guard.limit_kills", "{kill}", get("limit_kills"), &base);
    // The total too, so that a session without refusals still reports 0.
    add("mcp_guard.refused", "{message}", 0, &base);
    for (reason, n) in refusals {
        let mut attrs = base.to_vec();
        attrs.push(KeyValue::new("mcp_guard.refusal.reason", reason));
        add("mcp_guard.refused", "{message}", n, &attrs);
    }
}
