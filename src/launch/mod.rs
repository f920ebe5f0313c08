//! Starting the server.
//!
//! The guard does not exec the server itself. It starts a supervisor: a single-threaded
//! process that forks, confines the child (`sandbox::apply_to_current_process`) and execs the
//! server in it. The supervisor is a fork of the guard that never execs when the guard has a
//! single thread (it does at this point: the relay runs on one current-thread runtime; see
//! [`spawn_forked`]), else a re-exec of `mcp-guard __supervise` that reads the [`Plan`] from
//! fd 3. Why not a `pre_exec` hook that confines and execs the server directly: between fork
//! and exec in a multi-threaded process only async-signal-safe calls are allowed — no
//! allocation, no locks — which rules out building landlock rulesets, BPF programs or error
//! messages there; and the supervisor must stay outside the sandbox anyway.
//!
//! The supervisor also makes "no orphans, ever" hold: it is a child subreaper with
//! `PR_SET_PDEATHSIG`, stays outside the server's sandbox, and kills the server's whole tree
//! when the server exits, when the guard asks, or when the guard dies (even by SIGKILL).
//! It reports on fd 4 as JSON lines ([`SupervisorEvent`]).

pub mod batch;
pub mod events;
pub mod supervisor;
mod tree;

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::sandbox::{EnforcementReport, Plan};

/// Asks the supervisor to SIGTERM the server's process group.
pub const SIGNAL_TERMINATE: i32 = libc::SIGTERM;
/// Asks the supervisor to SIGKILL the server's whole tree; also its parent-death signal.
pub const SIGNAL_KILL_TREE: i32 = libc::SIGUSR1;

/// The supervisor reads the plan from this fd.
const PLAN_FD: i32 = 3;
/// The supervisor (and its child, until exec) writes events to this fd.
const EVENTS_FD: i32 = 4;
/// `hosts` mode: the server's child tells the guard the egress tier here, with the namespace's
/// proxy listener when there is one (see `sandbox::network_tier`).
const EGRESS_FD: i32 = 5;

/// What the supervisor tells the guard, one JSON object per line on fd 4.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SupervisorEvent {
    /// The sandbox is in place and the server is about to be exec'd.
    Confined { report: EnforcementReport },
    /// The broker tier refused one of the server's `connect()`s (it tried to go around the
    /// egress proxy).
    ConnectRefused {
        destination: String,
        family: String,
        reason: String,
    },
    /// A protected name that did not exist at the start appeared in a writable root and was
    /// moved aside (`moved_to`), or could not be (`error`); see `sandbox::protect_watch`.
    ProtectedNameMoved {
        path: String,
        moved_to: Option<String>,
        error: Option<String>,
    },
    /// The server could not be started (sandbox required but unavailable, exec failed…).
    SpawnFailed { error: String },
    /// The server exited and its tree is gone.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
        /// The resource limit that killed it, when the kernel says so.
        limit: Option<String>,
    },
}

impl SupervisorEvent {
    /// The status the guard exits with: the server's, 128+N for signal N.
    pub fn exit_status(&self) -> Option<u8> {
        match self {
            SupervisorEvent::Exited { code: Some(c), .. } => Some((*c & 0xff) as u8),
            SupervisorEvent::Exited {
                signal: Some(s), ..
            } => Some((128 + *s).clamp(0, 255) as u8),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot find the mcp-guard executable to start the supervisor: {0}")]
    CurrentExe(std::io::Error),
    #[error("cannot create a pipe to the supervisor: {0}")]
    Pipe(std::io::Error),
    #[error("cannot start the supervisor process: {0}")]
    Spawn(std::io::Error),
    #[error("cannot send the sandbox plan to the supervisor: {0}")]
    SendPlan(String),
}

/// A running supervisor with the server's stdio.
pub struct Launched {
    pub supervisor: Child,
    pub server_stdin: ChildStdin,
    pub server_stdout: ChildStdout,
    /// The read end of the supervisor's event pipe.
    pub events: OwnedFd,
    /// `hosts` mode: the guard's end of the egress channel (`sandbox::network_tier`).
    pub egress: Option<OwnedFd>,
}

/// Spawn the supervisor for `plan`. Must be called from a thread that lives as long as the
/// guard: the supervisor's parent-death signal fires when the spawning *thread* exits.
pub fn spawn(plan: &Plan) -> Result<Launched, LaunchError> {
    let (events_read, events_write) = pipe().map_err(LaunchError::Pipe)?;
    let egress = match plan.egress {
        Some(_) => Some(socket_pair().map_err(LaunchError::Pipe)?),
        None => None,
    };
    let egress_fd = egress.as_ref().map_or(-1, |(_, theirs)| theirs.as_raw_fd());
    let guard_pid = std::process::id() as libc::pid_t;
    let events_fd = events_write.as_raw_fd();

    // No second start of the binary when this process has a single thread (see
    // `spawn_forked`); the re-exec otherwise.
    let (mut command, plan_write) = if is_single_threaded() {
        (spawn_forked(plan, events_fd, egress_fd, guard_pid), None)
    } else {
        let (command, plan_write) = spawn_exec(events_fd, egress_fd, guard_pid)?;
        (command, Some(plan_write))
    };
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(false);
    let spawned = command.spawn();
    // Forked (or failed): threads held back for the fork may start now.
    crate::deferred::release();
    let mut supervisor = spawned.map_err(LaunchError::Spawn)?;
    drop((command, events_write));
    let egress = egress.map(|(ours, _theirs)| ours);

    if let Some(plan_write) = plan_write {
        let json = serde_json::to_vec(plan).map_err(|e| LaunchError::SendPlan(e.to_string()))?;
        std::fs::File::from(plan_write)
            .write_all(&json)
            .map_err(|e| LaunchError::SendPlan(e.to_string()))?;
    }

    let (Some(server_stdin), Some(server_stdout)) =
        (supervisor.stdin.take(), supervisor.stdout.take())
    else {
        return Err(LaunchError::Spawn(std::io::Error::other(
            "supervisor stdio missing",
        )));
    };
    Ok(Launched {
        supervisor,
        server_stdin,
        server_stdout,
        events: events_read,
        egress,
    })
}

/// The supervisor as a fork of this process that never execs: its `pre_exec` hook *is* the
/// supervisor, and ends with `_exit`. This saves starting the guard's binary a second time
/// (exec, dynamic linking, argument parsing) and sending the plan over a pipe.
///
/// Why this is safe here and not in general: between fork and exec only async-signal-safe
/// calls are allowed because *other threads* may hold locks (the allocator's, stdio's) that
/// the child inherits locked forever. The caller checked that this process has one thread,
/// and only this thread can start another, so nothing is held at the fork; the child may
/// allocate, build the sandbox and fork again, as the re-exec'd supervisor does. The one lock
/// held by our own thread during the fork is std's environment lock, taken for reading:
/// reading the environment still works, changing it would deadlock (nothing here changes it).
///
/// std's `spawn` returns when its close-on-exec status pipe closes; the hook closes every fd
/// above the ones it keeps (that pipe among them) before it does anything that could block.
fn spawn_forked(plan: &Plan, events_fd: i32, egress_fd: i32, guard_pid: libc::pid_t) -> Command {
    // Never executed: the hook below never returns Ok.
    let mut command = Command::new("/proc/self/exe");
    let mut plan = Some(plan.clone());
    // SAFETY: see above; the process is single-threaded at the fork.
    unsafe {
        command.pre_exec(move || {
            place_supervisor_fds(-1, events_fd, egress_fd, guard_pid)?;
            let Some(plan) = plan.take() else {
                libc::_exit(1);
            };
            let status = supervisor::main_forked(plan);
            // No destructors, no atexit handlers, no flush of the guard's buffers: they are
            // the guard's, not ours.
            libc::_exit(i32::from(status))
        });
    }
    command
}

/// The supervisor as `mcp-guard __supervise`, reading the plan from fd 3.
fn spawn_exec(
    events_fd: i32,
    egress_fd: i32,
    guard_pid: libc::pid_t,
) -> Result<(Command, OwnedFd), LaunchError> {
    let exe = std::env::current_exe().map_err(LaunchError::CurrentExe)?;
    let (plan_read, plan_write) = pipe().map_err(LaunchError::Pipe)?;
    let mut command = Command::new(exe);
    command.arg("__supervise");
    let plan_fd = plan_read.as_raw_fd();
    // SAFETY: only async-signal-safe libc calls, no allocation. `plan_read` stays open in the
    // command's closure until the spawn is done.
    unsafe {
        command.pre_exec(move || {
            let _keep_open = &plan_read;
            place_supervisor_fds(plan_fd, events_fd, egress_fd, guard_pid)
        });
    }
    Ok((command, plan_write))
}

/// Whether this process has exactly one thread (field 20 of /proc/self/stat). False when it
/// cannot tell.
fn is_single_threaded() -> bool {
    #[cfg(target_os = "linux")]
    {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return false;
        };
        // The command name (field 2) may contain spaces and ')': count after the last ')'.
        stat.rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().nth(17))
            .is_some_and(|threads| threads == "1")
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// A connected pair of unix stream sockets, close-on-exec.
fn socket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((read, write))
}

/// In the forked supervisor, before exec: put the pipes on fds 3 and 4 (and the egress channel,
/// if any, on 5; fd 3 is closed when there is no plan pipe, `plan_fd` < 0), leave the
/// terminal's process group (a Ctrl-C is the guard's to handle), and die with the guard. When
/// forked without exec, also close every other fd: the guard's, and std's status pipe.
fn place_supervisor_fds(
    plan_fd: i32,
    events_fd: i32,
    egress_fd: i32,
    guard_pid: libc::pid_t,
) -> std::io::Result<()> {
    let check = |r: libc::c_int| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    // SAFETY: plain syscalls on fds we own; dup to >= 10 first so 3 and 4 cannot clobber them.
    unsafe {
        let plan_high = if plan_fd >= 0 {
            check(libc::fcntl(plan_fd, libc::F_DUPFD_CLOEXEC, 10))?
        } else {
            -1
        };
        let events_high = check(libc::fcntl(events_fd, libc::F_DUPFD_CLOEXEC, 10))?;
        let egress_high = if egress_fd >= 0 {
            check(libc::fcntl(egress_fd, libc::F_DUPFD_CLOEXEC, 10))?
        } else {
            -1
        };
        if plan_high >= 0 {
            check(libc::dup2(plan_high, PLAN_FD))?;
        }
        check(libc::dup2(events_high, EVENTS_FD))?;
        if egress_high >= 0 {
            check(libc::dup2(egress_high, EGRESS_FD))?;
        }
        check(libc::setpgid(0, 0))?;
        #[cfg(target_os = "linux")]
        {
            check(libc::prctl(
                libc::PR_SET_PDEATHSIG,
                SIGNAL_KILL_TREE as libc::c_ulong,
                0,
                0,
                0,
            ))?;
            // The guard may have died before the prctl took effect.
            if libc::getppid() != guard_pid {
                libc::_exit(1);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = guard_pid;
        if plan_fd < 0 {
            // Forked without exec: nothing of the guard's stays open here, and std's status
            // pipe must close now for the guard's spawn() to return.
            libc::close(PLAN_FD);
            supervisor::close_other_fds(if egress_fd >= 0 { EGRESS_FD } else { EVENTS_FD });
        }
    }
    Ok(())
}
