//! Policies: one versioned TOML model that says what a server may do, in layers.
//!
//! Built-in base ← `--profile NAME` (shipped, embedded from `policies/`) ← `--policy FILE` (with
//! its `extends`) ← CLI flags. [`load`] reads and validates layers (errors carry
//! `file:line:col`, the text and a hint), [`merge`] combines them (a pure function that records
//! each value's layer), [`resolve`] turns the result into the sandbox's
//! [`SandboxConfig`](crate::sandbox::SandboxConfig) and the relay's limits, and [`show`]
//! prints it back as annotated TOML.

pub mod error;
mod examples;
pub mod firewall;
pub mod init;
pub mod load;
pub mod merge;
pub mod model;
pub mod profiles;
pub mod resolve;
pub mod show;
mod validate;
pub mod values;
pub mod vars;

use std::fmt;
use std::path::PathBuf;

pub use error::{Diagnostic, PolicyError};
pub use load::{check_file, load_layers, parse_policy};
pub use merge::{merge, EffectivePolicy};
pub use model::Policy;
pub use resolve::{RelayLimits, Resolved};
pub use vars::Vars;

/// The layer a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    Profile(String),
    File(PathBuf),
    /// The CLI flags as a whole.
    Flags,
    /// One CLI flag.
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built-in"),
            Origin::Profile(name) => write!(f, "profile {name}"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Flags => f.write_str("flags"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}
