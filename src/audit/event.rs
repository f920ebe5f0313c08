//! What one message event says: its kind, method, target (tool, prompt or URI), id, decision,
//! size and latency, read from the message without a full parse; the call's arguments only
//! when the policy asks for excerpts (`excerpt.rs`).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use crate::conversation::target::{Target, TargetKind};
use crate::protocol::Direction;
use crate::protocol::RequestId;

/// The call's `arguments` in `params` (read only when the policy asks for excerpts).
#[derive(Debug, Default, Deserialize)]
struct ArgumentsPeek<'a> {
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

/// The raw `arguments` of a call, tool or prompt, from its `params`.
pub fn arguments_of(params: Option<&str>) -> Option<&RawValue> {
    let peek: ArgumentsPeek<'_> = serde_json::from_str(params?).ok()?;
    peek.arguments
}

/// A request id as audit text (numbers as digits, strings as they are).
pub fn id_text(id: &RequestId) -> &str {
    match id {
        RequestId::Number(d) | RequestId::String(d) | RequestId::Escaped(d, _) => d,
    }
}

#[derive(Debug, Serialize)]
pub struct MessageEvent<'a> {
    pub ts: &'a str,
    pub session: &'a str,
    pub seq: u64,
    pub event: &'static str,
    pub direction: Direction,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// The body's (`params`, `result`, `error`) size as received.
    pub bytes: usize,
    /// Findings the firewall recorded on this message (each a line of its own, just before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Value>,
}

impl<'a> MessageEvent<'a> {
    pub fn set_target(&mut self, target: Option<&'a Target>) {
        if let Some(t) = target {
            match t.kind {
                TargetKind::Tool => self.tool = Some(&t.value),
                TargetKind::Prompt => self.prompt = Some(&t.value),
                TargetKind::Uri => self.uri = Some(&t.value),
            }
        }
    }
}

/// RFC 3339 UTC time with milliseconds.
pub fn now_text() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// [`now_text`], formatted again only when the millisecond changes (a busy session writes
/// many lines per millisecond).
#[derive(Debug, Default)]
pub struct Clock {
    millis: u128,
    text: String,
}

impl Clock {
    /// Seconds since the epoch, now.
    pub fn second(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    pub fn now(&mut self) -> &str {
        let now = std::time::SystemTime::now();
        let millis = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        if millis != self.millis || self.text.is_empty() {
            self.millis = millis;
            self.text = humantime::format_rfc3339_millis(now).to_string();
        }
        &self.text
    }
}
