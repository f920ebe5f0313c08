//! The one ledger of requests in flight: per direction, admitted before any stage runs, and
//! settled exactly once (answered, abandoned, expired or drained). The egress attribution's
//! view of the host's calls is published from here, so it can never disagree.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use super::entry::{Entry, Origin};
use super::Side;
use crate::egress::InFlightCalls;
use crate::maps::{Map, Set};
use crate::protocol::RequestId;

/// Requests one side sent and the other has not answered yet.
#[derive(Debug, Default)]
pub struct InFlight {
    pending: Map<RequestId, Entry>,
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
#[derive(Debug)]
pub enum Answer {
    /// It answers a pending request (its entry is returned).
    Expected(Entry),
    /// The request was abandoned (timed out or cancelled): drop quietly.
    Late,
    /// Never asked, or already answered: drop and log.
    Unsolicited,
}

impl InFlight {
    pub fn contains(&self, id: &RequestId) -> bool {
        self.pending.contains_key(id)
    }

    pub fn get(&self, id: &RequestId) -> Option<&Entry> {
        self.pending.get(id)
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn insert(&mut self, id: RequestId, entry: Entry) {
        self.abandoned.remove(&id);
        self.pending.insert(id, entry);
    }

    fn answer(&mut self, id: &RequestId) -> Answer {
        match self.pending.remove(id) {
            Some(entry) => Answer::Expected(entry),
            None if self.abandoned.remove(id) => Answer::Late,
            None => Answer::Unsolicited,
        }
    }

    fn abandon(&mut self, id: &RequestId) -> Option<Entry> {
        let entry = self.pending.remove(id)?;
        if self.abandoned.len() >= ABANDONED_MEMORY {
            self.abandoned.clear();
        }
        self.abandoned.insert(id.clone());
        Some(entry)
    }

    /// Hold `replies`, the guard's errors for members of one batch, until the batch's forwarded
    /// `requests` (already opened) are settled. The rule, so that the sender gets one array per
    /// batch and never loses an error: the replies are appended to the first array from the
    /// other side that answers any of these requests ([`InFlight::take_held_for`]); should none
    /// come (answered singly, timed out, cancelled, the peer gone), they go out as their own
    /// array once the last of the requests is settled ([`InFlight::take_settled`]).
    pub fn hold(&mut self, requests: Vec<RequestId>, replies: Vec<Vec<u8>>) {
        self.last_batch = self.last_batch.wrapping_add(1);
        let tag = NonZeroU32::new(self.last_batch).unwrap_or(NonZeroU32::MIN);
        for id in &requests {
            if let Some(entry) = self.pending.get_mut(id) {
                entry.batch = Some(tag);
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

    fn touch_progress(&mut self, token: &str, timeout: Duration) -> bool {
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

    fn expire(&mut self, now: Instant) -> Vec<(RequestId, Entry)> {
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
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its id is already used by a request of the same sender still in flight.
    DuplicateId,
}

/// Every request in flight, both ways. The only place the conversation's requests are kept.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Requests toward the server (the host's, and the guard's own).
    to_server: InFlight,
    /// The server's requests to the host.
    to_host: InFlight,
    /// `hosts` egress mode: the host's calls in flight, published for the egress proxy.
    egress: Option<InFlightCalls>,
    /// The requests of a host line the relay holds unjudged while the guard lists the server's
    /// tools itself: not in flight yet, but answered like requests in flight should the server
    /// exit meanwhile.
    unjudged: Vec<RequestId>,
}

impl Ledger {
    pub fn new(egress: Option<InFlightCalls>) -> Ledger {
        Ledger {
            egress,
            ..Ledger::default()
        }
    }

    /// The requests `side` sent (the guard's own count as the host's side: they go to the
    /// server and share its id space).
    pub fn sent_by(&mut self, side: Side) -> &mut InFlight {
        match side {
            Side::Host => &mut self.to_server,
            Side::Server => &mut self.to_host,
        }
    }

    pub fn sent_by_ref(&self, side: Side) -> &InFlight {
        match side {
            Side::Host => &self.to_server,
            Side::Server => &self.to_host,
        }
    }

    /// Admission of a request from `side`, before any stage sees it.
    pub fn admit(&self, side: Side, id: &RequestId) -> Result<(), Refusal> {
        if self.sent_by_ref(side).contains(id) {
            return Err(Refusal::DuplicateId);
        }
        Ok(())
    }

    /// A request from `side` was forwarded: it is in flight until settled.
    pub fn open(&mut self, side: Side, id: RequestId, entry: Entry) {
        // The egress records name the host's calls (not the guard's own requests).
        if let (Origin::Host, Some(calls)) = (entry.origin, &self.egress) {
            calls.begin(&id.to_string(), &entry.method, entry.tool());
        }
        self.sent_by(side).insert(id, entry);
    }

    /// A response from `responder` to a request of the other side.
    pub fn answer(&mut self, responder: Side, id: &RequestId) -> Answer {
        let asker = responder.other();
        let answer = self.sent_by(asker).answer(id);
        if matches!(answer, Answer::Expected(_)) {
            self.ended(asker, id);
        }
        answer
    }

    /// The host's requests `ids` wait, unjudged, for the guard's own tool listing.
    pub fn hold_unjudged(&mut self, ids: Vec<RequestId>) {
        self.unjudged = ids;
    }

    /// The held line goes on to be judged (its requests are admitted as usual).
    pub fn release_unjudged(&mut self) {
        self.unjudged.clear();
    }

    /// The server is gone: the held requests, to be answered.
    pub fn take_unjudged(&mut self) -> Vec<RequestId> {
        std::mem::take(&mut self.unjudged)
    }

    /// Forget a request of `side` without an answer (cancelled by its sender, or undeliverable).
    pub fn abandon(&mut self, side: Side, id: &RequestId) -> Option<Entry> {
        let entry = self.sent_by(side).abandon(id)?;
        self.ended(side, id);
        Some(entry)
    }

    /// Push back the deadline of the request of `side` that owns `token`.
    pub fn touch_progress(&mut self, side: Side, token: &str, timeout: Duration) -> bool {
        self.sent_by(side).touch_progress(token, timeout)
    }

    /// Remove and return the requests of `side` whose deadline has passed.
    pub fn expire(&mut self, side: Side, now: Instant) -> Vec<(RequestId, Entry)> {
        let expired = self.sent_by(side).expire(now);
        for (id, _) in &expired {
            self.ended(side, id);
        }
        expired
    }

    /// Remove and return every request of `side` (the other side is gone).
    pub fn drain(&mut self, side: Side) -> Vec<(RequestId, Entry)> {
        let drained: Vec<_> = self.sent_by(side).pending.drain().collect();
        for (id, _) in &drained {
            self.ended(side, id);
        }
        drained
    }

    fn ended(&self, side: Side, id: &RequestId) {
        if let (Side::Host, Some(calls)) = (side, &self.egress) {
            calls.end(&id.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(token: Option<&str>, deadline: Instant) -> Entry {
        Entry {
            progress_token: token.map(Box::from),
            deadline,
            ..Entry::for_method("tools/call")
        }
    }

    fn num(n: &str) -> RequestId {
        RequestId::Number(n.into())
    }

    #[test]
    fn a_request_is_answered_once_and_only_by_the_other_side() {
        let mut ledger = Ledger::default();
        let later = Instant::now() + Duration::from_secs(60);
        ledger.open(Side::Host, num("1"), entry(None, later));
        // The host cannot answer its own request; the server's answer settles it once.
        assert!(matches!(
            ledger.answer(Side::Host, &num("1")),
            Answer::Unsolicited
        ));
        assert!(matches!(
            ledger.answer(Side::Server, &num("1")),
            Answer::Expected(e) if e.method == "tools/call"
        ));
        assert!(matches!(
            ledger.answer(Side::Server, &num("1")),
            Answer::Unsolicited
        ));
        assert!(matches!(
            ledger.answer(Side::Server, &RequestId::String("1".into())),
            Answer::Unsolicited
        ));
    }

    #[test]
    fn a_duplicate_id_is_refused_before_it_can_replace_the_first_request() {
        let mut ledger = Ledger::default();
        let later = Instant::now() + Duration::from_secs(60);
        let first = Entry {
            target: Some(crate::conversation::Target {
                kind: crate::conversation::TargetKind::Tool,
                value: "first".into(),
            }),
            ..entry(None, later)
        };
        assert_eq!(ledger.admit(Side::Host, &num("7")), Ok(()));
        ledger.open(Side::Host, num("7"), first);
        assert_eq!(
            ledger.admit(Side::Host, &num("7")),
            Err(Refusal::DuplicateId)
        );
        // The same id from the other side is another request.
        assert_eq!(ledger.admit(Side::Server, &num("7")), Ok(()));
        // The first request's answer still finds the first request's entry.
        match ledger.answer(Side::Server, &num("7")) {
            Answer::Expected(e) => assert_eq!(e.tool(), Some("first")),
            other => panic!("{other:?}"),
        }
        assert_eq!(ledger.admit(Side::Host, &num("7")), Ok(()));
    }

    #[test]
    fn the_egress_view_follows_every_way_a_host_request_ends() {
        let calls = InFlightCalls::new();
        let mut ledger = Ledger::new(Some(calls.clone()));
        let later = Instant::now() + Duration::from_secs(60);
        for n in ["1", "2", "3", "4"] {
            ledger.open(Side::Host, num(n), entry(None, later));
        }
        let servers = Entry {
            origin: Origin::Server,
            ..entry(None, later)
        };
        ledger.open(Side::Server, num("9"), servers);
        let guards = Entry {
            origin: Origin::GuardPin,
            ..entry(None, later)
        };
        ledger.open(Side::Host, num("10"), guards);
        assert_eq!(calls.snapshot().len(), 4, "only the host's calls");
        ledger.answer(Side::Server, &num("1"));
        ledger.abandon(Side::Host, &num("2"));
        ledger.expire(Side::Host, later);
        assert!(calls.snapshot().is_empty(), "{:?}", calls.snapshot());
        ledger.open(Side::Host, num("5"), entry(None, later));
        ledger.drain(Side::Host);
        assert!(calls.snapshot().is_empty());
    }

    #[test]
    fn held_batch_replies_are_merged_or_released_once() {
        let mut ledger = Ledger::default();
        let (a, b) = (num("1"), num("2"));
        let later = Instant::now() + Duration::from_secs(60);
        ledger.open(Side::Host, a.clone(), entry(None, later));
        ledger.open(Side::Host, b.clone(), entry(None, later));
        ledger
            .sent_by(Side::Host)
            .hold(vec![a.clone(), b.clone()], vec![b"err".to_vec()]);
        // Answered singly: held until the last request is settled.
        assert!(matches!(
            ledger.answer(Side::Server, &a),
            Answer::Expected(_)
        ));
        assert!(ledger.sent_by(Side::Host).take_settled().is_empty());
        // An id reused by a later request outside the batch does not keep it held.
        ledger.open(Side::Host, a.clone(), entry(None, later));
        ledger.abandon(Side::Host, &b);
        let host = ledger.sent_by(Side::Host);
        assert_eq!(host.take_settled(), vec![vec![b"err".to_vec()]]);
        assert!(!host.has_held());
        // Merged into an answering array: taken once, never released again.
        ledger.open(Side::Host, b.clone(), entry(None, later));
        let host = ledger.sent_by(Side::Host);
        host.hold(vec![b.clone()], vec![b"again".to_vec()]);
        let mut merged = Vec::new();
        host.take_held_for(&a, &mut merged);
        assert!(merged.is_empty());
        host.take_held_for(&b, &mut merged);
        assert_eq!(merged, vec![b"again".to_vec()]);
        ledger.answer(Side::Server, &b);
        assert!(ledger.sent_by(Side::Host).take_settled().is_empty());
    }

    #[test]
    fn expired_requests_drop_their_late_answers_and_progress_keeps_one_alive() {
        let mut ledger = Ledger::default();
        let now = Instant::now();
        let (a, b) = (num("1"), num("2"));
        ledger.open(Side::Host, a.clone(), entry(Some("\"t\""), now));
        let far = now + Duration::from_secs(60);
        ledger.open(Side::Host, b.clone(), entry(None, far));
        assert!(ledger.touch_progress(Side::Host, "\"t\"", Duration::from_secs(1)));
        assert!(ledger.expire(Side::Host, now).is_empty());
        let expired = ledger.expire(Side::Host, now + Duration::from_secs(2));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].0, a);
        assert!(matches!(ledger.answer(Side::Server, &a), Answer::Late));
        assert_eq!(ledger.sent_by(Side::Host).len(), 1);
    }
}
