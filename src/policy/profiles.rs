//! The shipped profiles, embedded from `policies/` so the binary needs no files at run time,
//! and the built-in base layer under every policy.

use super::load::parse_policy;

/// What no layer overrides: relay limits, enforcement mode and firewall defaults. Not a
/// profile: it sits under every profile and file. Sandbox access (paths, network) is left to the
/// profiles; the sandbox adds its own baseline (system libraries, the server's interpreter, a
/// private HOME and TMPDIR).
pub const BUILTIN: &str = r#"
version = 1
enforce = "best-effort"

[filesystem]
arg_paths = "none"

[network]
mode = "off"

[limits]
request_timeout = "60s"
max_message_bytes = "16MiB"

[server_requests]
sampling = "allow"
elicitation = "allow"
roots = "allow"

[redaction]
enabled = true
builtin = true

[errors]
sanitize = false

[sanitize]
results = "strip"

[validation]
strict = false
require_listing = true

[audit]
enabled = true
required = false
on_suspicious = "log"
suspicious_refusals = 20
suspicious_window = "1m"
redact_keys = ["password", "passwd", "secret", "token", "api_key", "apikey", "authorization", "cookie"]
max_value_bytes = "4KiB"
max_size = "32MiB"
keep = 3
excerpts = 0
forwards = "auto"
"#;

/// A shipped profile.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    pub name: &'static str,
    pub text: &'static str,
}

impl Profile {
    /// The profile's `description`.
    pub fn description(&self) -> String {
        parse_policy(self.name, self.text)
            .ok()
            .and_then(|p| p.description)
            .unwrap_or_default()
    }
}

macro_rules! profiles {
    ($($name:literal),* $(,)?) => {
        &[$(Profile { name: $name, text: include_str!(concat!("../../policies/", $name, ".toml")) }),*]
    };
}

pub const PROFILES: &[Profile] = profiles![
    "default",
    "strict",
    "node",
    "python",
    "filesystem",
    "memory",
    "everything",
    "time",
    "git"
];

pub fn find(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}

pub fn names() -> Vec<&'static str> {
    PROFILES.iter().map(|p| p.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_all_parse_and_describe_themselves() {
        parse_policy("built-in", BUILTIN).unwrap();
        for p in PROFILES {
            if let Err(e) = parse_policy(p.name, p.text) {
                panic!("profile {} is invalid:\n{e}", p.name);
            }
            assert!(
                !p.description().is_empty(),
                "profile {} has no description",
                p.name
            );
        }
    }
}
