//! One request in flight, as the ledger keeps it: everything the firewall stages, the pin, the
//! audit and the egress attribution need to know about it when its answer comes back.

use std::borrow::Cow;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use compact_str::CompactString;

use super::target::{target_kind, Target, TargetKind};
use crate::protocol::needle::Needle;
use crate::protocol::version::{interned, ParamsPeek};
use crate::protocol::Message;

/// Who asked. The guard's own requests (its tool listing, the pin's list checks) travel to the
/// server like the host's and are answered to the guard, never forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Host,
    Server,
    /// The firewall's own `tools/list` (it needs the tools before the host's first call).
    GuardListing,
    /// The pin's own list requests.
    GuardPin,
}

/// A request waiting for its answer.
#[derive(Debug, Clone)]
pub struct Entry {
    pub method: CompactString,
    pub origin: Origin,
    pub started: Instant,
    pub deadline: Instant,
    pub progress_token: Option<Box<str>>,
    /// The held batch this request belongs to (see [`super::InFlight::hold`]).
    pub batch: Option<NonZeroU32>,
    /// The tool, prompt or resource it names.
    pub target: Option<Target>,
    /// The version the request named in its own `_meta` (its answer is checked against it).
    pub meta_version: Option<Cow<'static, str>>,
    /// A list request without a cursor: its answer starts a fresh listing.
    pub first_page: bool,
}

impl Entry {
    /// The entry for `message` (a request) sent by `origin`, with `timeout` to answer. What it
    /// names is read from the tree the relay's parse built, when there is one; the params text
    /// is peeked into only for a `_meta` (its progress token is kept as written) or when no tree
    /// was built (a large message).
    pub fn of_request(message: &Message<'_>, origin: Origin, timeout: Duration) -> Option<Entry> {
        static META: Needle = Needle::new(b"\"_meta\"");
        static CURSOR: Needle = Needle::new(b"\"cursor\"");
        let Message::Request { method, .. } = message else {
            return None;
        };
        let params = message.body_text();
        let kind = target_kind(method);
        let is_list = method.ends_with("/list");
        let wanted = |needle: &Needle| params.is_some_and(|p| needle.is_in(p.as_bytes()));
        let has_meta = wanted(&META);
        let has_cursor = is_list && wanted(&CURSOR);
        // From the tree: the target and the cursor, without a second pass over the text.
        let from_tree = message.body().and_then(|body| {
            body.with_tree(|tree| {
                let params = tree?.value.as_object();
                let member = |key: &str| params.and_then(|p| p.get(key)).and_then(|v| v.as_str());
                let value = kind.and_then(|kind| match kind {
                    TargetKind::Uri => member("uri"),
                    TargetKind::Tool | TargetKind::Prompt => member("name"),
                });
                let cursor = params.is_some_and(|p| p.contains_key("cursor"));
                Some((value.map(CompactString::from), cursor))
            })
        });
        let needs_peek = has_meta || (from_tree.is_none() && (kind.is_some() || has_cursor));
        let peek = if needs_peek {
            ParamsPeek::of(params)
        } else {
            ParamsPeek::default()
        };
        let (value, cursor) = match from_tree {
            Some(found) => found,
            None => {
                let value = match kind {
                    Some(TargetKind::Uri) => peek.uri.as_deref(),
                    Some(TargetKind::Tool | TargetKind::Prompt) => peek.name.as_deref(),
                    None => None,
                };
                (value.map(CompactString::from), peek.cursor.is_some())
            }
        };
        let target = kind.zip(value).map(|(kind, value)| Target { kind, value });
        let now = Instant::now();
        let meta = peek.meta.as_ref();
        Some(Entry {
            method: (**method).into(),
            origin,
            started: now,
            deadline: now + timeout,
            progress_token: meta
                .and_then(|m| m.progress_token)
                .map(|raw| Box::from(raw.get())),
            batch: None,
            target,
            meta_version: meta
                .and_then(|m| m.protocol_version.as_deref())
                .map(interned),
            first_page: is_list && !cursor,
        })
    }

    /// A bare entry (tests, benches and `scan` drive the firewall without a relay).
    pub fn for_method(method: &str) -> Entry {
        let now = Instant::now();
        Entry {
            method: method.into(),
            origin: Origin::Host,
            started: now,
            deadline: now,
            progress_token: None,
            batch: None,
            target: None,
            meta_version: None,
            first_page: true,
        }
    }

    /// The tool a `tools/call` names.
    pub fn tool(&self) -> Option<&str> {
        self.target.as_ref().and_then(Target::tool)
    }

    /// Asked by the guard itself: the answer is the guard's, never forwarded.
    pub fn is_guards(&self) -> bool {
        matches!(self.origin, Origin::GuardListing | Origin::GuardPin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{parse_line_with, Bodies, Parsed};

    fn entry(line: &str, bodies: Bodies) -> Entry {
        let Ok(Parsed::Single(message)) = parse_line_with(line.as_bytes(), bodies) else {
            panic!("does not parse: {line}");
        };
        Entry::of_request(&message, Origin::Host, Duration::from_secs(1)).expect("a request")
    }

    #[test]
    fn the_tree_and_the_text_give_the_same_entry() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"name":"decoy"}}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"memory://a"}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"c2"}}"#,
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow","_meta":{"progressToken":"t\u0031","io.modelcontextprotocol/protocolVersion":"2025-06-18"}}}"#,
        ] {
            let (tree, text) = (entry(line, Bodies::Trees), entry(line, Bodies::Raw));
            assert_eq!(tree.target, text.target, "{line}");
            assert_eq!(tree.first_page, text.first_page, "{line}");
            assert_eq!(tree.progress_token, text.progress_token, "{line}");
            assert_eq!(tree.meta_version, text.meta_version, "{line}");
        }
        let call = entry(
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow","_meta":{"progressToken":"t\u0031"}}}"#,
            Bodies::Trees,
        );
        assert_eq!(call.tool(), Some("slow"));
        // Kept as written: a progress notification names it the same way.
        assert_eq!(call.progress_token.as_deref(), Some(r#""t\u0031""#));
        let page = entry(
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"c2"}}"#,
            Bodies::Trees,
        );
        assert!(!page.first_page);
    }

    #[test]
    fn the_firewall_still_gets_the_tree() {
        let line = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
        let Ok(Parsed::Single(message)) = parse_line_with(line.as_bytes(), Bodies::Trees) else {
            panic!("does not parse");
        };
        Entry::of_request(&message, Origin::Host, Duration::from_secs(1));
        assert!(message.body().and_then(|b| b.take_tree()).is_some());
    }
}
