//! The pin lockfile: what a server offered when the user approved it. Items are keyed by name
//! (tools, prompts) or URI (resources, templates) and each digest covers the whole item,
//! name included, so a rename shows up as one item removed and one added, never as "same".

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::audit::chain::hex;

pub const FORMAT_VERSION: u32 = 1;

/// The four kinds of listed items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Tools,
        Kind::Prompts,
        Kind::Resources,
        Kind::ResourceTemplates,
    ];

    /// The list method, and the member of its result that holds the items.
    pub fn list_method(self) -> &'static str {
        match self {
            Kind::Tools => "tools/list",
            Kind::Prompts => "prompts/list",
            Kind::Resources => "resources/list",
            Kind::ResourceTemplates => "resources/templates/list",
        }
    }

    pub fn result_member(self) -> &'static str {
        match self {
            Kind::Tools => "tools",
            Kind::Prompts => "prompts",
            Kind::Resources => "resources",
            Kind::ResourceTemplates => "resourceTemplates",
        }
    }

    pub fn from_list_method(method: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.list_method() == method)
    }

    /// Singular, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Tools => "tool",
            Kind::Prompts => "prompt",
            Kind::Resources => "resource",
            Kind::ResourceTemplates => "resource template",
        }
    }

    /// The item's key: name, URI or URI template.
    pub fn key_of(self, item: &Value) -> Option<String> {
        let field = match self {
            Kind::Tools | Kind::Prompts => "name",
            Kind::Resources => "uri",
            Kind::ResourceTemplates => "uriTemplate",
        };
        item.get(field).and_then(Value::as_str).map(str::to_owned)
    }
}

/// One approved item: its digest and the item itself (for readable diffs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinnedItem {
    pub digest: String,
    pub item: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerIdentity {
    pub name: Option<String>,
    pub version: Option<String>,
}

/// Why a listed item awaits approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingReason {
    /// Not pinned at all.
    New,
    /// Pinned, but the server now offers it differently.
    Changed,
    /// Seen on first use with text that looks like prompt injection.
    Quarantined,
    /// Names another server's tool, or takes its name (see `shadowing.rs`).
    Shadowing,
}

impl PendingReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PendingReason::New => "new",
            PendingReason::Changed => "changed",
            PendingReason::Quarantined => "quarantined",
            PendingReason::Shadowing => "shadowing",
        }
    }
}

/// An item the guard hid (trust on first use) until the user approves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingItem {
    pub reason: PendingReason,
    /// The injection phrases its text matched, or how it shadows another server's tool
    /// (none: it is only new or changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    pub digest: String,
    /// The item as the host would have seen it (the server instructions: a string).
    pub item: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lockfile {
    pub format: u32,
    /// The command that was pinned, for the re-approve hint.
    pub command: Vec<String>,
    /// What trust on first use keyed this pin by (see `identity.rs`); none in a `pin -o` file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    pub server: ServerIdentity,
    pub instructions: Option<String>,
    pub items: BTreeMap<Kind, BTreeMap<String, PinnedItem>>,
    /// Items hidden until `mcp-guard pin approve` (trust on first use only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<Kind, BTreeMap<String, PendingItem>>,
    /// Server instructions dropped until approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_instructions: Option<PendingItem>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot read the pin file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the pin file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error(
        "the pin file {path} has format {found}; this mcp-guard reads format {FORMAT_VERSION}"
    )]
    Format { path: String, found: u32 },
    #[error("cannot write the pin file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// SHA-256 of the item's canonical JSON (sorted keys), without `_meta` (volatile by design).
pub fn digest(item: &Value) -> String {
    let mut item = item.clone();
    if let Value::Object(map) = &mut item {
        map.remove("_meta");
    }
    let text = serde_json::to_string(&item).unwrap_or_default();
    format!("sha256:{}", hex(&Sha256::digest(text.as_bytes())))
}

impl Lockfile {
    pub fn load(path: &Path) -> Result<Lockfile, LockError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LockError::Read {
            path: shown.clone(),
            source,
        })?;
        let lock: Lockfile = serde_json::from_str(&text).map_err(|source| LockError::Parse {
            path: shown.clone(),
            source,
        })?;
        if lock.format != FORMAT_VERSION {
            return Err(LockError::Format {
                path: shown,
                found: lock.format,
            });
        }
        Ok(lock)
    }

    pub fn save(&self, path: &Path) -> Result<(), LockError> {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        // Write then rename, so a reader never sees half a lockfile.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| LockError::Write {
                path: path.display().to_string(),
                source,
            })
    }

    /// Add one listed item.
    pub fn insert(&mut self, kind: Kind, item: Value) {
        if let Some(key) = kind.key_of(&item) {
            let pinned = PinnedItem {
                digest: digest(&item),
                item,
            };
            self.items.entry(kind).or_default().insert(key, pinned);
        }
    }

    /// Whether `item` (of `kind`) is exactly as approved.
    pub fn approves(&self, kind: Kind, key: &str, item_digest: &str) -> bool {
        self.items
            .get(&kind)
            .and_then(|m| m.get(key))
            .is_some_and(|p| p.digest == item_digest)
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.items.get(&kind).map_or(0, BTreeMap::len)
    }

    /// How many items (and instructions) await approval.
    pub fn pending_count(&self) -> usize {
        self.pending.values().map(BTreeMap::len).sum::<usize>()
            + usize::from(self.pending_instructions.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_ignores_key_order_and_meta_but_not_name() {
        let a = json!({"name": "a", "description": "d", "_meta": {"x": 1}});
        let b: Value = serde_json::from_str(r#"{"description":"d","name":"a"}"#).unwrap();
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(
            digest(&a),
            digest(&json!({"name": "b", "description": "d"}))
        );
    }
}
