//! `[audit] forwards = "count"`: messages forwarded unchanged are counted per direction, kind,
//! method and target instead of each being a line; the counts become one `forwards` line
//! before the next line of any other kind (and at each write of the log). Refusals,
//! modifications, errors and messages with findings keep a line of their own.

use serde_json::{json, Value};

use super::event::{Target, TargetKind};
use crate::filter::Direction;
use crate::protocol::Message;

#[derive(Debug, Default)]
pub struct Forwarded {
    /// Few distinct keys in a session: a list searched in order beats hashing each message.
    counts: Vec<Count>,
}

#[derive(Debug)]
struct Count {
    direction: Direction,
    kind: &'static str,
    method: Option<Box<str>>,
    target: Option<(TargetKind, Box<str>)>,
    messages: u64,
    bytes: u64,
}

impl Forwarded {
    pub fn add(
        &mut self,
        direction: Direction,
        message: &Message<'_>,
        method: Option<&str>,
        target: Option<&Target>,
        bytes: usize,
    ) {
        let kind = message.kind().as_str();
        let target = target.map(|t| (t.kind, &*t.value));
        let found = self.counts.iter_mut().find(|c| {
            c.direction == direction
                && c.kind == kind
                && c.method.as_deref() == method
                && c.target.as_ref().map(|(k, v)| (*k, &**v)) == target
        });
        let count = match found {
            Some(count) => count,
            None => {
                self.counts.push(Count {
                    direction,
                    kind,
                    method: method.map(Into::into),
                    target: target.map(|(k, v)| (k, v.into())),
                    messages: 0,
                    bytes: 0,
                });
                self.counts.last_mut().expect("just pushed")
            }
        };
        count.messages += 1;
        count.bytes += bytes as u64;
    }

    /// The counts as a `forwards` event's fields, and a fresh start; `None` when nothing was
    /// counted.
    pub fn take(&mut self) -> Option<Value> {
        if self.counts.is_empty() {
            return None;
        }
        let counts: Vec<Value> = self.counts.drain(..).map(Count::into_json).collect();
        Some(json!({ "decision": "forward", "counts": counts }))
    }
}

impl Count {
    fn into_json(self) -> Value {
        let mut value = json!({
            "direction": self.direction,
            "kind": self.kind,
            "messages": self.messages,
            "bytes": self.bytes,
        });
        if let Some(method) = self.method {
            value["method"] = method.as_ref().into();
        }
        if let Some((kind, target)) = self.target {
            let key = match kind {
                TargetKind::Tool => "tool",
                TargetKind::Prompt => "prompt",
                TargetKind::Uri => "uri",
            };
            value[key] = target.as_ref().into();
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RequestId;

    #[test]
    fn counts_per_direction_kind_method_and_target() {
        let mut f = Forwarded::default();
        assert!(f.take().is_none());
        let call = Message::Request {
            id: RequestId::Number("1".into()),
            method: "tools/call".into(),
            params: None,
        };
        let echo = Target {
            kind: TargetKind::Tool,
            value: "echo".into(),
        };
        let other = Target {
            kind: TargetKind::Tool,
            value: "other".into(),
        };
        let up = Direction::HostToServer;
        f.add(up, &call, Some("tools/call"), Some(&echo), 10);
        f.add(up, &call, Some("tools/call"), Some(&echo), 5);
        f.add(up, &call, Some("tools/call"), Some(&other), 1);
        let fields = f.take().unwrap();
        let counts = fields["counts"].as_array().unwrap();
        assert_eq!(counts.len(), 2, "{fields}");
        assert_eq!(counts[0]["tool"], "echo");
        assert_eq!(
            (counts[0]["messages"].as_u64(), counts[0]["bytes"].as_u64()),
            (Some(2), Some(15))
        );
        assert!(f.take().is_none(), "taken: a fresh start");
    }
}
