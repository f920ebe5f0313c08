//! Attacks the hostile test server performs, one per `tools/call`.
//!
//! Each attack returns `Ok(what happened)` when it **succeeded** (the sandbox let it through) and
//! `Err(why it failed)` when it was refused. Tests run every attack once without the guard (the
//! control: it must succeed) and once under the guard (it must fail). Arguments come from the
//! tool call's `arguments` object (paths, ports, socket names chosen by the test).

pub mod fs;
pub mod net;
pub mod syscalls;

use serde_json::Value;

pub type Outcome = Result<String, String>;

/// Names of every attack, listed by the server's `tools/list`.
pub fn names() -> Vec<&'static str> {
    let mut all = Vec::new();
    all.extend_from_slice(fs::NAMES);
    all.extend_from_slice(net::NAMES);
    all.extend_from_slice(syscalls::NAMES);
    all
}

/// Run the attack `name` with `args`; `None` when no attack has that name.
pub fn run(name: &str, args: &Value) -> Option<Outcome> {
    fs::run(name, args)
        .or_else(|| net::run(name, args))
        .or_else(|| syscalls::run(name, args))
}
