//! A message body as a JSON tree, built in the same single pass as serde_json's own `Value`,
//! noting any object that repeats a member name. `Value` keeps the last of repeated members,
//! and so do the firewall's checks; a peer whose parser keeps the first would act on a value
//! nobody checked. So a body with repeated members is forwarded as the tree that was checked
//! (see `filter::inspection`).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A parsed body: the tree and whether some object in it repeated a member name.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub value: Value,
    pub repeated: bool,
}

/// Parse `text` into a [`Tree`].
pub fn parse(text: &str) -> serde_json::Result<Tree> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let tree = TreeSeed.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(tree)
}

/// Reads one JSON value into a [`Tree`], inside a larger parse (the envelope's members).
pub struct TreeSeed;

impl<'de> DeserializeSeed<'de> for TreeSeed {
    type Value = Tree;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Tree, D::Error> {
        let mut repeated = false;
        let value = Builder {
            repeated: &mut repeated,
        }
        .deserialize(deserializer)?;
        Ok(Tree { value, repeated })
    }
}

struct Builder<'a> {
    repeated: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for Builder<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Builder<'_> {
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
        while let Some(item) = seq.next_element_seed(Builder {
            repeated: &mut *self.repeated,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = members.next_key::<String>()? {
            let value = members.next_value_seed(Builder {
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
            let tree = parse(text).expect("parses");
            assert_eq!(
                tree.value,
                serde_json::from_str::<Value>(text).unwrap(),
                "{text}"
            );
            assert!(!tree.repeated, "{text}");
        }
    }

    #[test]
    fn repeated_members_at_any_depth_are_noted_and_the_last_kept() {
        for text in [
            r#"{"name":"echo","name":"rm"}"#,
            r#"{"arguments":{"path":"/tmp/a","path":"/etc/passwd"}}"#,
            r#"[{"x":1},{"y":{"z":1,"z":2}}]"#,
        ] {
            let tree = parse(text).expect("parses");
            assert!(tree.repeated, "{text}");
            assert_eq!(
                tree.value,
                serde_json::from_str::<Value>(text).unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn invalid_text_is_an_error() {
        assert!(parse(r#"{"a":1"#).is_err());
        assert!(parse(r#"{"a":1} x"#).is_err());
    }
}
