//! The namespace tier of `hosts` mode: the server runs in a private user + network namespace
//! whose only interface is `lo`, so UDP, raw sockets and every address but the namespace's
//! own loopback simply have no route. The egress proxy's listening socket is made inside that
//! namespace (by the server's child, before it execs) and handed to the guard, which serves it
//! from outside: a socket stays in the namespace it was created in.
//!
//! No privilege is needed where unprivileged user namespaces are allowed: the uid and gid are
//! mapped to themselves (file ownership is unchanged), and the capabilities the new namespace
//! grants are used only to raise `lo`, then dropped with the rest before exec.

use std::io::Write;
use std::os::fd::OwnedFd;

use nix::sched::{unshare, CloneFlags};
use nix::unistd::{getgid, getuid};

/// In the (single-threaded) child, before landlock and seccomp: enter a new user and network
/// namespace, raise its `lo`, and listen on 127.0.0.1:`proxy_port` inside it. Returns the
/// listener, for the guard's proxy.
pub fn enter_private_network(proxy_port: u16) -> Result<OwnedFd, String> {
    let (uid, gid) = (getuid(), getgid());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!(
            "cannot create a private network namespace: unshare(CLONE_NEWUSER | CLONE_NEWNET) \
             failed: {e} ({})",
            why_no_user_namespaces()
        )
    })?;
    // "deny" first: an unprivileged process may not map its gid while setgroups is allowed.
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("{uid} {uid} 1"))?;
    write_proc("/proc/self/gid_map", &format!("{gid} {gid} 1"))?;
    raise_loopback().map_err(|e| {
        format!(
            "cannot bring up the private namespace's loopback: {e} ({})",
            why_no_user_namespaces()
        )
    })?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", proxy_port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{proxy_port} in the namespace: {e}"))?;
    Ok(OwnedFd::from(listener))
}

fn write_proc(path: &str, text: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {path}: {e} ({})", why_no_user_namespaces()))
}

/// `ip link set lo up`, by ioctl: the new namespace's `lo` starts down.
fn raise_loopback() -> std::io::Result<()> {
    // SAFETY: a plain socket for the ioctls, closed by OwnedFd.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `sock` is a fresh descriptor we own.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(sock) };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS / SIOCSIFFLAGS read and write the ifreq we pass.
    unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The usual reasons unprivileged user namespaces are refused, for error messages.
pub fn why_no_user_namespaces() -> String {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return "user.max_user_namespaces is 0".into();
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return "AppArmor restricts unprivileged user namespaces \
                (kernel.apparmor_restrict_unprivileged_userns = 1)"
            .into();
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return "kernel.unprivileged_userns_clone is 0".into();
    }
    "user namespaces are not available to this process (a container's seccomp profile?)".into()
}

/// Whether [`enter_private_network`] works here: tried in a forked child, which exits at once.
/// Call only while the process is single-threaded (the `check` command, tests).
pub fn probe() -> Result<(), String> {
    let (read, write) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    // SAFETY: the caller is single-threaded; the child only tries the namespace and exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            drop(read);
            let outcome = enter_private_network(0).err().unwrap_or_default();
            let _ = std::fs::File::from(write).write_all(outcome.as_bytes());
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(write);
            let mut error = String::new();
            let _ = std::io::Read::read_to_string(&mut std::fs::File::from(read), &mut error);
            let _ = nix::sys::wait::waitpid(child, None);
            if error.is_empty() {
                Ok(())
            } else {
                Err(error)
            }
        }
        Err(e) => Err(format!("fork failed: {e}")),
    }
}
