//! The shutdown sequence: close the server's stdin, wait; SIGTERM, wait; SIGKILL the tree.
//! The host's EOF starts it at the first step with `--shutdown-grace` between steps; a signal
//! from the host (it wants the guard gone now) jumps to SIGTERM with a short second grace.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::time::Instant;

use crate::launch;

/// After the host's SIGTERM/SIGINT/SIGHUP, how long the server gets between its SIGTERM and
/// SIGKILL. Short because the host is already waiting: the official SDKs SIGKILL the guard 2 s
/// after their SIGTERM, and within that the server must die, its tree be reaped, the audit log
/// get its last records and the private directory be removed.
pub const SIGNAL_KILL_GRACE: Duration = Duration::from_millis(500);

/// Where the shutdown sequence stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Running,
    InputClosed,
    Terminated,
    Killed,
}

pub struct Shutdown {
    stage: Stage,
    /// When the next step is due (far in the future while running).
    next_step: Instant,
    supervisor: Option<Pid>,
    grace: Duration,
}

impl Shutdown {
    pub fn new(supervisor: Option<Pid>, grace: Duration) -> Self {
        Self {
            stage: Stage::Running,
            next_step: Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600),
            supervisor,
            grace,
        }
    }

    pub fn next_step(&self) -> Instant {
        self.next_step
    }

    /// The server's stdin is being closed (host EOF, audit stop): the first step, once.
    pub fn begin(&mut self, why: &str) {
        if self.stage == Stage::Running {
            self.advance(why);
        }
    }

    /// The server closed its stdout but may still live: it can no longer answer anything, so
    /// it gets the grace from now to exit by itself.
    pub fn server_output_closed(&mut self) {
        if self.stage == Stage::Running {
            self.stage = Stage::InputClosed;
            self.next_step = Instant::now() + self.grace;
        }
    }

    /// The host signalled the guard: SIGTERM now (whatever grace was running ends), SIGKILL
    /// after [`SIGNAL_KILL_GRACE`].
    pub fn hurry(&mut self, why: &str) {
        let kill_at = Instant::now() + SIGNAL_KILL_GRACE;
        match self.stage {
            Stage::Running | Stage::InputClosed => {
                self.stage = Stage::InputClosed;
                self.advance(why);
                self.next_step = kill_at;
            }
            Stage::Terminated => self.next_step = self.next_step.min(kill_at),
            Stage::Killed => {}
        }
    }

    /// A limit was reached: SIGKILL the tree at once.
    pub fn kill_now(&mut self, why: &str) {
        self.stage = Stage::Terminated;
        self.advance(why);
    }

    /// The next step: close stdin (the caller does), SIGTERM, then SIGKILL (repeated).
    pub fn advance(&mut self, why: &str) {
        let (next, signal) = match self.stage {
            Stage::Running => (Stage::InputClosed, None),
            Stage::InputClosed => (Stage::Terminated, Some(launch::SIGNAL_TERMINATE)),
            Stage::Terminated | Stage::Killed => (Stage::Killed, Some(launch::SIGNAL_KILL_TREE)),
        };
        tracing::debug!(?next, "shutdown: {why}");
        if let (Some(sig), Some(pid)) = (signal, self.supervisor) {
            if next != Stage::Killed || self.stage != Stage::Killed {
                let name = if next == Stage::Killed {
                    "SIGKILL"
                } else {
                    "SIGTERM"
                };
                tracing::info!("{why}; sending {name} to the server");
            }
            let _ = kill(pid, Signal::try_from(sig).ok());
        }
        self.stage = next;
        self.next_step = Instant::now() + self.grace;
    }
}
