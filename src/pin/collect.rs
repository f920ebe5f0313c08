//! Take a snapshot of what a server offers, through `mcp-guard run`, as a lockfile.

use std::time::Duration;

use serde_json::Value;

use super::lockfile::{Kind, Lockfile, ServerIdentity, FORMAT_VERSION};
use crate::client::{ClientError, Launch};

/// Start the server, initialise, list everything its capabilities announce, stop it.
pub fn snapshot(launch: &Launch) -> Result<Lockfile, ClientError> {
    let mut client = launch.start()?;
    let result = (|| {
        let init = client.initialize("mcp-guard-pin")?;
        let info = init.get("serverInfo");
        let text = |v: Option<&Value>, k: &str| {
            v.and_then(|v| v.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let mut lock = Lockfile {
            format: FORMAT_VERSION,
            command: launch
                .command
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            server: ServerIdentity {
                name: text(info, "name"),
                version: text(info, "version"),
            },
            instructions: text(Some(&init), "instructions"),
            ..Lockfile::default()
        };
        let caps = init.get("capabilities");
        for kind in Kind::ALL {
            let cap = match kind {
                Kind::Tools => "tools",
                Kind::Prompts => "prompts",
                Kind::Resources | Kind::ResourceTemplates => "resources",
            };
            if caps.and_then(|c| c.get(cap)).is_none() {
                continue;
            }
            match client.list_all(kind.list_method(), kind.result_member()) {
                Ok(items) => {
                    lock.items.entry(kind).or_default();
                    for item in items {
                        lock.insert(kind, item);
                    }
                }
                // A server may announce resources without templates: nothing to pin.
                Err(ClientError::Rpc { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(lock)
    })();
    let _ = client.finish(Duration::from_secs(5));
    result
}
