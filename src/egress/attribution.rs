//! Which MCP calls were in flight when a connection opened.
//!
//! The relay calls [`InFlightCalls::begin`] when it forwards a request to the server and
//! [`InFlightCalls::end`] when the answer (or a cancellation) passes back; the proxy takes a
//! [`InFlightCalls::snapshot`] as each connection opens and puts it in the
//! [`super::record::ConnectionRecord`]. Attribution, not a boundary: a server can open a
//! connection for one call while another is running.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

/// One in-flight call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRef {
    /// The JSON-RPC id as text (`7`, `"abc"` → `abc`).
    pub id: String,
    pub method: String,
    /// The tool name of a `tools/call`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

/// The calls in flight, shared by the relay and the proxy: cheap to clone (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct InFlightCalls {
    inner: Arc<Mutex<Vec<CallRef>>>,
}

impl InFlightCalls {
    pub fn new() -> InFlightCalls {
        InFlightCalls::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<CallRef>> {
        // A panic elsewhere while holding the lock leaves a consistent Vec: keep using it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a call as started; a second `begin` with the same id replaces the first.
    pub fn begin(&self, id: &str, method: &str, tool: Option<&str>) {
        let call = CallRef {
            id: id.to_string(),
            method: method.to_string(),
            tool: tool.map(str::to_string),
        };
        let mut calls = self.lock();
        calls.retain(|c| c.id != id);
        calls.push(call);
    }

    /// Records a call as finished (unknown ids are ignored).
    pub fn end(&self, id: &str) {
        self.lock().retain(|c| c.id != id);
    }

    /// The calls in flight, oldest first.
    pub fn snapshot(&self) -> Vec<CallRef> {
        self.lock().clone()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_end_snapshot() {
        let calls = InFlightCalls::new();
        let relay = calls.clone();
        relay.begin("1", "tools/call", Some("fetch"));
        relay.begin("2", "resources/read", None);
        let snap = calls.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].tool.as_deref(), Some("fetch"));
        relay.end("1");
        relay.end("nope");
        assert_eq!(calls.snapshot()[0].id, "2");
        relay.begin("2", "tools/call", Some("x"));
        assert_eq!(calls.len(), 1);
        assert_eq!(calls.snapshot()[0].method, "tools/call");
        relay.end("2");
        assert!(calls.is_empty());
    }

    #[test]
    fn shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<InFlightCalls>();
        let calls = InFlightCalls::new();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let c = calls.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let id = format!("{t}-{i}");
                        c.begin(&id, "tools/call", None);
                        c.end(&id);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(calls.is_empty());
    }

    #[test]
    fn serializes_without_absent_tool() {
        let c = CallRef {
            id: "3".into(),
            method: "ping".into(),
            tool: None,
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"id":"3","method":"ping"}"#
        );
    }
}
