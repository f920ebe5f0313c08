//! Network: no TCP connect or bind by default, only listed ports with a port policy, no abstract
//! unix sockets outside the sandbox.
#![cfg(target_os = "linux")]

#[path = "sandbox_harness/mod.rs"]
mod harness;

use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

use harness::{control_then_guarded, Server};
use mcp_guard::sandbox::{NetworkMode, SandboxConfig};
use serde_json::json;

fn listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let port = listener.local_addr().expect("addr").port();
    (listener, port)
}

#[test]
fn net_tcp_connect_to_a_loopback_listener() {
    let (_listener, port) = listener();
    control_then_guarded("tcp_connect", json!({"port": port}));
}

#[test]
fn net_tcp_bind() {
    control_then_guarded("tcp_bind", json!({"port": 0}));
}

#[test]
fn net_abstract_unix_socket_of_the_host() {
    let name = format!(
        "mcp-guard-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
    let _listener = UnixListener::bind_addr(&addr).expect("bind abstract socket");
    control_then_guarded("abstract_connect", json!({"name": name}));
}

#[test]
fn net_port_policy_allows_only_listed_ports() {
    let (_allowed, allowed_port) = listener();
    let (_other, other_port) = listener();
    let mut config = SandboxConfig::default();
    config.network.mode = NetworkMode::Ports;
    config.network.connect.push(allowed_port);
    let mut server = Server::confined(&config);
    harness::assert_succeeded(&server.attack("tcp_connect", json!({"port": allowed_port})));
    harness::assert_blocked(&server.attack("tcp_connect", json!({"port": other_port})));
    harness::assert_blocked(&server.attack("tcp_bind", json!({"port": 0})));
}

#[test]
fn net_required_layer_refuses_an_open_network() {
    // The child's error text does not cross `pre_exec` (only an errno does): compare with the
    // same config without the requirement, which starts.
    let mut config = SandboxConfig::default();
    config.network.mode = NetworkMode::Open;
    Server::confined(&config).assert_alive();
    config
        .require
        .insert(mcp_guard::sandbox::Layer::LandlockNetwork);
    assert!(
        Server::try_confined(&config).is_err(),
        "a required layer that cannot hold must refuse to start"
    );
}

#[test]
// Landlock checks connect() to pathname unix sockets only from ABI 9; with the network off,
// seccomp refuses socket(AF_UNIX) on every kernel.
fn net_pathname_unix_socket_of_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("host.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    control_then_guarded("unix_connect", json!({"path": path.to_string_lossy()}));
}
