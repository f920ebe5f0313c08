//! The supervisor process (`mcp-guard __supervise`), started by the guard; see the module docs
//! of `crate::launch` for why it exists. It is single-threaded and uses no async runtime, so its
//! forked child may allocate and build the sandbox freely before exec.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};

use nix::sys::signal::{killpg, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::{fork, ForkResult, Pid};

use super::{tree, SupervisorEvent, EGRESS_FD, EVENTS_FD, PLAN_FD, SIGNAL_KILL_TREE};
use crate::sandbox::limits::{Placement, ResourceGroup};
use crate::sandbox::{self, Plan};

/// Exit status when the server could not be started at all.
const SPAWN_FAILED: u8 = 126;

pub fn main() -> u8 {
    // SAFETY: fds 3 and 4 were placed for us by the guard (launch::place_supervisor_fds) and
    // nothing else in this fresh process owns them.
    let (mut plan_pipe, events) =
        unsafe { (File::from_raw_fd(PLAN_FD), File::from_raw_fd(EVENTS_FD)) };
    // dup2 cleared close-on-exec; the server must not inherit the event pipe.
    // SAFETY: fcntl on an fd we own.
    unsafe {
        libc::fcntl(EVENTS_FD, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    let mut events = EventWriter(events);
    let plan = match read_plan(&mut plan_pipe) {
        Ok(plan) => plan,
        Err(error) => {
            events.send(&SupervisorEvent::SpawnFailed { error });
            return SPAWN_FAILED;
        }
    };
    drop(plan_pipe);
    supervise_plan(plan, events)
}

/// The supervisor forked from a single-threaded guard without exec (see `launch::spawn`):
/// `plan` is the guard's own, copied by fork. Gives the process the signal state a fresh exec
/// would have had; the caller `_exit`s with the returned status.
pub fn main_forked(plan: Plan) -> u8 {
    // SAFETY: fd 4 was placed for us (launch::place_supervisor_fds); the guard's objects that
    // own the other fds are never used or dropped here (the process ends with _exit).
    let events = unsafe { File::from_raw_fd(EVENTS_FD) };
    // SAFETY: fcntl on an fd we own.
    unsafe {
        libc::fcntl(EVENTS_FD, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    restore_exec_signal_state();
    supervise_plan(plan, EventWriter(events))
}

/// What exec would have done to the guard's signal dispositions: its handlers (tokio's) back
/// to the default; and what Rust's start-up does: SIGPIPE ignored, so a write to a vanished
/// guard fails with EPIPE instead of killing the supervisor before it has killed the tree.
fn restore_exec_signal_state() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installs no handler code; reads the old action only to keep SIG_IGN.
        unsafe {
            if let Ok(old) = sigaction(sig, &default) {
                if old.handler() == SigHandler::SigIgn {
                    let _ = sigaction(sig, &old);
                }
            }
        }
    }
    // SAFETY: as above.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// Everything after the plan is in hand, for both ways of starting the supervisor.
fn supervise_plan(plan: Plan, mut events: EventWriter) -> u8 {
    // The egress channel (fd 5) comes with a plan in `hosts` mode only.
    let egress = plan.egress.map(|_| {
        // SAFETY: fd 5 was placed for us by the guard (launch::place_supervisor_fds); dup2
        // cleared close-on-exec, which the server must not inherit.
        unsafe {
            libc::fcntl(EGRESS_FD, libc::F_SETFD, libc::FD_CLOEXEC);
            std::os::fd::OwnedFd::from_raw_fd(EGRESS_FD)
        }
    });
    close_other_fds(if egress.is_some() {
        EGRESS_FD
    } else {
        EVENTS_FD
    });

    // Held until the server's tree is dead: the guard may die first (SIGKILL), and a later
    // guard's sweep must not take the directory from under a server still running.
    let private_dir_lock = plan
        .private_dir
        .as_deref()
        .and_then(|dir| sandbox::env::lock_private_dir(dir).ok());

    #[cfg(target_os = "linux")]
    // SAFETY: plain prctl; makes orphaned descendants our children so we can reap and kill them.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let handled = handled_signals();
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled), None) {
        events.send(&SupervisorEvent::SpawnFailed {
            error: format!("cannot block signals in the supervisor: {e}"),
        });
        return SPAWN_FAILED;
    }
    let group = match ResourceGroup::create(&plan) {
        Ok(group) => group,
        Err(e) => {
            events.send(&SupervisorEvent::SpawnFailed {
                error: e.to_string(),
            });
            return SPAWN_FAILED;
        }
    };

    // The broker tier may be chosen in the child: a channel for its notifier, just in case.
    let broker = match plan.egress {
        Some(e) if e.isolation != Some(sandbox::Isolation::Namespace) => {
            match std::os::unix::net::UnixStream::pair() {
                Ok(pair) => Some(pair),
                Err(e) => {
                    events.send(&SupervisorEvent::SpawnFailed {
                        error: format!("cannot create the broker's channel: {e}"),
                    });
                    return SPAWN_FAILED;
                }
            }
        }
        _ => None,
    };

    // SAFETY: this process is single-threaded (its threads start after this fork, in the
    // parent), so the child may do anything after fork.
    let forked = match &group {
        Some(group) => unsafe { group.fork_into() }.map(|(r, placed)| (r, Some((group, placed)))),
        None => unsafe { fork() }
            .map(|r| (r, None))
            .map_err(|e| sandbox::SandboxError::Setup(format!("fork failed: {e}"))),
    };
    let server = match forked {
        Ok((ForkResult::Child, group)) => {
            let child = ChildChannels {
                guard: egress.as_ref(),
                broker: broker.as_ref().map(|(_, child)| child),
            };
            exec_server(&plan, group, child, &mut events)
        }
        Ok((ForkResult::Parent { child }, _)) => {
            // Only the child speaks to the guard's proxy; if it dies, the guard sees the end.
            drop(egress);
            if let Some((ours, theirs)) = broker {
                drop(theirs);
                start_broker(&plan, ours, &events);
            }
            start_protect_watch(&plan, &events);
            child
        }
        Err(e) => {
            events.send(&SupervisorEvent::SpawnFailed {
                error: e.to_string(),
            });
            return SPAWN_FAILED;
        }
    };
    release_server_stdio();

    let (status, tree_gone) = supervise(server, group.as_ref(), &handled);
    // The supervisor outlives a SIGKILLed guard, so it is the one sure to see the tree gone:
    // remove the private HOME/TMPDIR now (the guard's own removal then finds nothing).
    if let (true, Some(dir)) = (tree_gone, &plan.private_dir) {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            tracing::warn!(
                "cannot remove the server's private directory {}: {e}",
                dir.display()
            );
        }
    }
    drop(private_dir_lock);
    // The tree is dead: whatever the watch missed is caught now, before the guard hears the end.
    #[cfg(target_os = "linux")]
    {
        let mut moved = 0;
        for q in sandbox::protect_watch::sweep(&plan.protect.missing, &mut moved) {
            events.send(&protected_event(q));
        }
    }
    let limit = group.as_ref().and_then(ResourceGroup::limit_hit);
    let (code, signal) = match status {
        Some(WaitStatus::Exited(_, code)) => (Some(code), None),
        Some(WaitStatus::Signaled(_, sig, _)) => (None, Some(sig as i32)),
        _ => (None, Some(libc::SIGKILL)),
    };
    let event = SupervisorEvent::Exited {
        code,
        signal,
        limit,
    };
    events.send(&event);
    drop(group);
    event.exit_status().unwrap_or(SPAWN_FAILED)
}

/// Wait for the server to exit, relaying the guard's requests, then kill what is left of its tree.
/// Returns the server's status and whether its whole tree is dead.
fn supervise(
    server: Pid,
    group: Option<&ResourceGroup>,
    handled: &SigSet,
) -> (Option<WaitStatus>, bool) {
    let status = std::cell::Cell::new(None);
    let mut record = |st: WaitStatus| {
        if st.pid() == Some(server) {
            status.set(Some(st));
        }
    };
    loop {
        match handled.wait() {
            Ok(Signal::SIGCHLD) => {
                if !tree::reap_exited(&mut record) {
                    break;
                }
            }
            Ok(sig) if sig as i32 == SIGNAL_KILL_TREE => {
                tree::kill_tree(server, group, &mut record);
            }
            // SIGTERM, SIGINT, SIGHUP, SIGQUIT: ask the server's group to terminate.
            Ok(_) => {
                let _ = killpg(server, Signal::SIGTERM);
            }
            Err(_) => {}
        }
        if status.get().is_some() {
            break;
        }
    }
    // The server is gone: nothing it started may outlive it.
    let gone = tree::kill_tree(server, group, &mut record);
    (status.get(), gone)
}

fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
    ] {
        set.add(sig);
    }
    set
}

/// In the forked child: become the server. Never returns.
/// The child's ends of the channels of `hosts` mode.
struct ChildChannels<'a> {
    /// To the guard: the tier, and the namespace's proxy listener.
    guard: Option<&'a std::os::fd::OwnedFd>,
    /// To this supervisor: the broker's notifier.
    broker: Option<&'a std::os::unix::net::UnixStream>,
}

/// The server's group and how the child got into it.
type GroupPlacement<'a> = Option<(&'a ResourceGroup, Placement)>;

fn exec_server(
    plan: &Plan,
    group: GroupPlacement<'_>,
    channels: ChildChannels<'_>,
    events: &mut EventWriter,
) -> ! {
    let error = match prepare_child(plan, group, channels) {
        Ok(report) => {
            events.send(&SupervisorEvent::Confined { report });
            match exec_args(plan) {
                Ok((program, argv, env)) => {
                    let err = nix::unistd::execve(&program, &argv, &env).err();
                    format!(
                        "cannot execute {}: {}",
                        plan.program.display(),
                        err.map_or_else(|| "unknown error".into(), |e| e.desc().to_owned())
                    )
                }
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    events.send(&SupervisorEvent::SpawnFailed { error });
    // SAFETY: leave without running destructors or atexit handlers of the supervisor.
    unsafe { libc::_exit(SPAWN_FAILED as i32) }
}

fn prepare_child(
    plan: &Plan,
    group: GroupPlacement<'_>,
    channels: ChildChannels<'_>,
) -> Result<sandbox::EnforcementReport, String> {
    // A session of its own: no controlling terminal (no TIOCSTI into the user's terminal) and a
    // process group the supervisor can signal as a whole.
    nix::unistd::setsid().map_err(|e| format!("setsid failed: {e}"))?;
    // Before anything of the server's runs: it never runs outside its limits.
    if let Some((group, placement)) = group {
        group.join_current(placement).map_err(|e| e.to_string())?;
    }
    reset_signals();
    std::env::set_current_dir(&plan.cwd).map_err(|e| {
        format!(
            "cannot enter the working directory {}: {e}",
            plan.cwd.display()
        )
    })?;
    // First of the layers: the namespace's capabilities are needed to raise its loopback.
    use std::os::fd::AsFd;
    let tier = match channels.guard {
        Some(channel) => {
            sandbox::network_tier::enter(plan, channel.as_fd()).map_err(|e| e.to_string())?
        }
        None => None,
    };
    let broker = match (tier, channels.broker) {
        (Some(sandbox::Isolation::Broker), Some(channel)) => Some(channel.as_fd()),
        (Some(sandbox::Isolation::Broker), None) => {
            return Err("the broker tier was chosen without a channel to the supervisor".into())
        }
        _ => None,
    };
    let mut report = sandbox::apply_with_broker(plan, broker).map_err(|e| e.to_string())?;
    report.network_isolation = tier;
    Ok(report)
}

/// The broker tier: receive the child's connect notifier (none comes when the child chose the
/// namespace, or failed) and serve it on a thread of its own until the server's tree is gone.
/// Its refusals go to the guard as events, for the audit log.
fn start_broker(plan: &Plan, channel: std::os::unix::net::UnixStream, events: &EventWriter) {
    #[cfg(target_os = "linux")]
    {
        use crate::sandbox::{fd_passing, net_broker};
        // The child sends it within moments, or execs (closing its end) or dies.
        let _ = channel.set_read_timeout(Some(std::time::Duration::from_secs(30)));
        let notify = match fd_passing::recv_fd(&channel) {
            Ok(Some(fd)) => fd,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("no connect notifier from the server's child: {e}");
                return;
            }
        };
        let Some(egress) = plan.egress else { return };
        let rules = net_broker::BrokerRules {
            proxy: std::net::SocketAddr::from(([127, 0, 0, 1], egress.proxy_port)),
            unix: plan.config.network.unix.clone(),
        };
        let Ok(file) = events.0.try_clone() else {
            return;
        };
        let mut events = EventWriter(file);
        let started = std::thread::Builder::new()
            .name("mcp-guard-broker".into())
            .spawn(move || {
                let report = |d: &net_broker::BrokerDecision| {
                    if !d.allowed {
                        events.send(&SupervisorEvent::ConnectRefused {
                            destination: d.destination.clone(),
                            family: d.family.to_string(),
                            reason: d.reason.clone(),
                        });
                    }
                };
                if let Err(e) = net_broker::serve(notify, &rules, report) {
                    tracing::error!("the connect broker stopped: {e}");
                }
            });
        if let Err(e) = started {
            tracing::error!("cannot start the connect broker: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (plan, channel, events);
}

/// Watch the protected names that do not exist yet, on a thread of its own, for as long as
/// this process lives (it outlives the server's tree by the final sweep only).
fn start_protect_watch(plan: &Plan, events: &EventWriter) {
    #[cfg(target_os = "linux")]
    {
        use crate::sandbox::protect_watch::ProtectWatch;
        if plan.protect.missing.is_empty() {
            return;
        }
        let Ok(file) = events.0.try_clone() else {
            return;
        };
        let mut events = EventWriter(file);
        let mut watch = match ProtectWatch::new(plan.protect.missing.clone()) {
            Ok(watch) => watch,
            Err(e) => {
                tracing::warn!("{e}");
                return;
            }
        };
        let started = std::thread::Builder::new()
            .name("mcp-guard-protect".into())
            .spawn(move || {
                // Anything created between the plan and now.
                for q in watch.sweep() {
                    events.send(&protected_event(q));
                }
                loop {
                    match watch.wait() {
                        Ok(found) => found
                            .into_iter()
                            .for_each(|q| events.send(&protected_event(q))),
                        Err(e) => {
                            tracing::error!("{e}");
                            return;
                        }
                    }
                }
            });
        if let Err(e) = started {
            tracing::error!("cannot start the watch for protected names: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (plan, events);
}

#[cfg(target_os = "linux")]
fn protected_event(q: sandbox::protect_watch::Quarantined) -> SupervisorEvent {
    SupervisorEvent::ProtectedNameMoved {
        path: q.path.display().to_string(),
        moved_to: q.moved_to.map(|p| p.display().to_string()),
        error: q.error,
    }
}

/// Signal masks and ignored dispositions survive exec: give the server a clean slate (Rust
/// ignores SIGPIPE, which would otherwise leak into the server).
fn reset_signals() {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: restoring the default disposition installs no handler code.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
    }
}

type ExecArgs = (CString, Vec<CString>, Vec<CString>);

fn exec_args(plan: &Plan) -> Result<ExecArgs, String> {
    let c = |s: &str| {
        CString::new(s).map_err(|_| format!("argument or variable contains a NUL byte: {s:?}"))
    };
    let program = c(&plan.program.to_string_lossy())?;
    let argv = plan.argv.iter().map(|a| c(a)).collect::<Result<_, _>>()?;
    let env = plan
        .env
        .iter()
        .map(|(k, v)| c(&format!("{k}={v}")))
        .collect::<Result<_, _>>()?;
    Ok((program, argv, env))
}

fn read_plan(pipe: &mut File) -> Result<Plan, String> {
    let mut json = Vec::new();
    pipe.read_to_end(&mut json)
        .map_err(|e| format!("cannot read the plan from the guard: {e}"))?;
    serde_json::from_slice(&json).map_err(|e| format!("malformed plan from the guard: {e}"))
}

/// Close every inherited fd above `last_kept` (stdio, the event pipe, the egress channel).
/// Only raw system calls: also used in the guard's forked child (see `launch::spawn_forked`).
pub(super) fn close_other_fds(last_kept: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: closes fds this process does not use; none is owned by a Rust object in use.
    unsafe {
        let closed = libc::syscall(
            libc::SYS_close_range,
            (last_kept + 1) as libc::c_uint,
            libc::c_uint::MAX,
            0,
        );
        if closed != 0 {
            // Before Linux 5.9: one by one, up to the descriptor limit.
            let limit = libc::sysconf(libc::_SC_OPEN_MAX).clamp(1024, 1 << 20) as i32;
            for fd in last_kept + 1..limit {
                libc::close(fd);
            }
        }
    }
}

/// The supervisor must not hold the server's stdin/stdout open: the guard would never see EOF
/// when the server closes its stdout. Point them at /dev/null instead.
fn release_server_stdio() {
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        // SAFETY: dup2 onto our own stdio fds.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}

/// JSON-lines writer for the event pipe (CLOEXEC, so the server never inherits it).
struct EventWriter(File);

impl EventWriter {
    fn send(&mut self, event: &SupervisorEvent) {
        if let Ok(mut line) = serde_json::to_vec(event) {
            line.push(b'\n');
            // The guard may be gone; nothing useful can be done about a failed report.
            let _ = self.0.write_all(&line);
        }
    }
}
