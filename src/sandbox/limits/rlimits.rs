//! Resource limits set by the server's own process (the supervisor's child, before exec):
//! always no core dumps, the per-process limits cgroups do not have (CPU time, file size, open
//! files), and fallbacks for memory and processes when no cgroup enforces them.
//!
//! Soft and hard limits are set equal: once capabilities are dropped the server cannot raise a
//! hard limit back (root keeps that power only with CAP_SYS_RESOURCE).

use super::{joined_coverage, CgroupCoverage, EffectiveLimits, LimitsReport, Mechanism};
use crate::sandbox::Limits;

/// Set the rlimits for `limits` on the calling process and report, for every limit, what
/// enforces it. `coverage` comes from [`super::joined_coverage`] when `None`.
///
/// Memory falls back to RLIMIT_DATA, not RLIMIT_AS: V8 reserves tens of GiB of address space it
/// never touches (pointer cage, wasm guard regions), so any useful RLIMIT_AS stops node from
/// starting, while RLIMIT_DATA counts only private writable memory, the heap a bomb grows.
pub fn apply_rlimits_to_current_process(
    limits: &Limits,
    coverage: Option<CgroupCoverage>,
) -> LimitsReport {
    let coverage = coverage.unwrap_or_else(joined_coverage);
    report(limits, coverage, Mode::Apply)
}

/// What [`apply_rlimits_to_current_process`] would report with `coverage`, changing nothing;
/// for `mcp-guard check`.
pub fn predict_rlimits(limits: &Limits, coverage: CgroupCoverage) -> LimitsReport {
    report(limits, coverage, Mode::Predict)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Apply,
    Predict,
}

fn report(limits: &Limits, coverage: CgroupCoverage, mode: Mode) -> LimitsReport {
    let effective = EffectiveLimits::of(limits);
    let set = |resource, value, mechanism: &str| set_pair(mode, resource, value, value, mechanism);
    let mut report = Vec::new();

    let memory = match (effective.memory_bytes, coverage.memory) {
        (None, _) => Mechanism::NotSet,
        (Some(_), Some(file)) => file.mechanism(),
        (Some(max), None) => set(
            Resource::Data,
            max,
            "RLIMIT_DATA (heap and private mappings only)",
        ),
    };
    let value = effective
        .memory_bytes
        .map_or_else(|| "unlimited".to_owned(), bytes);
    report.push(("memory".to_owned(), value, memory));

    let pids = match (effective.pids, coverage.pids) {
        (None, _) => Mechanism::NotSet,
        (Some(_), Some(file)) => file.mechanism(),
        (Some(max), None) => nproc_fallback(max, mode),
    };
    let value = effective
        .pids
        .map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    report.push(("processes".to_owned(), value, pids));

    let cpus = match (effective.cpus, coverage.cpu) {
        (None, _) => Mechanism::NotSet,
        (Some(_), Some(file)) => file.mechanism(),
        (Some(_), None) => Mechanism::NotEnforced(
            "no cpu controller; only a CPU-time limit can be set without one".into(),
        ),
    };
    report.push((
        "cpus".to_owned(),
        effective.cpus.map(|c| format!("{c}")).unwrap_or_default(),
        cpus,
    ));

    let cpu_time = match effective.cpu_time {
        None => Mechanism::NotSet,
        Some(time) => {
            // SIGXCPU at the soft limit, SIGKILL one second later if the server ignores it.
            let seconds = time.as_secs_f64().ceil().max(1.0) as u64;
            set_pair(
                mode,
                Resource::Cpu,
                seconds,
                seconds.saturating_add(1),
                "RLIMIT_CPU (per process: children have their own)",
            )
        }
    };
    report.push((
        "cpu-time".to_owned(),
        effective
            .cpu_time
            .map(|t| format!("{}s", t.as_secs_f64()))
            .unwrap_or_default(),
        cpu_time,
    ));

    let file_size = match effective.file_size_bytes {
        None => Mechanism::NotSet,
        Some(max) => set(Resource::Fsize, max, "RLIMIT_FSIZE"),
    };
    report.push((
        "file-size".to_owned(),
        effective.file_size_bytes.map(bytes).unwrap_or_default(),
        file_size,
    ));

    let open_files = match effective.open_files {
        None => Mechanism::NotSet,
        Some(max) => set(Resource::Nofile, max, "RLIMIT_NOFILE"),
    };
    report.push((
        "open-files".to_owned(),
        effective
            .open_files
            .map(|n| n.to_string())
            .unwrap_or_default(),
        open_files,
    ));

    // Core dumps would write the server's memory (secrets included) outside the sandbox's view.
    report.push((
        "core-dumps".to_owned(),
        "off".to_owned(),
        set(Resource::Core, 0, "RLIMIT_CORE=0"),
    ));

    LimitsReport { limits: report }
}

/// RLIMIT_NPROC counts every process of the real uid, system-wide, and never binds uid 0; so it
/// is only a fallback, set above the current count of the whole system (an upper bound of the
/// user's own) plus the cap.
fn nproc_fallback(cap: u64, mode: Mode) -> Mechanism {
    // SAFETY: getuid(2) cannot fail and takes no arguments.
    if unsafe { libc::getuid() } == 0 {
        return Mechanism::NotEnforced(
            "no pids cgroup, and RLIMIT_NPROC does not bind root".into(),
        );
    }
    match running_tasks() {
        Some(now) => set_pair(
            mode,
            Resource::Nproc,
            now.saturating_add(cap),
            now.saturating_add(cap),
            "RLIMIT_NPROC (approximate: counts every process of the user)",
        ),
        None => Mechanism::NotEnforced(
            "no pids cgroup, and the task count for RLIMIT_NPROC is unavailable".into(),
        ),
    }
}

#[cfg(target_os = "linux")]
fn running_tasks() -> Option<u64> {
    // sysinfo(2) needs no filesystem access (landlock may already hide /proc here).
    let mut info = std::mem::MaybeUninit::<libc::sysinfo>::zeroed();
    // SAFETY: the kernel fills the struct we own.
    let rc = unsafe { libc::sysinfo(info.as_mut_ptr()) };
    // SAFETY: zero-initialised, and filled by the kernel on success.
    (rc == 0).then(|| u64::from(unsafe { info.assume_init() }.procs))
}

#[cfg(not(target_os = "linux"))]
fn running_tasks() -> Option<u64> {
    None
}

#[derive(Clone, Copy)]
enum Resource {
    Data,
    Cpu,
    Fsize,
    Nofile,
    Core,
    Nproc,
}

/// Lower the limit to (soft, hard), never above the current hard limit (raising it needs
/// CAP_SYS_RESOURCE, and a lower hard limit already binds harder).
fn set_pair(mode: Mode, resource: Resource, soft: u64, hard: u64, mechanism: &str) -> Mechanism {
    use nix::sys::resource::{getrlimit, setrlimit, Resource as R};
    let which = match resource {
        Resource::Data => R::RLIMIT_DATA,
        Resource::Cpu => R::RLIMIT_CPU,
        Resource::Fsize => R::RLIMIT_FSIZE,
        Resource::Nofile => R::RLIMIT_NOFILE,
        Resource::Core => R::RLIMIT_CORE,
        #[cfg(not(target_os = "macos"))]
        Resource::Nproc => R::RLIMIT_NPROC,
        #[cfg(target_os = "macos")]
        Resource::Nproc => {
            return Mechanism::NotEnforced("RLIMIT_NPROC is not settable here".into())
        }
    };
    let (_, current_hard) = match getrlimit(which) {
        Ok(pair) => pair,
        Err(e) => return Mechanism::NotEnforced(format!("getrlimit: {e}")),
    };
    let hard = hard.min(current_hard);
    let soft = soft.min(hard);
    if mode == Mode::Predict {
        return Mechanism::Rlimit(mechanism.to_owned());
    }
    match setrlimit(which, soft, hard) {
        Ok(()) => Mechanism::Rlimit(mechanism.to_owned()),
        Err(e) => Mechanism::NotEnforced(format!("setrlimit failed: {e}")),
    }
}

fn bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}
