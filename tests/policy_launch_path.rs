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
