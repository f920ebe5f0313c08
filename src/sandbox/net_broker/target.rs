//! Reading the caller's destination and socket, deciding, and making the broker's own
//! connection that replaces the caller's socket.

use super::*;

/// Read the destination and the state of the caller's socket.
pub(super) fn gather(notif: &libc::seccomp_notif) -> Result<Call, GatherError> {
    let unknown = SocketFamily::Unknown;
    if notif.data.nr as libc::c_long != libc::SYS_connect {
        return Err((
            libc::EPERM,
            unknown,
            format!("unexpected syscall {}", notif.data.nr),
        ));
    }
    let pid = notif.pid;
    if pid == 0 {
        return Err((
            libc::EACCES,
            unknown,
            "the caller is not visible in the broker's pid namespace".into(),
        ));
    }
    // connect(int fd, const struct sockaddr *addr, socklen_t len): the kernel reads the int
    // arguments as 32 bits.
    let fd = notif.data.args[0] as u32 as i32;
    let len = notif.data.args[2] as u32 as i32;
    // The kernel's order: the descriptor (EBADF), the address copy (EINVAL, EFAULT), the
    // descriptor being a socket (ENOTSOCK), then the protocol's checks.
    let kind = socket_kind(pid, fd).map_err(|e| {
        let errno = match e.raw_os_error() {
            Some(libc::EBADF) => libc::EBADF,
            _ => libc::EACCES,
        };
        (
            errno,
            unknown,
            format!("cannot inspect the caller's socket: {e}"),
        )
    })?;
    if !(0..=MAX_ADDR_LEN as i32).contains(&len) {
        return Err((libc::EINVAL, unknown, format!("address length {len}")));
    }
    let mut raw = [0u8; MAX_ADDR_LEN];
    let raw = &mut raw[..len as usize];
    read_memory(pid, notif.data.args[1], raw).map_err(|e| {
        let errno = match e.raw_os_error() {
            Some(libc::EFAULT) => libc::EFAULT,
            _ => libc::EACCES,
        };
        (
            errno,
            unknown,
            format!("cannot read the address from the caller: {e}"),
        )
    })?;
    let Some((original, domain, sock_type)) = kind else {
        return Err((libc::ENOTSOCK, unknown, "not a socket".into()));
    };
    let dest = decode_sockaddr(raw, domain)
        .map_err(|errno| (errno, unknown, "malformed address".to_owned()))?;
    let family = dest.family();
    let flags = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .ok()
        .and_then(|text| parse_fdinfo(&text))
        .ok_or_else(|| {
            (
                libc::EACCES,
                family,
                "cannot read the caller's descriptor flags".to_owned(),
            )
        })?;
    let cwd = match &dest {
        Destination::UnixPath(p) if p.is_relative() => {
            Some(std::fs::read_link(format!("/proc/{pid}/cwd")).map_err(|e| {
                (
                    libc::EACCES,
                    family,
                    format!("cannot read the caller's working directory: {e}"),
                )
            })?)
        }
        _ => None,
    };
    Ok(Call {
        original,
        fd,
        dest,
        domain,
        sock_type,
        flags,
        cwd,
    })
}

/// Where the broker will connect its own socket, or why not.
pub(super) enum Target {
    Inet(SocketAddr),
    Unix(PathBuf),
}

pub(super) fn decide(call: &Call, rules: &BrokerRules) -> Result<(Target, String), (i32, String)> {
    match &call.dest {
        Destination::Inet(addr) => {
            if !is_proxy(*addr, rules.proxy) {
                return Err((
                    libc::EACCES,
                    format!("not the egress proxy ({}): use HTTP(S)_PROXY", rules.proxy),
                ));
            }
            if call.sock_type != libc::SOCK_STREAM {
                return Err((
                    libc::EACCES,
                    "only TCP connections to the proxy are brokered".into(),
                ));
            }
            let target = proxy_in_family(rules.proxy, call.domain).ok_or((
                libc::EACCES,
                "the proxy cannot be reached from this socket family".to_owned(),
            ))?;
            Ok((Target::Inet(target), "egress proxy".into()))
        }
        Destination::UnixPath(path) => {
            let absolute = match &call.cwd {
                Some(cwd) => cwd.join(path),
                None => path.clone(),
            };
            let resolved = std::fs::canonicalize(&absolute);
            for rule in &rules.unix {
                match (&resolved, std::fs::canonicalize(rule)) {
                    (Ok(resolved), Ok(canonical)) if *resolved == canonical => {
                        return Ok((Target::Unix(canonical), "listed unix socket".into()));
                    }
                    (Err(_), _) if absolute == *rule => {
                        return Err((libc::ENOENT, "listed unix socket does not exist".into()));
                    }
                    _ => {}
                }
            }
            Err((libc::EACCES, "unix socket not in the allow list".into()))
        }
        Destination::UnixAbstract(_) => {
            Err((libc::EACCES, "abstract unix sockets are not allowed".into()))
        }
        Destination::Unspec => Err((
            libc::EAFNOSUPPORT,
            "AF_UNSPEC (disconnect) is not brokered".into(),
        )),
        Destination::Other(_) => Err((libc::EAFNOSUPPORT, "address family not allowed".into())),
    }
}

/// The broker's own socket of the caller's kind, connected to `target` (never to anything
/// read from the caller after the check).
pub(super) fn connect_own(call: &Call, target: &Target) -> io::Result<OwnedFd> {
    let sock_type = match target {
        Target::Inet(_) => libc::SOCK_STREAM,
        Target::Unix(_) => call.sock_type,
    };
    // SAFETY: plain socket(2).
    let raw = unsafe { libc::socket(call.domain, sock_type | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    copy_options(&call.original, &sock, target);
    // A blocking connect honours SO_SNDTIMEO (TCP and unix stream): a full backlog cannot
    // stall the broker for long.
    set_send_timeout(&sock, Some(CONNECT_TIMEOUT))?;
    let connected = match target {
        Target::Inet(SocketAddr::V4(addr)) => {
            nix::sys::socket::connect(sock.as_raw_fd(), &SockaddrIn::from(*addr))
        }
        Target::Inet(SocketAddr::V6(addr)) => {
            nix::sys::socket::connect(sock.as_raw_fd(), &SockaddrIn6::from(*addr))
        }
        Target::Unix(path) => {
            let addr = UnixAddr::new(path.as_path()).map_err(io::Error::from)?;
            nix::sys::socket::connect(sock.as_raw_fd(), &addr)
        }
    };
    connected.map_err(io::Error::from)?;
    set_send_timeout(&sock, None)?;
    if call.flags.nonblock {
        // SAFETY: fcntl on a descriptor we own.
        let rc = unsafe {
            let flags = libc::fcntl(sock.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(sock.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK)
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(sock)
}

/// Integer options a client commonly sets before `connect()` and would silently lose with the
/// replaced socket: Nagle off (HTTP clients such as urllib3 set it before connecting),
/// keep-alive, credentials passing on unix sockets. Best effort: a failure leaves the default.
pub(super) fn copy_options(from: &OwnedFd, to: &OwnedFd, target: &Target) {
    let tcp: &[(libc::c_int, libc::c_int)] = &[
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        (libc::IPPROTO_TCP, libc::TCP_NODELAY),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    ];
    let unix: &[(libc::c_int, libc::c_int)] = &[(libc::SOL_SOCKET, libc::SO_PASSCRED)];
    let options = match target {
        Target::Inet(_) => tcp,
        Target::Unix(_) => unix,
    };
    for &(level, option) in options {
        if let Ok(value) = getsockopt_int(from, level, option) {
            // SAFETY: setsockopt with an int of the size passed.
            unsafe {
                libc::setsockopt(
                    to.as_raw_fd(),
                    level,
                    option,
                    (&value as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}

pub(super) fn set_send_timeout(sock: &OwnedFd, timeout: Option<Duration>) -> io::Result<()> {
    let timeout = timeout.unwrap_or_default();
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
    };
    // SAFETY: setsockopt with a valid timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Put `sock` at the caller's descriptor number, replacing its socket (`dup2`-like), keeping
/// its close-on-exec flag.
pub(super) fn install(listener: RawFd, id: u64, call: &Call, sock: &OwnedFd) -> io::Result<()> {
    let addfd = libc::seccomp_notif_addfd {
        id,
        flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
        srcfd: sock.as_raw_fd() as u32,
        newfd: call.fd as u32,
        newfd_flags: if call.flags.cloexec {
            libc::O_CLOEXEC as u32
        } else {
            0
        },
    };
    // SAFETY: SECCOMP_IOCTL_NOTIF_ADDFD reads one `struct seccomp_notif_addfd`.
    let rc = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ADDFD, &addfd) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(super) fn id_valid(listener: RawFd, id: u64) -> bool {
    // SAFETY: SECCOMP_IOCTL_NOTIF_ID_VALID reads one u64.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// Copy `buf.len()` bytes at `addr` in process `pid`.
pub(super) fn read_memory(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, which we own mutably; the remote side is only read by
    // the kernel, in the other process.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != buf.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// `SO_DOMAIN` and `SO_TYPE` of descriptor `fd` in thread `pid`, through a duplicate taken
/// with `pidfd_getfd`, returned too; `None` when it is not a socket.
pub(super) fn socket_kind(
    pid: u32,
    fd: RawFd,
) -> io::Result<Option<(OwnedFd, libc::c_int, libc::c_int)>> {
    let pidfd = pidfd_open(pid)?;
    // SAFETY: pidfd_getfd with a pidfd we own; returns a new descriptor or -1.
    let dup = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    let dup = unsafe { OwnedFd::from_raw_fd(dup as RawFd) };
    let domain = match getsockopt_int(&dup, libc::SOL_SOCKET, SO_DOMAIN) {
        Ok(domain) => domain,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => return Ok(None),
        Err(e) => return Err(e),
    };
    let sock_type = getsockopt_int(&dup, libc::SOL_SOCKET, libc::SO_TYPE)?;
    Ok(Some((dup, domain, sock_type)))
}

/// A pidfd whose descriptor table is that of thread `tid` (the notification names the calling
/// thread): `PIDFD_THREAD` on Linux 6.9+; before, a pidfd of the thread-group leader, whose
/// table the thread shares (threads are created with CLONE_FILES).
pub(super) fn pidfd_open(tid: u32) -> io::Result<OwnedFd> {
    let open = |pid: u32, flags: libc::c_uint| -> io::Result<OwnedFd> {
        // SAFETY: pidfd_open(2) with integer arguments.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    };
    let not_supported = |e: &io::Error| e.raw_os_error() == Some(libc::EINVAL);
    match open(tid, PIDFD_THREAD) {
        Err(e) if not_supported(&e) => {}
        other => return other,
    }
    // A non-leader thread: EINVAL before 6.9, ENOENT after.
    match open(tid, 0) {
        Err(e) if not_supported(&e) || e.raw_os_error() == Some(libc::ENOENT) => {}
        other => return other,
    }
    let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    let tgid = parse_tgid(&status).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    open(tgid, 0)
}

/// The `Tgid:` line of `/proc/TID/status`.
pub(super) fn parse_tgid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

pub(super) fn getsockopt_int(
    sock: &OwnedFd,
    level: libc::c_int,
    option: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into an int of the size passed.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}
