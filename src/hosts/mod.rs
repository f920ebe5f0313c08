//! Putting every server of an MCP host behind the guard (`mcp-guard wrap`) and taking it out
//! again (`mcp-guard unwrap`): finding the host configs ([`locations`]), rewriting their stdio
//! entries in place ([`json_config`], [`toml_config`]) with a profile chosen from the launch
//! command ([`profile_choice`]), and writing the result with a backup ([`write`]).

pub mod error;
pub mod json_config;
pub mod launch_args;
pub mod locations;
pub mod profile_choice;
pub mod splice;
pub mod toml_config;
pub mod write;

use std::path::Path;

pub use error::HostError;
pub use locations::{existing_configs, format_of, Dirs, Format, Host};

/// What happened to one server entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rewritten to run under the guard with this profile.
    Wrapped { profile: &'static str },
    /// Restored to its original command.
    Unwrapped,
    /// Runs under the guard already; left alone.
    AlreadyWrapped,
    /// Not under the guard; left alone by `unwrap`.
    NotWrapped,
    /// An HTTP/SSE server (`url`): nothing to launch, so nothing to confine.
    Remote,
    /// No `command` string: not an entry mcp-guard understands.
    NoCommand,
    /// `args` holds something other than strings.
    BadArgs,
    /// An `env` key `--env` cannot pass (not letters, digits and `_`).
    BadEnvName(String),
    /// VS Code's `envFile`: the variables it sets are not known by name, so `--env` cannot
    /// pass them and the server would start without them.
    EnvFile,
}

impl Outcome {
    pub fn describe(&self) -> String {
        match self {
            Outcome::Wrapped { profile } => format!("wrapped (profile {profile})"),
            Outcome::Unwrapped => "unwrapped".to_owned(),
            Outcome::AlreadyWrapped => "already wrapped".to_owned(),
            Outcome::NotWrapped => "not wrapped".to_owned(),
            Outcome::Remote => "not wrapped (remote)".to_owned(),
            Outcome::NoCommand => "not wrapped (no `command`)".to_owned(),
            Outcome::BadArgs => "not wrapped (`args` must be a list of strings)".to_owned(),
            Outcome::BadEnvName(name) => {
                format!("not wrapped (env `{name}` is not a variable name --env accepts)")
            }
            Outcome::EnvFile => "not wrapped (`envFile`: put its variables in `env`, or wrap \
                 it by hand with an --env NAME for each)"
                .to_owned(),
        }
    }
}

/// One entry's outcome; `scope` says where in the file it is (`mcpServers`, a project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryReport {
    pub scope: String,
    pub name: String,
    pub outcome: Outcome,
}

/// An entry of a config as it is: its stdio launch (`command`, `args`), or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredEntry {
    pub scope: String,
    pub name: String,
    pub launch: Result<(String, Vec<String>), Outcome>,
}

/// Read `path` and list its entries.
pub fn configured_entries(path: &Path) -> Result<Vec<ConfiguredEntry>, HostError> {
    let text = write::read(path)?;
    let parsed = match format_of(path) {
        Format::Json => json_config::configured(&text),
        Format::Toml => toml_config::configured(&text),
    };
    parsed.map_err(|message| HostError::Parse {
        path: path.to_owned(),
        message,
    })
}

/// A config's text after a rewrite, and what happened to each entry.
#[derive(Debug, Clone)]
pub struct Rewrite {
    pub text: String,
    pub entries: Vec<EntryReport>,
}

/// Wrap the stdio entries of `text`, a config in `format`; `guard_command` is written as the
/// entries' command.
pub fn wrap_text(format: Format, text: &str, guard_command: &str) -> Result<Rewrite, String> {
    match format {
        Format::Json => json_config::wrap(text, guard_command),
        Format::Toml => toml_config::wrap(text, guard_command),
    }
}

/// Unwrap the wrapped entries of `text`; `backup` (the file as it was before the first wrap)
/// gives back the original entries byte for byte.
pub fn unwrap_text(format: Format, text: &str, backup: Option<&str>) -> Result<Rewrite, String> {
    match format {
        Format::Json => json_config::unwrap(text, backup),
        Format::Toml => toml_config::unwrap(text, backup),
    }
}

/// Read `path` and wrap it.
pub fn wrap_file(path: &Path, guard_command: &str) -> Result<(String, Rewrite), HostError> {
    let text = write::read(path)?;
    let rewrite =
        wrap_text(format_of(path), &text, guard_command).map_err(|message| HostError::Parse {
            path: path.to_owned(),
            message,
        })?;
    Ok((text, rewrite))
}

/// Read `path` (and its backup, when there is one) and unwrap it.
pub fn unwrap_file(path: &Path) -> Result<(String, Rewrite), HostError> {
    let text = write::read(path)?;
    let backup = std::fs::read_to_string(write::backup_path(path)).ok();
    let rewrite = unwrap_text(format_of(path), &text, backup.as_deref()).map_err(|message| {
        HostError::Parse {
            path: path.to_owned(),
            message,
        }
    })?;
    Ok((text, rewrite))
}
