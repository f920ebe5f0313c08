//! One guard's part in the fleet: each tool listing of its server is checked against the other
//! servers of the ledger ([`super::shadowing`]) and recorded there, in one hold of the ledger
//! ([`super::fleet`]), so that of two guards starting together the second sees the first.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::Value;

use super::fleet::{self, FleetServer};
use super::identity::ServerId;
use super::lockfile::{digest, Kind};
use super::shadowing::{ledger_tools, shadowing, OwnTool};
use crate::filter::as_forwarded;

#[derive(Debug)]
pub struct FleetMember {
    ledger: PathBuf,
    id: String,
    command: Vec<String>,
    /// `serverInfo.name` of this session, for the other guards' messages.
    pub name: Option<String>,
    /// This session's tools (name → short digest), as recorded.
    tools: BTreeMap<String, String>,
    /// The ledger could not be used: said once.
    failed: bool,
}

impl FleetMember {
    /// The member for `server`; `None` without a state directory (nothing to share).
    pub fn of(server: &ServerId) -> Option<FleetMember> {
        Some(FleetMember::at(fleet::ledger_path()?, server))
    }

    fn at(ledger: PathBuf, server: &ServerId) -> FleetMember {
        FleetMember {
            ledger,
            id: server.id.clone(),
            command: server.command.clone(),
            name: None,
            tools: BTreeMap::new(),
            failed: false,
        }
    }

    /// Per tool of `listing` (a `tools/list` result as the server sent it), how it shadows
    /// another server's tool. A ledger that cannot be used finds nothing (said once).
    pub fn check(&mut self, listing: &Value) -> HashMap<String, Vec<String>> {
        let items: Vec<(String, &Value, String)> = listing
            .get(Kind::Tools.result_member())
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let name = Kind::Tools.key_of(item)?;
                // The pin digest without its `sha256:`, shortened: enough to tell tools apart.
                let short = digest(&as_forwarded(item))
                    .chars()
                    .skip(7)
                    .take(16)
                    .collect();
                Some((name, item, short))
            })
            .collect();
        let own: Vec<OwnTool> = items
            .iter()
            .map(|(name, item, digest)| OwnTool { name, item, digest })
            .collect();
        let earlier = self.tools.clone();
        self.tools.extend(ledger_tools(&own));
        let record = FleetServer {
            name: self.name.clone(),
            command: self.command.clone(),
            seen: fleet::now_secs(),
            tools: self.tools.clone(),
        };
        let id = &self.id;
        let checked = fleet::update(&self.ledger, record.seen, |ledger| {
            let found = shadowing(&own, &earlier, ledger.others(id));
            ledger.record(id, record);
            found
        });
        checked.unwrap_or_else(|e| {
            if !std::mem::replace(&mut self.failed, true) {
                tracing::warn!("pin: {e}");
            }
            HashMap::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::{Arc, Barrier};

    const GUARDS: usize = 8;

    #[test]
    fn of_guards_starting_together_each_sees_those_before_it() {
        // Each offers `send_email` its own way: every guard but the first to take the hold
        // finds a collision, none misses one recorded before it.
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("mcp-guard/servers.json");
        let barrier = Arc::new(Barrier::new(GUARDS));
        let threads: Vec<_> = (0..GUARDS)
            .map(|n| {
                let (ledger, barrier) = (ledger.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let server = ServerId {
                        id: format!("s{n}"),
                        identity: format!("/bin/s{n}"),
                        command: vec![format!("/bin/s{n}")],
                    };
                    let mut member = FleetMember::at(ledger, &server);
                    let listing = json!({"tools": [
                        {"name": "send_email", "description": format!("Mail, way {n}.")}
                    ]});
                    barrier.wait();
                    member.check(&listing).contains_key("send_email")
                })
            })
            .collect();
        let flagged = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|f| *f)
            .count();
        assert_eq!(flagged, GUARDS - 1);
        let fleet: fleet::Fleet =
            serde_json::from_str(&std::fs::read_to_string(&ledger).unwrap()).unwrap();
        assert_eq!(fleet.servers.len(), GUARDS);
    }
}
