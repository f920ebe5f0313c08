//! What can go wrong with a keychain secret, each with the fix in its message. No message ever
//! holds a secret's value: only its `SERVICE/ACCOUNT`.

use super::SecretRef;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error(
        "`{text}` is not a keychain reference ({why}): write SERVICE/ACCOUNT, e.g. `keyring:github/me`"
    )]
    BadReference { text: String, why: &'static str },

    #[error(
        "no secret `{reference}` in {store}{hint}: store it with \
         `mcp-guard secret set {reference}` (it reads the value from stdin)"
    )]
    Missing {
        reference: SecretRef,
        store: String,
        /// Why it may be missing although it was stored once (a reboot, another user).
        hint: &'static str,
    },

    #[error("cannot use {store} for `{reference}`: {detail}")]
    Unavailable {
        reference: SecretRef,
        store: String,
        detail: String,
    },

    #[error(
        "the secret `{reference}` in {store} is not UTF-8 text, so it cannot go into an \
         environment variable; store it again with `mcp-guard secret set {reference}`"
    )]
    NotText { reference: SecretRef, store: String },

    #[error("an empty secret cannot be stored for `{0}`: give the value on stdin")]
    Empty(SecretRef),

    #[error(
        "the secret `{0}` holds a NUL character, which no environment variable can carry; \
         store it again with `mcp-guard secret set {0}`"
    )]
    HasNul(SecretRef),

    #[error(
        "keychain secrets are supported on Linux (kernel keyring) and macOS (Keychain) only; \
         pass the value with `--env NAME=VALUE`, or from the environment with `--env NAME`"
    )]
    Unsupported,
}

/// A keychain reference in the server's environment could not be resolved: names the variable
/// and the reference, never a value.
#[derive(Debug, thiserror::Error)]
#[error("cannot give the server {name}: {source}")]
pub struct EnvSecretError {
    pub name: String,
    #[source]
    pub source: SecretError,
}
