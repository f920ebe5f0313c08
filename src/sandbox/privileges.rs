//! Process privileges of the server: capabilities, `no_new_privs`, inherited descriptors.

use std::io;

use super::{EnforcementReport, Layer, SandboxError};

/// Securebits NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE and all the locks (KEEP_CAPS off):
/// uid 0 regains no capabilities at `execve`, and the server cannot undo it.
const SECURE_NOROOT: libc::c_ulong = 0b1110_1111;

/// Drop every capability: bounding (so no exec can regain any), ambient, inheritable,
/// permitted, effective. As root this also takes away what makes root special to the kernel:
/// bypassing file permissions, raising hard rlimits, moving between cgroups.
pub fn drop_capabilities(
    report: &mut EnforcementReport,
    required: bool,
) -> Result<(), SandboxError> {
    use caps::CapSet;
    let mut problems = Vec::new();
    let had_setpcap =
        caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP).unwrap_or(false);
    if had_setpcap {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECURE_NOROOT, 0, 0, 0) } != 0 {
            problems.push(format!("securebits: {}", io::Error::last_os_error()));
        }
    }
    let bounding_left = drop_bounding_set();
    // SAFETY: prctl with integer arguments only.
    let ambient = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if ambient != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        problems.push(format!("ambient set: {}", io::Error::last_os_error()));
    }
    // Effective first: the kernel refuses an effective set that is not within permitted.
    for set in [CapSet::Effective, CapSet::Inheritable, CapSet::Permitted] {
        if let Err(err) = caps::clear(None, set) {
            problems.push(format!("{set:?} set: {err}"));
        }
    }
    for set in [
        CapSet::Effective,
        CapSet::Permitted,
        CapSet::Inheritable,
        CapSet::Ambient,
    ] {
        match caps::read(None, set) {
            Ok(left) if left.is_empty() => {}
            Ok(left) => problems.push(format!("{set:?} set still holds {left:?}")),
            Err(err) => problems.push(format!("cannot read the {set:?} set: {err}")),
        }
    }
    if bounding_left > 0 && had_setpcap {
        problems.push(format!(
            "{bounding_left} capabilities left in the bounding set"
        ));
    }
    if problems.is_empty() {
        // An unprivileged guard leaves the bounding set as is: it holds no capability to drop,
        // and no_new_privs stops exec from gaining any. Not a gap to warn about at every
        // start; `mcp-guard check` says so.
        report.enforced.push(Layer::Capabilities);
        return Ok(());
    }
    let reason = problems.join("; ");
    if required {
        return Err(SandboxError::Required {
            layer: Layer::Capabilities,
            reason,
        });
    }
    report.not_enforced.push((Layer::Capabilities, reason));
    Ok(())
}

/// Drop every capability the kernel knows (not only those the `caps` crate names) from the
/// bounding set; returns how many are left.
fn drop_bounding_set() -> usize {
    let mut left = 0;
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only.
        match unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) } {
            1 => {
                // SAFETY: as above.
                if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
                    left += 1;
                }
            }
            0 => {}
            _ => break, // EINVAL: past the last capability of this kernel.
        }
    }
    left
}

/// `PR_SET_NO_NEW_PRIVS`: setuid bits and file capabilities no longer apply at exec; also what
/// lets an unprivileged process install landlock and seccomp.
pub fn set_no_new_privs() -> Result<(), SandboxError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(SandboxError::Setup(format!(
            "cannot set no_new_privs: {} (the kernel is older than 3.5?)",
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Make every descriptor above 2 close at exec. Marking rather than closing keeps the
/// supervisor's status pipe (CLOEXEC itself) working until the exec succeeds, and the server
/// still starts with nothing but its stdio.
pub fn close_inherited_fds() -> Result<(), SandboxError> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if done == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk /proc/self/fd (landlock is not applied yet, /proc is readable).
    let entries = std::fs::read_dir("/proc/self/fd").map_err(|e| {
        SandboxError::Setup(format!(
            "cannot list open descriptors in /proc/self/fd: {e}"
        ))
    })?;
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds.into_iter().filter(|&fd| fd > 2) {
        // SAFETY: fcntl on a descriptor number; a stale one (the read_dir's own) yields EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}
