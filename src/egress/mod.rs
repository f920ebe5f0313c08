//! The egress proxy: in `hosts` network mode, the sandboxed server's only way out to the
//! network.
//!
//! The server can reach one TCP listener, this proxy, and is pointed at it through the proxy
//! environment variables ([`proxy_env`]). One port serves both an HTTP proxy (`CONNECT` tunnels
//! and absolute-form plain HTTP) and SOCKS5 with remote name resolution. Each connection is
//! checked against the [`AllowList`] and the default-forbidden addresses ([`addresses`]); the
//! proxy resolves names itself and connects to exactly the address it checked. Every attempt
//! ends in one [`ConnectionRecord`] carrying the MCP calls that were in flight when it opened
//! ([`InFlightCalls`]).
//!
//! The proxy runs on its own thread with its own current-thread tokio runtime
//! ([`spawn_thread`]): the relay's runtime, which carries every JSON-RPC message, never polls a
//! proxy task, so tunnel traffic, slow name lookups or a connection flood cannot add latency to
//! the relay's hot path. The two share only [`InFlightCalls`] (a short mutex) and the record
//! channel.
//!
//! Testing hook: `MCP_GUARD_RESOLVE_FILE` ([`resolve::RESOLVE_FILE_ENV`]) makes
//! [`Resolver::from_env`] resolve names from a file instead of the system resolver.

pub mod addresses;
pub mod attribution;
pub mod launch;
pub mod proxy;
pub mod record;
pub mod resolve;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

pub use attribution::{CallRef, InFlightCalls};
pub use record::{ConnectionRecord, Decision, Protocol};
pub use resolve::{ResolveError, Resolver, RESOLVE_FILE_ENV};
pub use rules::{AllowList, Rule, RuleError};

/// How the proxy decides and its limits.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Empty: every destination is refused.
    pub allow: AllowList,
    pub resolver: Resolver,
    /// Connections served at once; more are answered 503 / SOCKS 0x01.
    pub max_connections: usize,
    /// For resolving a name, and for each TCP connect.
    pub connect_timeout: Duration,
    /// A tunnel where no byte moved either way for this long is closed.
    pub idle_timeout: Duration,
    /// For reading a request head (HTTP) or greeting and request (SOCKS5), and for writing a
    /// refusal.
    pub head_timeout: Duration,
}

impl ProxyConfig {
    pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

    /// The defaults with `allow`.
    pub fn new(allow: AllowList) -> ProxyConfig {
        ProxyConfig {
            allow,
            ..ProxyConfig::default()
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            allow: AllowList::default(),
            resolver: Resolver::System,
            max_connections: ProxyConfig::DEFAULT_MAX_CONNECTIONS,
            connect_timeout: ProxyConfig::DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: ProxyConfig::DEFAULT_IDLE_TIMEOUT,
            head_timeout: ProxyConfig::DEFAULT_HEAD_TIMEOUT,
        }
    }
}

/// Serves `listener` until it fails (`Err`) or the receiver of `records` is dropped (`Ok`).
/// Returning ends every connection being served.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<ProxyConfig>,
    calls: InFlightCalls,
    records: mpsc::UnboundedSender<ConnectionRecord>,
) -> std::io::Result<()> {
    proxy::serve(listener, config, calls, records).await
}

/// Runs [`serve`] on a new thread (`mcp-guard-egress`) with its own current-thread runtime.
/// The listener is set non-blocking here. The thread ends when `serve` does.
pub fn spawn_thread(
    listener: std::net::TcpListener,
    config: ProxyConfig,
    calls: InFlightCalls,
    records: mpsc::UnboundedSender<ConnectionRecord>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("mcp-guard-egress".to_string())
        .spawn(move || {
            if let Err(e) = serve_blocking(listener, config, calls, records) {
                tracing::error!(error = %e, "egress proxy stopped");
            }
        })
}

/// Runs [`serve`] on the calling thread, on a current-thread runtime of its own.
pub fn serve_blocking(
    listener: std::net::TcpListener,
    config: ProxyConfig,
    calls: InFlightCalls,
    records: mpsc::UnboundedSender<ConnectionRecord>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        serve(listener, Arc::new(config), calls, records).await
    })
}

/// The environment that points a server's HTTP/SOCKS clients at a proxy on `127.0.0.1:port`:
/// `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` (upper and lower case, `http://` URLs — the port
/// speaks SOCKS5 too, but `http://` is understood by every client), `NO_PROXY` / `no_proxy`
/// emptied (nothing bypasses the proxy; there is no other way out anyway), the npm and pip
/// variants, and `NODE_USE_ENV_PROXY=1` (Node ≥ 22.21 / 24 honours the variables in its
/// built-in `fetch` only with it).
pub fn proxy_env(port: u16) -> Vec<(String, String)> {
    let url = format!("http://127.0.0.1:{port}");
    let mut env = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        env.push((name.to_string(), url.clone()));
        env.push((name.to_ascii_lowercase(), url.clone()));
    }
    for name in [
        "npm_config_proxy",
        "npm_config_https_proxy",
        "NPM_CONFIG_PROXY",
        "NPM_CONFIG_HTTPS_PROXY",
        "YARN_HTTP_PROXY",
        "YARN_HTTPS_PROXY",
        "PIP_PROXY",
    ] {
        env.push((name.to_string(), url.clone()));
    }
    env.push(("NO_PROXY".to_string(), String::new()));
    env.push(("no_proxy".to_string(), String::new()));
    // npm's own bypass list defaults to NO_PROXY, but a user's npmrc may set it.
    env.push(("npm_config_noproxy".to_string(), String::new()));
    env.push(("NODE_USE_ENV_PROXY".to_string(), "1".to_string()));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_env() {
        let c = ProxyConfig::default();
        assert!(c.allow.is_empty());
        assert_eq!(c.resolver, Resolver::System);
        assert_eq!(c.max_connections, 256);
        let env = proxy_env(3128);
        assert!(env.contains(&("HTTPS_PROXY".into(), "http://127.0.0.1:3128".into())));
        assert!(env.contains(&("https_proxy".into(), "http://127.0.0.1:3128".into())));
        assert!(env.contains(&("NO_PROXY".into(), String::new())));
    }
}
