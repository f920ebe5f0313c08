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
    /// The entry for `message` (a request) sent by `origin`, with `timeout` to answer. One peek
    /// into the params, only for the methods whose params name something the answer needs.
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
        let needs_peek = kind.is_some() || wanted(&META) || (is_list && wanted(&CURSOR));
        let peek = if needs_peek {
            ParamsPeek::of(params)
        } else {
            ParamsPeek::default()
        };
        let target = kind.and_then(|kind| {
            let value = match kind {
                TargetKind::Uri => peek.uri.as_deref(),
                TargetKind::Tool | TargetKind::Prompt => peek.name.as_deref(),
            }?;
            Some(Target {
                kind,
                value: value.into(),
            })
        });
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
            first_page: is_list && peek.cursor.is_none(),
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
