//! The pin stage (`crate::pin`), after the firewall's: the relay runs it, sends the pin's own
//! list requests (opened in the ledger as the guard's), routes their answers back to it, and
//! reports its decisions to the audit.

use super::{Relay, Side};
use crate::conversation::{Entry, Origin};
use crate::filter::{Context, Verdict};
use crate::protocol::{parse_line, Message, Parsed};

impl Relay {
    /// An answer to one of the pin's own requests (`entry`, the ledger's, says which list):
    /// consumed by the pin, never forwarded.
    pub(super) fn pin_absorbs(&self, message: &Message<'_>, entry: &Entry) {
        if let Some(pin) = &self.pin {
            pin.borrow_mut().absorb(message, &entry.method);
        }
        self.record_pin_events();
        self.send_pin_requests();
    }

    /// The pin's decision on a message, after the firewall's.
    pub(super) fn pin_stage(
        &self,
        message: &Message<'_>,
        context: &Context<'_>,
        verdict: Verdict,
    ) -> Verdict {
        let Some(pin) = &self.pin else {
            return verdict;
        };
        let verdict = pin.borrow_mut().inspect(message, context, verdict);
        self.record_pin_events();
        self.send_pin_requests();
        verdict
    }

    /// The pin's own list requests go to the server, each opened in the ledger as the guard's
    /// (so its answer comes back to the pin, and a host request cannot take its id).
    fn send_pin_requests(&self) {
        let Some(pin) = &self.pin else { return };
        let requests = pin.borrow_mut().take_outgoing();
        for request in requests {
            self.send_own(request, Origin::GuardPin);
        }
    }

    /// Send the guard's own request to the server, opened in the ledger first (toward the
    /// server, sharing the host's id space) so its answer comes back to the guard.
    pub(super) fn send_own(&self, request: Vec<u8>, origin: Origin) {
        if let Ok(Parsed::Single(message)) = parse_line(&request) {
            let mut session = self.session.borrow_mut();
            let timeout = session.request_timeout;
            let entry = Entry::of_request(&message, origin, timeout);
            if let (Message::Request { id, .. }, Some(entry)) = (&message, entry) {
                session.ledger.open(Side::Host, id.clone(), entry);
            }
        }
        self.to_server.enqueue(request);
    }

    fn record_pin_events(&self) {
        let Some(pin) = &self.pin else { return };
        let (events, hint) = {
            let mut p = pin.borrow_mut();
            (p.take_events(), p.review_hint().to_owned())
        };
        for e in events {
            let detail = match e.what {
                "refused" => format!("refused use of {} `{}`", e.kind.noun(), e.key),
                "instructions" => "the server's instructions changed since pinning; removed".into(),
                "quarantined-instructions" => {
                    "the server's instructions look like prompt injection; removed until approved"
                        .into()
                }
                what => {
                    let why = e
                        .note
                        .as_deref()
                        .map(|n| format!(": it {n}"))
                        .unwrap_or_default();
                    format!(
                        "{what} {} `{}` hidden from the host{why}",
                        e.kind.noun(),
                        e.key
                    )
                }
            };
            if e.what != "refused" {
                tracing::warn!("pin: {detail}; {hint}");
            }
            self.audit.pin_event(&detail, e.what != "refused");
        }
    }
}
