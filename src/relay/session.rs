//! What the relay remembers about the conversation: requests in flight in each direction, the
//! progress tokens that keep them alive, and the negotiated protocol version.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use crate::maps::{Map, Set};
use crate::protocol::version::KNOWN_VERSIONS;
use crate::protocol::RequestId;

/// A request waiting for its answer.
#[derive(Debug)]
pub struct Pending {
    pub method: compact_str::CompactString,
    pub deadline: Instant,
    pub progress_token: Option<Box<str>>,
    /// The held batch this request belongs to (see [`InFlight::hold`]).
    pub batch: Option<NonZeroU32>,
}

/// Requests one side sent and the other has not answered yet.
#[derive(Debug, Default)]
pub struct InFlight {
    pending: Map<RequestId, Pending>,
    /// Ids given up on (timed out or cancelled): a late answer is dropped quietly.
    abandoned: Set<RequestId>,
    /// The guard's own replies to batches from this side, held for the other side's answers.
    held: Vec<HeldBatch>,
    last_batch: u32,
}

/// The guard's error replies to some members of a batch whose other requests were forwarded.
#[derive(Debug)]
struct HeldBatch {
    tag: NonZeroU32,
    requests: Vec<RequestId>,
    replies: Vec<Vec<u8>>,
}

/// How many abandoned ids are remembered before the oldest are forgotten.
const ABANDONED_MEMORY: usize = 4096;

/// What became of a response that came back.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// It answers a pending request (its method is returned).
    Expected(compact_str::CompactString),
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

    /// Hold `replies`, the guard's errors for members of one batch, until the batch's forwarded
    /// `requests` (already inserted) are settled. The rule, so that the sender gets one array per
    /// batch and never loses an error: the replies are appended to the first array from the
    /// other side that answers any of these requests ([`InFlight::take_held_for`]); should none
    /// come (answered singly, timed out, cancelled, the peer gone), they go out as their own
    /// array once the last of the requests is settled ([`InFlight::take_settled`]).
    pub fn hold(&mut self, requests: Vec<RequestId>, replies: Vec<Vec<u8>>) {
        self.last_batch = self.last_batch.wrapping_add(1);
        let tag = NonZeroU32::new(self.last_batch).unwrap_or(NonZeroU32::MIN);
        for id in &requests {
            if let Some(pending) = self.pending.get_mut(id) {
                pending.batch = Some(tag);
            }
        }
        self.held.push(HeldBatch {
            tag,
            requests,
            replies,
        });
    }

    /// Whether replies are held (checked before anything else, so messages outside held
    /// batches pay nothing more).
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// When `id` (about to be answered) belongs to a held batch: move its replies into `into`.
    pub fn take_held_for(&mut self, id: &RequestId, into: &mut Vec<Vec<u8>>) {
        let Some(tag) = self.pending.get(id).and_then(|p| p.batch) else {
            return;
        };
        if let Some(i) = self.held.iter().position(|h| h.tag == tag) {
            into.extend(self.held.remove(i).replies);
        }
    }

    /// The replies of held batches none of whose requests is still pending, batch by batch.
    pub fn take_settled(&mut self) -> Vec<Vec<Vec<u8>>> {
        let pending = &self.pending;
        let (settled, held): (Vec<HeldBatch>, Vec<HeldBatch>) =
            std::mem::take(&mut self.held).into_iter().partition(|h| {
                h.requests
                    .iter()
                    .all(|id| pending.get(id).and_then(|p| p.batch) != Some(h.tag))
            });
        self.held = held;
        settled.into_iter().map(|h| h.replies).collect()
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
            batch: None,
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
    fn held_batch_replies_are_merged_or_released_once() {
        let mut f = InFlight::default();
        let (a, b) = (RequestId::Number("1".into()), RequestId::Number("2".into()));
        let later = Instant::now() + Duration::from_secs(60);
        f.insert(a.clone(), pending(None, later));
        f.insert(b.clone(), pending(None, later));
        f.hold(vec![a.clone(), b.clone()], vec![b"err".to_vec()]);
        // Answered singly: held until the last request is settled.
        assert!(matches!(f.answer(&a), Answer::Expected(_)));
        assert!(f.take_settled().is_empty());
        // An id reused by a later request outside the batch does not keep it held.
        f.insert(a.clone(), pending(None, later));
        f.abandon(&b);
        assert_eq!(f.take_settled(), vec![vec![b"err".to_vec()]]);
        assert!(!f.has_held());
        // Merged into an answering array: taken once, never released again.
        f.insert(b.clone(), pending(None, later));
        f.hold(vec![b.clone()], vec![b"again".to_vec()]);
        let mut merged = Vec::new();
        f.take_held_for(&a, &mut merged);
        assert!(merged.is_empty());
        f.take_held_for(&b, &mut merged);
        assert_eq!(merged, vec![b"again".to_vec()]);
        f.answer(&b);
        assert!(f.take_settled().is_empty());
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
