//! The wrapped form of a host entry, whatever the config format: `command` becomes mcp-guard and
//! `args` becomes `run --profile P [--env NAME]… -- ORIGINAL_COMMAND ORIGINAL_ARGS…`, so that
//! the original launch can always be read back from the entry itself.

use std::path::Path;

/// The program name that marks an entry as already wrapped.
const GUARD_NAME: &str = "mcp-guard";

/// `run --profile PROFILE --env NAME… -- COMMAND ARGS…`
pub fn wrapped_args(
    profile: &str,
    env_names: &[String],
    command: &str,
    args: &[String],
) -> Vec<String> {
    let mut out = vec!["run".to_owned(), "--profile".to_owned(), profile.to_owned()];
    for name in env_names {
        out.push("--env".to_owned());
        out.push(name.clone());
    }
    out.push("--".to_owned());
    out.push(command.to_owned());
    out.extend(args.iter().cloned());
    out
}

/// The original command and arguments of an entry that runs `mcp-guard run … -- CMD ARGS…`;
/// `None` when the entry is not wrapped.
pub fn original_launch(command: &str, args: &[String]) -> Option<(String, Vec<String>)> {
    let is_guard = Path::new(command)
        .file_name()
        .is_some_and(|n| n == GUARD_NAME);
    if !is_guard || args.first().map(String::as_str) != Some("run") {
        return None;
    }
    let separator = args.iter().position(|a| a == "--")?;
    let (original, rest) = args[separator + 1..].split_first()?;
    Some((original.clone(), rest.to_vec()))
}

/// The `--profile` of a wrapped entry's args (before `--`).
pub fn wrapped_profile(args: &[String]) -> Option<&str> {
    let guard_args = args.split(|a| a == "--").next()?;
    guard_args
        .windows(2)
        .find(|w| w[0] == "--profile")
        .map(|w| w[1].as_str())
}

/// Environment names `--env` accepts; an entry with another key is not wrapped (the guard
/// would refuse to start it).
pub fn valid_env_name(name: &str) -> bool {
    crate::policy::values::EnvName::parse(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn round_trip() {
        let args = strings(&["-y", "@modelcontextprotocol/server-memory"]);
        let wrapped = wrapped_args("memory", &strings(&["TOKEN"]), "npx", &args);
        assert_eq!(
            wrapped,
            strings(&[
                "run",
                "--profile",
                "memory",
                "--env",
                "TOKEN",
                "--",
                "npx",
                "-y",
                "@modelcontextprotocol/server-memory"
            ])
        );
        assert_eq!(wrapped_profile(&wrapped), Some("memory"));
        assert_eq!(
            original_launch("/home/u/.cargo/bin/mcp-guard", &wrapped),
            Some(("npx".to_owned(), args))
        );
    }

    #[test]
    fn other_commands_are_not_wrapped() {
        assert_eq!(original_launch("npx", &strings(&["run", "--", "x"])), None);
        assert_eq!(
            original_launch("mcp-guard", &strings(&["scan", "--", "x"])),
            None
        );
        assert_eq!(original_launch("mcp-guard", &strings(&["run", "--"])), None);
    }
}
