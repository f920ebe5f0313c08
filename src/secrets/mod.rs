//! Secrets from the OS keychain: `--env NAME=keyring:SERVICE/ACCOUNT` (or the same value in a
//! policy's `[env.set]`) gives the server a token that no host config file holds in plain text.
//!
//! The guard looks the secret up itself, outside the sandbox, just before launch; the server
//! only ever sees the value in its environment (and its seccomp filter refuses `keyctl`, so it
//! cannot read the rest of the keyring). The store is the kernel's keyutils user keyring on
//! Linux and the login Keychain on macOS; see [`store`] for why and for what that protects.

mod env;
mod error;
mod reference;
pub mod store;

pub use env::{resolve_env, set_passed_references};
pub use error::{EnvSecretError, SecretError};
pub use reference::{SecretRef, PREFIX};
