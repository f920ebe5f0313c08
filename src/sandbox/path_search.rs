//! The one PATH search: what a bare command name means, for the launch allowlist
//! (`policy::resolve`), the sandbox that runs it (`sandbox::prepare`), the `#!/usr/bin/env NAME`
//! chain (`exec`) and the package launchers. One function, so the allowlist always judges the
//! very binary that runs.
//!
//! Why not the `which` crate: it searches relative PATH entries (`.`, `bin`, an empty entry)
//! against the current directory and expands a leading `~`, which execve and `env` do not. A
//! relative entry makes the program depend on the directory the guard happens to start in, a
//! decoy's favourite place; mcp-guard never searches one, and says so ([`relative_entries`]).

use std::path::{Path, PathBuf};

/// Search `path_var` for an executable `name`; a name with a `/` is taken relative to the CWD.
/// Relative PATH entries are skipped.
pub fn resolve_program(name: &str, path_var: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = std::path::absolute(name).ok()?;
        return is_executable(&p).then_some(p);
    }
    searched_dirs(path_var)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// The PATH entries [`resolve_program`] searches: the absolute ones, in order.
pub fn searched_dirs(path_var: &str) -> impl Iterator<Item = PathBuf> + '_ {
    std::env::split_paths(path_var).filter(|dir| dir.is_absolute())
}

/// The PATH entries never searched (an empty entry, meaning the current directory, shows as `""`).
pub fn relative_entries(path_var: &str) -> Vec<String> {
    std::env::split_paths(path_var)
        .filter(|dir| !dir.is_absolute())
        .map(|dir| format!("{:?}", dir.display().to_string()))
        .collect()
}

/// Why a bare `name` may not be the file a shell would run here: PATH has relative entries,
/// which mcp-guard skips. `None` when it has none, `name` has a `/`, or it is not found at all
/// (the not-found error names the skipped entries).
pub fn skipped_entries_note(name: &str, path_var: &str) -> Option<String> {
    let skipped = relative_entries(path_var);
    if skipped.is_empty() || name.contains('/') {
        return None;
    }
    let found = resolve_program(name, path_var)?.display().to_string();
    Some(format!(
        "PATH entries {} are relative and never searched (what they name depends on the current \
         directory): `{name}` is {found}, the file both the launch allowlist and the sandbox use; \
         write the entry as an absolute path, or give the program's path",
        skipped.join(", ")
    ))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_program_ignores_relative_path_entries() {
        // A decoy in a relative entry is tested for real in tests/policy_launch_path.rs.
        let path_var = "bin::.:/usr/bin:/bin";
        let found = resolve_program("sh", path_var).expect("a shell in /usr/bin or /bin");
        assert!(found.is_absolute(), "{found:?}");
        assert_eq!(relative_entries(path_var), ["\"bin\"", "\"\"", "\".\""]);
        assert_eq!(searched_dirs(path_var).count(), 2);
    }

    #[test]
    fn skipped_entries_note_names_the_entries_and_the_file_used() {
        let note = skipped_entries_note("sh", ".:/usr/bin:/bin").expect("a note");
        assert!(note.contains("\".\""), "{note}");
        assert!(note.contains("/bin/sh"), "{note}");
        assert_eq!(skipped_entries_note("sh", "/usr/bin:/bin"), None);
        assert_eq!(skipped_entries_note("./sh", ".:/usr/bin"), None);
        assert_eq!(
            skipped_entries_note("no-such-command-xyz", ".:/usr/bin"),
            None
        );
    }
}
