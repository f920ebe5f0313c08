//! Tool results, prompt messages and resource contents reach the model as text, just as
//! descriptions do: the same hiding characters (`sanitize.rs`) are stripped from them
//! (`[sanitize] results = "strip"`, the default) or only recorded (`"flag"`), with counts per
//! class. Only a message whose raw text may hold one ([`may_hide`]) is walked.

use serde_json::Value;

use super::inspection::{Inspection, Kind, Step};
use super::sanitize::{count_hidden, may_hide, strip_counted, Counts};
use super::{Direction, Firewall};
use crate::policy::firewall::ResultsMode;

/// Deep enough for any real `structuredContent`; deeper strings are left as they are.
const MAX_DEPTH: usize = 32;

pub fn stage(fw: &mut Firewall, m: &mut Inspection<'_>) -> Step {
    let mode = fw.rules.sanitize_results;
    if mode == ResultsMode::Off || m.direction != Direction::ServerToHost || m.kind != Kind::Result
    {
        return Step::Next;
    }
    let method = match m.method {
        Some(method @ ("tools/call" | "prompts/get" | "resources/read")) => method,
        _ => return Step::Next,
    };
    if !m.raw().is_some_and(may_hide) {
        return Step::Next;
    }
    let mut counts = Counts::default();
    m.edit_body(|body| {
        let mut changed = false;
        texts_of(body, method, &mut |text: &mut String| {
            if mode == ResultsMode::Flag {
                count_hidden(text, &mut counts);
            } else if let Some(clean) = strip_counted(text, &mut counts) {
                *text = clean;
                changed = true;
            }
        });
        changed
    });
    if counts.is_empty() {
        return Step::Next;
    }
    // Name what carried them the way the redaction does ("tool `x`").
    let subject = match m.request.and_then(crate::conversation::Entry::tool) {
        Some(tool) => format!("tool `{tool}` result"),
        None => format!("{method} result"),
    };
    match mode {
        ResultsMode::Flag => m.find(
            "hidden_text",
            format!("{subject}: hidden characters forwarded as sent ([sanitize] results = \"flag\"): {counts}"),
        ),
        _ => m.find(
            "sanitized",
            format!("{subject}: hidden characters stripped: {counts}"),
        ),
    }
    Step::Next
}

/// Call `f` on each text the result shows the model: `content[].text` (and embedded
/// resources' text) and every string in `structuredContent` (tools/call), the messages'
/// content (prompts/get), `contents[].text` (resources/read).
fn texts_of(body: &mut Value, method: &str, f: &mut impl FnMut(&mut String)) {
    match method {
        "tools/call" => {
            each_item(body.get_mut("content"), f);
            if let Some(structured) = body.get_mut("structuredContent") {
                every_string(structured, 0, f);
            }
        }
        "prompts/get" => {
            if let Some(Value::Array(messages)) = body.get_mut("messages") {
                for message in messages {
                    each_item(message.get_mut("content"), f);
                }
            }
        }
        _ => each_item(body.get_mut("contents"), f),
    }
}

/// One content item, or an array of them.
fn each_item(items: Option<&mut Value>, f: &mut impl FnMut(&mut String)) {
    match items {
        Some(Value::Array(items)) => items.iter_mut().for_each(|item| content_item(item, f)),
        Some(item) => content_item(item, f),
        None => {}
    }
}

fn content_item(item: &mut Value, f: &mut impl FnMut(&mut String)) {
    if let Some(Value::String(text)) = item.get_mut("text") {
        f(text);
    }
    if let Some(Value::String(text)) = item.get_mut("resource").and_then(|r| r.get_mut("text")) {
        f(text);
    }
}

fn every_string(v: &mut Value, depth: usize, f: &mut impl FnMut(&mut String)) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| every_string(v, depth + 1, f)),
        Value::Object(map) => map.values_mut().for_each(|v| every_string(v, depth + 1, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::filter::{Context, Direction, Firewall, Verdict};
    use crate::protocol::{parse_line, Parsed};

    /// A `resources/read` result holding `text` (JSON string contents, escapes as written)
    /// through a firewall with `policy`: the text forwarded when changed, and the findings.
    fn read(policy: &str, text: &str) -> (Option<String>, Vec<String>) {
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":{{"contents":[{{"uri":"memory://a","text":"{text}"}}]}}}}"#
        );
        let Ok(Parsed::Single(m)) = parse_line(line.as_bytes()) else {
            panic!("does not parse: {line}");
        };
        let mut fw = Firewall::for_tests(policy);
        let entry = crate::conversation::Entry::for_method("resources/read");
        let context = Context {
            direction: Direction::ServerToHost,
            version: Some("2025-06-18"),
            request: Some(&entry),
        };
        let changed = match fw.inspect(&m, &context) {
            Verdict::Forward => None,
            Verdict::Replace(out) => {
                let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
                v["result"]["contents"][0]["text"]
                    .as_str()
                    .map(str::to_owned)
            }
            refused => panic!("refused: {refused:?}"),
        };
        let found = fw.take_findings().into_iter();
        (
            changed,
            found.map(|f| format!("{}: {}", f.rule, f.detail)).collect(),
        )
    }

    /// As a server that escapes every non-ASCII character writes it (Python's `json.dumps`).
    const ESCAPED: &str = r"caf\u00e9 \udb40\udc49\u001b[31mred\u0007";

    #[test]
    fn result_text_strips_escaped_hiding_characters_by_default() {
        // No `[sanitize]` in any layer: strip all the same.
        let (text, found) = read("version = 1\n", ESCAPED);
        assert_eq!(text.as_deref(), Some("café red"));
        assert_eq!(
            found,
            ["sanitized: resources/read result: hidden characters stripped: tag 1, escape 1, control 1"]
        );
        // Escaped, but nothing hidden: forwarded as sent, nothing recorded.
        let (text, found) = read("version = 1\n", r"caf\u00e9 \u201cq\u201d \ud83d\ude00");
        assert_eq!((text, found), (None, Vec::new()));
    }

    #[test]
    fn result_text_flag_records_and_off_ignores() {
        let (text, found) = read("version = 1\n[sanitize]\nresults = \"flag\"\n", ESCAPED);
        assert_eq!(text, None);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("hidden_text: resources/read result"),
            "{found:?}"
        );
        let (text, found) = read("version = 1\n[sanitize]\nresults = \"off\"\n", ESCAPED);
        assert_eq!((text, found), (None, Vec::new()));
    }
}
