//! The policy document (`version = 1`) and its sandbox sections. The message-firewall and audit
//! sections live in `firewall.rs`. Every struct refuses unknown keys, so a typo is an error with
//! a suggestion rather than a silently ignored rule.
//!
//! Scalars are `Option`: a layer that leaves one out inherits it from the layer below. Lists
//! add up across layers (see `merge.rs`).

use std::collections::BTreeMap;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::firewall::{
    Audit, Errors, Items, Redaction, Resources, Sanitize, ServerRequests, Validation,
};
use super::values::{Count, Cpus, DurationText, EnvName, ProtectName, Size, SyscallName, Val};
use super::vars::{PathPattern, Template};
use crate::sandbox::{Isolation, Layer, NetworkMode};

/// One policy layer: a shipped profile, a policy file, or the CLI flags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Format version; files must say `version = 1`.
    pub version: Option<Val<i64>>,
    /// One line for `policy list` (not merged).
    pub description: Option<String>,
    /// Profiles (`"node"`) or files (`"./base.toml"`, relative to this file) this one builds on.
    pub extends: Vec<Val<String>>,
    pub enforce: Option<Val<Enforce>>,
    /// Layers that must be enforced even with `enforce = "best-effort"`.
    pub require: Vec<Val<Layer>>,
    pub launch: Launch,
    pub filesystem: Filesystem,
    pub network: Network,
    pub limits: Limits,
    pub env: Env,
    pub syscalls: Syscalls,
    pub tools: Items,
    pub prompts: Items,
    pub resources: Resources,
    pub server_requests: ServerRequests,
    pub redaction: Redaction,
    pub errors: Errors,
    pub sanitize: Sanitize,
    pub validation: Validation,
    pub audit: Audit,
    pub pin: Pin,
}

/// Whether a confinement layer the kernel cannot provide stops the launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforce {
    /// Apply what the kernel supports and report the rest.
    BestEffort,
    /// Refuse to start unless every layer is enforced.
    Required,
}

impl Enforce {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforce::BestEffort => "best-effort",
            Enforce::Required => "required",
        }
    }
}

/// Which server commands may be launched at all. No `allow` in any layer means any command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Launch {
    pub allow: Vec<Val<CommandRef>>,
    pub deny: Vec<Val<CommandRef>>,
}

/// A command by name (`"npx"`, matched against the command's file name) or by absolute path
/// (matched against the resolved executable, symlinks followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandRef {
    Name(String),
    Path(PathPattern),
}

impl CommandRef {
    pub fn parse(text: &str) -> Result<CommandRef, String> {
        if text.contains('/') || text.starts_with("${") {
            return PathPattern::parse(text).map(CommandRef::Path).map_err(|e| {
                format!(
                    "{e} (a command is either a bare name such as \"node\" or an absolute path)"
                )
            });
        }
        if text.is_empty() || text.contains(char::is_whitespace) {
            return Err(format!("`{text}` is not a command name; write one program name, e.g. \"npx\", without arguments"));
        }
        Ok(CommandRef::Name(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            CommandRef::Name(n) => n,
            CommandRef::Path(p) => p.as_str(),
        }
    }
}

impl<'de> Deserialize<'de> for CommandRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CommandRef::parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// Filesystem access. `write` covers reading and changing; `deny` wins over every allow, in
/// every layer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filesystem {
    pub read: Vec<Val<PathPattern>>,
    pub write: Vec<Val<PathPattern>>,
    pub exec: Vec<Val<PathPattern>>,
    pub deny: Vec<Val<PathPattern>>,
    /// Directories created (mode 0700) before launch; they are also writable.
    pub create: Vec<Val<PathPattern>>,
    /// Names, relative to every writable directory, the server may read but not change,
    /// besides the built-in list (`.git/hooks`, `.bashrc`, ...). A path written exactly in
    /// `write` is not protected.
    pub protect: Vec<Val<ProtectName>>,
    /// Access granted to server arguments that are existing absolute paths (the roots a
    /// filesystem or git server is given on its command line).
    pub arg_paths: Option<Val<ArgAccess>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArgAccess {
    None,
    Read,
    Write,
}

impl ArgAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            ArgAccess::None => "none",
            ArgAccess::Read => "read",
            ArgAccess::Write => "write",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    pub mode: Option<Val<NetworkMode>>,
    /// TCP ports the server may connect to (`mode = "ports"`).
    pub connect: Vec<Val<u16>>,
    /// TCP ports the server may listen on (`mode = "ports"`).
    pub bind: Vec<Val<u16>>,
    /// Hosts the server may reach through the guard's egress proxy (`mode = "hosts"`):
    /// `HOST[:PORTS]`, `*.DOMAIN[:PORTS]`, `CIDR[:PORTS]`, `[IPV6]:PORTS`.
    pub allow: Vec<Val<String>>,
    /// UDP destinations; without any, the server cannot open a UDP socket (every mode).
    pub udp: Vec<Val<String>>,
    /// Pathname unix sockets the server may connect to; without any, no unix socket at all.
    pub unix: Vec<Val<PathPattern>>,
    /// How `hosts` mode is enforced: "namespace" or "broker" (default: the strongest available).
    pub isolation: Option<Val<Isolation>>,
}

pub fn network_mode_str(mode: NetworkMode) -> &'static str {
    match mode {
        NetworkMode::Off => "off",
        NetworkMode::Hosts => "hosts",
        NetworkMode::Ports => "ports",
        NetworkMode::Open => "open",
    }
}

/// Resource limits for the server, and the relay's per-message limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub memory: Option<Val<Size>>,
    pub pids: Option<Val<Count>>,
    pub cpus: Option<Val<Cpus>>,
    pub cpu_time: Option<Val<DurationText>>,
    pub wall_clock: Option<Val<DurationText>>,
    pub file_size: Option<Val<Size>>,
    pub open_files: Option<Val<Count>>,
    /// Relay: answer a request with an error after this long without a reply.
    pub request_timeout: Option<Val<DurationText>>,
    /// Relay: the largest JSON-RPC message in either direction.
    pub max_message_bytes: Option<Val<Size>>,
}

/// The server's environment besides the sandbox's baseline.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Env {
    /// Names passed through from the guard's environment.
    pub pass: Vec<Val<EnvName>>,
    /// Fixed values; may use `${VARIABLES}`. A later layer replaces a name's value.
    pub set: BTreeMap<String, Val<Template>>,
}

/// Changes to the default seccomp filter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Syscalls {
    /// Extra syscalls refused with EPERM.
    pub deny: Vec<Val<SyscallName>>,
    /// Syscalls the default filter refuses that this server needs (flagged by `policy show`).
    pub allow: Vec<Val<SyscallName>>,
}

/// `[pin]`: rug-pull pinning of what the server lists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pin {
    pub mode: Option<Val<PinMode>>,
    /// What an item whose text looks like prompt injection gets.
    pub injection: Option<Val<InjectionMode>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinMode {
    /// Pin on first use (`$XDG_STATE_HOME/mcp-guard/pins/`); later changes await approval.
    #[default]
    Tofu,
    /// Only the lockfile given with `--pin FILE`.
    File,
    /// No pinning.
    Off,
}

impl PinMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PinMode::Tofu => "tofu",
            PinMode::File => "file",
            PinMode::Off => "off",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InjectionMode {
    /// Hidden and refused until `mcp-guard pin approve` (as an unapproved change).
    #[default]
    Quarantine,
    /// Forwarded; the finding is only audited.
    Flag,
}

impl InjectionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InjectionMode::Quarantine => "quarantine",
            InjectionMode::Flag => "flag",
        }
    }
}
