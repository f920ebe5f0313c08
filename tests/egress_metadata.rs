//! Cloud metadata (169.254.169.254) on an interface inside a network namespace the test makes:
//! reachable by a server without the guard, unreachable under `hosts` mode by every road — even
//! through a listed name that resolves to it — in both tiers, as root and as an ordinary user.
#![cfg(target_os = "linux")]

#[path = "sandbox_harness/mod.rs"]
mod harness;

use std::process::Command;

use harness::support::users::identities;
use harness::support::{guard_bin, testkit_bin};

/// Runs inside `unshare --user --map-root-user --net`: sets up the address, a listener with a
/// banner, then drives the hostile server directly and under the guard.
const DRIVER: &str = r#"
import json, os, socket, subprocess, sys, threading
guard, hostile, scratch = sys.argv[1], sys.argv[2], sys.argv[3]
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("169.254.169.254", 80)); srv.listen(16)
def serve():
    while True:
        c, _ = srv.accept()
        try:
            c.recv(64); c.sendall(b"BANNER metadata\n")
        finally:
            c.close()
threading.Thread(target=serve, daemon=True).start()
resolve = os.path.join(scratch, "resolve")
open(resolve, "w").write("metadata.test 169.254.169.254\n")
def attack(argv, name, args, env=None):
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, **(env or {})))
    def call(i, method, params):
        p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}) + "\n")
        p.stdin.flush()
        while True:
            line = p.stdout.readline()
            if not line:
                return {}
            msg = json.loads(line)
            if msg.get("id") == i:
                return msg
    call(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "t", "version": "0"}})
    reply = call(2, "tools/call", {"name": name, "arguments": args})
    p.stdin.close(); p.wait(timeout=20)
    return reply.get("result", {}).get("content", [{}])[0].get("text", repr(reply))
out = {}
out["control"] = attack([hostile], "egress_direct", {"host": "169.254.169.254", "port": 80})
for tier in ["namespace", "broker"]:
    argv = [guard, "-q", "run", "--network-isolation", tier, "--allow-host", "metadata.test:80",
            "--", hostile]
    env = {"MCP_GUARD_RESOLVE_FILE": resolve}
    out[tier + " by address"] = attack(argv, "egress", {"host": "169.254.169.254", "port": 80}, env)
    out[tier + " by listed name"] = attack(argv, "egress", {"host": "metadata.test", "port": 80}, env)
print(json.dumps(out))
"#;

#[test]
fn egress_cloud_metadata_is_unreachable() {
    for tool in ["unshare", "ip", "python3"] {
        if Command::new("which")
            .arg(tool)
            .output()
            .map_or(true, |o| !o.status.success())
        {
            eprintln!("SKIPPED: {tool} is not installed");
            return;
        }
    }
    for who in identities() {
        eprintln!("--- as {}", who.label());
        let scratch = who.scratch_dir();
        // A dummy interface where the kernel has the module, else the namespace's own `lo`.
        let setup = "ip link set lo up && { { ip link add meta0 type dummy 2>/dev/null \
                     && ip link set meta0 up && ip addr add 169.254.169.254/32 dev meta0; } \
                     || ip addr add 169.254.169.254/32 dev lo; } && exec python3 -c \"$0\" \"$@\"";
        let mut command = Command::new("unshare");
        command
            .args([
                "--user",
                "--map-root-user",
                "--net",
                "sh",
                "-c",
                setup,
                DRIVER,
            ])
            .arg(who.binary(&guard_bin()))
            .arg(who.binary(&testkit_bin("hostile-server")))
            .arg(scratch.path());
        who.apply(&mut command);
        // Its pins and audit log stay in the scratch directory, not in the user's home.
        harness::support::private_state(&mut command, scratch.path());
        let output = command.output().expect("run unshare");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() && stderr.contains("unshare failed") {
            eprintln!("SKIPPED: this kernel refuses the test's own namespace: {stderr}");
            return;
        }
        let results: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("driver output ({e}): {stdout}\n{stderr}"));
        harness::assert_succeeded(results["control"].as_str().unwrap_or_default());
        for tier in ["namespace", "broker"] {
            for road in ["by address", "by listed name"] {
                let text = results[format!("{tier} {road}")]
                    .as_str()
                    .unwrap_or_default();
                harness::assert_blocked(text);
            }
        }
    }
}
