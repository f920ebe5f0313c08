//! The relay between the host (our stdin/stdout) and the server, and the session's lifecycle:
//! start, relay both ways, shut down as the MCP stdio transport says, exit with the server's
//! status.
//!
//! Everything runs on one thread (a current-thread tokio runtime): the server is spawned from
//! the main thread, which lives as long as the guard, so the supervisor's parent-death signal
//! fires only when the guard really dies; and the two directions share state without locks.

mod activity;
mod output;
pub mod pipeline;

mod session;
mod shutdown;
mod stdio;

use std::cell::RefCell;
use std::pin::pin;
use std::time::Duration;

use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{sleep_until, Instant};

use crate::audit::Audit;
use crate::egress::launch::EgressSetup;
use crate::egress::InFlightCalls;
use crate::filter::Firewall;
use crate::launch::events::{exit_status_of, next_record, EventReader, SPAWN_FAILED};
use crate::launch::{self, SupervisorEvent};
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

/// Why a session could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot handle {name}: {source}")]
    Signal {
        name: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Launch(#[from] launch::LaunchError),
    #[error("cannot start the egress proxy: {0}")]
    Egress(std::io::Error),
    #[error("cannot read the supervisor's events: {0}")]
    Events(std::io::Error),
}

/// What judges each message, in order: the firewall's stages, then the pin stage.
pub struct Stages {
    pub firewall: Firewall,
    /// `[pin]` (trust on first use by default), `--pin FILE`; `None` with `--no-pin`.
    pub pin: Option<crate::pin::PinGuard>,
}

/// Launch the server for `plan` and relay until it is gone; returns the exit status for the guard.
pub fn run_guarded(
    plan: Plan,
    options: RelayOptions,
    stages: Stages,
    audit: Audit,
    egress: Option<EgressSetup>,
) -> Result<u8, RelayError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RelayError::Runtime)?;
    let result = runtime.block_on(relay_session(&plan, &options, stages, audit, egress));
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
    stages: Stages,
    audit: Audit,
    egress: Option<EgressSetup>,
) -> Result<u8, RelayError> {
    // Before the spawn: a signal from then on is the relay's to handle, not a plain death.
    let handle = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| RelayError::Signal { name, source })
    };
    let mut sigint = handle(SignalKind::interrupt(), "SIGINT")?;
    let mut sigterm = handle(SignalKind::terminate(), "SIGTERM")?;
    let mut sighup = handle(SignalKind::hangup(), "SIGHUP")?;
    let mut launched = launch::spawn(plan)?;
    // `hosts` mode: the proxy on its own thread; its records come back here for the audit.
    let (egress_calls, mut egress_records) = match (egress, launched.egress.take()) {
        (Some(setup), Some(channel)) => {
            let calls = InFlightCalls::new();
            let (records, receiver) = tokio::sync::mpsc::unbounded_channel();
            crate::egress::launch::start(channel, setup, calls.clone(), records)
                .map_err(RelayError::Egress)?;
            (Some(calls), Some(receiver))
        }
        _ => (None, None),
    };
    let supervisor_pid = launched.supervisor.id().map(|id| Pid::from_raw(id as i32));
    let mut supervisor = launched.supervisor;
    let relay = Relay {
        session: RefCell::new(Session::new(
            options.request_timeout,
            crate::conversation::Ledger::new(egress_calls),
        )),
        firewall: RefCell::new(stages.firewall),
        pin: stages.pin.map(RefCell::new),
        audit,
        to_host: Output::new("the host's stdout", stdio::host_output()),
        to_server: Output::new("the server's stdin", Box::new(launched.server_stdin)),
        max_message_bytes: options.max_message_bytes,
        listing_done: tokio::sync::Notify::new(),
        activity: activity::Activity::default(),
    };
    let mut events = EventReader::new(launched.events).map_err(RelayError::Events)?;

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
