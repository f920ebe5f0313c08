//! One message on its way through the stages: its parts, the version in force, the body as a
//! tree (the one the relay's parse built, else parsed here on first use), and what the stages
//! found.

use serde_json::Value;

use super::raw_scan::Member;
use super::{Direction, Finding, Verdict};
use crate::conversation::Entry;
use crate::protocol::tree::{self, Tree};
use crate::protocol::{Body, Message, RequestId};

pub use crate::protocol::MessageKind as Kind;

/// What a stage decided.
pub enum Step {
    Next,
    Stop(Verdict),
}

pub struct Inspection<'i> {
    pub message: &'i Message<'i>,
    pub direction: Direction,
    pub kind: Kind,
    /// A request's or notification's method; for a response, the method of the request it
    /// answers (when known).
    pub method: Option<&'i str>,
    /// The protocol version the message is checked against (chosen by the firewall).
    pub version: Option<std::borrow::Cow<'static, str>>,
    /// The version came from the message's own `_meta` (not the session's).
    pub version_from_meta: bool,
    /// The ledger's entry (for a response: the request it answers).
    pub request: Option<&'i Entry>,
    /// What the one pass over the raw text found, when the firewall made it.
    pub facts: Option<super::raw_scan::Facts>,
    raw: Option<&'i Body<'i>>,
    body: Option<Value>,
    parsed: bool,
    pub changed: bool,
    pub findings: Vec<Finding>,
}

impl<'i> Inspection<'i> {
    pub fn new(message: &'i Message<'i>, direction: Direction, request: Option<&'i Entry>) -> Self {
        let answered = request.map(|entry| &*entry.method);
        let (kind, method) = match message {
            Message::Request { method, .. } => (Kind::Request, Some(&**method)),
            Message::Notification { method, .. } => (Kind::Notification, Some(&**method)),
            Message::Result { .. } => (Kind::Result, answered),
            Message::Error { .. } => (Kind::Error, answered),
        };
        Inspection {
            message,
            direction,
            kind,
            method,
            version: None,
            version_from_meta: false,
            request,
            facts: None,
            raw: message.body(),
            body: None,
            parsed: false,
            changed: false,
            findings: Vec::new(),
        }
    }

    /// The request id (requests) or the answered id (responses).
    pub fn id(&self) -> Option<&'i RequestId> {
        match self.message {
            Message::Request { id, .. } | Message::Result { id, .. } => Some(id),
            Message::Error { id, .. } => id.as_ref(),
            Message::Notification { .. } => None,
        }
    }

    /// The raw body (params, result or error object) as JSON text.
    pub fn raw(&self) -> Option<&'i str> {
        self.raw.map(Body::get)
    }

    /// Change the body in place; `edit` says whether it changed anything.
    pub fn edit_body(&mut self, edit: impl FnOnce(&mut Value) -> bool) {
        self.parse();
        if let Some(body) = self.body.as_mut() {
            if edit(body) {
                self.changed = true;
            }
        }
    }

    /// Replace the body.
    pub fn set_body(&mut self, body: Value) {
        self.parsed = true;
        self.body = Some(body);
        self.changed = true;
    }

    /// The body as a JSON tree, parsed on first use. `None` when absent.
    pub fn body(&mut self) -> Option<&Value> {
        self.parse();
        self.body.as_ref()
    }

    fn parse(&mut self) {
        if self.parsed {
            return;
        }
        self.parsed = true;
        let Some(raw) = self.raw else { return };
        // The envelope parser already checked the syntax; parsing cannot fail in practice.
        let Some(Tree { value, repeated }) =
            raw.take_tree().or_else(|| tree::parse(raw.get()).ok())
        else {
            return;
        };
        self.body = Some(value);
        if repeated {
            // Checked with the last of each repeated member: forward exactly that, so a peer
            // that would keep the first cannot act on a value nobody checked.
            self.changed = true;
            self.find(
                "duplicates",
                "an object repeats a member name: forwarded with the last of each, as checked"
                    .to_owned(),
            );
        }
    }

    /// Whether the raw text holds `member`: from the firewall's one pass over it when it made
    /// one, else searched now.
    pub fn mentions(&self, member: Member) -> bool {
        match self.facts {
            Some(facts) => facts.has(member),
            None => self
                .raw
                .is_some_and(|raw| member.needle().is_in(raw.get().as_bytes())),
        }
    }

    pub fn find(&mut self, rule: &'static str, detail: String) {
        tracing::warn!(direction = ?self.direction, method = self.method.unwrap_or(""), rule, "{detail}");
        self.findings.push(Finding {
            rule,
            direction: self.direction,
            method: self.method.map(str::to_owned),
            detail,
        });
    }

    /// The message to forward: unchanged, or re-serialised around the changed body.
    pub fn finish(self) -> Verdict {
        if !self.changed {
            return Verdict::Forward;
        }
        let Some(body) = self.body else {
            return Verdict::Forward;
        };
        // Written by serde_json from a `Value`: valid JSON, not parsed again to be checked.
        let Ok(text) = serde_json::to_string(&body) else {
            return Verdict::Forward;
        };
        drop(body);
        let raw = || Body::new(&text);
        let rebuilt = match self.message {
            Message::Request { id, method, .. } => Message::Request {
                id: id.clone(),
                method: method.clone(),
                params: Some(raw()),
            },
            Message::Notification { method, .. } => Message::Notification {
                method: method.clone(),
                params: Some(raw()),
            },
            Message::Result { id, .. } => Message::Result {
                id: id.clone(),
                result: raw(),
            },
            Message::Error { id, .. } => Message::Error {
                id: id.clone(),
                error: raw(),
            },
        };
        let mut out = Vec::with_capacity(text.len() + 64);
        rebuilt.write_to(&mut out);
        Verdict::Replace(out)
    }
}

#[cfg(test)]
mod firewall_tests {
    use crate::filter::{Context, Direction, Firewall, Verdict};
    use crate::protocol::{parse_line_with, Bodies, Parsed};

    fn firewall() -> Firewall {
        Firewall::for_tests("version = 1\n")
    }

    /// The firewall's verdict and findings on `line`, parsed as the relay parses it (`Trees`)
    /// or, as for a large line, with the body parsed later by the firewall itself (`Raw`).
    fn inspect(fw: &mut Firewall, line: &str, bodies: Bodies) -> (Verdict, Vec<String>) {
        let Ok(Parsed::Single(m)) = parse_line_with(line.as_bytes(), bodies) else {
            panic!("does not parse: {line}");
        };
        let context = Context {
            direction: Direction::HostToServer,
            version: Some("2025-06-18"),
            request: None,
        };
        let verdict = fw.inspect(&m, &context);
        let found = fw.take_findings().into_iter().map(|f| f.rule.to_owned());
        (verdict, found.collect())
    }

    #[test]
    fn the_relay_builds_trees_at_once_only_for_lines_up_to_256_kib() {
        let fw = firewall();
        assert_eq!(fw.bodies_for(1024), Bodies::Trees);
        assert_eq!(fw.bodies_for(256 * 1024), Bodies::Trees);
        assert_eq!(fw.bodies_for(256 * 1024 + 1), Bodies::Raw);
        assert_eq!(Firewall::permissive().bodies_for(1024), Bodies::Raw);
    }

    #[test]
    fn a_repeated_member_is_forwarded_as_checked_and_its_neighbour_unchanged() {
        for bodies in [Bodies::Trees, Bodies::Raw] {
            repeated_member_with(bodies);
        }
    }

    fn repeated_member_with(bodies: Bodies) {
        let mut fw = firewall();
        let repeated = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1,"progress":2}}"#;
        let (verdict, found) = inspect(&mut fw, repeated, bodies);
        let Verdict::Replace(out) = verdict else {
            panic!("forwarded as sent: {verdict:?}");
        };
        let out = String::from_utf8(out).expect("utf-8");
        assert_eq!(out.matches("\"progress\"").count(), 1, "{out}");
        assert!(out.contains("\"progress\":2"), "{out}");
        assert_eq!(found, ["duplicates"]);

        let plain = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":2}}"#;
        let (verdict, found) = inspect(&mut fw, plain, bodies);
        assert!(matches!(verdict, Verdict::Forward), "{verdict:?}");
        assert!(found.is_empty(), "{found:?}");
    }
}
