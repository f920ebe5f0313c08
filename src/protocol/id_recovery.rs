//! Recovering the id of an oversize message from the bytes kept of its start and end, so the
//! sender gets an error it can match instead of silence.

use std::sync::OnceLock;

use regex::bytes::Regex;

use super::envelope::RequestId;

/// The id of the top-level object, from `head` (the id comes early) or `tail` (writers that put
/// `id` last, like the newer TypeScript SDK: `…,"id":7}` or `…,"id":7,"jsonrpc":"2.0"}`; the
/// `,` or `{` before `"id"` keeps a key such as `a\"id` from passing for it).
pub fn recover_id(head: &[u8], tail: &[u8]) -> Option<RequestId> {
    id_in_head(head).or_else(|| id_at_end(tail))
}

/// Scan the head as JSON tokens, tracking depth, and take an `"id"` member at depth 1.
fn id_in_head(head: &[u8]) -> Option<RequestId> {
    let mut depth = 0usize;
    let mut i = 0;
    let mut expect_key = false;
    while i < head.len() {
        match head[i] {
            b'{' => {
                depth += 1;
                expect_key = true;
            }
            b'[' => {
                depth += 1;
                expect_key = false;
            }
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' => expect_key = depth == 1 || expect_key,
            b'"' => {
                let end = string_end(head, i)?;
                if depth == 1 && expect_key && &head[i..=end] == b"\"id\"" {
                    return value_after_colon(&head[end + 1..]);
                }
                expect_key = false;
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the closing quote of the string starting at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn value_after_colon(rest: &[u8]) -> Option<RequestId> {
    static VALUE: OnceLock<Option<Regex>> = OnceLock::new();
    let re = VALUE
        .get_or_init(|| Regex::new(r#"^\s*:\s*(-?[0-9]+|"(?:[^"\\]|\\.){0,256}")\s*[,}]"#).ok())
        .as_ref()?;
    parse_id(re.captures(rest)?.get(1)?.as_bytes())
}

fn id_at_end(tail: &[u8]) -> Option<RequestId> {
    static END: OnceLock<Option<Regex>> = OnceLock::new();
    let re = END
        .get_or_init(|| {
            Regex::new(r#"[,{]\s*"id"\s*:\s*(-?[0-9]+|"(?:[^"\\]|\\.){0,256}")\s*(?:,\s*"jsonrpc"\s*:\s*"2\.0"\s*)?\}\s*$"#).ok()
        })
        .as_ref()?;
    parse_id(re.captures(tail)?.get(1)?.as_bytes())
}

fn parse_id(text: &[u8]) -> Option<RequestId> {
    let raw: Box<serde_json::value::RawValue> = serde_json::from_slice(text).ok()?;
    RequestId::from_raw(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(head: &str, tail: &str) -> Option<String> {
        recover_id(head.as_bytes(), tail.as_bytes()).map(|i| i.to_string())
    }

    #[test]
    fn recover_id_from_head_at_top_level_only() {
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":42,"method":"x","params":{"#, ""),
            Some("42".into())
        );
        assert_eq!(
            id(r#"{"params":{"id":1},"id":"a\"b","#, ""),
            Some(r#""a\"b""#.into())
        );
        assert_eq!(id(r#"{"params":{"id":1,"x":"#, ""), None);
        assert_eq!(id(r#"{"method":"x","params":{"s":"\"id\":5,"#, ""), None);
    }

    #[test]
    fn recover_id_from_tail_when_written_last() {
        assert_eq!(id("{\"params\":{", r#"xxx"},"id":7}"#), Some("7".into()));
        assert_eq!(
            id("{\"params\":{", r#"xx"},"id":"r-1","jsonrpc":"2.0"}"#),
            Some(r#""r-1""#.into())
        );
        assert_eq!(id("{\"params\":{", r#"xx","id":7}}"#), None);
        assert_eq!(id("{\"params\":[", r#"{"id":7}]}"#), None);
    }
}
