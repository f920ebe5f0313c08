//! `hosts` mode, in the server's child before exec: make the guard's egress proxy the only way
//! out, with the strongest tier this machine offers (see `SECURITY.md`, "Egress").
//!
//! 1. **namespace**: a private user + network namespace (`netns`); the proxy's listener is
//!    made inside it and sent to the guard.
//! 2. **broker**: no namespace. Landlock lets TCP connect only to the proxy's port (set up by
//!    `landlock.rs` from the plan), and a seccomp user-notification filter hands every
//!    `connect()` to the supervisor, which connects a socket of its own to the proxy and
//!    installs it in the server's place. The guard serves the proxy on the host's loopback.
//!
//! The guard learns the tier from the first message on its egress channel: `N` with the
//! namespace's listener, or `B` (use your own listener).

use std::os::fd::{AsFd, BorrowedFd};

use super::{fd_passing, Isolation, Plan, SandboxError};

/// Tag of the guard's egress channel: the namespace's listener follows.
pub const TAG_NAMESPACE: u8 = b'N';
/// Tag of the guard's egress channel: the broker tier, serve the host listener.
pub const TAG_BROKER: u8 = b'B';

/// Enter the tier `plan.egress` asks for and tell the guard which one holds. `None` when the
/// plan is not in `hosts` mode.
pub fn enter(plan: &Plan, guard: BorrowedFd<'_>) -> Result<Option<Isolation>, SandboxError> {
    let Some(egress) = plan.egress else {
        return Ok(None);
    };
    let tier = match egress.isolation {
        Some(Isolation::Broker) => Isolation::Broker,
        wanted => match private_network(egress.proxy_port) {
            Ok(listener) => {
                fd_passing::send_tagged(guard, TAG_NAMESPACE, Some(listener.as_fd())).map_err(
                    |e| {
                        SandboxError::Setup(format!(
                            "cannot hand the proxy listener to the guard: {e}"
                        ))
                    },
                )?;
                return Ok(Some(Isolation::Namespace));
            }
            Err(why) if wanted == Some(Isolation::Namespace) => {
                return Err(SandboxError::Setup(format!(
                    "network isolation `namespace` is not available: {why}. Choices: allow \
                     unprivileged user namespaces on this machine, or run with \
                     `--network-isolation broker` (landlock and a seccomp broker, no \
                     namespace needed)"
                )));
            }
            Err(why) => {
                tracing::debug!("no private network namespace ({why}); using the broker tier");
                Isolation::Broker
            }
        },
    };
    fd_passing::send_tagged(guard, TAG_BROKER, None)
        .map_err(|e| SandboxError::Setup(format!("cannot reach the guard's proxy: {e}")))?;
    Ok(Some(tier))
}

#[cfg(target_os = "linux")]
fn private_network(proxy_port: u16) -> Result<std::os::fd::OwnedFd, String> {
    super::netns::enter_private_network(proxy_port)
}

#[cfg(not(target_os = "linux"))]
fn private_network(_proxy_port: u16) -> Result<std::os::fd::OwnedFd, String> {
    Err("network namespaces exist only on Linux".into())
}
