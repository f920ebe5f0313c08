//! The relay parses a line once, building the bodies' trees in the envelope pass and finding
//! each body's raw text from where the member names lie (`Bodies::Trees`). For generated lines
//! (any member order, whitespace anywhere JSON allows it, unknown and repeated members, escaped
//! names, values no tree can hold) that parse must agree with the plain one (`Bodies::Raw`,
//! serde_json's raw values): the same message, body texts byte for byte, or the same error; and
//! every tree built must be its text's.

mod support;

use mcp_guard::protocol::{parse_line_with, tree, Bodies, Parsed};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::Value;
use support::generate::json_value;

/// JSON whitespace, often none.
fn ws() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just(""), 1 => Just(" "), 1 => Just("\t"), 1 => Just("\r\n "), 1 => Just("\n")]
}

/// A value's JSON text: compact or pretty (whitespace inside), or text serde_json accepts but
/// no `Value` holds.
fn value_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => json_value().prop_map(|v| v.to_string()),
        2 => json_value().prop_map(|v| serde_json::to_string_pretty(&v).unwrap()),
        1 => Just(r#"{"big":1e400}"#.to_owned()),
        1 => Just("123456789012345678901234567890".to_owned()),
    ]
}

/// An extra member: mostly unknown ones (some with escaped names), sometimes a repeat of one
/// the message already has (an error both ways), or a body escaped as `p\u0061rams`.
fn member() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![
        6 => Just("\"x\""),
        2 => Just("\"\\u0078\""),
        1 => Just("\"p\\u0061rams\""),
        1 => Just("\"jsonrpc\""),
        1 => Just("\"id\""),
        1 => Just("\"result\""),
    ];
    (name, value_text()).prop_map(|(n, v)| (n.to_owned(), v))
}

/// An object or array's JSON text (what `params` must be), compact or pretty.
fn structured_text() -> impl Strategy<Value = String> {
    let structured = prop_oneof![
        prop::collection::vec(json_value(), 0..4).prop_map(Value::from),
        prop::collection::btree_map("[a-z\"\\\\:,{}]{0,5}", json_value(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ];
    (structured, any::<bool>()).prop_map(|(v, pretty)| {
        if pretty {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            v.to_string()
        }
    })
}

/// A valid-looking message most of the time (the envelope members first, then a body), in
/// any order, with extra members, and whitespace around every token.
fn line() -> impl Strategy<Value = String> {
    let body = prop_oneof![
        structured_text().prop_map(|v| ("\"params\"".to_owned(), v)),
        value_text().prop_map(|v| ("\"result\"".to_owned(), v)),
        Just((
            "\"error\"".to_owned(),
            r#"{"code":1,"message":"m","data":[1,{"a":"}"}]}"#.to_owned()
        )),
    ];
    let base = vec![
        Just(("\"jsonrpc\"".to_owned(), "\"2.0\"".to_owned())).boxed(),
        Just(("\"id\"".to_owned(), "1".to_owned())).boxed(),
        Just(("\"method\"".to_owned(), "\"m\"".to_owned())).boxed(),
        body.boxed(),
    ];
    (
        base,
        prop::collection::vec(member(), 0..2),
        prop::collection::vec(ws(), 64),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(base, extra, spaces, shuffle, drop_method)| {
            let mut members: Vec<(String, String)> = base;
            if drop_method {
                members.retain(|(n, _)| n != "\"method\"");
            }
            members.extend(extra);
            let k = shuffle.index(members.len());
            members.rotate_left(k);
            let mut space = spaces.into_iter().cycle();
            let mut text = format!("{}{{", space.next().unwrap());
            for (i, (name, value)) in members.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                let [a, b, c, d] = [(); 4].map(|()| space.next().unwrap());
                text.push_str(&format!("{a}{name}{b}:{c}{value}{d}"));
            }
            text.push('}');
            text.push_str(space.next().unwrap());
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(3000) })]

    #[test]
    fn the_parse_with_trees_agrees_with_the_plain_parse(line in line()) {
        let raw = parse_line_with(line.as_bytes(), Bodies::Raw);
        let trees = parse_line_with(line.as_bytes(), Bodies::Trees);
        match (&raw, &trees) {
            (Ok(Parsed::Single(a)), Ok(Parsed::Single(b))) => {
                // Debug shows kind, id, method and body text (not the tree).
                prop_assert_eq!(format!("{a:?}"), format!("{b:?}"), "{}", line);
                if let Some(body) = b.body() {
                    if let Some(built) = body.take_tree() {
                        prop_assert_eq!(Some(built), tree::parse(body.get()).ok(), "{}", line);
                    }
                }
            }
            (Err(a), Err(b)) => {
                prop_assert_eq!((a.code(), a.id()), (b.code(), b.id()), "{}", line);
            }
            _ => prop_assert!(false, "the parses disagree on {line}: {raw:?} / {trees:?}"),
        }
    }
}

#[test]
fn generated_lines_include_valid_messages_with_trees() {
    // The property above is only as good as its lines: most must parse, with a tree.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut valid, mut with_tree) = (0, 0);
    for _ in 0..500 {
        let line = line().new_tree(&mut runner).unwrap().current();
        if let Ok(Parsed::Single(m)) = parse_line_with(line.as_bytes(), Bodies::Trees) {
            valid += 1;
            with_tree += usize::from(m.body().is_some_and(|b| b.take_tree().is_some()));
        }
    }
    assert!(valid > 150, "only {valid} of 500 generated lines parse");
    assert!(with_tree > 100, "only {with_tree} of 500 came with a tree");
}
