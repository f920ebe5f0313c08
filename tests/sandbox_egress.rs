//! `hosts` network mode: the server reaches only the hosts its policy names, through the
//! guard's proxy, in both isolation tiers, as root and as an ordinary user. Every attack is
//! first shown to work without the guard (the control).
#![cfg(target_os = "linux")]

#[path = "sandbox_harness/mod.rs"]
mod harness;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

use harness::support::users::{identities, Identity};
use harness::{assert_blocked, assert_succeeded, Server};
use serde_json::{json, Value};

/// A loopback listener that answers each connection's first line with a banner, so an attack
/// counts only when bytes really crossed.
struct Target {
    port: u16,
}

impl Target {
    fn on(address: &str) -> Target {
        Target::on_port(address, 0)
    }

    fn on_port(address: &str, port: u16) -> Target {
        let listener = TcpListener::bind((address, port)).expect("bind a target listener");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_ok() {
                        let _ = (&stream).write_all(b"BANNER from the target\n");
                    }
                });
            }
        });
        Target { port }
    }
}

const TIERS: &[&str] = &["namespace", "broker"];

fn audit_records(path: &Path, kind: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == kind)
        .collect()
}

fn each_tier_and_identity(test: impl Fn(&str, &Identity)) {
    for who in identities() {
        for tier in TIERS {
            eprintln!("--- tier {tier}, as {}", who.label());
            test(tier, &who);
        }
    }
}

#[test]
fn egress_unlisted_hosts_are_unreachable_by_every_road() {
    each_tier_and_identity(|tier, who| {
        let unlisted = Target::on("127.0.0.1");
        let listed = Target::on("127.0.0.1");
        let to_unlisted = json!({"host": "127.0.0.1", "port": unlisted.port});
        let to_listed = json!({"host": "127.0.0.1", "port": listed.port});
        let udp = json!({"host": "127.0.0.1", "port": unlisted.port});

        let mut control = Server::direct_as(who);
        assert_succeeded(&control.attack("egress", to_unlisted.clone()));
        assert_succeeded(&control.attack("udp_send_to", udp.clone()));

        let scratch = who.scratch_dir();
        let audit = scratch.path().join("audit.jsonl");
        let allow = format!("127.0.0.1/32:{}", listed.port);
        let mut guarded = Server::guarded_as(
            who,
            &[
                "--network-isolation",
                tier,
                "--allow-host",
                &allow,
                "--audit-log",
                &audit.to_string_lossy(),
            ],
        );
        // Directly, as HTTP CONNECT, as SOCKS5: all refused.
        assert_blocked(&guarded.attack("egress", to_unlisted));
        // The listed host, through the proxy: works, and only through it.
        assert_succeeded(&guarded.attack("egress_proxy", to_listed.clone()));
        assert_blocked(&guarded.attack("egress_direct", to_listed));
        assert_blocked(&guarded.attack("udp_send_to", udp));
        guarded.assert_alive();
        drop(guarded);

        let records = audit_records(&audit, "egress");
        let denied = records
            .iter()
            .find(|r| r["decision"] == "deny" && r["port"] == unlisted.port)
            .unwrap_or_else(|| panic!("no refusal recorded: {records:?}"));
        assert_eq!(denied["calls"][0]["tool"], "egress", "{denied}");
        let allowed = records
            .iter()
            .find(|r| r["decision"] == "allow")
            .unwrap_or_else(|| panic!("no allowed connection recorded: {records:?}"));
        assert_eq!(allowed["calls"][0]["tool"], "egress_proxy", "{allowed}");
        assert!(allowed["bytes_up"].as_u64() > Some(0), "{allowed}");
        let log = std::fs::read_to_string(&audit).unwrap_or_default();
        assert!(
            log.contains(&format!("\"network_isolation\":\"{tier}\"")),
            "the session record names the tier {tier}"
        );
    });
}

#[test]
// Landlock rules are by port only: a listener on the proxy's port at another address is the
// gap the broker closes (and that the namespace has no route to).
fn egress_the_proxy_port_at_another_address() {
    each_tier_and_identity(|tier, who| {
        let mut guarded = Server::guarded_as(
            who,
            &[
                "--network-isolation",
                tier,
                "--allow-host",
                "127.0.0.1/32:9",
            ],
        );
        let text = guarded.attack("proxy_port", json!({}));
        let port: u16 = text
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no proxy port: {text}"));
        let elsewhere = Target::on_port("127.0.0.2", port);
        let target = json!({"host": "127.0.0.2", "port": elsewhere.port});
        assert_succeeded(&Server::direct_as(who).attack("egress_direct", target.clone()));
        assert_blocked(&guarded.attack("egress_direct", target));
        guarded.assert_alive();
    });
}

#[test]
fn egress_unix_sockets_outside_the_area() {
    each_tier_and_identity(|tier, who| {
        let scratch = who.scratch_dir();
        let path = scratch.path().join("docker.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
        let target = json!({"path": path.to_string_lossy()});
        assert_succeeded(&Server::direct_as(who).attack("unix_connect", target.clone()));
        let mut guarded = Server::guarded_as(
            who,
            &["--network-isolation", tier, "--allow-host", "example.org"],
        );
        assert_blocked(&guarded.attack("unix_connect", target));
        guarded.assert_alive();
    });
}

#[test]
// Names are resolved by the proxy, which checks the address it connects to: a listed name
// that resolves to loopback, a rebinding name, and IPv4-mapped IPv6 are all refused.
fn egress_names_rebinding_and_mapped_addresses() {
    each_tier_and_identity(|tier, who| {
        let loopback = Target::on("127.0.0.1");
        let other = Target::on("127.0.0.2");
        let scratch = who.scratch_dir();
        let hosts = scratch.path().join("resolve");
        std::fs::write(&hosts, "exfil.test 127.0.0.1\nrebind.test 127.0.0.2\n")
            .expect("write resolve file");
        let allow_other = format!("127.0.0.2/32:{}", other.port);
        let allow_exfil = format!("exfil.test:{}", loopback.port);
        let allow_rebind = format!("rebind.test:{},{}", other.port, loopback.port);
        let command_args = [
            "--network-isolation",
            tier,
            "--allow-host",
            &allow_other,
            "--allow-host",
            &allow_exfil,
            "--allow-host",
            &allow_rebind,
        ];
        let mut guarded = Server::guarded_env_as(
            who,
            &command_args,
            &[("MCP_GUARD_RESOLVE_FILE", hosts.as_path())],
        );
        // A listed name that resolves to loopback: refused (only a CIDR entry opens loopback).
        assert_blocked(&guarded.attack(
            "egress_proxy",
            json!({"host": "exfil.test", "port": loopback.port}),
        ));
        // Rebinding: first to an address a CIDR entry allows, then to loopback.
        assert_succeeded(&guarded.attack(
            "egress_proxy",
            json!({"host": "rebind.test", "port": other.port}),
        ));
        std::fs::write(&hosts, "rebind.test 127.0.0.1\n").expect("rebind");
        assert_blocked(&guarded.attack(
            "egress_proxy",
            json!({"host": "rebind.test", "port": loopback.port}),
        ));
        // IPv4-mapped IPv6 of loopback.
        assert_blocked(&guarded.attack(
            "egress_proxy",
            json!({"host": "::ffff:127.0.0.1", "port": loopback.port}),
        ));
        guarded.assert_alive();
    });
}
