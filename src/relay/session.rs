//! What the relay remembers about the conversation: requests in flight in each direction, the
//! progress tokens that keep them alive, and the negotiated protocol version.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::protocol::version::KNOWN_VERSIONS;
use crate::protocol::RequestId;

/// A request waiting for its answer.
#[derive(Debug)]
pub struct Pending {
    pub method: Box<str>,
    pub deadline: Instant,
    pub progress_token: Option<Box<str>>,
}

/// Requests one side sent and the other has not answered yet.
#[derive(Debug, Default)]
pub struct InFlight {
    pending: HashMap<RequestId, Pending>,
    /// Ids given up on (timed out or cancelled): a late answer is dropped quietly.
    abandoned: HashSet<RequestId>,
}

/// How many abandoned ids are remembered before the oldest are forgotten.
const ABANDONED_MEMORY: usize = 4096;

/// What became of a response that came back.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// It answers a pending request (its method is returned).
    Expected(Box<str>),
    /// The request was abandoned (timed out or cancelled): drop quietly.
    Late,
    /// Never asked, or already answered: drop and log.
    Unsolicited,
}

impl InFlight {
    pub fn contains(&self, id: &RequestId) -> bool {
        self.pending.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn insert(&mut self, id: RequestId, pending: Pending) {
        self.abandoned.remove(&id);
        self.pending.insert(id, pending);
    }

    pub fn answer(&mut self, id: &RequestId) -> Answer {
        match self.pending.remove(id) {
            Some(p) => Answer::Expected(p.method),
            None if self.abandoned.remove(id) => Answer::Late,
            None => Answer::Unsolicited,
        }
    }

    /// Forget a request without an answer (cancelled by its sender, or timed out).
    pub fn abandon(&mut self, id: &RequestId) -> Option<Pending> {
        let pending = self.pending.remove(id)?;
        if self.abandoned.len() >= ABANDONED_MEMORY {
            self.abandoned.clear();
        }
        self.abandoned.insert(id.clone());
        Some(pending)
    }

    /// Push back the deadline of the request that owns `token` (a progress notification).
    pub fn touch_progress(&mut self, token: &str, timeout: Duration) -> bool {
        // Progress tokens are few and short-lived; a scan beats keeping a second index in sync.
        match self
            .pending
            .values_mut()
            .find(|p| p.progress_token.as_deref() == Some(token))
        {
            Some(p) => {
                p.deadline = Instant::now() + timeout;
                true
            }
            None => false,
        }
    }

    /// Remove and return the requests whose deadline has passed.
    pub fn expire(&mut self, now: Instant) -> Vec<(RequestId, Pending)> {
        let mut expired: Vec<(Instant, RequestId)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, p)| (p.deadline, id.clone()))
            .collect();
        // Oldest first, so the host hears about its requests in the order they ran out.
        expired.sort_by_key(|(deadline, _)| *deadline);
        expired
            .into_iter()
            .filter_map(|(_, id)| self.abandon(&id).map(|p| (id, p)))
            .collect()
    }

    /// Remove and return every pending request (the other side is gone).
    pub fn drain(&mut self) -> Vec<(RequestId, Pending)> {
        self.pending.drain().collect()
    }
}

#[derive(Debug)]
pub struct Session {
    /// Host → server requests.
    pub host_requests: InFlight,
    /// Server → host requests.
    pub server_requests: InFlight,
    /// The protocol version in force: from `initialize`'s result, or the latest per-request
    /// `_meta` version (2026-07-28 sessions may never initialize).
    pub version: Option<&'static str>,
    pub request_timeout: Duration,
}

impl Session {
    pub fn new(request_timeout: Duration) -> Self {
        Self {
            host_requests: InFlight::default(),
            server_requests: InFlight::default(),
            version: None,
            request_timeout,
        }
    }

    /// Note a version the peers declared; unknown versions are logged, not adopted.
    pub fn observe_version(&mut self, version: &str, source: &str) {
        if self.version == Some(version) {
            return;
        }
        if let Some(known) = KNOWN_VERSIONS.iter().find(|known| **known == version) {
            tracing::debug!(version, source, "protocol version");
            self.version = Some(known);
        } else {
            tracing::warn!(
                version,
                source,
                "unknown MCP protocol version; relaying as the latest known"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(token: Option<&str>, deadline: Instant) -> Pending {
        Pending {
            method: "tools/call".into(),
            deadline,
            progress_token: token.map(Box::from),
        }
    }

    #[test]
    fn in_flight_answers_once() {
        let mut f = InFlight::default();
        let id = RequestId::Number("1".into());
        f.insert(id.clone(), pending(None, Instant::now()));
        assert_eq!(f.answer(&id), Answer::Expected("tools/call".into()));
        assert_eq!(f.answer(&id), Answer::Unsolicited);
        assert_eq!(
            f.answer(&RequestId::String("1".into())),
            Answer::Unsolicited
        );
    }

    #[test]
    fn in_flight_expires_and_drops_late_answers() {
        let mut f = InFlight::default();
        let now = Instant::now();
        let (a, b) = (RequestId::Number("1".into()), RequestId::Number("2".into()));
        f.insert(a.clone(), pending(Some("\"t\""), now));
        f.insert(b.clone(), pending(None, now + Duration::from_secs(60)));
        assert!(f.touch_progress("\"t\"", Duration::from_secs(1)));
        assert!(f.expire(now).is_empty());
        let expired = f.expire(now + Duration::from_secs(2));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].0, a);
        assert_eq!(f.answer(&a), Answer::Late);
        assert_eq!(f.len(), 1);
    }
}
