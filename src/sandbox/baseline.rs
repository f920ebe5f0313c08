//! The grants every server gets without a policy: enough of the system to start a program and
//! read its own install directory, nothing of the user's files.
//!
//! Read access is kept narrower than "all of /usr" on purpose. Once `ld.so` may be executed
//! (every dynamic binary needs it), `ld.so /any/readable/elf` runs that ELF without landlock
//! ever checking EXECUTE on it: an exec allowlist only holds if disallowed binaries cannot be
//! read. So `/usr/bin`, `/bin`, `/usr/local/bin` are never granted as directories; libraries
//! come from the directory that holds the ELF interpreter (`/usr/lib/x86_64-linux-gnu` on
//! Debian, `/usr/lib64` on Fedora) and from the install prefix of the interpreter that runs.

use std::path::{Path, PathBuf};

use super::exec::{ExecChain, ExecKind};
use super::fs_rules::{FsAccess, FsGrant};

/// Single files and data directories under /etc, /usr/share, /dev, /proc, /sys that common
/// runtimes read at start-up. None holds a secret: /etc/ssl is *not* granted whole because
/// /etc/ssl/private holds keys, only its public parts are.
const SYSTEM_READ: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.preload",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/pki/tls/certs",
    "/etc/pki/tls/openssl.cnf",
    "/etc/pki/ca-trust/extracted",
    "/usr/lib/ssl",
    "/usr/lib/locale",
    "/usr/share/locale",
    "/usr/share/zoneinfo",
    "/usr/share/ca-certificates",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
    // System-wide /proc and /sys facts runtimes size themselves with (node reads meminfo and
    // overcommit_memory, glibc the CPU lists). The process's own /proc/<pid> is granted by the
    // child itself at apply time (see `landlock::proc_self_rule`).
    "/proc/meminfo",
    "/proc/cpuinfo",
    "/proc/stat",
    "/proc/sys/vm/overcommit_memory",
    "/sys/devices/system/cpu/online",
    "/sys/devices/system/cpu/possible",
];

/// Devices a server may also write to (output discarded or failing by design).
const SYSTEM_DEVICES: &[&str] = &["/dev/null", "/dev/full"];

/// Directories that are never granted as an install root: too broad, or full of binaries.
const NEVER_ROOT: &[&str] = &[
    "/",
    "/usr",
    "/usr/local",
    "/opt",
    "/etc",
    "/tmp",
    "/var",
    "/home",
    "/root",
];

/// Interpreters whose first non-option argument is a script to run.
const SCRIPT_INTERPRETERS: &[&str] = &[
    "node", "nodejs", "bun", "deno", "python", "pypy", "ruby", "perl",
];

/// Markers of a project or package root.
const PROJECT_MARKERS: &[&str] = &[
    "package.json",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "deno.json",
    "Cargo.toml",
];

/// The baseline grants for a server that runs `chain` with `argv` from `cwd`.
pub fn grants(chain: &ExecChain, argv: &[String], cwd: &Path) -> Vec<FsGrant> {
    let mut out = Vec::new();
    let mut add = |path: &Path, access: FsAccess| {
        if let Some(grant) = FsGrant::new(path, access) {
            out.push(grant);
        }
    };
    for path in SYSTEM_READ {
        add(Path::new(path), FsAccess::Read);
    }
    for path in SYSTEM_DEVICES {
        add(Path::new(path), FsAccess::Device);
    }
    for link in chain.executables() {
        add(&link.canonical, FsAccess::Execute);
        if link.kind == ExecKind::ElfInterpreter {
            if let Some(lib_dir) = link.canonical.parent() {
                add(lib_dir, FsAccess::Read);
            }
        }
        for dir in runtime_dirs(&link.raw, &link.canonical) {
            add(&dir, FsAccess::Read);
        }
        if link.kind == ExecKind::Script {
            for dir in install_roots(&link.canonical) {
                add(&dir, FsAccess::Read);
            }
        }
    }
    if let Some(script) = script_argument(chain, argv, cwd) {
        for dir in install_roots(&script) {
            add(&dir, FsAccess::Read);
        }
    }
    home_free(out)
}

/// Libraries and standard library of the runtime at `canonical` (`<prefix>/bin/<name>`):
/// `<prefix>/lib` for a private prefix (pyenv, /usr/local, /opt/node), the versioned
/// `lib/pythonX.Y` dirs for the system's own Python, and the venv a `bin/python` link sits in.
fn runtime_dirs(raw: &Path, canonical: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for path in [raw, canonical] {
        if let Some(venv) = path.parent().and_then(Path::parent) {
            if venv.join("pyvenv.cfg").is_file() {
                dirs.push(venv.to_path_buf());
            }
        }
    }
    let Some(bin) = canonical.parent() else {
        return dirs;
    };
    let Some(prefix) = bin
        .parent()
        .filter(|_| bin.file_name().is_some_and(|n| n == "bin"))
    else {
        return dirs;
    };
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if prefix != Path::new("/usr") && prefix != Path::new("/") {
        dirs.push(prefix.join("lib"));
    } else if name.starts_with("python") {
        for lib in [Path::new("/usr/lib"), Path::new("/usr/local/lib")] {
            let Ok(entries) = std::fs::read_dir(lib) else {
                continue;
            };
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
                    .map(|e| e.path()),
            );
        }
    }
    dirs
}

/// For `node server.js` / `python3 server.py`: the script, if the program is an interpreter.
fn script_argument(chain: &ExecChain, argv: &[String], cwd: &Path) -> Option<PathBuf> {
    let program = chain.links.first()?;
    let name = program
        .canonical
        .file_name()?
        .to_string_lossy()
        .into_owned();
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    if !SCRIPT_INTERPRETERS.contains(&base) {
        return None;
    }
    let first = argv.iter().skip(1).find(|a| !a.starts_with('-'))?;
    let path = cwd.join(first);
    path.is_file()
        .then(|| std::fs::canonicalize(&path).unwrap_or(path))
}

/// What a script needs of its own installation:
/// - inside `node_modules`: the outermost `node_modules` directory (hoisted dependencies) and
///   the `package.json` beside it, not the rest of the project (which may hold `.env` files);
/// - inside a Python venv: the venv;
/// - otherwise the nearest ancestor with a project marker (`package.json`, `pyproject.toml`,
///   ...), else the script's own directory;
/// - never a `bin` directory (that would make every binary there readable, see the module
///   docs), nor `/`, `/usr`, `/tmp`, a home directory and the like: then only the script itself.
pub fn install_roots(script: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    let ancestors: Vec<&Path> = script.ancestors().skip(1).collect();
    if let Some(modules) = ancestors
        .iter()
        .rev()
        .find(|a| a.file_name().is_some_and(|n| n == "node_modules"))
    {
        roots.push(modules.to_path_buf());
        if let Some(project) = modules.parent() {
            roots.push(project.join("package.json"));
        }
        return roots;
    }
    if let Some(venv) = ancestors.iter().find(|a| a.join("pyvenv.cfg").is_file()) {
        roots.push(venv.to_path_buf());
        return roots;
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let acceptable = |dir: &Path| {
        !NEVER_ROOT.iter().any(|n| dir == Path::new(n))
            && home.as_deref() != Some(dir)
            && !dir.file_name().is_some_and(|n| n == "bin" || n == "sbin")
    };
    let project = ancestors
        .iter()
        .take_while(|dir| acceptable(dir))
        .find(|dir| PROJECT_MARKERS.iter().any(|m| dir.join(m).exists()));
    match (project, script.parent()) {
        (Some(dir), _) => roots.push(dir.to_path_buf()),
        (None, Some(dir)) if acceptable(dir) => roots.push(dir.to_path_buf()),
        _ => roots.push(script.to_path_buf()),
    }
    roots
}

/// Drop baseline grants that would open the whole home directory or `/`: a heuristic above
/// must never widen into the user's files.
fn home_free(grants: Vec<FsGrant>) -> Vec<FsGrant> {
    let home = std::env::var_os("HOME").and_then(|h| std::fs::canonicalize(h).ok());
    grants
        .into_iter()
        .filter(|g| g.path != Path::new("/") && home.as_deref() != Some(g.path.as_path()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_roots_of_a_package_in_node_modules_is_the_outermost_node_modules() {
        let script = Path::new("/p/node_modules/@scope/pkg/node_modules/x/dist/index.js");
        let roots = install_roots(script);
        assert_eq!(
            roots,
            [
                PathBuf::from("/p/node_modules"),
                PathBuf::from("/p/package.json")
            ]
        );
    }

    #[test]
    fn install_roots_never_grant_a_bin_directory() {
        let roots = install_roots(Path::new("/usr/local/bin/some-server"));
        assert_eq!(roots, [PathBuf::from("/usr/local/bin/some-server")]);
    }

    #[test]
    fn grants_never_include_bin_directories() {
        let Some(env) = super::super::path_search::resolve_program("env", "/usr/bin:/bin") else {
            return;
        };
        let chain = ExecChain::resolve(&env, "/usr/bin:/bin");
        let grants = grants(&chain, &["env".into()], Path::new("/"));
        assert!(grants
            .iter()
            .all(|g| !g.path.ends_with("bin") && g.path != Path::new("/usr")));
        assert!(grants
            .iter()
            .any(|g| g.access == FsAccess::Execute && g.path.ends_with("env")));
    }
}
