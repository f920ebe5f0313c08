//! The body of a message as a JSON tree, built in the same single pass as serde_json's own
//! `Value`, noting any object that repeats a member name. `Value` keeps the last of repeated
//! members, and so do the checks; a peer whose parser keeps the first would act on a value
//! nobody checked. So a body with repeated members is forwarded as the tree that was checked
//! (see [`super::inspection::Inspection`]).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parse `text` into a `Value`; the flag says whether some object repeated a member name.
pub fn parse(text: &str) -> serde_json::Result<(Value, bool)> {
    let mut repeated = false;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Tree {
        repeated: &mut repeated,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok((value, repeated))
}

struct Tree<'a> {
    repeated: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for Tree<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tree<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // As `Value` does: JSON text has no NaN or infinity, so this is never `Null` here.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(Tree {
            repeated: &mut *self.repeated,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = members.next_key::<String>()? {
            let value = members.next_value_seed(Tree {
                repeated: &mut *self.repeated,
            })?;
            if map.insert(name, value).is_some() {
                *self.repeated = true;
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_tree_as_serde_json() {
        for text in [
            r#"{"a":1,"b":[true,null,-2,3.5,1e300,18446744073709551615,"x\u0000y"],"c":{"d":{}}}"#,
            r#"[]"#,
            r#""plain""#,
            r#"-0.0"#,
        ] {
            let (tree, repeated) = parse(text).expect("parses");
            assert_eq!(tree, serde_json::from_str::<Value>(text).unwrap(), "{text}");
            assert!(!repeated, "{text}");
        }
    }

    #[test]
    fn repeated_members_at_any_depth_are_noted_and_the_last_kept() {
        for text in [
            r#"{"name":"echo","name":"rm"}"#,
            r#"{"arguments":{"path":"/tmp/a","path":"/etc/passwd"}}"#,
            r#"[{"x":1},{"y":{"z":1,"z":2}}]"#,
        ] {
            let (tree, repeated) = parse(text).expect("parses");
            assert!(repeated, "{text}");
            assert_eq!(tree, serde_json::from_str::<Value>(text).unwrap(), "{text}");
        }
    }

    #[test]
    fn invalid_text_is_an_error() {
        assert!(parse(r#"{"a":1"#).is_err());
        assert!(parse(r#"{"a":1} x"#).is_err());
    }
}

#[cfg(test)]
mod firewall_tests {
    use crate::filter::{Context, Direction, Firewall, Verdict};
    use crate::protocol::{parse_line, Parsed};

    fn firewall() -> Firewall {
        Firewall::for_tests("version = 1\n")
    }

    fn inspect(fw: &mut Firewall, line: &str) -> (Verdict, Vec<String>) {
        let Ok(Parsed::Single(m)) = parse_line(line.as_bytes()) else {
            panic!("does not parse: {line}");
        };
        let context = Context {
            direction: Direction::HostToServer,
            version: Some("2025-06-18"),
            answered_method: None,
        };
        let verdict = fw.inspect(&m, &context);
        let found = fw.take_findings().into_iter().map(|f| f.rule.to_owned());
        (verdict, found.collect())
    }

    #[test]
    fn a_repeated_member_is_forwarded_as_checked_and_its_neighbour_unchanged() {
        let mut fw = firewall();
        let repeated = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1,"progress":2}}"#;
        let (verdict, found) = inspect(&mut fw, repeated);
        let Verdict::Replace(out) = verdict else {
            panic!("forwarded as sent: {verdict:?}");
        };
        let out = String::from_utf8(out).expect("utf-8");
        assert_eq!(out.matches("\"progress\"").count(), 1, "{out}");
        assert!(out.contains("\"progress\":2"), "{out}");
        assert_eq!(found, ["duplicates"]);

        let plain = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":2}}"#;
        let (verdict, found) = inspect(&mut fw, plain);
        assert!(matches!(verdict, Verdict::Forward), "{verdict:?}");
        assert!(found.is_empty(), "{found:?}");
    }
}
