//! A confined command that is not an MCP server: the package launchers' fetch step
//! (`npm install`, `uv pip install`) run under the sandbox. Same supervisor, same sandbox, same
//! egress proxy as a server; no relay: stdin is closed at once, stdout goes to the guard's
//! stderr (never to the host's stdout, which carries JSON-RPC only), and the command gets
//! `limit` to finish before its whole tree is killed.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::events::{exit_status_of, next_record, EventReader, SPAWN_FAILED};
use super::{LaunchError, SupervisorEvent};
use crate::egress::launch::EgressSetup;
use crate::egress::InFlightCalls;
use crate::sandbox::Plan;

/// Why a confined command could not be run to completion.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("cannot read the supervisor's events: {0}")]
    Events(std::io::Error),
    #[error("cannot start the egress proxy: {0}")]
    Egress(std::io::Error),
    #[error("could not be started: {0}")]
    NotStarted(String),
}

/// Run `plan` to completion; returns its exit status (126 when it could not be started, 124
/// when it ran out of time). Removes the plan's private directory.
pub fn run_batch(
    plan: &Plan,
    egress: Option<EgressSetup>,
    limit: Duration,
) -> Result<u8, BatchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BatchError::Runtime)?;
    let result = runtime.block_on(batch(plan, egress, limit));
    if let Some(dir) = &plan.private_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn batch(
    plan: &Plan,
    egress: Option<EgressSetup>,
    limit: Duration,
) -> Result<u8, BatchError> {
    let mut launched = super::spawn(plan)?;
    drop(launched.server_stdin);
    let mut records = match (egress, launched.egress.take()) {
        (Some(setup), Some(channel)) => {
            let (records, receiver) = tokio::sync::mpsc::unbounded_channel();
            crate::egress::launch::start(channel, setup, InFlightCalls::new(), records)
                .map_err(BatchError::Egress)?;
            Some(receiver)
        }
        _ => None,
    };
    let supervisor_pid = launched.supervisor.id().map(|id| Pid::from_raw(id as i32));
    let mut supervisor = launched.supervisor;
    let mut events = EventReader::new(launched.events).map_err(BatchError::Events)?;
    let mut output = launched.server_stdout;
    let mut stderr = tokio::io::stderr();
    let copy = tokio::io::copy(&mut output, &mut stderr);
    tokio::pin!(copy);
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut copying = true;
    let mut timed_out = false;
    let exit = loop {
        tokio::select! {
            _ = &mut copy, if copying => copying = false,
            status = supervisor.wait() => break status.ok(),
            event = events.next() => events.handle(event),
            Some(record) = next_record(&mut records) => {
                tracing::debug!(?record, "fetch: egress connection");
            }
            () = &mut deadline, if !timed_out => {
                timed_out = true;
                tracing::error!("the command did not finish in {}; killing it", humantime::format_duration(limit));
                if let Some(pid) = supervisor_pid {
                    let _ = kill(pid, Signal::try_from(super::SIGNAL_KILL_TREE).ok());
                }
            }
        }
    };
    while let Some(event) = events.next_now().await {
        events.handle(Some(event));
    }
    if timed_out {
        return Ok(124);
    }
    if let Some(error) = events.spawn_failed.take() {
        return Err(BatchError::NotStarted(error));
    }
    Ok(events
        .exited
        .as_ref()
        .and_then(SupervisorEvent::exit_status)
        .or_else(|| exit.and_then(exit_status_of))
        .unwrap_or(SPAWN_FAILED))
}
