//! Killing the server's whole process tree from the supervisor.
//!
//! The supervisor is a child subreaper, so every descendant whose parent dies is re-parented to
//! it: "no children left" (ECHILD) therefore means "no descendants left". A descendant that
//! left the server's process group (setsid, setpgid) is still found through /proc's parent
//! links, which the supervisor can read because it is outside the sandbox.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::sandbox::limits::ResourceGroup;

/// How long to keep killing before giving up on a process that will not die (e.g. stuck in D).
const KILL_DEADLINE: Duration = Duration::from_secs(3);

/// Reap every child that has exited, passing each status to `on_exit`. Returns false when the
/// supervisor has no children left.
pub fn reap_exited(on_exit: &mut dyn FnMut(WaitStatus)) -> bool {
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return true,
            Ok(status) => on_exit(status),
            Err(Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// SIGKILL the server's group, its cgroup and every descendant, and reap them all. Returns
/// false when some survived (stuck in the kernel) past the deadline.
pub fn kill_tree(
    server_pgid: Pid,
    group: Option<&ResourceGroup>,
    on_exit: &mut dyn FnMut(WaitStatus),
) -> bool {
    let started = Instant::now();
    // No children left means no descendants left (see the module docs): nothing to kill, and
    // no walk through every process's /proc entry on the way out of each session.
    if !reap_exited(on_exit) {
        return true;
    }
    loop {
        if let Some(group) = group {
            group.kill_all();
        }
        let _ = killpg(server_pgid, Signal::SIGKILL);
        for pid in descendants(Pid::this()) {
            let _ = kill(pid, Signal::SIGKILL);
        }
        if !reap_exited(on_exit) {
            return true;
        }
        if started.elapsed() > KILL_DEADLINE {
            tracing::error!(
                "some of the server's processes survived SIGKILL for {KILL_DEADLINE:?}"
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every process whose chain of parents leads to `root`, read from /proc.
fn descendants(root: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![root.as_raw()];
    while let Some(pid) = queue.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            found.push(Pid::from_raw(child));
            queue.push(child);
        }
    }
    found
}

/// The ppid field of /proc/PID/stat; the command name before it may contain spaces and ')'.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}
