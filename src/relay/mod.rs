//! The relay between the host (our stdin/stdout) and the server, and the session's lifecycle:
//! start, relay both ways, shut down as the MCP stdio transport says, exit with the server's
//! status.
//!
//! Everything runs on one thread (a current-thread tokio runtime): the server is spawned from
//! the main thread, which lives as long as the guard, so the supervisor's parent-death signal
//! fires only when the guard really dies; and the two directions share state without locks.

mod activity;
pub mod batch;
mod output;
pub mod pipeline;

mod replies;
mod session;
mod shutdown;
mod stdio;

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::pin::pin;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{sleep_until, Instant};

use crate::audit::Audit;
use crate::egress::launch::EgressSetup;
use crate::egress::{ConnectionRecord, InFlightCalls};
use crate::filter::Firewall;
use crate::launch::{self, SupervisorEvent};
use crate::protocol::{Frame, LineReader};
use crate::sandbox::Plan;
use output::Output;
use pipeline::Relay;
use session::Session;
use shutdown::{Shutdown, SIGNAL_KILL_GRACE};

#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub request_timeout: Duration,
    pub max_message_bytes: usize,
    pub shutdown_grace: Duration,
    /// How long to keep polling after a message before sleeping (0: never).
    pub busy_poll: Duration,
}

/// What to do about a server that exits before it answers `initialize`.
const STARTUP_HINT: &str = "if its messages (on stderr) show something refused (EACCES, \
    \"Permission denied\", \"Operation not permitted\", a failed connection), the sandbox \
    refused it: grant it with --allow-read PATH, --allow-exec PATH or --allow-host HOST, or \
    choose a profile (`mcp-guard policy list`); `mcp-guard scan -- CMD` lists what was refused";

/// Exit status when the server could not be started at all.
const SPAWN_FAILED: u8 = 126;

/// Launch the server for `plan` and relay until it is gone; returns the exit status for the guard.
pub fn run_guarded(
    plan: Plan,
    options: RelayOptions,
    firewall: Firewall,
    audit: Audit,
    egress: Option<EgressSetup>,
) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(relay_session(&plan, &options, firewall, audit, egress));
    // Normally the supervisor has removed it already, once the server's tree was dead.
    if let Some(dir) = &plan.private_dir {
        if let Err(e) = std::fs::remove_dir_all(dir).or_else(ignore_not_found) {
            tracing::warn!(
                "cannot remove the server's private directory {}: {e}",
                dir.display()
            );
        }
    }
    result
}

fn ignore_not_found(e: std::io::Error) -> std::io::Result<()> {
    match e.kind() {
        std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(e),
    }
}

async fn relay_session(
    plan: &Plan,
    options: &RelayOptions,
    firewall: Firewall,
    audit: Audit,
    egress: Option<EgressSetup>,
) -> anyhow::Result<u8> {
    // Before the spawn: a signal from then on is the relay's to handle, not a plain death.
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut launched = launch::spawn(plan)?;
    // `hosts` mode: the proxy on its own thread; its records come back here for the audit.
    let (egress_calls, mut egress_records) = match (egress, launched.egress.take()) {
        (Some(setup), Some(channel)) => {
            let calls = InFlightCalls::new();
            let (records, receiver) = tokio::sync::mpsc::unbounded_channel();
            crate::egress::launch::start(channel, setup, calls.clone(), records)
                .context("cannot start the egress proxy")?;
            (Some(calls), Some(receiver))
        }
        _ => (None, None),
    };
    let supervisor_pid = launched.supervisor.id().map(|id| Pid::from_raw(id as i32));
    let mut supervisor = launched.supervisor;
    let relay = Relay {
        session: RefCell::new(Session::new(options.request_timeout)),
        firewall: RefCell::new(firewall),
        audit,
        to_host: Output::new("the host's stdout", stdio::host_output()),
        to_server: Output::new("the server's stdin", Box::new(launched.server_stdin)),
        max_message_bytes: options.max_message_bytes,
        listing_done: tokio::sync::Notify::new(),
        held_requests: RefCell::default(),
        activity: activity::Activity::default(),
        egress_calls,
    };
    let mut events = EventReader::new(launched.events)?;

    let mut host = Some(Box::pin(relay.pump_host(stdio::host_input())));
    let mut server = pin!(relay.pump_server(launched.server_stdout));
    let mut server_queue = pin!(relay.to_server.drain_queue());
    let mut stay_awake = pin!(relay
        .activity
        .stay_awake(activity::window(options.busy_poll)));
    let mut expiry = tokio::time::interval(relay.expiry_tick());
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wall_clock = plan.config.limits.wall_clock.map(|d| Instant::now() + d);
    let far_future = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);

    let grace = options.shutdown_grace;
    let mut shutdown = Shutdown::new(supervisor_pid, grace);

    // Relay until the server's output ends.
    loop {
        tokio::select! {
            () = async { host.as_mut().expect("guarded by the condition").await }, if host.is_some() => {
                host = None;
                tracing::debug!("the host closed its input");
                relay.fail_pending_server_requests().await;
                shutdown.begin("the host closed its input");
                // The SDKs signal 2 s after closing stdin: heard even while the close waits.
                tokio::select! {
                    () = close_server_input(&relay, grace) => {}
                    name = received(&mut sigint, &mut sigterm, &mut sighup) => {
                        on_host_signal(&relay, &mut shutdown, name).await;
                    }
                }
            }
            () = &mut server => break,
            Some(record) = next_record(&mut egress_records) => relay.audit.egress(&record),
            () = &mut server_queue => {}
            () = &mut stay_awake => {}
            _ = expiry.tick() => {
                relay.expire_requests().await;
                relay.audit.tick();
                if host.is_some() && relay.to_server.stalled_for() >= grace && stdio::host_hung_up() {
                    // The host left while we were stuck writing to a server that does not read.
                    host = None;
                    relay.fail_pending_server_requests().await;
                    close_server_input(&relay, grace).await;
                    shutdown.begin("the host closed its input");
                }
            }
            event = events.next() => {
                relay.audit.supervisor_event(event.as_ref());
                events.handle(event);
            }
            why = relay.audit.stop_requested() => {
                tracing::error!("{why}");
                host = None;
                relay.fail_pending_server_requests().await;
                close_server_input(&relay, grace).await;
                shutdown.begin("the audit asked to stop the server");
            }
            name = received(&mut sigint, &mut sigterm, &mut sighup) => {
                host = None;
                relay.fail_pending_server_requests().await;
                on_host_signal(&relay, &mut shutdown, name).await;
            }
            () = sleep_until(shutdown.next_step()) => shutdown.advance("the server did not exit in time"),
            () = sleep_until(wall_clock.unwrap_or(far_future)) => {
                tracing::warn!("the server reached its wall-clock limit");
                events.limit = Some("wall-clock".into());
                relay.audit.limit_hit("wall-clock");
                close_server_input(&relay, grace).await;
                shutdown.kill_now("wall-clock limit reached");
            }
        }
    }

    // The server's stdout is closed: it exited, or it is about to be made to.
    drop(host);
    close_server_input(&relay, grace).await;
    shutdown.server_output_closed();
    let exit = loop {
        tokio::select! {
            status = supervisor.wait() => break status.ok(),
            event = events.next() => {
                relay.audit.supervisor_event(event.as_ref());
                events.handle(event);
            }
            _ = expiry.tick() => relay.expire_requests().await,
            name = received(&mut sigint, &mut sigterm, &mut sighup) => {
                shutdown.hurry(&format!("received {name}"));
            }
            () = sleep_until(shutdown.next_step()) => shutdown.advance("the server closed its output but did not exit"),
        }
    };
    // Connections that ended with the server.
    if let Some(records) = &mut egress_records {
        while let Ok(record) = records.try_recv() {
            relay.audit.egress(&record);
        }
    }
    // The supervisor's last event (Exited) may still be in the pipe.
    while let Some(event) = events.next_now().await {
        relay.audit.supervisor_event(Some(&event));
        events.handle(Some(event));
    }

    let status = events
        .exited
        .as_ref()
        .and_then(SupervisorEvent::exit_status)
        .or_else(|| exit.and_then(exit_status_of))
        .unwrap_or(SPAWN_FAILED);
    let why = events.describe_exit(status);
    relay.audit.server_exit(
        status,
        events.exited.as_ref(),
        events.limit.as_deref(),
        &why,
    );
    // A server that failed before answering `initialize` most likely met the sandbox: say
    // where to look and what to grant, to the host and on stderr.
    let never_started = status != 0 && relay.session.borrow().version.is_none();
    let told = if never_started && events.spawn_failed.is_none() {
        format!("{why}; {STARTUP_HINT}")
    } else {
        why.clone()
    };
    relay.fail_pending_host_requests(&told).await;
    relay.to_host.close().await;
    if let Some(error) = &events.spawn_failed {
        let fix = if error.contains("Permission denied") {
            "; the sandbox refused to execute it: grant it with --allow-exec PATH (a policy's \
             [filesystem] deny wins over any grant)"
        } else {
            ""
        };
        tracing::error!("could not start the server: {error}{fix}");
    } else if never_started {
        tracing::error!("the server {why} before answering initialize; {STARTUP_HINT}");
    } else if status != 0 {
        tracing::info!("the server {why}");
    }
    Ok(status)
}

/// Deliver what the guard still owes the server, then close its stdin. A server that does not
/// read gets `grace` for this; then shutdown goes on (SIGTERM, SIGKILL), which ends the write.
async fn close_server_input(relay: &Relay, grace: Duration) {
    let close = async {
        relay.to_server.flush_queue().await;
        relay.to_server.close().await;
    };
    if tokio::time::timeout(grace, close).await.is_err() {
        tracing::warn!("the server is not reading its input; going on with the shutdown");
    }
}

/// The host wants the guard gone now: SIGTERM at once, with the EOF for a server that finishes
/// on it; the short timeout covers one that does not read its input.
async fn on_host_signal(relay: &Relay, shutdown: &mut Shutdown, name: &str) {
    shutdown.hurry(&format!("received {name}"));
    close_server_input(relay, SIGNAL_KILL_GRACE).await;
}

/// Wait for whichever of the shutdown signals arrives; returns its name.
async fn received(
    sigint: &mut tokio::signal::unix::Signal,
    sigterm: &mut tokio::signal::unix::Signal,
    sighup: &mut tokio::signal::unix::Signal,
) -> &'static str {
    tokio::select! {
        _ = sigint.recv() => "SIGINT",
        _ = sigterm.recv() => "SIGTERM",
        _ = sighup.recv() => "SIGHUP",
    }
}

fn exit_status_of(status: std::process::ExitStatus) -> Option<u8> {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .map(|c| (c & 0xff) as u8)
        .or_else(|| status.signal().map(|s| (128 + s).clamp(0, 255) as u8))
}

/// The supervisor's event pipe and what it has said so far.
struct EventReader {
    reader: Option<LineReader<tokio::net::unix::pipe::Receiver>>,
    exited: Option<SupervisorEvent>,
    spawn_failed: Option<String>,
    /// A limit enforced by the guard itself (wall clock).
    limit: Option<String>,
}

impl EventReader {
    fn new(fd: OwnedFd) -> anyhow::Result<Self> {
        let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
            .context("cannot read the supervisor's events")?;
        Ok(Self {
            reader: Some(LineReader::new(receiver, 1 << 20)),
            exited: None,
            spawn_failed: None,
            limit: None,
        })
    }

    /// The next event; pending forever once the pipe is closed.
    async fn next(&mut self) -> Option<SupervisorEvent> {
        let Some(reader) = self.reader.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            match reader.next_frame().await {
                Ok(Frame::Line(line)) => match serde_json::from_slice(line) {
                    Ok(event) => return Some(event),
                    Err(e) => tracing::warn!("malformed supervisor event: {e}"),
                },
                Ok(Frame::Oversize { .. }) => tracing::warn!("oversize supervisor event"),
                Ok(Frame::Eof { .. }) | Err(_) => {
                    self.reader = None;
                    return None;
                }
            }
        }
    }

    /// Events already written, without waiting for more than a moment.
    async fn next_now(&mut self) -> Option<SupervisorEvent> {
        // Once the pipe is closed, `next` would wait forever: there is nothing more to read.
        self.reader.as_ref()?;
        tokio::time::timeout(Duration::from_millis(200), self.next())
            .await
            .ok()
            .flatten()
    }

    fn handle(&mut self, event: Option<SupervisorEvent>) {
        match event {
            Some(SupervisorEvent::Confined { report }) => {
                // Said once, loudly: what this kernel could not enforce.
                for (layer, reason) in &report.not_enforced {
                    tracing::warn!("sandbox: {layer:?} NOT enforced: {reason}");
                }
                for (layer, reason) in &report.partial {
                    tracing::warn!("sandbox: {layer:?} only partly enforced: {reason}");
                }
                if let Some(limits) = &report.limits {
                    tracing::debug!("sandbox limits: {limits}");
                }
                if let Some(tier) = report.network_isolation {
                    tracing::debug!(
                        "egress: only through the guard's proxy ({} tier)",
                        tier.as_str()
                    );
                }
                tracing::debug!(
                    landlock_abi = report.landlock_abi.as_deref().unwrap_or("none"),
                    "sandbox: enforced {:?}",
                    report.enforced
                );
            }
            Some(SupervisorEvent::SpawnFailed { error }) => {
                // Said once, with the fix, when the session ends.
                self.spawn_failed = Some(error);
            }
            Some(SupervisorEvent::ConnectRefused {
                destination,
                reason,
                ..
            }) => {
                tracing::warn!(
                    "refused the server's connection to {destination} (not through the egress proxy): {reason}"
                );
            }
            Some(SupervisorEvent::ProtectedNameMoved {
                path,
                moved_to,
                error,
            }) => match (moved_to, error) {
                (Some(to), _) => tracing::warn!(
                    "the server created the protected name {path}: moved aside to {to} \
                     (look at it, then delete it or rename it back)"
                ),
                (None, error) => tracing::error!(
                    "the server created the protected name {path} and it could not be moved \
                     aside: {}",
                    error.as_deref().unwrap_or("unknown error")
                ),
            },
            Some(exited @ SupervisorEvent::Exited { .. }) => self.exited = Some(exited),
            None => {}
        }
    }

    fn describe_exit(&self, status: u8) -> String {
        // The cgroup's word first, then what the signal says (SIGXCPU, SIGXFSZ), then the
        // guard's own wall clock.
        let limit = match &self.exited {
            Some(SupervisorEvent::Exited {
                limit: Some(limit), ..
            }) => Some(limit.as_str()),
            Some(SupervisorEvent::Exited {
                signal: Some(sig), ..
            }) => crate::sandbox::limits::limit_from_signal(*sig),
            _ => None,
        }
        .or(self.limit.as_deref());
        let base = match (&self.spawn_failed, &self.exited) {
            (Some(error), _) => format!("could not be started ({error})"),
            (
                None,
                Some(SupervisorEvent::Exited {
                    signal: Some(sig), ..
                }),
            ) => {
                let name = Signal::try_from(*sig)
                    .map(|s| s.as_str())
                    .unwrap_or("unknown signal");
                format!("was killed by {name} (exit status {status})")
            }
            _ => format!("exited with status {status}"),
        };
        match limit {
            Some(limit) => format!("{base}; the {limit} limit was reached"),
            None => base,
        }
    }
}

/// The next record of the egress proxy; never ready without one (not in `hosts` mode).
async fn next_record(
    records: &mut Option<tokio::sync::mpsc::UnboundedReceiver<ConnectionRecord>>,
) -> Option<ConnectionRecord> {
    match records {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}
