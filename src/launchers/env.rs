//! `env [-i] [-u NAME]… [NAME=VALUE]… CMD [ARGS…]`, as host configs write it
//! (`"command": "env", "args": ["INTEROP=1", "node", "server.js"]`).
//!
//! Looked through like a shebang: the assignments become the server's `--env` settings and CMD
//! is what is launched, put in the exec allowlist and judged. Running `env` itself inside the
//! sandbox would need env *and* CMD allowed, and would hide CMD from the launch check.

use std::ffi::OsString;
use std::path::Path;

/// What an `env` command line says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvLaunch {
    /// `-i`: start from an empty environment (the guard passes nothing of its own).
    pub clear: bool,
    /// `-u NAME`: not passed.
    pub unset: Vec<String>,
    /// `NAME=VALUE`, in order (a later one wins).
    pub set: Vec<(String, String)>,
    /// The command env would run, and its arguments.
    pub command: Vec<OsString>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LauncherError {
    #[error(
        "`env {0}` is not supported in a server command: mcp-guard looks through `env` and \
         understands only -i, -u NAME and NAME=VALUE. Write the command without that option \
         (use --env NAME=VALUE for variables)"
    )]
    UnsupportedEnvOption(String),
    #[error("`env` with no command to run: put the server's command after the variables")]
    EnvWithoutCommand,
    #[error("`env` arguments must be valid UTF-8: {0:?}")]
    NotUtf8(OsString),
}

/// When `command` starts with `env`, what it sets and runs; `None` for any other command.
pub fn look_through_env(command: &[OsString]) -> Result<Option<EnvLaunch>, LauncherError> {
    let Some(first) = command.first() else {
        return Ok(None);
    };
    if Path::new(first).file_name().and_then(|n| n.to_str()) != Some("env") {
        return Ok(None);
    }
    let mut launch = EnvLaunch::default();
    let mut args = command[1..].iter();
    let mut options_done = false;
    while let Some(arg) = args.next() {
        let text = arg
            .to_str()
            .ok_or_else(|| LauncherError::NotUtf8(arg.clone()))?;
        if !options_done && text.starts_with('-') && text != "-" {
            match text {
                "--" => options_done = true,
                "-i" | "--ignore-environment" => launch.clear = true,
                "-u" | "--unset" => {
                    let name = args
                        .next()
                        .and_then(|n| n.to_str())
                        .ok_or_else(|| LauncherError::UnsupportedEnvOption(text.into()))?;
                    launch.unset.push(name.to_owned());
                }
                _ if text.starts_with("--unset=") => {
                    launch.unset.push(text["--unset=".len()..].to_owned())
                }
                _ if text.starts_with("-u") && text.len() > 2 => {
                    launch.unset.push(text[2..].to_owned())
                }
                _ => return Err(LauncherError::UnsupportedEnvOption(text.into())),
            }
            continue;
        }
        match text.split_once('=') {
            Some((name, value)) if !name.is_empty() => {
                options_done = true;
                launch.set.push((name.to_owned(), value.to_owned()));
            }
            _ => {
                launch.command.push(arg.clone());
                launch.command.extend(args.cloned());
                return Ok(Some(launch));
            }
        }
    }
    Err(LauncherError::EnvWithoutCommand)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn env_assignments_and_command() {
        let launch = look_through_env(&os(&["env", "A=1", "B=x=y", "node", "s.js", "C=3"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            launch.set,
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert_eq!(launch.command, os(&["node", "s.js", "C=3"]));
        assert!(!launch.clear);
    }

    #[test]
    fn env_options() {
        let launch = look_through_env(&os(&[
            "/usr/bin/env",
            "-i",
            "-u",
            "HOME",
            "-uPATH",
            "--unset=X",
            "--",
            "A=1",
            "python3",
        ]))
        .unwrap()
        .unwrap();
        assert!(launch.clear);
        assert_eq!(launch.unset, vec!["HOME", "PATH", "X"]);
        assert_eq!(launch.command, os(&["python3"]));
    }

    #[test]
    fn other_commands_and_errors() {
        assert_eq!(look_through_env(&os(&["node", "env"])).unwrap(), None);
        assert_eq!(
            look_through_env(&os(&["env", "A=1"])).unwrap_err(),
            LauncherError::EnvWithoutCommand
        );
        assert!(matches!(
            look_through_env(&os(&["env", "-S", "node x"])).unwrap_err(),
            LauncherError::UnsupportedEnvOption(_)
        ));
    }
}
