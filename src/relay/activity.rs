//! Busy polling for a moment after each message. On a virtual machine, waking a CPU that went
//! idle costs tens of microseconds; a relay that sleeps as soon as it has forwarded a request
//! pays that twice per round trip (for the answer, and for the next request), far more than
//! its own work. So after a message the relay keeps polling its pipes, without sleeping, for a
//! short window (`--busy-poll`), then sleeps as before. A busy session never sleeps anyway; an
//! idle one pays at most the window in CPU time per message. With one CPU to run on, polling
//! would only keep the awaited peer from running, so there it is off.

use std::cell::Cell;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The polling window to use: `requested`, or none when this process may run on one CPU only
/// (a container's limit, `taskset`).
pub fn window(requested: Duration) -> Duration {
    match std::thread::available_parallelism() {
        Ok(cpus) if cpus.get() > 1 => requested,
        _ => Duration::ZERO,
    }
}

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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;

    #[test]
    fn no_polling_on_a_single_cpu() {
        let all = sched_getaffinity(Pid::from_raw(0)).expect("affinity");
        let requested = Duration::from_micros(100);
        let mut one = CpuSet::new();
        let first = (0..CpuSet::count())
            .find(|&cpu| all.is_set(cpu).unwrap_or(false))
            .expect("a CPU");
        one.set(first).expect("cpu");
        // Affinity is per thread: only this test's thread is pinned.
        sched_setaffinity(Pid::from_raw(0), &one).expect("pin");
        let pinned = window(requested);
        sched_setaffinity(Pid::from_raw(0), &all).expect("restore");
        assert_eq!(pinned, Duration::ZERO);
        if std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
            assert_eq!(window(requested), requested);
        }
    }
}
