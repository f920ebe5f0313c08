//! `mcp-guard policy check`: valid files pass; every kind of mistake is refused with
//! `file:line:col`, the offending text and what to write instead.

mod support;

use std::path::Path;
use std::process::Command;

/// Write `files` (name, text) into a temp dir and run `policy check` on the first one.
fn check(files: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = Command::new(support::guard_bin())
        .args(["policy", "check", files[0].0])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Check one file and expect it refused with all of `needles` in the message.
fn refused(text: &str, needles: &[&str]) {
    let (code, _, err) = check(&[("p.toml", text)]);
    assert_eq!(code, 1, "expected exit 1 for:\n{text}\nstderr:\n{err}");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn check_accepts_a_full_policy() {
    let text = r#"
version = 1
description = "everything at once"
extends = ["node"]
enforce = "required"
require = ["seccomp"]
[launch]
allow = ["npx", "/usr/bin/node"]
deny = ["curl"]
[filesystem]
read = ["${CWD}", "${HOME}/.config/x/*.json"]
write = ["${TMPDIR}/out", "${XDG_CACHE_HOME}/x"]
exec = ["/usr/bin/git"]
deny = ["${HOME}/.ssh"]
create = ["${XDG_DATA_HOME}/x"]
arg_paths = "read"
[network]
mode = "hosts"
allow = ["api.github.com", "*.githubusercontent.com:443", "10.20.0.0/16:5432", "[::1]:8080"]
udp = ["10.0.0.53:53"]
unix = ["/run/user/1000/agent.sock"]
isolation = "broker"
[limits]
memory = "512MiB"
pids = 64
cpus = 1.5
cpu_time = "10m"
wall_clock = "8h"
file_size = "100MiB"
open_files = "unlimited"
request_timeout = "30s"
max_message_bytes = 1048576
[env]
pass = ["LANG"]
[env.set]
NODE_ENV = "production"
[syscalls]
deny = ["ptrace"]
allow = ["io_uring_setup"]
[tools]
allow = ["read_*"]
deny = ["delete_*"]
rate_limit = "10/s"
[tools.rate_limits]
write_file = "30/min"
[tools.arguments.write_file]
path = { under = ["${CWD}"], max_length = 4096 }
content = { pattern = '^[^\x00]*$' }
[prompts]
deny = ["*debug*"]
[resources]
allow = ["file:///srv/**", "memory://*"]
deny = ["file:///**/.env"]
file_roots = ["${CWD}"]
[server_requests]
sampling = "deny"
elicitation = "allow"
roots = "allow"
[redaction]
enabled = true
builtin = true
allow = ['sk-test-[0-9a-f]+']
[redaction.patterns]
internal = 'itk_[A-Za-z0-9]{32}'
[errors]
sanitize = true
[validation]
strict = true
require_listing = true
tolerate = ["null-optional-fields", "content-without-type", "tool-without-input-schema"]
[audit]
enabled = true
path = "${XDG_STATE_HOME}/mcp-guard/audit.jsonl"
required = true
on_suspicious = "kill"
suspicious_refusals = 10
suspicious_window = "30s"
redact_keys = ["password"]
max_value_bytes = "4KiB"
"#;
    let (code, out, err) = check(&[("p.toml", text)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "p.toml: ok");
}

#[test]
fn check_accepts_every_shipped_profile_through_extends() {
    for p in [
        "default",
        "strict",
        "node",
        "python",
        "filesystem",
        "memory",
        "everything",
        "time",
        "git",
    ] {
        let (code, _, err) = check(&[("p.toml", &format!("version = 1\nextends = [\"{p}\"]\n"))]);
        assert_eq!(code, 0, "{p}: {err}");
    }
}

#[test]
fn check_unknown_key_suggests_the_closest() {
    refused(
        "version = 1\n[filesystem]\nwrte = [\"/tmp\"]\n",
        &[
            "unknown key `wrte` in [filesystem]",
            "p.toml:3:1",
            "wrte = [\"/tmp\"]",
            "did you mean `write`?",
        ],
    );
}

#[test]
fn check_unknown_section_suggests_the_closest() {
    refused(
        "version = 1\n[filesytem]\nread = []\n",
        &[
            "unknown key `filesytem` at the top level",
            "p.toml:2:2",
            "did you mean `filesystem`?",
        ],
    );
}

#[test]
fn check_unknown_key_without_near_match_lists_known_keys() {
    refused(
        "version = 1\n[network]\nfirewall = 1\n",
        &[
            "unknown key `firewall` in [network]",
            "known keys here: mode, connect, bind",
        ],
    );
}

#[test]
fn check_wrong_type_shows_an_example() {
    refused(
        "version = 1\n[limits]\nmemory = true\n",
        &[
            "`limits.memory`: invalid type: boolean `true`",
            "p.toml:3:10",
            "write it like this:",
            "memory = \"512MiB\"",
        ],
    );
    refused(
        "version = 1\n[filesystem]\nread = \"/tmp\"\n",
        &[
            "`filesystem.read`: invalid type: string",
            "p.toml:3:8",
            "read = [\"${CWD}\"",
        ],
    );
}

#[test]
fn check_bad_size_duration_count_and_rate() {
    refused(
        "version = 1\n[limits]\nmemory = \"lots\"\n",
        &["p.toml:3:10", "`lots` is not a size", "\"512MiB\""],
    );
    refused(
        "version = 1\n[limits]\nwall_clock = 30\n",
        &["p.toml:3:14", "a bare number has no unit; write \"30s\""],
    );
    refused(
        "version = 1\n[limits]\nrequest_timeout = \"soon\"\n",
        &["`soon` is not a duration", "\"30s\""],
    );
    refused(
        "version = 1\n[limits]\npids = 0\n",
        &["p.toml:3:8", "`limits.pids`", "positive integer"],
    );
    refused(
        "version = 1\n[tools]\nrate_limit = \"fast\"\n",
        &["p.toml:3:14", "`fast` is not a rate", "\"10/s\""],
    );
}

#[test]
fn check_bad_enum_value_lists_the_choices() {
    refused(
        "version = 1\n[network]\nmode = \"closed\"\n",
        &[
            "p.toml:3:8",
            "unknown variant `closed`, expected one of `off`, `hosts`, `ports`, `open`",
            "mode = \"hosts\"",
        ],
    );
    refused(
        "version = 1\nenforce = \"always\"\n",
        &["p.toml:2:11", "expected `best-effort` or `required`"],
    );
}

#[test]
fn check_bad_validation_values_say_what_is_allowed() {
    refused(
        "version = 1\n[validation]\ntolerate = [\"content-without-type\", \"null-optional-field\"]\n",
        &[
            "p.toml:3:37",
            "`null-optional-field` is not a schema fault mcp-guard can tolerate",
            "(did you mean \"null-optional-fields\"?)",
            "write one of \"null-optional-fields\", \"content-without-type\", \"tool-without-input-schema\"",
        ],
    );
    refused(
        "version = 1\n[validation]\ntolerate = [\"everything\"]\n",
        &[
            "p.toml:3:13",
            "`everything` is not a schema fault",
            "write one of",
        ],
    );
    refused(
        "version = 1\n[validation]\nstrict = \"yes\"\n",
        &["p.toml:3:10", "`validation.strict`", "strict = true"],
    );
    refused(
        "version = 1\n[validation]\ntolerate = \"null-optional-fields\"\n",
        &["p.toml:3:12", "tolerate = [\"null-optional-fields\""],
    );
    refused(
        "version = 1\n[validation]\nrequire_listings = true\n",
        &[
            "p.toml:3:1",
            "unknown key `require_listings` in [validation]",
            "did you mean `require_listing`?",
        ],
    );
}

#[test]
fn check_bad_glob() {
    refused(
        "version = 1\n[tools]\nallow = [\"read_[a\"]\n",
        &[
            "p.toml:3:10",
            "bad glob `read_[a`",
            "unclosed character class",
        ],
    );
    refused(
        "version = 1\n[filesystem]\nread = [\"/a/{b\"]\n",
        &["p.toml:3:9", "bad glob `/a/{b`"],
    );
}

#[test]
fn check_bad_uri_pattern_and_regex() {
    refused(
        "version = 1\n[resources]\nallow = [\"docs/*\"]\n",
        &[
            "p.toml:3:10",
            "not a URI pattern",
            "\"file:///srv/docs/**\"",
        ],
    );
    refused(
        "version = 1\n[resources]\nallow = [\"FILE:///x\"]\n",
        &["write \"file:///x\""],
    );
    refused(
        "version = 1\n[redaction.patterns]\nx = '(unclosed'\n",
        &["p.toml:3:5", "bad regular expression `(unclosed`"],
    );
}

#[test]
fn check_relative_path_says_what_to_write() {
    refused(
        "version = 1\n[filesystem]\nread = [\"data/x\"]\n",
        &["p.toml:3:9", "`data/x` is relative", "\"${CWD}/data/x\""],
    );
    refused(
        "version = 1\n[filesystem]\nwrite = [\"~alice/notes\"]\n",
        &["only `~` and `~/`", "absolute path"],
    );
    refused(
        "version = 1\n[filesystem]\nread = [\"/a/../b\"]\n",
        &["contains `..`"],
    );
}

/// `~/` is the user's home, in a policy file as on the command line.
#[test]
fn check_accepts_a_path_in_the_home() {
    let (code, _, err) = check(&[(
        "p.toml",
        "version = 1\n[filesystem]\nwrite = [\"~/notes\"]\n",
    )]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn check_unknown_variable_suggests_the_closest() {
    refused(
        "version = 1\n[filesystem]\nread = [\"${HOEM}/x\"]\n",
        &[
            "p.toml:3:9",
            "unknown variable `${HOEM}`",
            "did you mean `${HOME}`?",
        ],
    );
    refused(
        "version = 1\n[filesystem]\nread = [\"$HOME/x\"]\n",
        &["write variables with braces, `${HOME}`"],
    );
    refused(
        "version = 1\n[env.set]\nX = \"${BANANAS}\"\n",
        &[
            "p.toml:3:5",
            "unknown variable `${BANANAS}`",
            "known variables: ${HOME}",
        ],
    );
}

#[test]
fn check_contradiction_between_allow_and_deny() {
    refused(
        "version = 1\n[filesystem]\nwrite = [\"${HOME}/.ssh/x\"]\ndeny = [\"${HOME}/.ssh\"]\n",
        &[
            "p.toml:3:10",
            "`${HOME}/.ssh/x` is both in `write` and denied",
            "deny `${HOME}/.ssh` (line 4) wins",
        ],
    );
    refused(
        "version = 1\n[tools]\nallow = [\"x\"]\ndeny = [\"x\"]\n",
        &[
            "p.toml:3:10",
            "`x` is both allowed and denied in [tools]",
            "the deny (line 4) wins",
        ],
    );
    refused(
        "version = 1\n[syscalls]\nallow = [\"ptrace\"]\ndeny = [\"ptrace\"]\n",
        &["both allowed and denied in [syscalls]"],
    );
}

#[test]
fn check_ports_contradict_network_mode() {
    refused(
        "version = 1\n[network]\nmode = \"off\"\nconnect = [443]\n",
        &[
            "p.toml:4:12",
            "`connect` ports have no effect with `mode = \"off\"`",
            "write `mode = \"ports\"`",
        ],
    );
    refused(
        "version = 1\n[network]\nbind = [0]\n",
        &["port 0 is not a port"],
    );
    refused(
        "version = 1\n[network]\nconnect = [70000]\n",
        &["p.toml:3:12", "`network.connect`", "connect = [443]"],
    );
}

#[test]
fn check_version_missing_or_unsupported() {
    refused(
        "[network]\nmode = \"off\"\n",
        &[
            "missing `version`",
            "p.toml:1:1",
            "add `version = 1` as the first line",
        ],
    );
    refused(
        "version = 2\n",
        &[
            "unsupported policy version 2",
            "p.toml:1:11",
            "reads `version = 1`",
        ],
    );
}

#[test]
fn check_toml_syntax_error_has_a_location() {
    refused("version = 1\n[limits\n", &["p.toml:2:8", "unclosed table"]);
}

#[test]
fn check_unknown_profile_in_extends() {
    refused(
        "version = 1\nextends = [\"nod\"]\n",
        &[
            "unknown profile `nod`",
            "p.toml:2:12",
            "did you mean `node`?",
            "\"./nod.toml\"",
        ],
    );
}

#[test]
fn check_extends_cycle_is_refused() {
    let (code, _, err) = check(&[
        ("a.toml", "version = 1\nextends = [\"./b.toml\"]\n"),
        ("b.toml", "version = 1\nextends = [\"./a.toml\"]\n"),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("`extends` cycle: a.toml → b.toml → a.toml") && err.contains("b.toml:2:12"),
        "{err}"
    );
}

#[test]
fn check_errors_in_an_extended_file_point_into_it() {
    let (code, _, err) = check(&[
        ("a.toml", "version = 1\nextends = [\"./base.toml\"]\n"),
        ("base.toml", "version = 1\n[limits]\nmemroy = \"1GiB\"\n"),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("base.toml:3:1") && err.contains("did you mean `memory`?"),
        "{err}"
    );
    let (code, _, err) = check(&[("a.toml", "version = 1\nextends = [\"./missing.toml\"]\n")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("a.toml:2:12") && err.contains("cannot read `./missing.toml`"),
        "{err}"
    );
}

#[test]
fn check_reports_every_problem_and_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |n: &str, t: &str| std::fs::write(dir.path().join(n), t).unwrap();
    write("good.toml", "version = 1\n");
    write("bad.toml", "[network]\nmode = \"off\"\nconnect = [443]\n");
    let out = Command::new(support::guard_bin())
        .args(["policy", "check", "good.toml", "bad.toml", "absent.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("good.toml: ok"));
    assert!(
        stderr.contains("missing `version`")
            && stderr.contains("error: `connect` ports have no effect"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cannot read policy file absent.toml"),
        "{stderr}"
    );
    assert!(!Path::new("absent.toml").exists());
}

#[test]
fn check_calls_ports_mode_weak_and_says_what_to_write() {
    let (code, out, err) = check(&[(
        "p.toml",
        "version = 1\n[network]\nmode = \"ports\"\nconnect = [443]\n",
    )]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is weak"), "{out}");
    assert!(out.contains("allow = [\"api.example.com\"]"), "{out}");
}

#[test]
fn check_refuses_a_bad_host_rule_where_it_is() {
    refused(
        "version = 1\n[network]\nallow = [\"api.github.com\", \"https://evil.example/x\"]\n",
        &["[network] allow", "p.toml:3:"],
    );
    refused(
        "version = 1\n[network]\nmode = \"off\"\nallow = [\"api.github.com\"]\n",
        &["have no effect with `mode = \"off\"`"],
    );
}
