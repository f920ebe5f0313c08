//! Which way a message travels (shared by the relay, the firewall and the audit).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HostToServer,
    ServerToHost,
}
