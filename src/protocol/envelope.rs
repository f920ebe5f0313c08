//! JSON-RPC 2.0 envelopes, parsed in one pass.
//!
//! The envelope fields are decoded; `params`, `result` and `error` keep their raw JSON text
//! (syntax-checked by serde_json, forwarded byte for byte), so a multi-megabyte result costs one
//! syntax pass and one memcpy. When the firewall will look inside, the same pass also builds
//! their trees ([`Bodies::Trees`]). Key order is irrelevant (the newer TypeScript SDK writes
//! `jsonrpc` and `id` last).

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use compact_str::CompactString;
use serde::Deserialize;
use serde_json::value::RawValue;

pub use super::members::Bodies;
use super::members::{self, Part};
use super::tree::Tree;

/// JSON-RPC error codes used by the guard.
pub mod codes {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The server went away before answering.
    pub const SERVER_EXITED: i64 = -32000;
    /// No answer within `--request-timeout` (the value the MCP SDKs use for timeouts).
    pub const REQUEST_TIMEOUT: i64 = -32001;
}

/// A request id exactly as it appeared on the wire. Strings and integers never compare equal
/// (`1` is not `"1"`), integers keep their digits (no float rounding of big ids), and a string
/// written with escapes (`"a\u00e9"`) is written back with the same escapes, while it still
/// matches the same id written plainly (`"aé"`). Ids of up to 24 bytes (all that SDKs write)
/// are held inline: reading, tracking and copying one allocates nothing.
#[derive(Debug, Clone)]
pub enum RequestId {
    Number(CompactString),
    String(CompactString),
    /// A string id whose JSON text had escapes: the decoded value and the original text.
    Escaped(CompactString, Box<str>),
}

impl RequestId {
    /// Parse a raw JSON id; `None` unless it is a string or an integer literal.
    pub fn from_raw(raw: &RawValue) -> Option<Self> {
        let text = raw.get();
        let bytes = text.as_bytes();
        match bytes.first()? {
            b'"' => {
                let value = serde_json::from_str::<CompactString>(text).ok()?;
                Some(if bytes.contains(&b'\\') {
                    RequestId::Escaped(value, text.into())
                } else {
                    RequestId::String(value)
                })
            }
            b'-' | b'0'..=b'9' => {
                let digits = text.strip_prefix('-').unwrap_or(text);
                (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| RequestId::Number(text.into()))
            }
            _ => None,
        }
    }

    /// The id as JSON text, ready to be written into a message.
    pub fn to_json(&self) -> Cow<'_, str> {
        match self {
            RequestId::Number(digits) => Cow::Borrowed(digits),
            RequestId::Escaped(_, raw) => Cow::Borrowed(raw),
            RequestId::String(s) => Cow::Owned(serde_json::to_string(s).unwrap_or_default()),
        }
    }

    /// What identifies the id: its kind and value (escapes do not matter).
    fn key(&self) -> (bool, &str) {
        match self {
            RequestId::Number(digits) => (false, digits),
            RequestId::String(s) | RequestId::Escaped(s, _) => (true, s),
        }
    }
}

impl PartialEq for RequestId {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for RequestId {}

impl std::hash::Hash for RequestId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

/// A message's `params`, `result` or `error`: its JSON text exactly as received (borrowed
/// from the input line), and the tree the parse built when asked to ([`Bodies::Trees`]), until
/// the firewall takes it.
pub struct Body<'a> {
    text: &'a str,
    tree: Cell<Option<Tree>>,
}

impl<'a> Body<'a> {
    /// A body of valid JSON `text`, with no tree.
    pub fn new(text: &'a str) -> Self {
        Body {
            text,
            tree: Cell::new(None),
        }
    }

    fn from_part(part: Part<'a>) -> Self {
        Body {
            text: part.text,
            tree: Cell::new(part.tree),
        }
    }

    /// The JSON text.
    pub fn get(&self) -> &'a str {
        self.text
    }

    /// A look at the tree built by the parse, leaving it for the firewall (`None`: none was
    /// built, or it was taken).
    pub fn with_tree<R>(&self, look: impl FnOnce(Option<&Tree>) -> R) -> R {
        let tree = self.tree.take();
        let seen = look(tree.as_ref());
        self.tree.set(tree);
        seen
    }

    /// The tree built by the parse, once (`None` when none was built or it was taken).
    pub fn take_tree(&self) -> Option<Tree> {
        self.tree.take()
    }
}

impl fmt::Debug for Body<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

/// One valid JSON-RPC message. Raw parts borrow from the input line.
#[derive(Debug)]
pub enum Message<'a> {
    Request {
        id: RequestId,
        method: Cow<'a, str>,
        params: Option<Body<'a>>,
    },
    Notification {
        method: Cow<'a, str>,
        params: Option<Body<'a>>,
    },
    Result {
        id: RequestId,
        result: Body<'a>,
    },
    Error {
        /// `None` for an error answering something whose id could not be read (`"id": null`).
        id: Option<RequestId>,
        error: Body<'a>,
    },
}

/// The four kinds of JSON-RPC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Notification,
    Result,
    Error,
}

impl MessageKind {
    /// As the audit log names it.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Request => "request",
            MessageKind::Notification => "notification",
            MessageKind::Result => "result",
            MessageKind::Error => "error",
        }
    }
}

impl<'a> Message<'a> {
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Request { .. } => MessageKind::Request,
            Message::Notification { .. } => MessageKind::Notification,
            Message::Result { .. } => MessageKind::Result,
            Message::Error { .. } => MessageKind::Error,
        }
    }

    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } | Message::Notification { method, .. } => Some(method),
            _ => None,
        }
    }

    /// The id of a response (result or error).
    pub fn response_id(&self) -> Option<&RequestId> {
        match self {
            Message::Result { id, .. } => Some(id),
            Message::Error { id, .. } => id.as_ref(),
            _ => None,
        }
    }

    /// The body: a request's or notification's `params`, a result, an error object.
    pub fn body(&self) -> Option<&Body<'a>> {
        match self {
            Message::Request { params, .. } | Message::Notification { params, .. } => {
                params.as_ref()
            }
            Message::Result { result, .. } => Some(result),
            Message::Error { error, .. } => Some(error),
        }
    }

    /// The body's JSON text (for a request or notification: its `params`).
    pub fn body_text(&self) -> Option<&'a str> {
        self.body().map(Body::get)
    }

    /// Append this message, canonically re-serialised, to `out` (no newline).
    ///
    /// Only the envelope is rewritten: unknown top-level members are dropped, the raw parts are
    /// copied byte for byte.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"jsonrpc":"2.0""#);
        match self {
            Message::Request { id, method, params } => {
                write_id(out, Some(id));
                write_method(out, method);
                write_raw(out, "params", params.as_ref());
            }
            Message::Notification { method, params } => {
                write_method(out, method);
                write_raw(out, "params", params.as_ref());
            }
            Message::Result { id, result } => {
                write_id(out, Some(id));
                write_raw(out, "result", Some(result));
            }
            Message::Error { id, error } => {
                write_id(out, id.as_ref());
                write_raw(out, "error", Some(error));
            }
        }
        out.push(b'}');
    }
}

fn write_id(out: &mut Vec<u8>, id: Option<&RequestId>) {
    out.extend_from_slice(br#","id":"#);
    match id {
        Some(id) => out.extend_from_slice(id.to_json().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_method(out: &mut Vec<u8>, method: &str) {
    out.extend_from_slice(br#","method":"#);
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, method);
}

fn write_raw(out: &mut Vec<u8>, key: &str, raw: Option<&Body<'_>>) {
    if let Some(raw) = raw {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(raw.get().as_bytes());
    }
}

/// Why a line is not a valid JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Not JSON at all (→ -32700).
    Parse(String),
    /// JSON, but not a JSON-RPC 2.0 message (→ -32600); `id` when the message had a usable one.
    Request {
        id: Option<RequestId>,
        reason: String,
    },
}

impl Invalid {
    pub fn code(&self) -> i64 {
        match self {
            Invalid::Parse(_) => codes::PARSE_ERROR,
            Invalid::Request { .. } => codes::INVALID_REQUEST,
        }
    }

    pub fn id(&self) -> Option<&RequestId> {
        match self {
            Invalid::Parse(_) => None,
            Invalid::Request { id, .. } => id.as_ref(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Invalid::Parse(reason) => format!("Parse error: {reason}"),
            Invalid::Request { reason, .. } => format!("Invalid Request: {reason}"),
        }
    }
}

/// A parsed line: one message, or a batch (a JSON array) whose elements are judged one by one.
#[derive(Debug)]
pub enum Parsed<'a> {
    Single(Message<'a>),
    Batch(Vec<Result<Message<'a>, Invalid>>),
}

/// The shape every JSON-RPC error object must have.
#[derive(Deserialize)]
struct ErrorObject<'a> {
    #[allow(dead_code)]
    code: i64,
    #[allow(dead_code)]
    #[serde(borrow)]
    message: Cow<'a, str>,
    #[allow(dead_code)]
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// Deepest nesting accepted (serde_json's own recursion limit); no real MCP message comes close.
const MAX_DEPTH: usize = 128;

/// Parse one line (without its newline), bodies kept as text.
pub fn parse_line(line: &[u8]) -> Result<Parsed<'_>, Invalid> {
    parse_line_with(line, Bodies::Raw)
}

/// Parse one line (without its newline), reading the bodies as `bodies` says.
pub fn parse_line_with(line: &[u8], bodies: Bodies) -> Result<Parsed<'_>, Invalid> {
    let text = utf8(line).map_err(|e| Invalid::Parse(format!("invalid UTF-8 ({e})")))?;
    check_depth(text)?;
    let first = text.trim_start().as_bytes().first().copied();
    match first {
        None => Err(Invalid::Parse("empty line".into())),
        Some(b'[') => {
            let items: Vec<&RawValue> =
                serde_json::from_str(text).map_err(|e| Invalid::Parse(e.to_string()))?;
            if items.is_empty() {
                return Err(Invalid::Request {
                    id: None,
                    reason: "empty batch".into(),
                });
            }
            Ok(Parsed::Batch(
                items
                    .into_iter()
                    .map(|raw| parse_object(raw.get(), bodies))
                    .collect(),
            ))
        }
        Some(_) => parse_object(text.trim_start(), bodies).map(Parsed::Single),
    }
}

/// `line` as text: checked with SIMD (every byte of every line is checked; the standard
/// library's check is several times slower), and only a line that fails is checked again for
/// the standard library's error, which says where.
fn utf8(line: &[u8]) -> Result<&str, std::str::Utf8Error> {
    simdutf8::basic::from_utf8(line).or_else(|_| std::str::from_utf8(line))
}

/// Refuse absurd nesting before it reaches a server whose parser may recurse on it (skipping
/// raw values is iterative in serde_json, so the guard itself never overflows its stack). Only a
/// line with more openers than the limit pays for the scan.
fn check_depth(text: &str) -> Result<(), Invalid> {
    let bytes = text.as_bytes();
    if memchr::memchr2_iter(b'[', b'{', bytes)
        .nth(MAX_DEPTH)
        .is_none()
    {
        return Ok(());
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Invalid::Request {
                        id: None,
                        reason: format!("nested deeper than {MAX_DEPTH} levels"),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn parse_object(text: &str, bodies: Bodies) -> Result<Message<'_>, Invalid> {
    let invalid = |id: Option<RequestId>, reason: &str| Invalid::Request {
        id,
        reason: reason.to_owned(),
    };
    if !text.starts_with('{') {
        if let Err(e) = serde_json::from_str::<&RawValue>(text) {
            return Err(Invalid::Parse(e.to_string()));
        }
        return Err(invalid(None, "a message must be a JSON object"));
    }
    // One pass decodes the envelope and syntax-checks the raw members. A data error (a member
    // of the wrong type) is -32600 only if the text is JSON at all: check that on the error path.
    let env = members::read(text, bodies).map_err(|e| {
        if e.is_data() && serde_json::from_str::<&RawValue>(text).is_ok() {
            invalid(None, &e.to_string())
        } else {
            Invalid::Parse(e.to_string())
        }
    })?;
    let id = match env.id {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) => Some(
            RequestId::from_raw(raw)
                .ok_or_else(|| invalid(None, "id must be a string or an integer"))?,
        ),
    };
    if env.jsonrpc.map(RawValue::get) != Some(r#""2.0""#) {
        return Err(invalid(id, r#"jsonrpc must be exactly "2.0""#));
    }
    if let Some(method) = env.method {
        if env.result.is_some() || env.error.is_some() {
            return Err(invalid(
                id,
                "a message cannot have both method and result/error",
            ));
        }
        let method: Cow<'_, str> = serde_json::from_str(method.get())
            .map_err(|_| invalid(id.clone(), "method must be a string"))?;
        if let Some(params) = &env.params {
            if !matches!(params.text.as_bytes().first(), Some(b'{' | b'[')) {
                return Err(invalid(id, "params must be an object or an array"));
            }
        }
        let params = env.params.map(Body::from_part);
        return Ok(match (env.id, id) {
            (None, _) => Message::Notification { method, params },
            (Some(_), Some(id)) => Message::Request { id, method, params },
            (Some(_), None) => return Err(invalid(None, "a request id cannot be null")),
        });
    }
    if env.params.is_some() {
        return Err(invalid(id, "params without method"));
    }
    match (env.result, env.error) {
        (Some(_), Some(_)) => Err(invalid(id, "a response cannot have both result and error")),
        (Some(result), None) => match id {
            Some(id) => Ok(Message::Result {
                id,
                result: Body::from_part(result),
            }),
            None => Err(invalid(None, "a result needs an id")),
        },
        (None, Some(error)) => {
            if env.id.is_none() {
                return Err(invalid(
                    None,
                    "an error response needs an id (null if unknown)",
                ));
            }
            serde_json::from_str::<ErrorObject<'_>>(error.text).map_err(|_| {
                invalid(
                    id.clone(),
                    "error must be an object with an integer code and a string message",
                )
            })?;
            Ok(Message::Error {
                id,
                error: Body::from_part(error),
            })
        }
        (None, None) => Err(invalid(
            id,
            "neither a request (method) nor a response (result/error)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message re-serialised; the same whether or not the parse built trees.
    fn reserialise(line: &str) -> String {
        let [raw, trees] = [Bodies::Raw, Bodies::Trees].map(|bodies| {
            match parse_line_with(line.as_bytes(), bodies).expect("valid") {
                Parsed::Single(m) => {
                    let mut out = Vec::new();
                    m.write_to(&mut out);
                    String::from_utf8(out).expect("utf8")
                }
                Parsed::Batch(_) => panic!("batch"),
            }
        });
        assert_eq!(raw, trees, "{line}");
        raw
    }

    #[test]
    fn envelope_keeps_ids_exactly() {
        assert_eq!(
            reserialise(r#"{"method":"ping","id":123456789012345678901234567890,"jsonrpc":"2.0"}"#),
            r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}"#
        );
        assert_eq!(
            reserialise(r#"{"jsonrpc":"2.0","id":"007","result":{"a": [1, 2.50]}}"#),
            r#"{"jsonrpc":"2.0","id":"007","result":{"a": [1, 2.50]}}"#
        );
    }

    #[test]
    fn envelope_keeps_escaped_string_ids_and_matches_them_plainly() {
        let line = r#"{"jsonrpc":"2.0","id":"a\u00e9","method":"ping"}"#;
        assert_eq!(
            reserialise(line),
            r#"{"jsonrpc":"2.0","id":"a\u00e9","method":"ping"}"#
        );
        let escaped =
            RequestId::from_raw(&RawValue::from_string(r#""a\u00e9""#.into()).expect("raw"));
        let plain = RequestId::from_raw(&RawValue::from_string("\"aé\"".into()).expect("raw"));
        assert_eq!(escaped, plain);
    }

    #[test]
    fn envelope_tells_notifications_from_requests() {
        let m = parse_line(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert!(matches!(
            m,
            Ok(Parsed::Single(Message::Notification { .. }))
        ));
    }

    #[test]
    fn envelope_rejects_invalid_shapes() {
        let cases: &[(&str, i64, Option<&str>)] = &[
            ("not json", codes::PARSE_ERROR, None),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#,
                codes::INVALID_REQUEST,
                Some("1"),
            ),
            (
                r#"{"id":1,"method":"x"}"#,
                codes::INVALID_REQUEST,
                Some("1"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"m"}}"#,
                codes::INVALID_REQUEST,
                Some("1"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
                codes::INVALID_REQUEST,
                Some("1"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
                codes::INVALID_REQUEST,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
                codes::INVALID_REQUEST,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"x","params":3}"#,
                codes::INVALID_REQUEST,
                Some("2"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":"x"}}"#,
                codes::INVALID_REQUEST,
                Some("1"),
            ),
            (
                r#"{"jsonrpc":"2.0","method":"x","method":"y"}"#,
                codes::INVALID_REQUEST,
                None,
            ),
            ("[]", codes::INVALID_REQUEST, None),
            ("42", codes::INVALID_REQUEST, None),
            (
                "{\"jsonrpc\":\"2.0\",\"method\":\"x\"} trailing",
                codes::PARSE_ERROR,
                None,
            ),
        ];
        for (line, code, id) in cases {
            for bodies in [Bodies::Raw, Bodies::Trees] {
                let err = parse_line_with(line.as_bytes(), bodies).expect_err(line);
                assert_eq!(err.code(), *code, "{line}");
                assert_eq!(
                    err.id().map(|i| i.to_string()),
                    id.map(str::to_owned),
                    "{line}"
                );
            }
        }
        let bad_utf8 = parse_line(b"{\"a\":\"\xff\xfe\"}").expect_err("utf8");
        assert_eq!(bad_utf8.code(), codes::PARSE_ERROR);
        // The message says where, as the standard library's check does.
        assert!(
            bad_utf8.message().contains("index 6"),
            "{}",
            bad_utf8.message()
        );
    }

    #[test]
    fn envelope_survives_deep_nesting() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse_line(deep.as_bytes()).is_err());
        assert!(parse_line_with(deep.as_bytes(), Bodies::Trees).is_err());
    }

    #[test]
    fn envelope_parses_batches_element_by_element() {
        let line = br#"[{"jsonrpc":"2.0","id":1,"method":"a"}, 7, {"jsonrpc":"2.0","method":"n"}]"#;
        let Ok(Parsed::Batch(items)) = parse_line(line) else {
            panic!("batch")
        };
        assert!(items[0].is_ok());
        assert!(items[1].is_err());
        assert!(items[2].is_ok());
    }
}
