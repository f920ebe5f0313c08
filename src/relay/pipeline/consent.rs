//! The relay's side of explicit consent (`filter/consent.rs` decides): hold a call and ask the
//! host, take the host's answer before anything else sees it, refuse calls whose time ran out.

use std::time::Instant;

use super::{Judged, Relay, Side};
use crate::audit::Severity;
use crate::filter::consent::{Ask, Outcome, Settled};
use crate::filter::Verdict;
use crate::protocol::reply::cancelled_notification;
use crate::protocol::version::ParamsPeek;
use crate::protocol::{parse_line, Message, Parsed, RequestId};

impl Relay {
    /// After the firewall's verdict on a host message: a `tools/call` that needs the user's
    /// approval is held and the host asked (`true`: do not forward it now), or refused at once
    /// (the verdict becomes that refusal).
    pub(super) fn consent_gate(
        &self,
        from: Side,
        message: &Message<'_>,
        verdict: Verdict,
        judged: &mut Judged,
    ) -> (Verdict, bool) {
        if from != Side::Host || matches!(verdict, Verdict::Refuse { .. }) {
            return (verdict, false);
        }
        let version = self.session.borrow().version;
        let call = || match &verdict {
            Verdict::Replace(bytes) => bytes.clone(),
            _ => {
                let mut bytes = Vec::new();
                message.write_to(&mut bytes);
                bytes
            }
        };
        let ask = (self.firewall.borrow_mut()).ask_consent(message, call, version, judged.batch);
        match ask {
            Ask::NotNeeded => (verdict, false),
            Ask::Asked { request, audit } => {
                tracing::info!("consent: {audit}");
                self.audit.finding(Severity::Low, "consent", &audit);
                judged.reply_to_sender(request);
                (verdict, true)
            }
            Ask::Refused {
                reply,
                reason,
                audit,
            } => {
                self.audit.finding(Severity::Medium, "consent", &audit);
                let refusal = Verdict::Refuse {
                    reason,
                    reply_to_sender: Some(reply),
                    reply_to_receiver: None,
                };
                (refusal, false)
            }
        }
    }

    /// A host response that answers one of the guard's confirmation requests: the held call
    /// goes on to the server (appended to `out`) or is refused. `false`: not such an answer.
    pub(super) fn consent_answer(
        &self,
        message: &Message<'_>,
        out: &mut Vec<u8>,
        judged: &mut Judged,
    ) -> bool {
        let Some(Settled {
            outcome,
            approved,
            audit,
        }) = self.firewall.borrow_mut().settle_consent(message)
        else {
            return false;
        };
        tracing::info!("consent: {audit}");
        let severity = if approved {
            Severity::Low
        } else {
            Severity::Medium
        };
        self.audit.finding(severity, "consent", &audit);
        match outcome {
            Outcome::Refuse(reply) => judged.reply_to_sender(reply),
            Outcome::Forward(call) => {
                let Ok(Parsed::Single(held)) = parse_line(&call) else {
                    return true;
                };
                // Tracked only now: its time to answer starts when the server gets it.
                match self.admit(Side::Host, &held) {
                    Ok(entry) => self.forwarded(Side::Host, &held, entry),
                    Err(reply) => {
                        judged.reply_to_sender(reply);
                        return true;
                    }
                }
                if judged.batch && out.len() > 1 {
                    out.push(b',');
                }
                out.extend_from_slice(&call);
            }
        }
        true
    }

    /// The host's `notifications/cancelled` for a call still waiting for the user: the call is
    /// dropped (the server never saw it, so the notice is not passed on) and the question
    /// withdrawn. `false`: not such a notice.
    pub(super) fn consent_withdrawn(&self, message: &Message<'_>, judged: &mut Judged) -> bool {
        let Message::Notification { method, .. } = message else {
            return false;
        };
        if method != "notifications/cancelled" {
            return false;
        }
        let Some(call_id) = ParamsPeek::of(message.body_text())
            .request_id
            .and_then(RequestId::from_raw)
        else {
            return false;
        };
        let Some((own, audit)) = self.firewall.borrow_mut().withdraw_consent(&call_id) else {
            return false;
        };
        tracing::info!("consent: {audit}");
        self.audit.finding(Severity::Low, "consent", &audit);
        judged.reply_to_sender(cancelled_notification(
            &own,
            "mcp-guard: the client withdrew the call",
        ));
        true
    }

    /// Refuse the held calls whose time ran out, and withdraw their questions at the host.
    pub(super) async fn expire_consents(&self) {
        let expired = self.firewall.borrow_mut().expire_consents(Instant::now());
        for e in expired {
            tracing::warn!("consent: {}", e.audit);
            self.audit.finding(Severity::Medium, "consent", &e.audit);
            let cancel = cancelled_notification(
                &e.elicitation_id,
                "mcp-guard: no answer in time; the call was refused",
            );
            self.reply(Side::Host, &cancel).await;
            self.reply(Side::Host, &e.reply).await;
        }
    }
}
