//! `mcp-guard policy show`: the resolved policy as TOML, each value annotated with its layer;
//! layering (profile ← file ← flags), deny winning, the launch check, and errors.

mod support;

use std::path::Path;
use std::process::Command;

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn show(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(support::guard_bin())
        .arg("policy")
        .arg("show")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir.join("home"))
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: text(&out.stdout),
        err: text(&out.stderr),
    }
}

/// The line of `out` that starts with `start` (after indentation).
fn line<'a>(out: &'a str, start: &str) -> &'a str {
    out.lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line {start:?} in:\n{out}"))
}

#[test]
fn show_default_when_nothing_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let r = show(dir.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out
            .contains("# Layers, lowest first: built-in ← profile default ← flags."),
        "{}",
        r.out
    );
    assert!(line(&r.out, "mode = ").ends_with("# profile default"));
    assert!(line(&r.out, "request_timeout = \"60s\"").ends_with("# built-in"));
    let home = dir.path().join("home");
    assert!(line(&r.out, &format!("\"{}/.ssh\",", home.display()))
        .ends_with("# profile default: ${HOME}/.ssh"));
}

#[test]
fn show_layers_profile_file_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "version = 1\n[limits]\nmemory = \"256MiB\"\npids = 10\n[filesystem]\nread = [\"${CWD}/data\"]\n",
    )
    .unwrap();
    let r = show(
        dir.path(),
        &[
            "--profile",
            "strict",
            "--policy",
            "p.toml",
            "--pids",
            "20",
            "--allow-write",
            "out",
            "--allow-net",
            "443",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out
            .contains("built-in ← profile strict ← file p.toml ← flags"),
        "{}",
        r.out
    );
    assert!(line(&r.out, "memory = \"256MiB\"").ends_with("# file p.toml"));
    assert!(line(&r.out, "pids = 20").ends_with("# flag --pids"));
    assert!(line(&r.out, "cpu_time = \"10m\"").ends_with("# profile strict"));
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    let data = line(&r.out, &format!("\"{}/data\"", dir.path().display()));
    assert!(data.ends_with("# file p.toml: ${CWD}/data"), "{data}");
    assert!(
        r.out.contains(&format!("\"{}/out\"", cwd.display()))
            || r.out.contains(&format!("\"{}/out\"", dir.path().display()))
    );
    assert!(line(&r.out, "mode = \"ports\"").ends_with("# flag --allow-net"));
    assert!(line(&r.out, "443,").ends_with("# flag --allow-net"));
    assert!(line(&r.out, "\"seccomp\",").contains("enforce = \"required\" (profile strict)"));
}

#[test]
fn show_deny_wins_over_a_later_allow() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let r = show(
        dir.path(),
        &[
            "--allow-read",
            &home.join(".ssh/id_ed25519").to_string_lossy(),
            "--allow-read",
            &home.to_string_lossy(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("WARNING: read \""), "{}", r.out);
    assert!(
        r.out
            .contains(".ssh/id_ed25519\" (flag --allow-read) is denied by"),
        "{}",
        r.out
    );
    let read = r
        .out
        .split("\nread = [")
        .nth(1)
        .and_then(|s| s.split("\n]").next())
        .unwrap_or_default();
    assert!(
        !read.contains("id_ed25519") && read.contains(&format!("\"{}\"", home.display())),
        "{read}"
    );
}

#[test]
fn show_with_command_resolves_arguments_and_server_dir() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let root = std::fs::canonicalize(root).unwrap();
    let r = show(
        dir.path(),
        &[
            "--profile",
            "filesystem",
            "--",
            "node",
            "server.js",
            &root.to_string_lossy(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.contains("# Server command: node server.js"),
        "{}",
        r.out
    );
    assert!(line(&r.out, &format!("\"{}\",", root.display()))
        .ends_with("# profile filesystem, a server argument"));
}

#[test]
fn show_refuses_a_command_the_launch_allowlist_does_not_name() {
    let dir = tempfile::tempdir().unwrap();
    let r = show(
        dir.path(),
        &["--profile", "node", "--", "curl", "https://example.com"],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.err.contains("does not allow launching `curl`"),
        "{}",
        r.err
    );
    assert!(
        r.err.contains("npx (profile node)") && r.err.contains("allow = [\"curl\"]"),
        "{}",
        r.err
    );
}

#[test]
fn show_warns_about_syscall_allowances() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "version = 1\n[syscalls]\nallow = [\"ptrace\"]\n",
    )
    .unwrap();
    let r = show(dir.path(), &["--policy", "p.toml"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out
            .contains("# WARNING: [syscalls] allow lets the server call `ptrace`"),
        "{}",
        r.out
    );
    assert!(line(&r.out, "\"ptrace\",").ends_with("# file p.toml"));
}

#[test]
fn show_hides_values_the_user_set() {
    let dir = tempfile::tempdir().unwrap();
    let r = show(
        dir.path(),
        &["--profile", "memory", "--env", "API_TOKEN=s3cret"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(!r.out.contains("s3cret"));
    assert!(line(&r.out, "API_TOKEN = \"<hidden>\"").ends_with("# flag --env"));
    let memory = line(&r.out, "MEMORY_FILE_PATH = ");
    assert!(
        memory.contains("/home/.local/share/mcp-guard/memory/memory.jsonl")
            && memory.ends_with("# profile memory"),
        "{memory}"
    );
}

#[test]
fn show_output_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    for profile in [
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
        let r = show(dir.path(), &["--profile", profile]);
        assert_eq!(r.code, 0, "{profile}: {}", r.err);
        let file = dir.path().join(format!("{profile}.toml"));
        std::fs::write(&file, &r.out).unwrap();
        let check = Command::new(support::guard_bin())
            .args(["policy", "check"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{profile}: {}\n{}",
            String::from_utf8_lossy(&check.stderr),
            r.out
        );
    }
}

#[test]
fn show_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let r = show(dir.path(), &["--profile", "nod"]);
    assert_eq!(r.code, 2);
    assert!(
        r.err.contains(
            "unknown profile `nod` (did you mean `node`? shipped profiles: default, strict"
        ),
        "{}",
        r.err
    );

    let r = show(dir.path(), &["--policy", "absent.toml"]);
    assert_eq!(r.code, 2);
    assert!(
        r.err.contains("cannot read policy file absent.toml"),
        "{}",
        r.err
    );

    std::fs::write(
        dir.path().join("bad.toml"),
        "version = 1\n[limits]\nmemroy = 1\n",
    )
    .unwrap();
    let r = show(dir.path(), &["--policy", "bad.toml"]);
    assert_eq!(r.code, 2);
    assert!(
        r.err
            .contains("mcp-guard: error: unknown key `memroy` in [limits]")
            && r.err.contains("bad.toml:3:1"),
        "{}",
        r.err
    );

    for (flag, value, hint) in [
        ("--memory", "lots", "\"512MiB\""),
        ("--allow-net", "web", "443, bind:8080, open or off"),
        ("--require", "apparmor", "landlock, landlock-network"),
        ("--timeout", "30", "\"30s\""),
        ("--allow-read", "${HOEM}/x", "did you mean `${HOME}`?"),
    ] {
        let r = show(dir.path(), &[flag, value]);
        assert_eq!(r.code, 2, "{flag} {value}");
        assert!(r.err.contains(hint), "{flag} {value}: {}", r.err);
    }
}

#[test]
fn show_validation_fields_with_their_layers() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing given: the built-in defaults.
    let r = show(dir.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(line(&r.out, "strict = false").ends_with("# built-in"));
    assert!(line(&r.out, "require_listing = true").ends_with("# built-in"));
    assert!(r.out.contains("\ntolerate = []\n"), "{}", r.out);

    std::fs::write(
        dir.path().join("base.toml"),
        "version = 1\n[validation]\ntolerate = [\"null-optional-fields\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "version = 1\nextends = [\"default\", \"./base.toml\"]\n[validation]\nstrict = false\n\
         require_listing = false\ntolerate = [\"tool-without-input-schema\"]\n",
    )
    .unwrap();
    let r = show(dir.path(), &["--policy", "p.toml"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(line(&r.out, "strict = false").ends_with("# file p.toml"));
    assert!(line(&r.out, "require_listing = false").ends_with("# file p.toml"));
    // Tolerances add up across layers.
    assert!(line(&r.out, "\"null-optional-fields\",").ends_with("# file base.toml"));
    assert!(line(&r.out, "\"tool-without-input-schema\",").ends_with("# file p.toml"));
    // The flag wins over the file.
    let r = show(dir.path(), &["--policy", "p.toml", "--strict-validation"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(line(&r.out, "strict = true").ends_with("# flag --strict-validation"));
}

#[test]
fn show_strict_profile_validates_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let r = show(dir.path(), &["--profile", "strict"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let strict = line(&r.out, "strict = ");
    assert!(
        strict.starts_with("strict = true") && strict.ends_with("# profile strict"),
        "{strict}"
    );
}
