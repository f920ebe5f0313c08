//! Background threads that wait until the supervisor is started.
//!
//! The guard forks its supervisor without exec only while it has a single thread (see
//! `launch::spawn_forked`); a thread started just before (the schema warm-up, built with the
//! firewall) would force the slower re-exec. `run` holds such starts from before the firewall is built
//! until `launch::spawn` has forked; everywhere else they start at once, as before.

use std::sync::Mutex;

type Job = Box<dyn FnOnce() + Send>;

struct Held {
    holding: bool,
    jobs: Vec<Job>,
}

static HELD: Mutex<Held> = Mutex::new(Held {
    holding: false,
    jobs: Vec::new(),
});

/// From now until the supervisor is started, queue the jobs given to [`run_after_launch`].
pub fn hold() {
    if let Ok(mut held) = HELD.lock() {
        held.holding = true;
    }
}

/// Run `job` (which starts a thread) now, or once the supervisor is started if [`hold`] was
/// called.
pub fn run_after_launch(job: impl FnOnce() + Send + 'static) {
    let job: Job = Box::new(job);
    let job = match HELD.lock() {
        Ok(mut held) if held.holding => {
            held.jobs.push(job);
            return;
        }
        _ => job,
    };
    job();
}

/// The supervisor is started (or will not be): run what was held, and stop holding.
pub(crate) fn release() {
    let jobs = match HELD.lock() {
        Ok(mut held) => {
            held.holding = false;
            std::mem::take(&mut held.jobs)
        }
        Err(_) => return,
    };
    for job in jobs {
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn held_jobs_run_on_release_and_later_ones_at_once() {
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = |ran: &Arc<AtomicUsize>| {
            let ran = Arc::clone(ran);
            move || {
                ran.fetch_add(1, Ordering::SeqCst);
            }
        };
        hold();
        run_after_launch(counter(&ran));
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        release();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        run_after_launch(counter(&ran));
        assert_eq!(ran.load(Ordering::SeqCst), 2);
    }
}
