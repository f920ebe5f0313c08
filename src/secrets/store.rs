//! Where the secrets live, per system.
//!
//! Linux: the kernel's keyutils **user keyring** (`@u`), one per uid. It needs no daemon and no
//! desktop session, so it works for hosts started by systemd, over SSH and in CI, but it lives
//! in kernel memory only: a reboot empties it. Secret Service (GNOME Keyring, KWallet) would
//! persist, but needs a D-Bus session bus and a running daemon, which headless machines lack.
//! The `keyring` crate's own keyutils store adds entries to the *session* keyring and links
//! them into the persistent one; in a process with no session keyring of its own (a host not
//! started from a PAM login, CI) those calls failed with EACCES here. The user keyring is
//! shared by all of the user's processes, whatever their session, so the crate's credential
//! is built on it instead.
//!
//! macOS: the login Keychain. Elsewhere: [`SecretError::Unsupported`].
//!
//! What this protects against: tokens in host config files, which other tools read, which get
//! synced, backed up and pasted into bug reports. What it does not: any process of the same
//! user can read the same keyring (the sandboxed server cannot: its seccomp filter refuses
//! `keyctl`).

use super::{SecretError, SecretRef};

/// The value of `reference`.
pub fn read(reference: &SecretRef) -> Result<String, SecretError> {
    let value = entry(reference)?
        .get_password()
        .map_err(|e| platform_error(reference, e))?;
    // Another tool may have stored it: a NUL would fail the server's exec, obscurely.
    if value.contains('\0') {
        return Err(SecretError::HasNul(reference.clone()));
    }
    Ok(value)
}

/// Store `value` as `reference`, replacing what was there.
pub fn write(reference: &SecretRef, value: &str) -> Result<(), SecretError> {
    if value.is_empty() {
        return Err(SecretError::Empty(reference.clone()));
    }
    if value.contains('\0') {
        return Err(SecretError::HasNul(reference.clone()));
    }
    entry(reference)?
        .set_password(value)
        .map_err(|e| platform_error(reference, e))
}

/// Remove `reference` from the store.
pub fn delete(reference: &SecretRef) -> Result<(), SecretError> {
    entry(reference)?
        .delete_credential()
        .map_err(|e| platform_error(reference, e))
}

/// The store's name as the user is told it: which one, and whose.
pub fn describe() -> String {
    platform::describe()
}

/// How long the store keeps a secret, as the user is told it.
pub fn lifetime() -> &'static str {
    platform::LIFETIME
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
fn entry(reference: &SecretRef) -> Result<keyring::Entry, SecretError> {
    platform::entry(reference).map_err(|e| platform_error(reference, e))
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn entry(_reference: &SecretRef) -> Result<Unsupported, SecretError> {
    Err(SecretError::Unsupported)
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
fn platform_error(reference: &SecretRef, err: keyring::Error) -> SecretError {
    let store = describe();
    match err {
        keyring::Error::NoEntry => SecretError::Missing {
            reference: reference.clone(),
            store,
            hint: platform::MISSING_HINT,
        },
        keyring::Error::BadEncoding(_) => SecretError::NotText {
            reference: reference.clone(),
            store,
        },
        other => SecretError::Unavailable {
            reference: reference.clone(),
            store,
            detail: platform::explain(&other),
        },
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn platform_error(_reference: &SecretRef, err: SecretError) -> SecretError {
    err
}

#[cfg(target_os = "linux")]
mod platform {
    use keyring::keyutils::KeyutilsCredential;
    use linux_keyutils::{KeyRing, KeyRingIdentifier};

    use super::SecretRef;

    pub const LIFETIME: &str = "until the next reboot";
    pub const MISSING_HINT: &str = " (emptied at every reboot; each user has their own, so store \
        it as the user the host runs the guard as)";

    pub fn entry(reference: &SecretRef) -> keyring::Result<keyring::Entry> {
        // `create`: a user who never stored a key has no user keyring yet. Any failure here
        // means no keyring at all (the crate's `decode_error` would call EACCES "no entry").
        let user = KeyRing::from_special_id(KeyRingIdentifier::User, true)
            .map_err(|e| keyring::Error::PlatformFailure(Box::new(e)))?;
        let credential = KeyutilsCredential {
            session: user,
            persistent: None,
            description: description(reference),
        };
        Ok(keyring::Entry::new_with_credential(Box::new(credential)))
    }

    /// The key's description, as the `keyring` crate names its keyutils entries (so
    /// `keyctl search @u user keyring-rs:ACCOUNT@SERVICE` finds it).
    fn description(reference: &SecretRef) -> String {
        format!("keyring-rs:{}@{}", reference.account, reference.service)
    }

    pub fn describe() -> String {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        format!("the kernel keyring of uid {uid}")
    }

    pub fn explain(err: &keyring::Error) -> String {
        let text = err.to_string();
        if text.contains("quota") || text.contains("Quota") {
            return format!(
                "{text}; the kernel limits each user's keys (see /proc/sys/kernel/keys/maxbytes)"
            );
        }
        format!(
            "{text}; this kernel may lack keyutils (CONFIG_KEYS), or a container's seccomp \
             profile may refuse `keyctl`: pass the value with `--env NAME` from the environment instead"
        )
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use super::SecretRef;

    pub const MISSING_HINT: &str = "";
    pub const LIFETIME: &str = "until it is deleted";

    pub fn entry(reference: &SecretRef) -> keyring::Result<keyring::Entry> {
        keyring::Entry::new(&reference.service, &reference.account)
    }

    pub fn describe() -> String {
        "the login Keychain".to_owned()
    }

    pub fn explain(err: &keyring::Error) -> String {
        format!("{err}; unlock the login Keychain (Keychain Access) and try again")
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod platform {
    pub const LIFETIME: &str = "not at all";

    pub fn describe() -> String {
        "no keychain (not supported on this system)".to_owned()
    }
}

/// Stands in for `keyring::Entry` where there is no keychain: never built.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
enum Unsupported {}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
impl Unsupported {
    fn get_password(&self) -> Result<String, SecretError> {
        match *self {}
    }
    fn set_password(&self, _: &str) -> Result<(), SecretError> {
        match *self {}
    }
    fn delete_credential(&self) -> Result<(), SecretError> {
        match *self {}
    }
}
