//! The members of one JSON-RPC message object, read in one pass over its text.
//!
//! The envelope members (`jsonrpc`, `id`, `method`) are kept as raw JSON. The body members
//! (`params`, `result`, `error`) are either skipped (syntax-checked, kept as raw text) or, when
//! the firewall will look inside them, built into a [`Tree`] in that same pass. Their raw text
//! is then found from where the member names lie in the text: serde_json lends a name without
//! escapes straight from the input, and between one member's name and the next one's there is
//! nothing but `:`, the value, `,` and whitespace. So no byte is parsed twice.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::tree::{Tree, TreeSeed};

/// How the body members are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bodies {
    /// Syntax-checked and kept as text only (nothing will look inside, or it will parse later).
    Raw,
    /// Also built into a tree, for the firewall.
    Trees,
}

/// One body member: its raw JSON text, and its tree when one was built.
pub struct Part<'a> {
    pub text: &'a str,
    pub tree: Option<Tree>,
}

/// The members of a message object that JSON-RPC defines; others are skipped.
#[derive(Default)]
pub struct Members<'a> {
    pub jsonrpc: Option<&'a RawValue>,
    /// Present even when `null`: an absent id and a `null` one mean different things.
    pub id: Option<&'a RawValue>,
    pub method: Option<&'a RawValue>,
    /// `None` when absent or `null`.
    pub params: Option<Part<'a>>,
    /// Present even when `null` (a `null` result is still a result).
    pub result: Option<Part<'a>>,
    pub error: Option<Part<'a>>,
}

/// Read the members of `text`, a JSON object. A member named twice is an error (a data error,
/// as serde's own derive reports it).
pub fn read(text: &str, bodies: Bodies) -> serde_json::Result<Members<'_>> {
    if bodies == Bodies::Trees {
        if let Some(members) = read_once(text, Bodies::Trees)
            .ok()
            .and_then(|found| found.locate(text))
        {
            return Ok(members);
        }
        // Read again without trees: invalid JSON gets the same error either way, and valid JSON
        // no tree can hold (a number beyond f64, such as 1e400) passes as it always did. Or a
        // member name written with escapes: where its neighbour's value lies is not known
        // without a second look. All rare; the firewall then parses what it needs lazily.
    }
    // Raw bodies carry their own text, so this locates every one.
    read_once(text, Bodies::Raw)?
        .locate(text)
        .ok_or_else(|| de::Error::custom("a member's value could not be located"))
}

fn read_once(text: &str, bodies: Bodies) -> serde_json::Result<Found<'_>> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let found = (&mut deserializer).deserialize_map(Reader { bodies })?;
    deserializer.end()?;
    Ok(found)
}

/// What one pass found, before the body texts are located.
#[derive(Default)]
struct Found<'de> {
    jsonrpc: Option<&'de RawValue>,
    id: Option<&'de RawValue>,
    method: Option<&'de RawValue>,
    /// `params`, `result`, `error`, in that order.
    bodies: [Option<Slot<'de>>; 3],
    /// Some member name had escapes, so it was not lent from the input.
    escaped_name: bool,
}

const BODY_NAMES: [&str; 3] = ["params", "result", "error"];

#[derive(Default)]
struct Slot<'de> {
    /// The value's text, when read raw.
    text: Option<&'de str>,
    tree: Option<Tree>,
    /// This member's name and the next member's name, as lent from the input.
    name: Option<&'de str>,
    next_name: Option<&'de str>,
}

impl<'de> Found<'de> {
    /// Give every body its text; `None` when a text cannot be located (an escaped name).
    fn locate(self, text: &'de str) -> Option<Members<'de>> {
        let escaped_name = self.escaped_name;
        let part = |slot: Option<Slot<'de>>| -> Option<Option<Part<'de>>> {
            let Some(slot) = slot else {
                return Some(None);
            };
            let text = match slot.text {
                Some(value) => value,
                None if escaped_name => return None,
                None => value_between(text, slot.name?, slot.next_name)?,
            };
            Some(Some(Part {
                text,
                tree: slot.tree,
            }))
        };
        let [params, result, error] = self.bodies;
        Some(Members {
            jsonrpc: self.jsonrpc,
            id: self.id,
            method: self.method,
            // serde reads a `null` Option as absent; so did the envelope before this reader.
            params: part(params)?.filter(|p| p.text != "null"),
            result: part(result)?,
            error: part(error)?,
        })
    }
}

/// The value of the member named `name` (lent from `text`), which is followed by the member
/// named `next` or, when `None`, by the end of the object.
fn value_between<'a>(text: &'a str, name: &str, next: Option<&str>) -> Option<&'a str> {
    // JSON's whitespace (a closure: cheaper than a char-slice pattern).
    const WS: fn(char) -> bool = |c| matches!(c, ' ' | '\t' | '\n' | '\r');
    let offset = |s: &str| (s.as_ptr() as usize).checked_sub(text.as_ptr() as usize);
    // Past the name's closing quote.
    let start = offset(name)? + name.len() + 1;
    let end = match next {
        // At the next name's opening quote.
        Some(next) => offset(next)?.checked_sub(1)?,
        // At the object's closing brace.
        None => text.trim_end_matches(WS).len().checked_sub(1)?,
    };
    let between = text.get(start..end)?;
    let value = between.trim_start_matches(WS).strip_prefix(':')?;
    let value = value.trim_matches(WS);
    let value = match next {
        Some(_) => value.strip_suffix(',')?.trim_end_matches(WS),
        None => value,
    };
    (!value.is_empty()).then_some(value)
}

struct Reader {
    bodies: Bodies,
}

impl<'de> Visitor<'de> for Reader {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found<'de>, A::Error> {
        let mut found = Found::default();
        // The body member whose next neighbour's name is still to be seen.
        let mut open: Option<usize> = None;
        while let Some(name) = map.next_key_seed(NameSeed)? {
            let lent = match name {
                Cow::Borrowed(lent) => Some(lent),
                Cow::Owned(_) => {
                    found.escaped_name = true;
                    None
                }
            };
            if let Some(index) = open.take() {
                if let Some(slot) = found.bodies[index].as_mut() {
                    slot.next_name = lent;
                }
            }
            let envelope = match &*name {
                "jsonrpc" => Some((&mut found.jsonrpc, "jsonrpc")),
                "id" => Some((&mut found.id, "id")),
                "method" => Some((&mut found.method, "method")),
                _ => None,
            };
            if let Some((member, field)) = envelope {
                if member.is_some() {
                    return Err(de::Error::duplicate_field(field));
                }
                *member = Some(map.next_value()?);
                continue;
            }
            let Some(index) = BODY_NAMES.iter().position(|b| *b == &*name) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if found.bodies[index].is_some() {
                return Err(de::Error::duplicate_field(BODY_NAMES[index]));
            }
            let mut slot = Slot {
                name: lent,
                ..Slot::default()
            };
            match self.bodies {
                Bodies::Raw => slot.text = Some(map.next_value::<&'de RawValue>()?.get()),
                Bodies::Trees => slot.tree = Some(map.next_value_seed(TreeSeed)?),
            }
            found.bodies[index] = Some(slot);
            open = Some(index);
        }
        Ok(found)
    }
}

/// Reads a member name: lent from the input when it has no escapes, else decoded into a copy.
struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameSeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the one-pass reader gives, body by body, against serde_json's own raw values.
    fn texts(members: &Members<'_>) -> [Option<String>; 3] {
        [&members.params, &members.result, &members.error]
            .map(|p| p.as_ref().map(|p| p.text.to_owned()))
    }

    #[derive(serde::Deserialize)]
    struct Reference<'a> {
        #[serde(borrow)]
        params: Option<&'a RawValue>,
        #[serde(borrow, default, deserialize_with = "present")]
        result: Option<&'a RawValue>,
        #[serde(borrow, default, deserialize_with = "present")]
        error: Option<&'a RawValue>,
    }

    fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
        <&RawValue as serde::Deserialize>::deserialize(d).map(Some)
    }

    fn reference(text: &str) -> [Option<String>; 3] {
        let r: Reference<'_> = serde_json::from_str(text).expect("valid");
        [r.params, r.result, r.error].map(|p| p.map(|p| p.get().to_owned()))
    }

    #[test]
    fn body_texts_match_serde_json_in_every_layout() {
        let values = [
            r#"{"name":"echo","arguments":{"text":"a,\"b\": }"}}"#,
            r#"[1, 2 ,{"x":[]}]"#,
            r#""a \"quoted\" , string}""#,
            "null",
            "-1.5e3",
            "{}",
        ];
        let spaces = ["", " ", "\t\n ", "\r\n"];
        for value in values {
            for (i, ws) in spaces.iter().enumerate() {
                let layouts = [
                    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{value}}}"#),
                    format!(
                        r#"{{{ws}"params"{ws}:{ws}{value}{ws},{ws}"method":"m"{ws},"jsonrpc":"2.0"}}{ws}"#
                    ),
                    format!(
                        r#"{{"id":"x","result"{ws}:{value}{ws},"other":[{value}],"jsonrpc":"2.0"}}"#
                    ),
                    format!(
                        r#"{{"jsonrpc":"2.0","id":2,"error":{{"code":1,"message":"m","data":{value}}}{ws}}}"#
                    ),
                    format!(
                        r#"{{"result":{value},"error":{value},"params":{value}{}}}"#,
                        spaces[3 - i]
                    ),
                ];
                for text in &layouts {
                    for bodies in [Bodies::Raw, Bodies::Trees] {
                        let members = read(text, bodies).expect(text);
                        assert_eq!(texts(&members), reference(text), "{bodies:?} {text}");
                    }
                    let trees = read(text, Bodies::Trees).expect(text);
                    for part in [&trees.params, &trees.result, &trees.error]
                        .into_iter()
                        .flatten()
                    {
                        let tree = part.tree.as_ref().expect("a tree was built");
                        assert_eq!(
                            tree.value,
                            serde_json::from_str::<serde_json::Value>(part.text).unwrap()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn an_escaped_member_name_is_read_again_without_trees() {
        let text = r#"{"jsonrpc":"2.0","id":1,"method":"m","p\u0061rams":{"a":1},"x":2}"#;
        let members = read(text, Bodies::Trees).expect("valid");
        let params = members.params.expect("params found under its escaped name");
        assert_eq!(params.text, r#"{"a":1}"#);
        assert!(params.tree.is_none());
        let text = r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":1},"\u0078":2}"#;
        let params = read(text, Bodies::Trees)
            .expect("valid")
            .params
            .expect("params");
        assert_eq!(params.text, r#"{"a":1}"#);
    }

    #[test]
    fn valid_json_no_tree_can_hold_is_read_raw() {
        let text = r#"{"jsonrpc":"2.0","id":1,"result":{"big":1e400}}"#;
        let result = read(text, Bodies::Trees)
            .expect("valid JSON")
            .result
            .expect("result");
        assert_eq!(result.text, r#"{"big":1e400}"#);
        assert!(result.tree.is_none());
    }

    #[test]
    fn a_repeated_member_is_a_data_error_and_null_params_are_absent() {
        for bodies in [Bodies::Raw, Bodies::Trees] {
            for text in [
                r#"{"jsonrpc":"2.0","method":"x","method":"y"}"#,
                r#"{"jsonrpc":"2.0","method":"x","params":{},"params":[]}"#,
                r#"{"id":1,"result":1,"id":2}"#,
            ] {
                let error = read(text, bodies).err().expect(text);
                assert!(error.is_data(), "{text}: {error}");
            }
            let text = r#"{"jsonrpc":"2.0","method":"x","params":null}"#;
            assert!(read(text, bodies).expect("valid").params.is_none());
            let text = r#"{"jsonrpc":"2.0","id":1,"result":null}"#;
            assert_eq!(
                read(text, bodies)
                    .expect("valid")
                    .result
                    .expect("present")
                    .text,
                "null"
            );
        }
    }

    #[test]
    fn invalid_json_is_a_syntax_error_in_both_modes() {
        for bodies in [Bodies::Raw, Bodies::Trees] {
            for text in [
                r#"{"params":{"a":}}"#,
                r#"{"params":1} x"#,
                r#"{"params":"\x"}"#,
            ] {
                let error = read(text, bodies).err().expect(text);
                assert!(!error.is_data(), "{text}: {error}");
            }
        }
    }
}
