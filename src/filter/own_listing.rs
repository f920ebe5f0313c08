//! The guard's own `tools/list`: a `tools/call` is checked against the server's current listing,
//! and when the host has not listed the tools in this session (it may call from a listing it
//! cached earlier, or the listing went stale with `notifications/tools/list_changed`), the guard
//! asks the server itself before the call goes on. So a call to a tool the server never listed
//! is refused, without refusing hosts that reuse a cached listing.
//!
//! The relay holds the host's input while the guard's listing is in flight (order is kept), sends
//! [`Firewall::request_listing`]'s request, and hands every server response to
//! [`Firewall::absorb_listing`] before anything else sees it.

use serde_json::{json, Map, Value};

use super::tools::State;
use super::Firewall;
use crate::protocol::Message;

/// The guard's listing in progress, or how the last one failed.
#[derive(Debug, Default)]
pub struct OwnListing {
    /// Ids are `mcp-guard/tools/list/<nonce>/<n>`: no host picks such an id by accident.
    nonce: String,
    sequence: u64,
    /// While a listing is in progress: the `_meta` each page request carries. (Its page
    /// request in flight is in the relay's ledger, which routes the answer here.)
    in_progress: Option<Option<Value>>,
    pages: u32,
    /// Why the last listing did not complete (said in the refusal of the calls it held).
    pub failure: Option<String>,
}

/// Pages beyond this are not asked for: a server that paginates forever cannot hold the host.
const MAX_PAGES: u32 = 1000;

/// What [`Firewall::absorb_listing`] did with a server response.
#[derive(Debug, PartialEq, Eq)]
pub enum Absorbed {
    /// A page was recorded; send this request for the next one.
    NextPage(Vec<u8>),
    /// The listing is complete (or failed): held calls may go on.
    Done,
}

impl Firewall {
    /// Whether a host `tools/call` must wait for the guard's own listing first: the policy
    /// requires a listing and the server's current one is not known.
    pub fn needs_listing(&self) -> bool {
        self.active && self.rules.options.require_listing && self.tools.state != State::Listed
    }

    /// Whether the guard's listing is still in flight.
    pub fn listing_in_progress(&self) -> bool {
        self.own_listing.in_progress.is_some()
    }

    /// The guard's own `tools/list` request for the call with these params, or `None` when one is
    /// already in flight. The request carries the call's `_meta` (without its progress token):
    /// protocol 2026-07-28 requires the version and capabilities on every request.
    pub fn request_listing(&mut self, call_params: Option<&str>) -> Option<Vec<u8>> {
        if self.listing_in_progress() {
            return None;
        }
        let meta = call_params
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|mut p| p.get_mut("_meta").map(Value::take))
            .and_then(|mut meta| {
                let map = meta.as_object_mut()?;
                map.remove("progressToken");
                (!map.is_empty()).then_some(meta)
            });
        self.own_listing.pages = 0;
        self.own_listing.failure = None;
        Some(self.page_request(meta, None))
    }

    fn page_request(&mut self, meta: Option<Value>, cursor: Option<&str>) -> Vec<u8> {
        let own = &mut self.own_listing;
        if own.nonce.is_empty() {
            own.nonce = nonce();
        }
        own.sequence += 1;
        own.pages += 1;
        let id = format!("mcp-guard/tools/list/{}/{}", own.nonce, own.sequence);
        let mut params = Map::new();
        if let Some(meta) = &meta {
            params.insert("_meta".into(), meta.clone());
        }
        if let Some(cursor) = cursor {
            params.insert("cursor".into(), cursor.into());
        }
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": params});
        own.in_progress = Some(meta);
        serde_json::to_vec(&request).unwrap_or_default()
    }

    /// Take the server's answer to the guard's listing page request (the relay's ledger knows
    /// it as the guard's; never forwarded to the host).
    pub fn absorb_listing(&mut self, message: &Message<'_>) -> Absorbed {
        let meta = self.own_listing.in_progress.take().unwrap_or_default();
        let result = match message {
            Message::Result { result, .. } => serde_json::from_str::<Value>(result.get()),
            Message::Error { error, .. } => {
                self.listing_failed(&format!(
                    "the server answered its tools/list with an error: {}",
                    error.get()
                ));
                return Absorbed::Done;
            }
            _ => return Absorbed::Done,
        };
        let Ok(result) = result else {
            self.listing_failed("the server's tools/list result is not valid JSON");
            return Absorbed::Done;
        };
        let Some(tools) = result.get("tools").and_then(Value::as_array) else {
            self.listing_failed("the server's tools/list result has no `tools` array");
            return Absorbed::Done;
        };
        // The host never sees this listing, so only what calls need is kept: the tools the
        // policy allows and their schemas.
        self.tools.start_page(self.own_listing.pages == 1);
        for tool in tools {
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            if self.rules.tools.check(name).is_ok() {
                self.tools.record(tool);
            }
        }
        match result.get("nextCursor").and_then(Value::as_str) {
            // Calls wait for the whole listing (the relay holds them while a page is in
            // flight): a page alone would refuse the tools on later pages.
            Some(cursor) if self.own_listing.pages < MAX_PAGES => {
                Absorbed::NextPage(self.page_request(meta, Some(cursor)))
            }
            _ => {
                tracing::debug!(
                    pages = self.own_listing.pages,
                    "the guard listed the server's tools itself"
                );
                Absorbed::Done
            }
        }
    }

    /// The guard's listing did not complete (error, no answer in time, unusable result): the
    /// calls it held are refused with this reason, and the next call asks again.
    pub fn listing_failed(&mut self, why: &str) {
        tracing::warn!("could not list the server's tools: {why}");
        self.own_listing.in_progress = None;
        self.own_listing.failure = Some(why.to_owned());
        if self.tools.state == State::Listed {
            self.tools.state = State::Never;
        }
    }
}

/// A per-session token that makes the guard's request ids unguessable in practice (its own
/// listings here, its confirmation requests in `consent.rs`).
pub(super) fn nonce() -> String {
    // Without the OS's randomness (never seen), the pid still tells sessions apart.
    let random = getrandom::u64().unwrap_or_else(|_| u64::from(std::process::id()));
    format!("{random:016x}")
}
