//! Envelope parsing: any line. Never panics; a valid message re-serialised by `write_to` parses
//! back to the same message (kind, id, method, raw params/result/error byte for byte), and an
//! `Invalid` carries an id only when the line's top-level id was a valid one. Parsing with the
//! bodies' trees built in the same pass gives the same message or the same error, and each tree
//! is the body text's own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_guard::protocol::{parse_line, parse_line_with, tree, Bodies, Body, Message, Parsed};
use mcp_guard_fuzz::true_top_level_id;

fn summary(m: &Message<'_>) -> String {
    match m {
        Message::Request { id, method, params } => {
            format!("req {id} {method:?} {:?}", params.as_ref().map(Body::get))
        }
        Message::Notification { method, params } => {
            format!("note {method:?} {:?}", params.as_ref().map(Body::get))
        }
        Message::Result { id, result } => format!("result {id} {}", result.get()),
        Message::Error { id, error } => format!("error {id:?} {}", error.get()),
    }
}

fn round_trip(m: &Message<'_>) {
    let mut out = Vec::new();
    m.write_to(&mut out);
    match parse_line(&out) {
        Ok(Parsed::Single(again)) => assert_eq!(summary(m), summary(&again)),
        other => panic!(
            "write_to produced a line that does not parse back: {} -> {other:?}",
            String::from_utf8_lossy(&out)
        ),
    }
    // What the relay forwards is JSON: a generic parser must accept it too.
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&out) {
        panic!(
            "forwarded line is not JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// The same line parsed with trees: the same outcome, and trees true to their texts.
fn same_with_trees(line: &[u8], raw: &Result<Parsed<'_>, mcp_guard::protocol::Invalid>) {
    let trees = parse_line_with(line, Bodies::Trees);
    let messages = |p: &Parsed<'_>| -> Vec<Option<String>> {
        match p {
            Parsed::Single(m) => vec![Some(summary(m))],
            Parsed::Batch(items) => items.iter().map(|i| i.as_ref().ok().map(summary)).collect(),
        }
    };
    match (raw, &trees) {
        (Ok(a), Ok(b)) => assert_eq!(messages(a), messages(b)),
        (Err(a), Err(b)) => assert_eq!((a.code(), a.id()), (b.code(), b.id())),
        _ => panic!("raw and tree parses disagree: {raw:?} vs {trees:?}"),
    }
    let messages: Vec<&Message<'_>> = match &trees {
        Ok(Parsed::Single(m)) => vec![m],
        Ok(Parsed::Batch(items)) => items.iter().flatten().collect(),
        Err(_) => Vec::new(),
    };
    for body in messages.into_iter().filter_map(Message::body) {
        if let Some(built) = body.take_tree() {
            assert_eq!(Some(built), tree::parse(body.get()).ok(), "{}", body.get());
        }
    }
}

fuzz_target!(|line: &[u8]| {
    let parsed = parse_line(line);
    same_with_trees(line, &parsed);
    match parsed {
        Ok(Parsed::Single(m)) => round_trip(&m),
        Ok(Parsed::Batch(items)) => {
            for item in items.iter().flatten() {
                round_trip(item);
            }
        }
        Err(invalid) => {
            let _ = (invalid.code(), invalid.message());
            if let Some(id) = invalid.id() {
                // The id must be the line's own top-level id, as a generic parser reads it
                // (raw members: JSON numbers beyond f64 range are still JSON).
                let truth = true_top_level_id(line);
                assert!(
                    truth.is_none() || truth == Some(Some(id.clone())),
                    "Invalid carries id {id}, the line's top-level id is {truth:?}"
                );
            }
        }
    }
});
