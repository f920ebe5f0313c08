//! `mcp-guard policy list`: every shipped profile, each with its one-line description.

mod support;

use std::process::Command;

#[test]
fn list_names_every_shipped_profile_with_a_description() {
    let out = Command::new(support::guard_bin())
        .args(["policy", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
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
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(profile))
            .unwrap_or_else(|| panic!("{profile} missing from:\n{text}"));
        assert!(
            line.len() > profile.len() + 20,
            "{profile} has no description: {line:?}"
        );
    }
}

#[test]
fn list_matches_the_files_in_policies_dir() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let listed = listed_names();
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".toml")
                .map(str::to_owned)
        })
        .collect();
    files.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        sorted, files,
        "every policies/*.toml must be embedded and listed"
    );
}

#[test]
fn list_json_has_every_profile_with_its_description() {
    let out = Command::new(support::guard_bin())
        .args(["policy", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let names = listed_names();
    let listed: Vec<&str> = list
        .as_array()
        .expect("an array")
        .iter()
        .map(|p| {
            assert!(
                p["description"].as_str().is_some_and(|d| d.len() > 20),
                "{p}"
            );
            p["name"].as_str().expect("a name")
        })
        .collect();
    assert_eq!(listed, names);
}

/// The profile names `policy list` prints, in its order.
fn listed_names() -> Vec<String> {
    let out = Command::new(support::guard_bin())
        .args(["policy", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}
