//! `--env NAME=keyring:SERVICE/ACCOUNT`: a secret stored with `mcp-guard secret set` reaches the
//! server's environment, and nowhere else (not the audit log, not stderr); a missing one stops
//! the launch with the fix, the host's `initialize` answered. As root and as an ordinary user:
//! the kernel keyring is per user, so each stores and reads its own.
#![cfg(target_os = "linux")]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use support::users::{identities, Identity};
use support::{guard_bin, testkit_bin};

/// Whether this kernel has keyutils (`/proc/keys` is there with `CONFIG_KEYS`): the only
/// reason these tests may skip. A container that refuses `keyctl` fails them, as it should.
fn kernel_has_keyutils() -> bool {
    let present = Path::new("/proc/keys").exists();
    if !present {
        eprintln!("SKIPPED: this kernel has no keyutils (no /proc/keys), so no keyring to test");
    }
    present
}

/// A service name no other run uses; its secrets are deleted when dropped.
struct Service {
    name: String,
    stored: Vec<(Identity, String)>,
}

impl Service {
    fn new(test: &str) -> Service {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Service {
            name: format!("mcp-guard-test-{test}-{}-{nanos}", std::process::id()),
            stored: Vec::new(),
        }
    }

    fn reference(&self, account: &str) -> String {
        format!("{}/{account}", self.name)
    }

    /// `mcp-guard secret set SERVICE/ACCOUNT` as `who`, the value on stdin (with a newline, as
    /// `echo` gives it).
    fn set(&mut self, who: &Identity, account: &str, value: &str) {
        let reference = self.reference(account);
        let output = secret(who, &["set", &reference], &format!("{value}\n"));
        assert!(
            output.status.success(),
            "secret set: {}",
            text(&output.stderr)
        );
        assert!(
            !text(&output.stderr).contains(value),
            "{}",
            text(&output.stderr)
        );
        self.stored.push((who.clone(), reference));
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        for (who, reference) in &self.stored {
            let _ = secret(who, &["delete", reference], "");
        }
    }
}

fn secret(who: &Identity, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(who.binary(&guard_bin()));
    command.arg("secret").args(args);
    who.apply(&mut command);
    feed(command, &[stdin.to_owned()])
}

/// Run `command` with `lines` on its stdin, then EOF; its whole output.
fn feed(mut command: Command, lines: &[String]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mcp-guard");
    let mut stdin = child.stdin.take().expect("stdin");
    for line in lines {
        stdin.write_all(line.as_bytes()).expect("write stdin");
    }
    drop(stdin);
    child.wait_with_output().expect("wait for mcp-guard")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A whole host session with the guarded hostile server as `who`: initialize, then one
/// `read_env` per name; the guard's output once the host has closed its side.
fn session(
    who: &Identity,
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    names: &[&str],
) -> Output {
    let calls: Vec<(&str, Value)> = names
        .iter()
        .map(|name| ("read_env", json!({"name": name})))
        .collect();
    let mut command = Command::new(who.binary(&guard_bin()));
    command
        .args(["run", "--audit-log"])
        .arg(dir.join("audit.jsonl"));
    command
        .args(args)
        .arg("--")
        .arg(who.binary(&testkit_bin("hostile-server")));
    command.envs(env.iter().copied());
    who.apply(&mut command);
    support::private_state(&mut command, dir);
    host_session(command, &calls)
}

/// Initialize, then one `tools/call` per item (ids 1, 2, …), then EOF.
fn host_session(command: Command, calls: &[(&str, Value)]) -> Output {
    let mut lines = vec![
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "secrets-tests", "version": "0"}}})
        .to_string(),
    ];
    lines.push(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string());
    for (i, (tool, arguments)) in calls.iter().enumerate() {
        lines.push(
            json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                   "params": {"name": tool, "arguments": arguments}})
            .to_string(),
        );
    }
    let lines: Vec<String> = lines.into_iter().map(|l| l + "\n").collect();
    feed(command, &lines)
}

/// The reply with `id` among the guard's stdout lines.
fn reply(output: &Output, id: u64) -> Value {
    text(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["id"] == json!(id))
        .unwrap_or_else(|| {
            panic!(
                "no reply {id}: {}\n{}",
                text(&output.stdout),
                text(&output.stderr)
            )
        })
}

fn call_text(output: &Output, id: u64) -> String {
    let reply = reply(output, id);
    reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {reply}"))
        .to_owned()
}

#[test]
fn a_stored_secret_reaches_the_server_and_nothing_else() {
    if !kernel_has_keyutils() {
        return;
    }
    for who in identities() {
        let label = who.label();
        let mut service = Service::new("reaches");
        // Lengths differ, so each variable is seen to get its own secret.
        let by_flag = "flag-secret-0123456789abcdef";
        let by_policy = "policy-secret-0123456789abcdefghij";
        let by_pass = "passed-secret-0123456789abcdefghijklmnop";
        service.set(&who, "flag", by_flag);
        service.set(&who, "policy", by_policy);
        service.set(&who, "passed", by_pass);

        let check = secret(&who, &["check", &service.reference("flag")], "");
        assert!(check.status.success(), "{label}: {}", text(&check.stdout));
        assert!(
            text(&check.stdout).contains("is stored (28 characters)"),
            "{}",
            text(&check.stdout)
        );
        assert!(!text(&check.stdout).contains(by_flag));

        let dir = who.scratch_dir();
        let policy = dir.path().join("policy.toml");
        std::fs::write(
            &policy,
            format!(
                "version = 1\n[env.set]\nBY_POLICY = \"keyring:{}\"\n",
                service.reference("policy")
            ),
        )
        .expect("write the policy");
        let flag = format!("BY_FLAG=keyring:{}", service.reference("flag"));
        let passed = format!("keyring:{}", service.reference("passed"));
        let output = session(
            &who,
            dir.path(),
            &[
                "--policy",
                policy.to_str().expect("utf-8"),
                "--env",
                &flag,
                "--env",
                "BY_PASS",
            ],
            &[("BY_PASS", &passed)],
            &["BY_FLAG", "BY_POLICY", "BY_PASS"],
        );
        let stderr = text(&output.stderr);
        assert!(
            reply(&output, 0).get("result").is_some(),
            "{label}: {stderr}"
        );
        for (id, value) in [(1, by_flag), (2, by_policy), (3, by_pass)] {
            assert_eq!(
                call_text(&output, id),
                format!("SUCCEEDED: read {} bytes", value.len()),
                "{label}: {stderr}"
            );
        }
        let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
        assert!(
            audit.contains("session"),
            "{label}: the audit log is empty: {audit}"
        );
        for value in [by_flag, by_policy, by_pass] {
            assert!(!audit.contains(value), "{label}: a secret in the audit log");
            assert!(
                !stderr.contains(value),
                "{label}: a secret on stderr: {stderr}"
            );
            assert!(
                !text(&output.stdout).contains(value),
                "{label}: a secret on stdout"
            );
        }
    }
}

#[test]
fn each_user_reads_only_their_own_keyring() {
    if !kernel_has_keyutils() {
        return;
    }
    let people = identities();
    let [root, other] = people.as_slice() else {
        eprintln!("SKIPPED: needs root and the ordinary test user");
        return;
    };
    let mut service = Service::new("per-user");
    service.set(other, "token", "only-for-the-ordinary-user");
    let as_other = secret(other, &["check", &service.reference("token")], "");
    assert!(as_other.status.success(), "{}", text(&as_other.stdout));
    let as_root = secret(root, &["check", &service.reference("token")], "");
    assert_eq!(as_root.status.code(), Some(1), "{}", text(&as_root.stdout));
    assert!(
        text(&as_root.stdout).contains("no secret"),
        "{}",
        text(&as_root.stdout)
    );
}

#[test]
fn a_missing_secret_stops_the_launch_and_answers_initialize_with_the_fix() {
    if !kernel_has_keyutils() {
        return;
    }
    for who in identities() {
        let label = who.label();
        let service = Service::new("missing");
        let reference = service.reference("absent");
        let dir = who.scratch_dir();
        let flag = format!("TOKEN=keyring:{reference}");
        let output = session(&who, dir.path(), &["--env", &flag], &[], &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(126), "{label}: {stderr}");
        let fix = format!("mcp-guard secret set {reference}");
        assert!(stderr.contains(&fix), "{label}: {stderr}");
        assert!(stderr.contains("TOKEN"), "{label}: {stderr}");
        let error = reply(&output, 0);
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&fix), "{label}: {error}");
        // Not started: the hostile server was never run, so no session was audited.
        let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap_or_default();
        assert!(!audit.contains("hostile-server"), "{label}: {audit}");
    }
}

#[test]
fn secret_refuses_empty_and_nul_values_and_malformed_references() {
    let who = Identity::Current;
    let empty = secret(&who, &["set", "mcp-guard-test-empty/me"], "\n");
    assert_eq!(empty.status.code(), Some(2), "{}", text(&empty.stderr));
    assert!(
        text(&empty.stderr).contains("empty"),
        "{}",
        text(&empty.stderr)
    );
    let nul = secret(&who, &["set", "mcp-guard-test-nul/me"], "a\0b");
    assert_eq!(nul.status.code(), Some(2), "{}", text(&nul.stderr));
    assert!(text(&nul.stderr).contains("NUL"), "{}", text(&nul.stderr));
    let absent = secret(&who, &["delete", "mcp-guard-test-absent/me"], "");
    assert_eq!(absent.status.code(), Some(1), "{}", text(&absent.stderr));
    assert!(
        text(&absent.stderr).contains("nothing to remove"),
        "{}",
        text(&absent.stderr)
    );
    let malformed = secret(&who, &["check", "no-slash"], "");
    assert!(!malformed.status.success());
    assert!(
        text(&malformed.stderr).contains("SERVICE/ACCOUNT"),
        "{}",
        text(&malformed.stderr)
    );
}

/// The server is given one secret, not the keyring: without the guard a server of the same user
/// reads any secret stored there; under it `keyctl` is refused.
#[test]
fn the_server_cannot_read_the_keyring_its_secret_came_from() {
    if !kernel_has_keyutils() {
        return;
    }
    for who in identities() {
        let label = who.label();
        let mut service = Service::new("keyring-read");
        service.set(&who, "other", "another-tools-token-0123456789");
        let read = (
            "keyring_read",
            json!({"description": format!("keyring-rs:other@{}", service.name)}),
        );

        let mut control = Command::new(who.binary(&testkit_bin("hostile-server")));
        who.apply(&mut control);
        let output = host_session(control, std::slice::from_ref(&read));
        let control = call_text(&output, 1);
        assert!(
            control.starts_with("SUCCEEDED: read 30 bytes"),
            "{label}: {control}"
        );

        let mut guarded = Command::new(who.binary(&guard_bin()));
        guarded
            .args(["run", "--no-audit", "--"])
            .arg(who.binary(&testkit_bin("hostile-server")));
        who.apply(&mut guarded);
        let dir = who.scratch_dir();
        support::private_state(&mut guarded, dir.path());
        let output = host_session(guarded, &[read]);
        let guarded = call_text(&output, 1);
        assert!(guarded.starts_with("BLOCKED:"), "{label}: {guarded}");
    }
}

/// `policy show` names the reference (no secret in it) and looks nothing up: the secret need
/// not exist to show the policy.
#[test]
fn policy_show_shows_the_reference_and_hides_plain_values() {
    let output = Command::new(guard_bin())
        .args([
            "policy",
            "show",
            "--env",
            "TOKEN=keyring:mcp-guard-test-absent/me",
        ])
        .args(["--env", "PLAIN=s3cret-plain-value"])
        .stdin(Stdio::null())
        .output()
        .expect("run the guard");
    let out = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        out.contains("TOKEN = \"keyring:mcp-guard-test-absent/me\""),
        "{out}"
    );
    assert!(out.contains("PLAIN = \"<hidden>\""), "{out}");
    assert!(!out.contains("s3cret-plain-value"), "{out}");
}

/// A keychain value is a known secret like any `--env` value: redacted from what the server
/// sends back and from the audit log.
#[test]
fn a_keychain_value_echoed_by_the_server_is_redacted() {
    if !kernel_has_keyutils() {
        return;
    }
    let who = Identity::Current;
    let mut service = Service::new("redacted");
    let value = "echoed-secret-0123456789abcdef";
    service.set(&who, "token", value);
    let dir = who.scratch_dir();
    let flag = format!("TOKEN=keyring:{}", service.reference("token"));
    let mut command = Command::new(guard_bin());
    command
        .args(["run", "--env", &flag, "--audit-log"])
        .arg(dir.path().join("audit.jsonl"))
        .arg("--")
        .arg(testkit_bin("echo-server"));
    support::private_state(&mut command, dir.path());
    let output = host_session(
        command,
        &[("echo", json!({"text": format!("the token is {value}")}))],
    );
    let echoed = call_text(&output, 1);
    assert!(!echoed.contains(value), "{echoed}");
    assert!(echoed.contains("REDACTED"), "{echoed}");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
    assert!(!audit.contains(value), "{audit}");
    assert!(!text(&output.stderr).contains(value));
}

/// Where `keyctl` is refused (a container's seccomp profile; here the guard's own filter, with
/// `mcp-guard secret check` run as the guarded "server"), the error says so and what to do.
#[test]
fn an_unavailable_keyring_is_a_clear_error() {
    if !kernel_has_keyutils() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(guard_bin());
    command
        .args(["-q", "run", "--no-audit", "--"])
        .arg(guard_bin())
        .args(["secret", "check", "mcp-guard-test-unavailable/me"]);
    support::private_state(&mut command, dir.path());
    let output = feed(command, &[]);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot use the kernel keyring of uid")
            && stderr.contains("mcp-guard-test-unavailable/me")
            && stderr.contains("refuse `keyctl`"),
        "{stderr}"
    );
}
