//! Dangerous-syscall and resource-limit attacks (seccomp, capabilities, limits).

use serde_json::Value;

use super::Outcome;

pub const NAMES: &[&str] = &[];

pub fn run(name: &str, args: &Value) -> Option<Outcome> {
    let _ = (name, args);
    None
}
