//! Policy-file parsing: any text. Parsing never panics; a policy that parses also merges over
//! the built-in base and renders with `policy show` without panicking, and merging it on top of
//! a layer never drops that layer's denies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_guard::policy::{merge, parse_policy, Origin};

fuzz_target!(|text: &str| {
    let Ok(policy) = parse_policy("fuzz.toml", text) else {
        return;
    };
    let base = parse_policy(
        "base",
        "version = 1\n[filesystem]\ndeny = [\"/etc/shadow\"]\n[tools]\ndeny = [\"rm_*\"]\n\
         [launch]\ndeny = [\"sh\"]\n[syscalls]\ndeny = [\"ptrace\"]\n",
    )
    .expect("base policy");
    let merged = merge(vec![
        (Origin::Builtin, base.clone()),
        (Origin::File("fuzz.toml".into()), policy),
    ]);
    let p = &merged.policy;
    for d in &base.filesystem.deny {
        assert!(
            p.filesystem.deny.iter().any(|x| x.value == d.value),
            "fs deny dropped"
        );
    }
    for d in &base.tools.deny {
        assert!(
            p.tools.deny.iter().any(|x| x.value == d.value),
            "tools deny dropped"
        );
    }
    for d in &base.launch.deny {
        assert!(
            p.launch.deny.iter().any(|x| x.value == d.value),
            "launch deny dropped"
        );
    }
    for d in &base.syscalls.deny {
        assert!(
            p.syscalls.deny.iter().any(|x| x.value == d.value),
            "syscall deny dropped"
        );
    }
});
