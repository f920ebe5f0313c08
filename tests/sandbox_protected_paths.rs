//! Protected paths inside a writable directory (`--allow-write DIR`, the git profile's
//! `--repository`, the filesystem profile's roots): each attack plants code that would run
//! later outside the sandbox. Each succeeds without the guard (the control, on a copy of the
//! same tree) and is refused under it, as the test runner (root in CI) and as the ordinary user.
#![cfg(target_os = "linux")]

#[path = "sandbox_harness/mod.rs"]
mod harness;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use harness::support::users::{identities, Identity};
use harness::{path_str, Server};
use serde_json::{json, Value};

type Args = Box<dyn Fn(&Path) -> Value>;

fn write(rel: &'static str) -> (&'static str, Args) {
    (
        "write_file",
        Box::new(move |d| json!({"path": path_str(&d.join(rel))})),
    )
}

fn write_mkdirs(rel: &'static str) -> (&'static str, Args) {
    (
        "write_file_mkdirs",
        Box::new(move |d| json!({"path": path_str(&d.join(rel))})),
    )
}

fn rename(from: &'static str, to: &'static str) -> (&'static str, Args) {
    (
        "rename_file",
        Box::new(move |d| json!({"from": path_str(&d.join(from)), "to": path_str(&d.join(to))})),
    )
}

fn on(name: &'static str, rel: &'static str) -> (&'static str, Args) {
    (
        name,
        Box::new(move |d| json!({"path": path_str(&d.join(rel))})),
    )
}

/// A served directory: a repository with a hook and a config, a nested repository, and the
/// editor / CI / shell files that exist in it (the others are absent).
fn served_tree(dir: &Path) {
    let files: &[(&str, &str)] = &[
        (".git/config", "[core]\n\trepositoryformatversion = 0\n"),
        (".git/HEAD", "ref: refs/heads/main\n"),
        (
            ".git/hooks/post-commit",
            "#!/bin/sh\necho the user's hook\n",
        ),
        (".git/objects/.keep", ""),
        ("sub/nested/.git/config", "[core]\n"),
        (".gitmodules", "[submodule \"lib\"]\n"),
        (".bashrc", "# the user's bashrc\n"),
        (".vscode/extensions.json", "{}\n"),
        (".github/workflows/ci.yml", "on: push\n"),
        ("evil.txt", "[core]\n\tfsmonitor = \"touch /tmp/pwned\"\n"),
        ("notes.txt", "ordinary file\n"),
    ];
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
    }
    std::fs::set_permissions(
        dir.join(".git/hooks/post-commit"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
}

/// Every file below `dir` with its content (directories as `/`), to compare before and after.
fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(dir).expect("below").to_path_buf();
            if entry.file_type().expect("type").is_dir() {
                out.push((rel, "/".into()));
                stack.push(path);
            } else {
                out.push((rel, std::fs::read_to_string(&path).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// A fresh copy of the tree for `who` (owned by them, so the control can change it).
fn tree_for(who: &Identity, build: fn(&Path)) -> (tempfile::TempDir, PathBuf) {
    let scratch = who.scratch_dir();
    let dir = scratch.path().join("project");
    std::fs::create_dir(&dir).expect("mkdir");
    build(&dir);
    if let Identity::Ordinary { uid, gid, .. } = who {
        chown_all(&dir, *uid, *gid);
    }
    let dir = std::fs::canonicalize(&dir).expect("canonical");
    (scratch, dir)
}

fn chown_all(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("chown");
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).expect("read_dir").flatten() {
            chown_all(&entry.path(), uid, gid);
        }
    }
}

/// Each attack succeeds on the control's copy, and is blocked under the guard, which leaves
/// the tree's protected entries as they were.
fn refused_as(who: &Identity, attacks: &[(&'static str, Args)], protected: &[&str]) {
    eprintln!("identity: {}", who.label());
    let (_control_scratch, control_dir) = tree_for(who, served_tree);
    let mut control = Server::direct_as(who);
    for (name, args) in attacks {
        let text = control.attack(name, args(&control_dir));
        assert!(
            text.starts_with("SUCCEEDED:"),
            "control {name} {} as {}: {text}",
            args(&control_dir),
            who.label()
        );
    }
    let (_scratch, dir) = tree_for(who, served_tree);
    let mut guarded = Server::guarded_as(who, &["--allow-write", &path_str(&dir)]);
    // After the start: the guard creates a missing `.git/hooks`.
    let before = snapshot(&dir);
    for (name, args) in attacks {
        let text = guarded.attack(name, args(&dir));
        assert!(
            text.starts_with("BLOCKED:"),
            "guarded {name} {} as {} was not blocked: {text}",
            args(&dir),
            who.label()
        );
    }
    guarded.assert_alive();
    let after = snapshot(&dir);
    let kept = |snap: &[(PathBuf, String)]| -> Vec<(PathBuf, String)> {
        snap.iter()
            .filter(|(p, _)| protected.iter().any(|q| p.starts_with(q)))
            .cloned()
            .collect()
    };
    assert_eq!(
        kept(&before),
        kept(&after),
        "a protected entry changed as {}",
        who.label()
    );
}

#[test]
fn protect_git_hooks_and_config_in_a_served_repository() {
    for who in identities() {
        refused_as(
            &who,
            &[
                write(".git/hooks/post-checkout"),
                write(".git/hooks/post-commit"),
                on("truncate_file", ".git/hooks/post-commit"),
                write(".git/config"),
                on("truncate_file", ".git/config"),
                rename("evil.txt", ".git/config"),
                rename(".git/hooks", ".git/hooks-old"),
                on("delete_file", ".git/config"),
                // The whole `.git`, to rebuild it with a new config and hooks.
                rename(".git", "git-old"),
                write(".gitmodules"),
                // A repository below the served directory.
                write_mkdirs("sub/nested/.git/hooks/post-checkout"),
                write("sub/nested/.git/config"),
                rename("sub/nested/.git", "sub/nested/git-old"),
            ],
            &[".git", "sub/nested/.git", ".gitmodules"],
        );
    }
}

#[test]
fn protect_shell_editor_and_ci_files_in_a_writable_directory() {
    for who in identities() {
        refused_as(
            &who,
            &[
                write(".bashrc"),
                on("truncate_file", ".bashrc"),
                rename("evil.txt", ".bashrc"),
                on("delete_file", ".bashrc"),
                write_mkdirs(".vscode/settings.json"),
                write_mkdirs(".vscode/tasks.json"),
                rename(".vscode", "vscode-old"),
                write_mkdirs(".github/workflows/x.yml"),
                write(".github/workflows/ci.yml"),
                rename(".github/workflows", ".github/old"),
                rename(".github", "github-old"),
            ],
            &[".bashrc", ".vscode", ".github"],
        );
    }
}

#[test]
fn protected_entries_stay_readable_and_the_rest_writable() {
    for who in identities() {
        eprintln!("identity: {}", who.label());
        let (_scratch, dir) = tree_for(&who, served_tree);
        let mut guarded = Server::guarded_as(&who, &["--allow-write", &path_str(&dir)]);
        for rel in [
            ".git/config",
            ".git/hooks/post-commit",
            ".bashrc",
            ".github/workflows/ci.yml",
        ] {
            let text = guarded.attack("read_file", json!({"path": path_str(&dir.join(rel))}));
            harness::assert_succeeded(&text);
        }
        // git's own writes in .git, and ordinary files anywhere, new top-level ones included.
        for (name, args) in [
            write(".git/index.lock"),
            rename(".git/index.lock", ".git/index"),
            write(".git/HEAD"),
            write_mkdirs(".git/objects/ab/cdef"),
            write_mkdirs(".git/refs/heads/main"),
            write("notes.txt"),
            write("new-top-level.txt"),
            write_mkdirs("src/new/file.rs"),
            rename("notes.txt", "src/notes.txt"),
        ] {
            let text = guarded.attack(name, args(&dir));
            assert!(
                text.starts_with("SUCCEEDED:"),
                "{name} {} as {}: {text}",
                args(&dir),
                who.label()
            );
        }
    }
}

#[test]
fn an_exact_write_path_unprotects_it() {
    for who in identities() {
        eprintln!("identity: {}", who.label());
        let (_scratch, dir) = tree_for(&who, served_tree);
        let vscode = path_str(&dir.join(".vscode"));
        let mut guarded = Server::guarded_as(
            &who,
            &["--allow-write", &path_str(&dir), "--allow-write", &vscode],
        );
        let (name, args) = write(".vscode/settings.json");
        harness::assert_succeeded(&guarded.attack(name, args(&dir)));
        let (name, args) = write(".bashrc");
        harness::assert_blocked(&guarded.attack(name, args(&dir)));
    }
}

/// A protected name that does not exist when the server starts cannot be *refused* (no inode
/// to mount on; landlock has no per-name rights): the supervisor watches for it and moves it
/// aside the moment it appears (SECURITY.md, "Protected paths"). The control keeps the files.
#[test]
fn a_missing_protected_name_is_moved_aside_when_created() {
    let planted = [
        ".mcp.json",
        ".envrc",
        ".claude/settings.json",
        ".config/fish/config.fish",
    ];
    let repository = |d: &Path| {
        std::fs::create_dir_all(d.join(".git/objects")).expect("mkdir");
        std::fs::write(d.join(".git/config"), "[core]\n").expect("write");
    };
    for who in identities() {
        eprintln!("identity: {}", who.label());
        let (_control_scratch, control_dir) = tree_for(&who, repository);
        let mut control = Server::direct_as(&who);
        for rel in planted {
            let (name, args) = write_mkdirs(rel);
            harness::assert_succeeded(&control.attack(name, args(&control_dir)));
            assert!(control_dir.join(rel).is_file(), "control: {rel} stays");
        }

        let (_scratch, dir) = tree_for(&who, repository);
        let mut guarded = Server::guarded_as(&who, &["--allow-write", &path_str(&dir)]);
        for rel in planted {
            let (name, args) = write_mkdirs(rel);
            // The write itself succeeds (nothing can refuse it)...
            harness::assert_succeeded(&guarded.attack(name, args(&dir)));
        }
        // ...and the protected name is gone again within moments, kept under another name.
        let top = |rel: &str| rel.split('/').next().unwrap_or(rel).to_owned();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for rel in planted {
            let protected = match rel {
                ".config/fish/config.fish" => ".config/fish".to_owned(),
                _ => top(rel),
            };
            while std::fs::symlink_metadata(dir.join(&protected)).is_ok()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            assert!(
                std::fs::symlink_metadata(dir.join(&protected)).is_err(),
                "{protected} was not moved aside as {}",
                who.label()
            );
            let path = dir.join(&protected);
            let aside = format!(
                "{}.mcp-guard-quarantined-",
                path.file_name().expect("name").to_string_lossy()
            );
            let kept = std::fs::read_dir(path.parent().expect("parent"))
                .expect("read_dir")
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&aside));
            assert!(kept, "{protected}: what the server wrote is kept aside");
        }
        assert!(dir.join(".config").is_dir(), "a directory on the way stays");
        // A missing `.git/hooks` is created by the guard, and protected outright.
        assert!(dir.join(".git/hooks").is_dir());
        let (name, args) = write(".git/hooks/post-checkout");
        harness::assert_blocked(&guarded.attack(name, args(&dir)));
    }
}

/// The watch that moves created protected names aside runs outside the sandbox: a server must
/// not steer it at the user's own files by making a directory on the way a symlink (here
/// `.config` → the user's real config directory holding `fish/`). The control shows the link
/// itself is the server's to make.
#[test]
fn the_watch_is_never_steered_through_a_symlink() {
    for who in identities() {
        eprintln!("identity: {}", who.label());
        let (_home_scratch, users_config) = tree_for(&who, |d| {
            std::fs::create_dir_all(d.join("fish")).expect("mkdir");
            std::fs::write(d.join("fish/config.fish"), "# the user's\n").expect("write");
        });
        let link = |d: &Path| json!({"target": path_str(&users_config), "path": path_str(&d.join(".config"))});

        let (_control_scratch, control_dir) = tree_for(&who, |_| {});
        let mut control = Server::direct_as(&who);
        harness::assert_succeeded(&control.attack("symlink_at", link(&control_dir)));

        let (_scratch, dir) = tree_for(&who, |_| {});
        let mut guarded = Server::guarded_as(&who, &["--allow-write", &path_str(&dir)]);
        harness::assert_succeeded(&guarded.attack("symlink_at", link(&dir)));
        // Give the watch time to act on the new `.config`, were it to follow it.
        std::thread::sleep(std::time::Duration::from_millis(500));
        drop(guarded); // the last sweep runs once the tree is dead
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(
            users_config.join("fish/config.fish").is_file(),
            "the user's fish config was moved through the link as {}",
            who.label()
        );
        assert!(std::fs::symlink_metadata(dir.join(".config")).is_ok_and(|m| m.is_symlink()));
    }
}

/// mcp-guard's own directories inside a writable directory (a server given `~`): its pins, its
/// user config and its package store are read-only to the server, so it cannot approve its own
/// changes, change the guard's defaults or rewrite the code a later `npx` server runs. The
/// state directory is created before the server starts when it does not exist yet.
#[test]
fn the_guards_own_state_config_and_store_are_protected_in_a_writable_home() {
    let own = |dir: &Path| {
        let pin = dir.join(".local/state/mcp-guard/pins/server.json");
        std::fs::create_dir_all(pin.parent().expect("parent")).expect("mkdir");
        std::fs::write(&pin, "{}\n").expect("pin");
        let store = dir.join(".cache/mcp-guard/store/npm/pkg@1/index.js");
        std::fs::create_dir_all(store.parent().expect("parent")).expect("mkdir");
        std::fs::write(&store, "// the package\n").expect("store");
    };
    let attacks = || {
        vec![
            write(".local/state/mcp-guard/pins/server.json"),
            on("delete_file", ".local/state/mcp-guard/pins/server.json"),
            rename(".local/state/mcp-guard", ".local/state/old"),
            write(".cache/mcp-guard/store/npm/pkg@1/index.js"),
            write_mkdirs(".config/mcp-guard/config.toml"),
        ]
    };
    for who in identities() {
        eprintln!("identity: {}", who.label());
        let (_control_scratch, control_dir) = tree_for(&who, served_tree);
        own(&control_dir);
        if let Identity::Ordinary { uid, gid, .. } = &who {
            chown_all(&control_dir, *uid, *gid);
        }
        let mut control = Server::direct_as(&who);
        for (name, args) in attacks() {
            let text = control.attack(name, args(&control_dir));
            assert!(text.starts_with("SUCCEEDED:"), "control {name}: {text}");
        }
        let (_scratch, dir) = tree_for(&who, served_tree);
        own(&dir);
        if let Identity::Ordinary { uid, gid, .. } = &who {
            chown_all(&dir, *uid, *gid);
        }
        let (state, config, cache) = (
            dir.join(".local/state"),
            dir.join(".config"),
            dir.join(".cache"),
        );
        let mut guarded = Server::guarded_env_as(
            &who,
            &["--allow-write", &path_str(&dir)],
            &[
                ("XDG_STATE_HOME", state.as_path()),
                ("XDG_CONFIG_HOME", config.as_path()),
                ("XDG_CACHE_HOME", cache.as_path()),
            ],
        );
        for (name, args) in attacks() {
            let text = guarded.attack(name, args(&dir));
            assert!(
                text.starts_with("BLOCKED:"),
                "guarded {name} as {} was not blocked: {text}",
                who.label()
            );
        }
        guarded.assert_alive();
        let pin = dir.join(".local/state/mcp-guard/pins/server.json");
        assert_eq!(std::fs::read_to_string(pin).expect("pin"), "{}\n");
    }
}
