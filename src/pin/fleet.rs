//! The fleet ledger: which servers the guards of this user have seen, and the tools each offers
//! (name and a short digest of the item), in `$XDG_STATE_HOME/mcp-guard/servers.json`. Guards
//! started by one host share it to spot a tool that shadows another server's (see
//! [`super::shadowing`]). No daemon: every guard reads, checks and records under an exclusive
//! flock of a sidecar file, and the file is replaced whole (a reader never sees half of it).
//!
//! It stays small: servers not seen for [`FORGET_AFTER_SECS`] are dropped, at most
//! [`MAX_SERVERS`] are kept (the least recently seen go first), and each keeps at most
//! [`MAX_TOOLS`] tools with names up to [`MAX_NAME`] bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::launchers::lock::{exclusive_hold, write_replacing};
use crate::policy::Vars;

const FORMAT_VERSION: u32 = 1;
/// A server not seen for 30 days is forgotten (its tools no longer count as another's).
pub const FORGET_AFTER_SECS: u64 = 30 * 24 * 3600;
pub const MAX_SERVERS: usize = 64;
/// How stale the time seen may get before a listing that changed nothing writes it anew.
const RESEEN_AFTER_SECS: u64 = 3600;
pub const MAX_TOOLS: usize = 512;
pub const MAX_NAME: usize = 128;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    pub format: u32,
    /// By the trust-on-first-use id ([`super::identity::ServerId::id`]).
    pub servers: BTreeMap<String, FleetServer>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetServer {
    /// `serverInfo.name` from its last `initialize`, for messages.
    pub name: Option<String>,
    /// The command as written (no `env` variables), for messages.
    pub command: Vec<String>,
    /// When a guard of it last listed its tools (seconds since the epoch).
    pub seen: u64,
    /// Tool name → the first 16 hex digits of the item's pin digest.
    pub tools: BTreeMap<String, String>,
}

impl FleetServer {
    /// How messages name it: `NAME (ID)`, else the program and the id.
    pub fn label(&self, id: &str) -> String {
        let program = self
            .command
            .first()
            .map(|c| c.rsplit('/').next().unwrap_or(c).to_owned());
        match self.name.as_deref().or(program.as_deref()) {
            Some(name) => format!("`{name}` ({id})"),
            None => format!("({id})"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}: {source}; cross-server checks are off until it can be (check the directory's owner and permissions)", path.display())]
pub struct FleetError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// `$XDG_STATE_HOME/mcp-guard/servers.json` (else `~/.local/state/…`); `None` without either.
pub fn ledger_path() -> Option<PathBuf> {
    Vars::from_env(None)
        .get("XDG_STATE_HOME")
        .map(|d| d.join("mcp-guard").join("servers.json"))
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FleetError {
    let path = path.to_owned();
    move |source| FleetError { op, path, source }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Read the ledger at `path` under the exclusive hold, let `change` look and edit, forget what
/// expired (as of `now`), and write it back when it changed. A ledger that cannot be parsed
/// (another version's, a torn foreign write) is started afresh: it only ever holds what guards
/// will record again.
pub fn update<T>(
    path: &Path,
    now: u64,
    change: impl FnOnce(&mut Fleet) -> T,
) -> Result<T, FleetError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let flock_path = dir.join(".servers.json.flock");
    let _hold = exclusive_hold(
        &flock_path,
        "fleet: waiting for another mcp-guard that is recording its server",
    )
    .map_err(|(op, source)| io(op, &flock_path)(source))?;
    let before = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str::<Fleet>(&text)
            .ok()
            .filter(|f| f.format == FORMAT_VERSION),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("read", path)(e)),
    };
    let mut fleet = before.clone().unwrap_or(Fleet {
        format: FORMAT_VERSION,
        ..Fleet::default()
    });
    let out = change(&mut fleet);
    fleet.forget_expired(now);
    if before.as_ref() != Some(&fleet) {
        let mut text = serde_json::to_string_pretty(&fleet).unwrap_or_default();
        text.push('\n');
        write_replacing(path, &text).map_err(|(at, e)| io("write", &at)(e))?;
    }
    Ok(out)
}

impl Fleet {
    /// Record what server `id` offers now, replacing what it offered before. The time seen
    /// moves on only hourly when nothing else changed: most listings then write nothing.
    pub fn record(&mut self, id: &str, mut server: FleetServer) {
        server.tools.retain(|name, _| name.len() <= MAX_NAME);
        while server.tools.len() > MAX_TOOLS {
            server.tools.pop_last();
        }
        if let Some(before) = self.servers.get(id) {
            let same = FleetServer {
                seen: before.seen,
                ..server.clone()
            };
            if &same == before && server.seen.saturating_sub(before.seen) < RESEEN_AFTER_SECS {
                return;
            }
        }
        self.servers.insert(id.to_owned(), server);
    }

    /// Drop servers not seen for [`FORGET_AFTER_SECS`], then the least recently seen beyond
    /// [`MAX_SERVERS`].
    fn forget_expired(&mut self, now: u64) {
        self.servers
            .retain(|_, s| now.saturating_sub(s.seen) <= FORGET_AFTER_SECS);
        while self.servers.len() > MAX_SERVERS {
            let oldest = self
                .servers
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => self.servers.remove(&id),
                None => break,
            };
        }
    }

    /// Every server but `id`.
    pub fn others<'a>(&'a self, id: &'a str) -> impl Iterator<Item = (&'a str, &'a FleetServer)> {
        self.servers
            .iter()
            .filter(move |(other, _)| other.as_str() != id)
            .map(|(other, s)| (other.as_str(), s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(seen: u64, tools: &[&str]) -> FleetServer {
        FleetServer {
            name: Some("s".into()),
            command: vec!["/bin/s".into()],
            seen,
            tools: tools.iter().map(|t| ((*t).into(), "d".into())).collect(),
        }
    }

    #[test]
    fn records_replace_and_old_or_surplus_servers_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/servers.json");
        let now = 100 * FORGET_AFTER_SECS;
        update(&path, now, |f| {
            f.record("a", server(now, &["x"]));
            f.record("old", server(now - FORGET_AFTER_SECS - 1, &["y"]));
        })
        .unwrap();
        let seen = update(&path, now, |f| {
            f.record("a", server(now, &["z"]));
            f.clone()
        })
        .unwrap();
        assert_eq!(seen.servers.keys().collect::<Vec<_>>(), ["a"]);
        // Listed again a little later with nothing changed: the record stays as it was.
        let again = update(&path, now + 10, |f| {
            f.record("a", server(now + 10, &["z"]));
            f.servers["a"].seen
        })
        .unwrap();
        assert_eq!(again, now);
        let fleet = update(&path, now, |f| {
            for n in 0..MAX_SERVERS as u64 + 5 {
                f.record(&format!("s{n}"), server(now - 1000 + n, &[]));
            }
            f.clone()
        })
        .unwrap();
        let kept: Fleet = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(kept.servers.len(), MAX_SERVERS);
        // The least recently seen went first; `a` (seen now) stays, with its latest tools.
        assert!(!kept.servers.contains_key("s0") && kept.servers.contains_key("a"));
        assert_eq!(kept.servers["a"].tools.keys().collect::<Vec<_>>(), ["z"]);
        assert!(
            fleet.servers.len() > MAX_SERVERS,
            "checked before forgetting"
        );
        assert_eq!(kept.others("a").count(), MAX_SERVERS - 1);
    }

    #[test]
    fn an_unreadable_ledger_is_started_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("servers.json");
        std::fs::write(&path, "{not json").unwrap();
        let before = update(&path, 1, |f| f.servers.len()).unwrap();
        assert_eq!(before, 0);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("\"format\": 1"));
    }
}
