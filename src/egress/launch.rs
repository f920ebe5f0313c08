//! Starting the proxy for one server: learn the tier from the server's child (see
//! `sandbox::network_tier`) and serve the listener it implies.

use std::os::fd::{AsFd, OwnedFd};

use tokio::sync::mpsc;

use super::{ConnectionRecord, InFlightCalls, ProxyConfig};
use crate::sandbox::network_tier::{TAG_BROKER, TAG_NAMESPACE};
use crate::sandbox::{fd_passing, EgressPlan, NetworkMode, Plan};

/// Why `hosts` mode could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    #[error("the policy's [network] allow list is not valid: {0}")]
    Allow(#[from] super::RuleError),
    #[error("cannot open the egress proxy's port on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
}

/// `hosts` mode: open the egress proxy's port, and point the server of `plan` at it (the
/// proxy variables in its environment, the port and the tier in `plan.egress`). `None` in any
/// other mode, or without a sandbox.
pub fn prepare(plan: &mut Plan) -> Result<Option<EgressSetup>, PrepareError> {
    let network = &plan.config.network;
    if plan.config.disabled || network.mode != NetworkMode::Hosts {
        return Ok(None);
    }
    let mut config = ProxyConfig::new(super::AllowList::parse(&network.allow)?);
    config.resolver = super::Resolver::from_env();
    let setup = EgressSetup::bind(config).map_err(PrepareError::Bind)?;
    let proxy_port = setup.port();
    plan.egress = Some(EgressPlan {
        isolation: network.isolation,
        proxy_port,
    });
    plan.env.extend(super::proxy_env(proxy_port));
    Ok(Some(setup))
}

/// What the guard prepared before launching a server in `hosts` mode.
#[derive(Debug)]
pub struct EgressSetup {
    /// The proxy's listener on the host's loopback (used by the broker tier; the namespace
    /// tier listens on the same port inside the server's namespace).
    pub host_listener: std::net::TcpListener,
    pub config: ProxyConfig,
}

impl EgressSetup {
    /// Bind the host listener on 127.0.0.1 (a port of the kernel's choosing).
    pub fn bind(config: ProxyConfig) -> std::io::Result<EgressSetup> {
        let host_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        Ok(EgressSetup {
            host_listener,
            config,
        })
    }

    pub fn port(&self) -> u16 {
        self.host_listener.local_addr().map_or(0, |a| a.port())
    }
}

/// On a thread of its own: wait for the server's child to name the tier on `channel`, then
/// serve the proxy on the matching listener until `records`' receiver is dropped. (The tier
/// also reaches the audit log in the sandbox report.)
pub fn start(
    channel: OwnedFd,
    setup: EgressSetup,
    calls: InFlightCalls,
    records: mpsc::UnboundedSender<ConnectionRecord>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("mcp-guard-egress".into())
        .spawn(move || {
            let EgressSetup {
                host_listener,
                config,
            } = setup;
            let listener = match fd_passing::recv_tagged(channel.as_fd()) {
                // The host's port stays closed: nothing may reach the proxy from outside.
                Ok(Some((TAG_NAMESPACE, Some(fd)))) => {
                    drop(host_listener);
                    std::net::TcpListener::from(fd)
                }
                Ok(Some((TAG_BROKER, _))) => host_listener,
                Ok(other) => {
                    tracing::debug!("egress: no tier from the server's child ({other:?})");
                    return;
                }
                Err(e) => {
                    tracing::warn!("egress: cannot read the server's tier: {e}");
                    return;
                }
            };
            drop(channel);
            if let Err(e) = super::serve_blocking(listener, config, calls, records) {
                tracing::error!("the egress proxy stopped: {e}");
            }
        })
}
