//! Which server a trust-on-first-use pin belongs to: the command the guard really launches,
//! after looking through `env` and the package launchers, hashed into a stable file name.
//!
//! A package launch (`npx -y pkg`, `uvx pkg`) is keyed by its `packages.lock` key and its
//! arguments, not by the store path of the version it runs: after `mcp-guard update` the new
//! version is checked against what the old one was approved for, not trusted afresh. Other
//! commands are keyed by the program's resolved path and the arguments. Variables set with
//! `env NAME=VALUE` are left out (they may be secrets, and the file keeps the command).

use std::ffi::OsString;

use sha2::{Digest, Sha256};

use crate::audit::chain::hex;
use crate::launchers::{look_through_env, look_through_package, LauncherError, PackageError};

/// Hex digits of the identity's SHA-256 used as the id (and file name).
const ID_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerId {
    /// `3f2a…`: names the pin file and is what `mcp-guard pin approve` takes.
    pub id: String,
    /// What was hashed (kept in the pin file, for `pin status`).
    pub identity: String,
    /// The command as written, without `env` and its variables, for messages.
    pub command: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Env(#[from] LauncherError),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("no server command: give it after `--`")]
    Empty,
}

/// The identity of the server `command` launches. Reads PATH; never fetches or starts anything.
pub fn identify(command: &[OsString]) -> Result<ServerId, IdentityError> {
    let command = match look_through_env(command)? {
        Some(launch) => launch.command,
        None => command.to_vec(),
    };
    let words: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Some(program) = words.first() else {
        return Err(IdentityError::Empty);
    };
    let identity = match look_through_package(&command)? {
        Some(launch) => {
            let mut parts = vec![format!("package {}", launch.lock_key())];
            parts.extend(launch.command.iter().map(|c| format!("bin {c}")));
            parts.extend(launch.args.iter().map(|a| a.to_string_lossy().into_owned()));
            parts.join("\0")
        }
        None => {
            let resolved = crate::launchers::spec::find_on_path(program)
                .map_or_else(|| program.clone(), |p| p.display().to_string());
            std::iter::once(resolved)
                .chain(words[1..].iter().cloned())
                .collect::<Vec<_>>()
                .join("\0")
        }
    };
    let full = hex(&Sha256::digest(identity.as_bytes()));
    Ok(ServerId {
        id: full[..ID_LEN].to_owned(),
        identity: identity.replace('\0', " "),
        command: words,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(words: &[&str]) -> ServerId {
        let command: Vec<OsString> = words.iter().map(OsString::from).collect();
        identify(&command).unwrap()
    }

    #[test]
    fn env_variables_do_not_change_the_identity_but_arguments_do() {
        let plain = id(&["/bin/cat", "a"]);
        assert_eq!(plain.id.len(), ID_LEN);
        assert_eq!(id(&["env", "TOKEN=x", "/bin/cat", "a"]).id, plain.id);
        assert_ne!(id(&["/bin/cat", "b"]).id, plain.id);
        assert_eq!(plain.command, ["/bin/cat", "a"]);
    }

    #[test]
    fn a_package_launch_is_keyed_by_its_lock_key() {
        let npx = id(&["npx", "-y", "@modelcontextprotocol/server-memory"]);
        assert!(
            npx.identity
                .starts_with("package npm:@modelcontextprotocol/server-memory"),
            "{}",
            npx.identity
        );
        assert_eq!(
            id(&["npm", "exec", "-y", "@modelcontextprotocol/server-memory"]).id,
            npx.id
        );
    }
}
