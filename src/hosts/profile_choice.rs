//! Which shipped profile (policies/) a server gets, judged from its launch command: a known
//! package gets the profile written and tested for it, other node and Python launches get the
//! runtime's profile, anything else the secure default.

use std::path::Path;

/// Package, entry-point and module names of the servers the shipped profiles were made for.
const KNOWN_PACKAGES: &[(&str, &str)] = &[
    ("server-filesystem", "filesystem"),
    ("server-memory", "memory"),
    ("server-everything", "everything"),
    ("mcp-server-git", "git"),
    ("mcp_server_git", "git"),
    ("mcp-server-time", "time"),
    ("mcp_server_time", "time"),
];

const NODE_LAUNCHERS: &[&str] = &[
    "node", "nodejs", "npx", "npm", "pnpm", "pnpx", "bun", "bunx",
];
const PYTHON_LAUNCHERS: &[&str] = &["uv", "uvx", "pipx", "python", "python3"];

/// The profile for `command args…`.
pub fn profile_for(command: &str, args: &[String]) -> &'static str {
    let words = || std::iter::once(command).chain(args.iter().map(String::as_str));
    if let Some(profile) = words().find_map(known_package) {
        return profile;
    }
    // `env A=B node server.js` launches node.
    let program = words()
        .find(|w| {
            let name = file_name(w);
            name != "env" && !w.contains('=')
        })
        .map(file_name)
        .unwrap_or_default();
    if NODE_LAUNCHERS.contains(&program) {
        "node"
    } else if PYTHON_LAUNCHERS.contains(&program) || is_versioned_python(program) {
        "python"
    } else {
        "default"
    }
}

/// A package spec (`@scope/name@1.2`, `name==1.2`), module name or path naming a known server:
/// each `/` component is compared without its version.
fn known_package(word: &str) -> Option<&'static str> {
    word.split('/').find_map(|component| {
        let name = strip_version(component);
        KNOWN_PACKAGES
            .iter()
            .find(|(package, _)| *package == name)
            .map(|(_, profile)| *profile)
    })
}

fn strip_version(component: &str) -> &str {
    let end = component
        .char_indices()
        .skip(1) // a leading `@` starts a scope, not a version
        .find(|&(_, c)| c == '@' || c == '=')
        .map_or(component.len(), |(i, _)| i);
    &component[..end]
}

fn file_name(word: &str) -> &str {
    Path::new(word)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(word)
}

/// `python3.12`, `python3.13t`
fn is_versioned_python(program: &str) -> bool {
    program
        .strip_prefix("python3.")
        .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(line: &str) -> &'static str {
        let mut words = line.split(' ').map(str::to_owned);
        let command = words.next().unwrap();
        profile_for(&command, &words.collect::<Vec<_>>())
    }

    #[test]
    fn known_packages_get_their_profile() {
        assert_eq!(
            profile("npx -y @modelcontextprotocol/server-filesystem /home/u/notes"),
            "filesystem"
        );
        assert_eq!(
            profile("npx -y @modelcontextprotocol/server-memory@2026.8.31"),
            "memory"
        );
        assert_eq!(profile("node /opt/node_modules/@modelcontextprotocol/server-everything/dist/index.js stdio"), "everything");
        assert_eq!(profile("uvx mcp-server-git --repository /src/x"), "git");
        assert_eq!(profile("uvx mcp-server-time==2026.10.19"), "time");
        assert_eq!(profile("python -m mcp_server_time"), "time");
    }

    #[test]
    fn runtimes_get_their_profile() {
        assert_eq!(profile("npx -y @acme/mcp-weather"), "node");
        assert_eq!(profile("/usr/bin/node server.js"), "node");
        assert_eq!(profile("env NODE_ENV=production node server.js"), "node");
        assert_eq!(profile("uvx mcp-server-fetch"), "python");
        assert_eq!(profile("python3.12 -m my_server"), "python");
        assert_eq!(profile("/opt/bin/my-server --port 3"), "default");
        assert_eq!(profile("docker run -i --rm mcp/github"), "default");
    }
}
