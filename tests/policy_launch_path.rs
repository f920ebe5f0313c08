//! The launch allowlist judges the very binary the sandbox runs: both find a bare command name
//! with one PATH search, which never looks in relative PATH entries.
#![cfg(unix)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

#[test]
fn a_relative_path_entry_cannot_make_the_allowlist_judge_another_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A harmless-looking `true` in a relative PATH entry, ahead of the real one.
    let rel = dir.path().join("rel");
    std::fs::create_dir(&rel).expect("mkdir");
    let decoy = rel.join("true");
    std::fs::write(&decoy, "#!/bin/sh\nexit 0\n").expect("write decoy");
    std::fs::set_permissions(&decoy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let real = ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("a true binary");
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        format!("version = 1\n[launch]\ndeny = [\"{real}\"]\n"),
    )
    .expect("write policy");
    let output = Command::new(support::guard_bin())
        .args(["-q", "run", "--policy"])
        .arg(&policy)
        .args(["--", "true"])
        .current_dir(dir.path())
        .env(
            "PATH",
            format!(
                "rel:{}",
                std::path::Path::new(real).parent().unwrap().display()
            ),
        )
        .stdin(Stdio::null())
        .output()
        .expect("run the guard");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refuses to launch"), "{stderr}");
}

/// An executable `./ls` and PATH=".:/usr/bin": the allowlist and the sandbox both take
/// /usr/bin/ls (the decoy is never judged nor run), and the message names the skipped entry.
#[test]
fn a_dot_path_entry_is_skipped_with_a_message_and_the_allowlist_judges_what_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("decoy-ran");
    let decoy = dir.path().join("ls");
    std::fs::write(&decoy, format!("#!/bin/sh\ntouch {}\n", marker.display()))
        .expect("write decoy");
    std::fs::set_permissions(&decoy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let real = ["/usr/bin/ls", "/bin/ls"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("an ls binary");
    let real_dir = std::path::Path::new(real)
        .parent()
        .unwrap()
        .display()
        .to_string();
    let run = |policy: &str| {
        let file = dir.path().join("p.toml");
        std::fs::write(&file, policy).expect("write policy");
        let mut command = Command::new(support::guard_bin());
        command
            .args(["run", "--policy"])
            .arg(&file)
            .args(["--", "ls"])
            .current_dir(dir.path())
            .env("PATH", format!(".:{real_dir}"))
            .stdin(Stdio::null());
        support::private_state(&mut command, dir.path());
        command.output().expect("run the guard")
    };

    // Denying the real ls refuses `ls`, though `./ls` comes first on PATH: the allowlist
    // judged /usr/bin/ls, the file the sandbox would have run.
    let denied = run(&format!("version = 1\n[launch]\ndeny = [\"{real}\"]\n"));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert_eq!(denied.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refuses to launch"), "{stderr}");
    assert!(
        stderr.contains(r#"PATH entries "." are relative and never searched"#),
        "{stderr}"
    );
    assert!(!marker.exists(), "the decoy ran");

    // Allowed, the real ls runs (never the decoy), and the skipped entry is named.
    let allowed = run("version = 1\n[launch]\nallow = [\"ls\"]\n");
    let stderr = String::from_utf8_lossy(&allowed.stderr);
    assert!(
        stderr.contains(r#"PATH entries "." are relative"#),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("`ls` is {real}")), "{stderr}");
    assert!(!marker.exists(), "the decoy ran: {stderr}");
}
