//! Busy polling for a moment after each message. On a virtual machine, waking a CPU that went
//! idle costs tens of microseconds; a relay that sleeps as soon as it has forwarded a request
//! pays that twice per round trip (for the answer, and for the next request), far more than
//! its own work. So after a message the relay keeps polling its pipes, without sleeping, for a
//! short window (`--busy-poll`), then sleeps as before. A busy session never sleeps anyway; an
//! idle one pays at most the window in CPU time per message.

use std::cell::Cell;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Activity {
    last: Cell<Option<Instant>>,
    /// Set while the poller sleeps: the next message wakes it.
    sleeping: Cell<bool>,
    wake: Notify,
}

impl Activity {
    /// A message passed: poll for the window from now.
    pub fn saw_message(&self) {
        self.last.set(Some(Instant::now()));
        if self.sleeping.replace(false) {
            self.wake.notify_one();
        }
    }

    /// Never resolves: yields to the runtime (which then polls the pipes without sleeping)
    /// while the window after the last message is open, and sleeps otherwise.
    pub async fn stay_awake(&self, window: Duration) {
        if window.is_zero() {
            return std::future::pending().await;
        }
        loop {
            let open = self.last.get().is_some_and(|at| at.elapsed() < window);
            if open {
                tokio::task::yield_now().await;
            } else {
                self.sleeping.set(true);
                self.wake.notified().await;
            }
        }
    }
}
