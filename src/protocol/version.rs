//! MCP protocol versions and what each allows on the wire.

use std::borrow::Cow;

use serde::Deserialize;

use super::needle::Needle;
use serde_json::value::RawValue;

/// Every protocol version the guard knows, oldest first (the schemas in `../shared/mcp-schema`).
pub const KNOWN_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// `_meta` key carrying the version per request (2026-07-28, where `initialize` is optional).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// `version` as a known version's static string (no allocation), or owned when unknown.
pub fn interned(version: &str) -> std::borrow::Cow<'static, str> {
    match KNOWN_VERSIONS.iter().find(|known| **known == version) {
        Some(known) => std::borrow::Cow::Borrowed(known),
        None => std::borrow::Cow::Owned(version.to_owned()),
    }
}

/// JSON-RPC batches were part of exactly one MCP version.
pub fn allows_batches(version: Option<&str>) -> bool {
    version == Some("2025-03-26")
}

/// From 2025-11-25 on, arguments that fail a tool's `inputSchema` are answered with a tool
/// result marked `isError` (the model reads it and can correct the call), no longer with a
/// JSON-RPC error. Unknown versions keep the older answer.
pub fn tool_input_errors_are_results(version: Option<&str>) -> bool {
    let index = |v: &str| KNOWN_VERSIONS.iter().position(|known| *known == v);
    match (version.and_then(index), index("2025-11-25")) {
        (Some(v), Some(first)) => v >= first,
        _ => false,
    }
}

/// The members of `params` the relay itself needs; everything else is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
pub struct ParamsPeek<'a> {
    #[serde(borrow, default, rename = "_meta")]
    pub meta: Option<MetaPeek<'a>>,
    /// `initialize`'s requested version (a result carries the negotiated one the same way).
    #[serde(borrow, default, rename = "protocolVersion")]
    pub protocol_version: Option<Cow<'a, str>>,
    /// `notifications/progress` and `notifications/cancelled` name the request they are about.
    #[serde(borrow, default, rename = "progressToken")]
    pub progress_token: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "requestId")]
    pub request_id: Option<&'a RawValue>,
    /// `tools/call` and `prompts/get` name their tool or prompt.
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    /// `resources/read` and `resources/subscribe` name their resource.
    #[serde(borrow, default)]
    pub uri: Option<Cow<'a, str>>,
    /// List requests name the page they want.
    #[serde(borrow, default)]
    pub cursor: Option<&'a RawValue>,
}

#[derive(Debug, Default, Deserialize)]
pub struct MetaPeek<'a> {
    #[serde(borrow, default, rename = "progressToken")]
    pub progress_token: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "io.modelcontextprotocol/protocolVersion")]
    pub protocol_version: Option<Cow<'a, str>>,
}

impl<'a> ParamsPeek<'a> {
    /// Peek into a request's params for its `_meta`. Most requests have none: a substring search
    /// is far cheaper than a second JSON pass over the params.
    pub fn meta_of(params: Option<&'a str>) -> Option<MetaPeek<'a>> {
        static META: Needle = Needle::new(b"\"_meta\"");
        let raw = params?;
        if !META.is_in(raw.as_bytes()) {
            return None;
        }
        Self::of(Some(raw)).meta
    }

    /// Peek into raw params (or a result); a malformed or non-object value yields nothing.
    pub fn of(raw: Option<&'a str>) -> Self {
        raw.filter(|r| r.starts_with('{'))
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_input_errors_are_tool_results_from_2025_11_25() {
        for (version, expected) in [
            (None, false),
            (Some("2024-11-05"), false),
            (Some("2025-06-18"), false),
            (Some("2025-11-25"), true),
            (Some("2026-07-28"), true),
            (Some("2099-01-01"), false),
        ] {
            assert_eq!(
                tool_input_errors_are_results(version),
                expected,
                "{version:?}"
            );
        }
    }
}
