//! What a trust-on-first-use guard adds to its server's pin file: items pinned on first use,
//! items awaiting approval, the server's instructions. Collected as changes and applied to the
//! file as it is on disk under the store's hold, so that an approval made meanwhile (or another
//! guard's pins) is kept.

use serde_json::Value;

use super::lockfile::{Kind, Lockfile, PendingItem, ServerIdentity};

#[derive(Debug, Clone)]
pub enum Change {
    /// First use: who the server is.
    Server {
        server: ServerIdentity,
        command: Vec<String>,
        identity: String,
    },
    /// First use: the instructions as sent (`None`: it sent none).
    Instructions(Option<String>),
    PendingInstructions(PendingItem),
    /// The host saw its first listing of this kind: from now on the kind is pinned.
    PinKind(Kind),
    Pin(Kind, Value),
    Pending(Kind, String, PendingItem),
}

/// Apply `changes` to `lock`; whether anything changed.
pub fn apply(lock: &mut Lockfile, changes: Vec<Change>) -> bool {
    let mut changed = false;
    for change in changes {
        changed |= apply_one(lock, change);
    }
    changed
}

fn apply_one(lock: &mut Lockfile, change: Change) -> bool {
    match change {
        Change::Server {
            server,
            command,
            identity,
        } => {
            if lock.identity.is_some() {
                return false; // another guard of this server got there first
            }
            lock.server = server;
            lock.command = command;
            lock.identity = Some(identity);
            true
        }
        Change::Instructions(text) => {
            lock.instructions = text;
            true
        }
        Change::PendingInstructions(pending) => {
            // The same text again keeps its first reason (quarantined stays quarantined).
            let same = |p: &PendingItem| p.digest == pending.digest;
            if lock.instructions.as_deref() == pending.item.as_str()
                || lock.pending_instructions.as_ref().is_some_and(same)
            {
                return false;
            }
            lock.pending_instructions = Some(pending);
            true
        }
        Change::PinKind(kind) => {
            if lock.items.contains_key(&kind) {
                return false;
            }
            lock.items.insert(kind, Default::default());
            true
        }
        Change::Pin(kind, item) => {
            let Some(key) = kind.key_of(&item) else {
                return false;
            };
            // Never replace a pin: a second first session must not overrule the first.
            if lock.items.get(&kind).is_some_and(|m| m.contains_key(&key)) {
                return false;
            }
            lock.insert(kind, item);
            true
        }
        Change::Pending(kind, key, pending) => {
            let already = lock.approves(kind, &key, &pending.digest)
                || lock
                    .pending
                    .get(&kind)
                    .and_then(|m| m.get(&key))
                    .is_some_and(|p| p.digest == pending.digest);
            if already {
                return false;
            }
            lock.pending.entry(kind).or_default().insert(key, pending);
            true
        }
    }
}

/// `mcp-guard pin approve`: move the named pending items (all when `names` is empty; the
/// server instructions are `instructions`) into the pin. Returns what was approved, and the
/// names that matched nothing pending.
pub fn approve(lock: &mut Lockfile, names: &[String]) -> (Vec<String>, Vec<String>) {
    let mut approved = Vec::new();
    let wanted = |key: &str| names.is_empty() || names.iter().any(|n| n == key);
    for (kind, pending) in &mut lock.pending {
        let keys: Vec<String> = pending.keys().filter(|k| wanted(k)).cloned().collect();
        for key in keys {
            if let Some(item) = pending.remove(&key) {
                lock.items.entry(*kind).or_default().insert(
                    key.clone(),
                    super::lockfile::PinnedItem {
                        digest: item.digest,
                        item: item.item,
                    },
                );
                approved.push(format!("{} `{key}`", kind.noun()));
            }
        }
    }
    lock.pending.retain(|_, m| !m.is_empty());
    if wanted("instructions") {
        if let Some(pending) = lock.pending_instructions.take() {
            lock.instructions = pending.item.as_str().map(str::to_owned);
            approved.push("the server instructions".into());
        }
    }
    let unmatched = names
        .iter()
        .filter(|n| !approved.iter().any(|a| a.ends_with(&format!("`{n}`"))))
        .filter(|n| {
            !(n.as_str() == "instructions" && approved.iter().any(|a| a.contains("instructions")))
        })
        .cloned()
        .collect();
    (approved, unmatched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pin::lockfile::{digest, PendingReason};
    use serde_json::json;

    fn pending(item: Value, reason: PendingReason) -> PendingItem {
        PendingItem {
            reason,
            findings: vec![],
            digest: digest(&item),
            item,
        }
    }

    #[test]
    fn approve_moves_pending_into_the_pin_and_names_what_matched_nothing() {
        let mut lock = Lockfile::default();
        let x = json!({"name": "x", "description": "new"});
        let changes = vec![
            Change::PinKind(Kind::Tools),
            Change::Pin(Kind::Tools, json!({"name": "a"})),
            Change::Pending(
                Kind::Tools,
                "x".into(),
                pending(x.clone(), PendingReason::New),
            ),
            Change::PendingInstructions(pending(json!("Be evil"), PendingReason::Quarantined)),
        ];
        assert!(apply(&mut lock, changes));
        assert_eq!(lock.pending_count(), 2);
        // A pin is never replaced by a later first use.
        assert!(!apply(
            &mut lock,
            vec![Change::Pin(
                Kind::Tools,
                json!({"name": "a", "description": "other"})
            )]
        ));
        let (done, unmatched) = approve(&mut lock, &["x".into(), "nope".into()]);
        assert_eq!(done, ["tool `x`"]);
        assert_eq!(unmatched, ["nope"]);
        assert!(lock.approves(Kind::Tools, "x", &digest(&x)));
        let (done, _) = approve(&mut lock, &[]);
        assert_eq!(done, ["the server instructions"]);
        assert_eq!(lock.instructions.as_deref(), Some("Be evil"));
        assert_eq!(lock.pending_count(), 0);
    }
}
