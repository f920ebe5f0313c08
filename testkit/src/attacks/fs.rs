//! Filesystem, exec, network, environment and /proc attacks (landlock and friends).
//!
//! Every attack only touches what the test names in its arguments (a temp directory the test
//! created, a port it listens on, a `sleep` it spawned) or the server's own `$TMPDIR`; when one
//! succeeds it does no harm beyond that.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::Outcome;

pub const NAMES: &[&str] = &[
    "read_file",
    "list_dir",
    "write_file",
    "write_file_mkdirs",
    "rename_file",
    "truncate_file",
    "delete_file",
    "symlink_read",
    "symlink_at",
    "hardlink_read",
    "proc_read",
    "proc_open_mem",
    "exec",
    "exec_script",
    "exec_memfd",
    "exec_copy",
    "tcp_connect",
    "tcp_bind",
    "udp_send",
    "abstract_connect",
    "unix_connect",
    "signal",
    "read_env",
];

pub fn run(name: &str, args: &Value) -> Option<Outcome> {
    let arg = |key: &str| {
        args.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let path = |key: &str| PathBuf::from(arg(key));
    let list = |key: &str| -> Vec<String> {
        args.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let number = |key: &str| args.get(key).and_then(Value::as_i64).unwrap_or_default();
    let port = || u16::try_from(number("port")).unwrap_or_default();
    Some(match name {
        "read_file" => read(&path("path")),
        "list_dir" => std::fs::read_dir(path("path"))
            .map(|entries| format!("listed {} entries", entries.count()))
            .map_err(|e| e.to_string()),
        // Without a path: the server's own $TMPDIR (the positive control under the guard).
        "write_file" => {
            let target = match arg("path") {
                p if p.is_empty() => std::env::temp_dir().join("written-by-hostile-server"),
                p => PathBuf::from(p),
            };
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&target)
                .and_then(|mut f| f.write_all(b"pwned\n"))
                .map(|()| format!("wrote {}", target.display()))
                .map_err(|e| e.to_string())
        }
        // Create the missing directories on the way, then create or append to the file
        // (`DIR/.vscode/settings.json`, `DIR/.github/workflows/x.yml`).
        "write_file_mkdirs" => {
            let target = path("path");
            target
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .map_err(|e| format!("mkdir: {e}"))
                .and_then(|()| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&target)
                        .and_then(|mut f| f.write_all(b"pwned\n"))
                        .map(|()| format!("wrote {}", target.display()))
                        .map_err(|e| e.to_string())
                })
        }
        "rename_file" => std::fs::rename(path("from"), path("to"))
            .map(|()| "renamed".to_owned())
            .map_err(|e| e.to_string()),
        "truncate_file" => truncate(&path("path")),
        "delete_file" => std::fs::remove_file(path("path"))
            .map(|()| "deleted".to_owned())
            .map_err(|e| e.to_string()),
        "symlink_read" => {
            let link = scratch("symlink");
            std::os::unix::fs::symlink(path("target"), &link)
                .map_err(|e| format!("symlink: {e}"))
                .and_then(|()| read(&link))
        }
        "symlink_at" => std::os::unix::fs::symlink(path("target"), path("path"))
            .map(|()| "linked".to_owned())
            .map_err(|e| format!("symlink: {e}")),
        "hardlink_read" => {
            let link = scratch("hardlink");
            std::fs::hard_link(path("target"), &link)
                .map_err(|e| format!("link: {e}"))
                .and_then(|()| read(&link))
        }
        "proc_read" => read(
            &Path::new("/proc")
                .join(number("pid").to_string())
                .join(arg("file")),
        ),
        // Opening /proc/<pid>/mem is the privilege (a ptrace access check); reading needs a
        // mapped address, which the maps file gives when it is readable too.
        "proc_open_mem" => proc_open_mem(number("pid")),
        "exec" => exec(&path("path"), &list("args")),
        "exec_script" => exec_script(&arg("interpreter"), &list("args")),
        "exec_memfd" => exec_memfd(&path("path"), &list("args")),
        "exec_copy" => exec_copy(&path("path"), &list("args")),
        "tcp_connect" => std::net::TcpStream::connect(("127.0.0.1", port()))
            .map(|_| format!("connected to 127.0.0.1:{}", port()))
            .map_err(|e| e.to_string()),
        "tcp_bind" => std::net::TcpListener::bind(("127.0.0.1", port()))
            .map(|l| format!("bound {:?}", l.local_addr().ok()))
            .map_err(|e| e.to_string()),
        "udp_send" => std::net::UdpSocket::bind(("127.0.0.1", 0))
            .and_then(|s| s.send_to(b"pwned", ("127.0.0.1", port())))
            .map(|n| format!("sent {n} bytes"))
            .map_err(|e| e.to_string()),
        "abstract_connect" => abstract_connect(&arg("name")),
        "unix_connect" => std::os::unix::net::UnixStream::connect(path("path"))
            .map(|_| format!("connected to {}", arg("path")))
            .map_err(|e| e.to_string()),
        "signal" => signal(number("pid"), number("signal")),
        "read_env" => std::env::var(arg("name"))
            .map(|value| format!("read {} bytes", value.len()))
            .map_err(|e| e.to_string()),
        _ => return None,
    })
}

fn read(path: &Path) -> Outcome {
    std::fs::read(path)
        .map(|bytes| format!("read {} bytes", bytes.len()))
        .map_err(|e| e.to_string())
}

/// A fresh name in the server's `$TMPDIR` (the only writable place under the guard).
fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir();
    let name = format!("hostile-{what}-{}-{}", std::process::id(), nanos());
    dir.join(name)
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn truncate(path: &Path) -> Outcome {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: truncate(2) on a NUL-terminated path.
    if unsafe { libc::truncate(c.as_ptr(), 0) } == 0 {
        Ok("truncated".into())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

fn proc_open_mem(pid: i64) -> Outcome {
    let dir = Path::new("/proc").join(pid.to_string());
    let mem = std::fs::File::open(dir.join("mem")).map_err(|e| e.to_string())?;
    let maps = std::fs::read_to_string(dir.join("maps")).unwrap_or_default();
    let start = maps
        .lines()
        .next()
        .and_then(|l| l.split('-').next())
        .and_then(|a| u64::from_str_radix(a, 16).ok());
    let Some(start) = start else {
        return Ok("opened mem (maps unreadable, nothing read)".into());
    };
    let mut buf = [0u8; 16];
    std::os::unix::fs::FileExt::read_at(&mem, &mut buf, start)
        .map_err(|e| e.to_string())
        .map(|n| format!("opened mem and read {n} bytes at {start:#x}"))
}

/// Run a command; it succeeded only if it ran and exited 0.
fn finish(command: &mut Command) -> Outcome {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("spawn: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if output.status.success() {
        Ok(format!("ran, output {stdout:?}"))
    } else {
        Err(format!("{}: {stderr}", output.status))
    }
}

fn exec(path: &Path, args: &[String]) -> Outcome {
    finish(Command::new(path).args(args))
}

/// A script with a `#!interpreter` line, written to `$TMPDIR` and executed.
fn exec_script(interpreter: &str, args: &[String]) -> Outcome {
    let script = scratch("script");
    let body = format!("#!{interpreter}\necho pwned\n");
    std::fs::write(&script, body).map_err(|e| format!("write script: {e}"))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    finish(Command::new(&script).args(args))
}

/// Copy `path` into a memfd and `execveat` it: a binary that never touched the filesystem.
#[cfg(target_os = "linux")]
fn exec_memfd(path: &Path, args: &[String]) -> Outcome {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    // SAFETY: memfd_create with a static name; the fd is owned below.
    let fd = unsafe { libc::memfd_create(c"hostile".as_ptr(), 0) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let mut memfd = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    memfd
        .write_all(&bytes)
        .map_err(|e| format!("write memfd: {e}"))?;
    let mut argv: Vec<CString> = vec![c"memfd".to_owned()];
    for a in args {
        argv.push(CString::new(a.as_str()).map_err(|e| e.to_string())?);
    }
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // Addresses, not pointers, cross into the hook (the closure must be Send + Sync); both
    // arrays outlive the fork below.
    let (argv_addr, envp_addr) = (argv_ptrs.as_ptr() as usize, envp.as_ptr() as usize);
    let mut command = Command::new("/nonexistent-never-run");
    // SAFETY: the hook only makes the execveat syscall with memory prepared before fork.
    unsafe {
        command.pre_exec(move || {
            libc::syscall(
                libc::SYS_execveat,
                fd,
                c"".as_ptr(),
                argv_addr as *const *const libc::c_char,
                envp_addr as *const *const libc::c_char,
                libc::AT_EMPTY_PATH,
            );
            Err(std::io::Error::last_os_error())
        });
    }
    let outcome = finish(&mut command);
    drop((memfd, argv, argv_ptrs));
    outcome.map_err(|e| format!("execveat: {e}"))
}

/// Copy `path` into `$TMPDIR`, make it executable and run it.
fn exec_copy(path: &Path, args: &[String]) -> Outcome {
    let copy = scratch("copy");
    std::fs::copy(path, &copy).map_err(|e| format!("copy {}: {e}", path.display()))?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let outcome = finish(Command::new(&copy).args(args));
    // Unguarded (a test's control) $TMPDIR is the real /tmp: leave nothing behind there.
    let _ = std::fs::remove_file(&copy);
    outcome
}

#[cfg(target_os = "linux")]
fn abstract_connect(name: &str) -> Outcome {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| e.to_string())?;
    std::os::unix::net::UnixStream::connect_addr(&addr)
        .map(|_| format!("connected to @{name}"))
        .map_err(|e| e.to_string())
}

fn signal(pid: i64, signal: i64) -> Outcome {
    let pid = libc::pid_t::try_from(pid).map_err(|e| e.to_string())?;
    let signal = libc::c_int::try_from(signal).map_err(|e| e.to_string())?;
    if pid <= 1 {
        return Err(format!("refusing to signal pid {pid}"));
    }
    // SAFETY: kill(2) on one positive pid chosen by the test.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(format!("sent signal {signal} to {pid}"))
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

#[cfg(not(target_os = "linux"))]
fn exec_memfd(_path: &Path, _args: &[String]) -> Outcome {
    Err("memfd_create is Linux-only".into())
}

#[cfg(not(target_os = "linux"))]
fn abstract_connect(_name: &str) -> Outcome {
    Err("abstract unix sockets are Linux-only".into())
}
