//! What changed between a pin and what the server offers now, readably.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

use super::lockfile::{Kind, Lockfile};
use crate::audit::redact::truncate;

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Server {
        field: &'static str,
        old: Option<String>,
        new: Option<String>,
    },
    Added {
        kind: Kind,
        key: String,
    },
    Removed {
        kind: Kind,
        key: String,
    },
    Changed {
        kind: Kind,
        key: String,
        fields: Vec<String>,
    },
}

pub fn diff(old: &Lockfile, new: &Lockfile) -> Vec<Change> {
    let mut changes = Vec::new();
    let server = [
        ("name", &old.server.name, &new.server.name),
        ("version", &old.server.version, &new.server.version),
        ("instructions", &old.instructions, &new.instructions),
    ];
    for (field, a, b) in server {
        if a != b {
            changes.push(Change::Server {
                field,
                old: a.clone(),
                new: b.clone(),
            });
        }
    }
    let empty = Default::default();
    for kind in Kind::ALL {
        let a = old.items.get(&kind).unwrap_or(&empty);
        let b = new.items.get(&kind).unwrap_or(&empty);
        for (key, pinned) in a {
            match b.get(key) {
                None => changes.push(Change::Removed {
                    kind,
                    key: key.clone(),
                }),
                Some(now) if now.digest != pinned.digest => changes.push(Change::Changed {
                    kind,
                    key: key.clone(),
                    fields: changed_fields(&pinned.item, &now.item),
                }),
                Some(_) => {}
            }
        }
        for key in b.keys().filter(|k| !a.contains_key(*k)) {
            changes.push(Change::Added {
                kind,
                key: key.clone(),
            });
        }
    }
    changes
}

/// Top-level members that differ, each as `name: old → new` (values shortened).
fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else {
        return vec!["(whole item)".into()];
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| k.as_str() != "_meta" && a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {} → {}", show(a.get(k)), show(b.get(k))))
        .collect()
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(v) => truncate(&v.to_string(), 160),
    }
}

fn show_opt(v: &Option<String>) -> String {
    v.as_deref()
        .map_or_else(|| "(none)".into(), |s| truncate(&format!("{s:?}"), 160))
}

/// The changes as text, one block per item; "no changes" when there are none.
pub fn render(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no changes: the server offers exactly what was pinned\n".into();
    }
    let mut out = String::new();
    for change in changes {
        let _ = match change {
            Change::Server { field, old, new } => writeln!(
                out,
                "server {field} changed: {} → {}",
                show_opt(old),
                show_opt(new)
            ),
            Change::Added { kind, key } => writeln!(out, "+ new {} `{key}`", kind.noun()),
            Change::Removed { kind, key } => writeln!(out, "- removed {} `{key}`", kind.noun()),
            Change::Changed { kind, key, fields } => {
                let _ = writeln!(out, "~ changed {} `{key}`", kind.noun());
                for f in fields {
                    let _ = writeln!(out, "    {f}");
                }
                Ok(())
            }
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_added_removed_changed_and_renames() {
        let mut old = Lockfile::default();
        old.insert(Kind::Tools, json!({"name": "a", "description": "safe"}));
        old.insert(Kind::Tools, json!({"name": "b", "description": "b"}));
        let mut new = Lockfile::default();
        new.insert(Kind::Tools, json!({"name": "a", "description": "now evil"}));
        new.insert(Kind::Tools, json!({"name": "c", "description": "b"}));
        let changes = diff(&old, &new);
        assert_eq!(changes.len(), 3);
        let text = render(&changes);
        assert!(text.contains("~ changed tool `a`"), "{text}");
        assert!(
            text.contains("description: \"safe\" → \"now evil\""),
            "{text}"
        );
        assert!(text.contains("- removed tool `b`") && text.contains("+ new tool `c`"));
    }
}
