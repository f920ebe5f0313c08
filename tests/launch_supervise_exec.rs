//! The re-exec'd supervisor (`mcp-guard __supervise`), which a guard that is not single-threaded
//! starts instead of forking itself (`launch::spawn`). `run` always forks now, so this path is
//! driven directly: the plan on fd 3, the events read from fd 4, the server's output on stdout.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use mcp_guard::sandbox::SandboxConfig;

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe")
}

#[test]
fn supervise_exec_reads_the_plan_confines_and_reports_the_exit() {
    let plan = mcp_guard::sandbox::prepare(
        &SandboxConfig::default(),
        &["/bin/echo".into(), "confined hello".into()],
    )
    .expect("prepare");
    let (plan_read, plan_write) = pipe();
    let (events_read, events_write) = pipe();
    let (plan_fd, events_fd) = (plan_read.as_raw_fd(), events_write.as_raw_fd());
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-guard"));
    command
        .arg("__supervise")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    // SAFETY: dup2 only, async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(plan_fd, 3) < 0 || libc::dup2(events_fd, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut supervisor = command.spawn().expect("spawn the supervisor");
    drop((plan_read, events_write));
    let json = serde_json::to_vec(&plan).expect("plan as JSON");
    std::fs::File::from(plan_write)
        .write_all(&json)
        .expect("send the plan");

    let mut events = String::new();
    std::fs::File::from(events_read)
        .read_to_string(&mut events)
        .expect("events");
    let mut output = String::new();
    supervisor
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut output)
        .expect("output");
    let status = supervisor.wait().expect("wait");

    assert!(status.success(), "{status:?}; events: {events}");
    assert_eq!(output, "confined hello\n");
    let kinds: Vec<String> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("an event"))
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["confined", "exited"], "events: {events}");
    if let Some(dir) = &plan.private_dir {
        assert!(
            !dir.exists(),
            "the supervisor removes the private directory"
        );
    }
}
