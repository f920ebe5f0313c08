//! What the supervisor says on its event pipe, read by the guard while the server runs (the
//! relay) or while a confined command runs (`batch`), and how an exit is described.

use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::SupervisorEvent;
use crate::egress::ConnectionRecord;
use crate::protocol::{Frame, LineReader};

/// The exit status when the server could not be started (as a shell says for a command that
/// cannot be executed).
pub const SPAWN_FAILED: u8 = 126;

pub fn exit_status_of(status: std::process::ExitStatus) -> Option<u8> {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .map(|c| (c & 0xff) as u8)
        .or_else(|| status.signal().map(|s| (128 + s).clamp(0, 255) as u8))
}

/// The supervisor's event pipe and what it has said so far.
pub struct EventReader {
    reader: Option<LineReader<tokio::net::unix::pipe::Receiver>>,
    pub exited: Option<SupervisorEvent>,
    pub spawn_failed: Option<String>,
    /// A limit enforced by the guard itself (wall clock).
    pub limit: Option<String>,
}

impl EventReader {
    pub fn new(fd: OwnedFd) -> std::io::Result<Self> {
        let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
        Ok(Self {
            reader: Some(LineReader::new(receiver, 1 << 20)),
            exited: None,
            spawn_failed: None,
            limit: None,
        })
    }

    /// The next event; pending forever once the pipe is closed.
    pub async fn next(&mut self) -> Option<SupervisorEvent> {
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
    pub async fn next_now(&mut self) -> Option<SupervisorEvent> {
        // Once the pipe is closed, `next` would wait forever: there is nothing more to read.
        self.reader.as_ref()?;
        tokio::time::timeout(Duration::from_millis(200), self.next())
            .await
            .ok()
            .flatten()
    }

    pub fn handle(&mut self, event: Option<SupervisorEvent>) {
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

    pub fn describe_exit(&self, status: u8) -> String {
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
pub async fn next_record(
    records: &mut Option<tokio::sync::mpsc::UnboundedReceiver<ConnectionRecord>>,
) -> Option<ConnectionRecord> {
    match records {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}
