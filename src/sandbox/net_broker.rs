//! The broker tier of `hosts` network mode: every `connect()` of the server is decided, and
//! performed, by the supervisor.
//!
//! Why: in `hosts` mode the server may reach the network only through the guard's egress proxy
//! on 127.0.0.1:PORT. Landlock's network rules are by TCP port only, never by address, so a
//! landlock rule for PORT also lets the server reach `evil.example:PORT` (and any other
//! address on that port). Without user namespaces there is no private loopback to hide the rest
//! of the network behind; this module closes the gap with seccomp user notification instead.
//!
//! How: the child installs a tiny filter ([`install_connect_notifier`]) that turns every
//! `connect(2)` into a notification to the supervisor, and refuses `sendto`/`sendmsg`/`sendmmsg`
//! with `MSG_FASTOPEN` (TCP Fast Open connects without `connect()`). The supervisor's broker
//! thread ([`serve`]) reads the destination from the server's memory and decides.
//!
//! Why the broker connects instead of letting the kernel continue: the address is a pointer
//! into the server's memory. `SECCOMP_USER_NOTIF_FLAG_CONTINUE` makes the kernel re-read it
//! *after* our check, and another server thread can rewrite it in between (a TOCTOU race the
//! seccomp_unotify(2) man page warns about). So the kernel never performs the server's own
//! connect: for an allowed destination the broker makes a socket of its own, connects it to
//! the destination *it* chose (the proxy, or the canonical path of a listed unix socket), and
//! installs it at the server's descriptor number with `SECCOMP_IOCTL_NOTIF_ADDFD` +
//! `SECCOMP_ADDFD_FLAG_SETFD` (replacing the server's unconnected socket, like `dup2`), then
//! answers "success". Whatever the memory says by then, the result is a socket connected where
//! the policy allows. Everything else is answered with an error; nothing is ever continued.
//!
//! Every notification gets an answer (an internal failure answers `EACCES`), so no server
//! thread hangs. If the broker itself stops, dropping the listener makes the kernel fail every
//! pending and later `connect()` with `ENOSYS`: the failure is closed, never open. Calls the
//! kernel itself would refuse (bad descriptor, bad pointer, wrong length or family) get the
//! kernel's errno, in the kernel's order.
//!
//! Where the calls go (the supervisor, see `crate::launch::supervisor`):
//! 1. Before `fork`: a socketpair (`UnixStream::pair`, close-on-exec).
//! 2. In the child, inside `apply_to_current_process`: `no_new_privs` (required without
//!    CAP_SYS_ADMIN), mark inherited fds close-on-exec, landlock; then
//!    [`install_connect_notifier`], [`super::fd_passing::send_fd`] of the listener, close the
//!    listener and the child's end of the socketpair; then rlimits (an open-files limit could
//!    refuse the listener's descriptor) and the main seccomp filter last. Stacking order does
//!    not change verdicts (the kernel takes the strictest: the main filter's EPERM beats
//!    USER_NOTIF, USER_NOTIF beats ALLOW), but the main filter must allow the socket families
//!    the broker serves (inet, inet6 stream; unix when listed).
//! 3. In the supervisor after `fork`: close the child's end, [`super::fd_passing::recv_fd`]
//!    (`None`: the child failed before sending), then run [`serve`] on a thread of its own,
//!    spawned while the supervisor's signals are blocked. It returns once the server's whole
//!    tree has exited and been reaped.
//!
//! Landlock need not allow the proxy's port in this tier: the server's own `connect()` never
//! runs in the kernel, the broker's socket is not confined. Allowing no TCP port at all keeps
//! the network closed if the notifier were ever missing.
//!
//! Limits: only the connection is brokered, not the options set on the server's socket before
//! `connect()` (a few common ones are copied; a `bind()` address is lost); a runtime that adds
//! the socket to an epoll set *before* `connect()` keeps watching the replaced socket (Go,
//! libuv, mio/tokio and asyncio all register after); the broker connects one call at a time
//! (a proxy that does not accept stalls other connects up to 5 s); UDP (`sendto` with an
//! address) and non-inet families such as netlink are not brokered (UDP `connect()` and
//! netlink `connect()` are refused).

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::socket::{SockaddrIn, SockaddrIn6, UnixAddr};

/// Why the broker could not be set up or stopped serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    #[error("the connect broker is not supported on this architecture ({0})")]
    UnsupportedArch(&'static str),
    #[error(
        "the kernel refused the connect notifier: {0} (seccomp user notification needs Linux 5.9+, \
         and no_new_privs must be set first)"
    )]
    Install(#[source] io::Error),
    #[error("cannot query the seccomp notification sizes: {0}")]
    Sizes(#[source] io::Error),
    #[error("waiting for connect notifications failed: {0}")]
    Listener(#[source] io::Error),
}

/// What the server may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRules {
    /// The egress proxy (normally 127.0.0.1:PORT). An AF_INET6 socket may name it as
    /// `::ffff:127.0.0.1`.
    pub proxy: SocketAddr,
    /// Pathname unix sockets; compared after the broker resolves symlinks and the server's
    /// working directory itself.
    pub unix: Vec<PathBuf>,
}

/// Address family of a `connect()` destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketFamily {
    Unspec,
    Unix,
    Inet,
    Inet6,
    Other(u16),
    /// The address could not be read.
    Unknown,
}

impl fmt::Display for SocketFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketFamily::Unspec => f.write_str("unspec"),
            SocketFamily::Unix => f.write_str("unix"),
            SocketFamily::Inet => f.write_str("inet"),
            SocketFamily::Inet6 => f.write_str("inet6"),
            SocketFamily::Other(n) => write!(f, "family {n}"),
            SocketFamily::Unknown => f.write_str("unknown"),
        }
    }
}

/// One `connect()` and what the broker did with it, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerDecision {
    /// Thread id of the caller, as the supervisor sees it.
    pub pid: u32,
    pub family: SocketFamily,
    /// `ADDR:PORT`, a path, `@name` for an abstract unix name, or empty.
    pub destination: String,
    /// True when the server got a connected socket.
    pub allowed: bool,
    pub reason: String,
}

/// How long the broker waits for its own connect (a full backlog blocks it).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `sizeof(struct sockaddr_storage)`: the kernel refuses longer addresses with EINVAL.
const MAX_ADDR_LEN: usize = 128;
/// `SO_DOMAIN` (asm-generic socket.h; x86-64 and arm64 use the generic numbers).
const SO_DOMAIN: libc::c_int = 39;
/// `pidfd_open` flag for a pidfd naming a thread, not a process (Linux 6.9).
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
const MSG_FASTOPEN: u32 = 0x2000_0000;

// ---------------------------------------------------------------------------------------------
// The filter, installed in the child.

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000; // EM_X86_64, 64-bit, little-endian
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000; // EM_AARCH64, 64-bit, little-endian

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_JMP_JA: u16 = 0x05;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// Offset of the low 32 bits of syscall argument `i` in `struct seccomp_data` (little-endian).
const fn arg_low(i: u32) -> u32 {
    16 + 8 * i
}

const fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The notifier's program: foreign architectures killed and x32 refused (as in the main
/// filter's prologue), `connect` → USER_NOTIF, the send calls with `MSG_FASTOPEN` → EPERM, the
/// rest allowed (the main filter, stacked later, decides about those). A fixed array: nothing
/// is allocated in the child.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn notifier_program() -> [libc::sock_filter; 17] {
    let eperm = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    [
        /* 0 */ stmt(BPF_LD_W_ABS, OFFSET_ARCH),
        /* 1 */ jump(BPF_JMP_JEQ_K, AUDIT_ARCH, 1, 0),
        /* 2 */ stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        /* 3 */ stmt(BPF_LD_W_ABS, OFFSET_NR),
        /* 4 */ jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
        /* 5 */ stmt(BPF_RET_K, eperm),
        /* 6 */ jump(BPF_JMP_JEQ_K, libc::SYS_connect as u32, 0, 1),
        /* 7 */ stmt(BPF_RET_K, SECCOMP_RET_USER_NOTIF),
        /* 8 */ jump(BPF_JMP_JEQ_K, libc::SYS_sendto as u32, 2, 0), // → 11
        /* 9 */ jump(BPF_JMP_JEQ_K, libc::SYS_sendmmsg as u32, 1, 0), // → 11
        /* 10 */
        jump(BPF_JMP_JEQ_K, libc::SYS_sendmsg as u32, 2, 5), // → 13, else → 16
        /* 11 */ stmt(BPF_LD_W_ABS, arg_low(3)), // sendto / sendmmsg flags
        /* 12 */ stmt(BPF_JMP_JA, 1), // → 14
        /* 13 */ stmt(BPF_LD_W_ABS, arg_low(2)), // sendmsg flags
        /* 14 */ jump(BPF_JMP_JSET_K, MSG_FASTOPEN, 0, 1),
        /* 15 */ stmt(BPF_RET_K, eperm),
        /* 16 */ stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
    ]
}

/// Install the connect notifier on the calling thread and return the listener descriptor
/// (close-on-exec), which the caller must hand to the supervisor (see
/// [`super::fd_passing::send_fd`]) and then close: a server holding its own listener could
/// answer its own notifications.
///
/// Call it in the supervisor's single-threaded child, after `no_new_privs` and before the main
/// seccomp filter: the main filter is stacked on top and refusals there (EPERM) take precedence
/// over this filter's notification. Any `connect()` made by the child after this call blocks
/// until the broker answers.
pub fn install_connect_notifier() -> Result<OwnedFd, BrokerError> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let program = notifier_program();
        let prog = libc::sock_fprog {
            len: program.len() as libc::c_ushort,
            filter: program.as_ptr().cast_mut(),
        };
        // WAIT_KILLABLE_RECV (5.19): once the broker holds the notification, only a fatal
        // signal interrupts the caller, so a runtime that signals its threads often (Go's
        // preemption) does not restart the connect over and over. Older kernels: without it.
        let mut result = -1;
        for flags in [
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
        ] {
            // SAFETY: `prog` points at `program`, both alive for the call; the kernel copies
            // the program.
            result = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    flags,
                    &prog as *const libc::sock_fprog,
                )
            };
            if result >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
                break;
            }
        }
        if result < 0 {
            return Err(BrokerError::Install(io::Error::last_os_error()));
        }
        // SAFETY: the kernel returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(result as RawFd) })
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Err(BrokerError::UnsupportedArch(std::env::consts::ARCH))
    }
}

// ---------------------------------------------------------------------------------------------
// Pure parts: the destination and the descriptor flags.

/// A `connect()` destination as the server wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Destination {
    Unspec,
    Inet(SocketAddr),
    UnixPath(PathBuf),
    UnixAbstract(Vec<u8>),
    Other(u16),
}

impl Destination {
    fn family(&self) -> SocketFamily {
        match self {
            Destination::Unspec => SocketFamily::Unspec,
            Destination::Inet(SocketAddr::V4(_)) => SocketFamily::Inet,
            Destination::Inet(SocketAddr::V6(_)) => SocketFamily::Inet6,
            Destination::UnixPath(_) | Destination::UnixAbstract(_) => SocketFamily::Unix,
            Destination::Other(n) => SocketFamily::Other(*n),
        }
    }

    fn describe(&self) -> String {
        match self {
            Destination::Unspec => String::new(),
            Destination::Inet(addr) => addr.to_string(),
            Destination::UnixPath(path) => path.display().to_string(),
            Destination::UnixAbstract(name) => format!("@{}", String::from_utf8_lossy(name)),
            Destination::Other(_) => String::new(),
        }
    }
}

/// Decode the `struct sockaddr` in `bytes` (its length as passed) for a socket of `domain`,
/// with the checks, in the order, of the kernel's `connect()` for that domain; `Err(errno)` for
/// what the kernel would refuse, with the kernel's errno.
fn decode_sockaddr(bytes: &[u8], domain: libc::c_int) -> Result<Destination, i32> {
    let family = match bytes {
        [a, b, ..] => u16::from_ne_bytes([*a, *b]),
        _ => return Err(libc::EINVAL),
    };
    let family_int = libc::c_int::from(family);
    match domain {
        libc::AF_INET | libc::AF_INET6 => {
            if family_int == libc::AF_UNSPEC {
                return Ok(Destination::Unspec);
            }
            // tcp_v4_connect / ip4_datagram_connect; tcp_v6_connect / ip6_datagram_connect
            // (SIN6_LEN_RFC2133: the scope id is optional).
            let min = if domain == libc::AF_INET { 16 } else { 24 };
            if bytes.len() < min {
                return Err(libc::EINVAL);
            }
            if family_int != domain {
                return Err(libc::EAFNOSUPPORT);
            }
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            if domain == libc::AF_INET {
                let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
                return Ok(Destination::Inet(SocketAddr::V4(SocketAddrV4::new(
                    ip, port,
                ))));
            }
            let flowinfo = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[8..24]);
            let scope = match bytes.get(24..28) {
                Some(s) => u32::from_ne_bytes([s[0], s[1], s[2], s[3]]),
                None => 0,
            };
            Ok(Destination::Inet(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(octets),
                port,
                flowinfo,
                scope,
            ))))
        }
        libc::AF_UNIX => {
            // unix_validate_addr: a name, and the right family.
            if bytes.len() <= 2 || family_int != libc::AF_UNIX {
                return Err(libc::EINVAL);
            }
            let path = &bytes[2..];
            if path[0] == 0 {
                return Ok(Destination::UnixAbstract(path[1..].to_vec()));
            }
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            Ok(Destination::UnixPath(PathBuf::from(OsStr::from_bytes(
                &path[..end],
            ))))
        }
        _ => Ok(Destination::Other(family)),
    }
}

/// Whether `dest` names the proxy: the same address and port, or, for a v4 proxy, its
/// v4-mapped v6 form.
fn is_proxy(dest: SocketAddr, proxy: SocketAddr) -> bool {
    match (dest, proxy) {
        (SocketAddr::V4(d), SocketAddr::V4(p)) => d.ip() == p.ip() && d.port() == p.port(),
        (SocketAddr::V6(d), SocketAddr::V4(p)) => {
            d.ip().to_ipv4_mapped() == Some(*p.ip()) && d.port() == p.port()
        }
        (SocketAddr::V6(d), SocketAddr::V6(p)) => d.ip() == p.ip() && d.port() == p.port(),
        (SocketAddr::V4(_), SocketAddr::V6(_)) => false,
    }
}

/// The proxy's address in the family of the server's socket, if it can be reached from it.
fn proxy_in_family(proxy: SocketAddr, domain: libc::c_int) -> Option<SocketAddr> {
    match (domain, proxy) {
        (libc::AF_INET, SocketAddr::V4(_)) | (libc::AF_INET6, SocketAddr::V6(_)) => Some(proxy),
        (libc::AF_INET6, SocketAddr::V4(p)) => Some(SocketAddr::V6(SocketAddrV6::new(
            p.ip().to_ipv6_mapped(),
            p.port(),
            0,
            0,
        ))),
        _ => None,
    }
}

/// Per-descriptor flags from `/proc/PID/fdinfo/FD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct FdFlags {
    cloexec: bool,
    nonblock: bool,
}

/// Parse the `flags:` line (octal) of an fdinfo file.
fn parse_fdinfo(text: &str) -> Option<FdFlags> {
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))?
        .trim();
    let flags = u32::from_str_radix(value, 8).ok()?;
    Some(FdFlags {
        cloexec: flags & libc::O_CLOEXEC as u32 != 0,
        nonblock: flags & libc::O_NONBLOCK as u32 != 0,
    })
}

// ---------------------------------------------------------------------------------------------
// The broker, in the supervisor.

/// Serve the connect notifications of `notify` (from [`install_connect_notifier`], received
/// from the child) until every process using the filter has exited and been reaped. Blocking:
/// run it on a dedicated thread of the supervisor, started after the signals the supervisor
/// waits for are blocked (the thread inherits the mask). Each decision is reported to
/// `on_decision`.
///
/// Returns an error only when the listener itself fails; the listener is then closed, and the
/// kernel fails the server's connects with ENOSYS.
pub fn serve(
    notify: OwnedFd,
    rules: &BrokerRules,
    mut on_decision: impl FnMut(&BrokerDecision),
) -> Result<(), BrokerError> {
    let sizes = notif_sizes()?;
    let listener = notify.as_raw_fd();
    // The kernel copies its own struct sizes: a newer kernel's bigger structs must fit.
    let mut notif_buf = vec![0u64; buffer_words(sizes.seccomp_notif, size_of_notif())];
    let mut resp_buf = vec![0u64; buffer_words(sizes.seccomp_notif_resp, size_of_resp())];
    loop {
        let mut pfd = libc::pollfd {
            fd: listener,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, -1) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(BrokerError::Listener(err));
        }
        if pfd.revents & libc::POLLIN == 0 {
            if pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                // No process uses the filter any more.
                return Ok(());
            }
            continue;
        }
        notif_buf.fill(0);
        // SAFETY: the buffer is at least the kernel's `struct seccomp_notif` size (checked
        // with SECCOMP_GET_NOTIF_SIZES), zeroed as the kernel expects.
        let got = unsafe {
            libc::ioctl(
                listener,
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                notif_buf.as_mut_ptr(),
            )
        };
        if got < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                // The caller died or was interrupted before we took it.
                Some(libc::ENOENT) | Some(libc::EINTR) => continue,
                _ => return Err(BrokerError::Listener(err)),
            }
        }
        // SAFETY: the buffer holds at least a `seccomp_notif` the kernel just wrote; read it
        // unaligned-safe.
        let notif: libc::seccomp_notif =
            unsafe { std::ptr::read_unaligned(notif_buf.as_ptr().cast()) };
        let (answer, mut decision) = handle(listener, &notif, rules);
        if let Some(error) = answer.kernel_error() {
            if let Err(e) = respond(listener, &mut resp_buf, notif.id, error) {
                // ENOENT: the caller died or was interrupted meanwhile; a restarted connect
                // comes back as a new notification.
                if let Some(d) = decision.as_mut() {
                    d.reason.push_str(&format!(" (answer not delivered: {e})"));
                }
            }
        }
        if let Some(decision) = decision {
            on_decision(&decision);
        }
    }
}

/// Answer notification `id`: the syscall returns 0 (`error` 0) or fails with `-error`.
fn respond(listener: RawFd, buf: &mut [u64], id: u64, error: i32) -> io::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error,
        flags: 0,
    };
    buf.fill(0);
    // SAFETY: `buf` is at least as large as `seccomp_notif_resp` (see `buffer_words`).
    unsafe { std::ptr::write_unaligned(buf.as_mut_ptr().cast(), resp) };
    // SAFETY: `buf` is at least the kernel's `struct seccomp_notif_resp` size.
    let sent = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, buf.as_mut_ptr()) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn size_of_notif() -> u16 {
    std::mem::size_of::<libc::seccomp_notif>() as u16
}

fn size_of_resp() -> u16 {
    std::mem::size_of::<libc::seccomp_notif_resp>() as u16
}

fn buffer_words(kernel: u16, ours: u16) -> usize {
    usize::from(kernel.max(ours)).div_ceil(8)
}

fn notif_sizes() -> Result<libc::seccomp_notif_sizes, BrokerError> {
    let mut sizes = libc::seccomp_notif_sizes {
        seccomp_notif: 0,
        seccomp_notif_resp: 0,
        seccomp_data: 0,
    };
    // SAFETY: SECCOMP_GET_NOTIF_SIZES writes one `struct seccomp_notif_sizes`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_NOTIF_SIZES,
            0,
            &mut sizes as *mut libc::seccomp_notif_sizes,
        )
    };
    if rc < 0 {
        return Err(BrokerError::Sizes(io::Error::last_os_error()));
    }
    Ok(sizes)
}

enum Answer {
    /// A connected socket was installed at the caller's descriptor: return 0.
    Connected,
    /// Fail the call with this errno.
    Errno(i32),
    /// The notification is no longer valid (the caller died or was interrupted): no answer.
    Gone,
}

impl Answer {
    /// The `error` field of the response (0 or a negative errno); `None`: nothing to answer.
    fn kernel_error(&self) -> Option<i32> {
        match self {
            Answer::Connected => Some(0),
            Answer::Errno(errno) => Some(-errno),
            Answer::Gone => None,
        }
    }
}

/// What the broker learned about the call before deciding.
struct Call {
    /// The caller's own (unconnected) socket, duplicated: its options are copied.
    original: OwnedFd,
    fd: RawFd,
    dest: Destination,
    /// `SO_DOMAIN`, `SO_TYPE` of the server's socket.
    domain: libc::c_int,
    sock_type: libc::c_int,
    flags: FdFlags,
    /// The caller's working directory, for a relative unix socket path.
    cwd: Option<PathBuf>,
}

fn handle(
    listener: RawFd,
    notif: &libc::seccomp_notif,
    rules: &BrokerRules,
) -> (Answer, Option<BrokerDecision>) {
    let decision = |family, destination: String, allowed, reason: String| BrokerDecision {
        pid: notif.pid,
        family,
        destination,
        allowed,
        reason,
    };
    let call = match gather(notif) {
        Ok(call) => call,
        Err((errno, family, reason)) => {
            if !id_valid(listener, notif.id) {
                return (Answer::Gone, None);
            }
            return (
                Answer::Errno(errno),
                Some(decision(family, String::new(), false, reason)),
            );
        }
    };
    // Everything read from the caller (memory, /proc by pid) was read while this notification
    // was pending: the pid was not recycled.
    if !id_valid(listener, notif.id) {
        return (Answer::Gone, None);
    }
    let family = call.dest.family();
    let destination = call.dest.describe();
    let (answer, allowed, reason) = match decide(&call, rules) {
        Err((errno, reason)) => (Answer::Errno(errno), false, reason),
        Ok((target, what)) => match connect_own(&call, &target) {
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(libc::EACCES);
                (
                    Answer::Errno(errno),
                    false,
                    format!("{what} is allowed but the broker's connect failed: {e}"),
                )
            }
            Ok(sock) => match install(listener, notif.id, &call, &sock) {
                Ok(()) => (Answer::Connected, true, format!("{what}: brokered")),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => (
                    Answer::Gone,
                    false,
                    format!("{what}: the caller went away before the socket was installed"),
                ),
                Err(e) => (
                    Answer::Errno(libc::EACCES),
                    false,
                    format!("{what}: cannot install the socket: {e}"),
                ),
            },
        },
    };
    (answer, Some(decision(family, destination, allowed, reason)))
}

type GatherError = (i32, SocketFamily, String);

/// Read the destination and the state of the caller's socket.
fn gather(notif: &libc::seccomp_notif) -> Result<Call, GatherError> {
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
enum Target {
    Inet(SocketAddr),
    Unix(PathBuf),
}

fn decide(call: &Call, rules: &BrokerRules) -> Result<(Target, String), (i32, String)> {
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
fn connect_own(call: &Call, target: &Target) -> io::Result<OwnedFd> {
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
fn copy_options(from: &OwnedFd, to: &OwnedFd, target: &Target) {
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

fn set_send_timeout(sock: &OwnedFd, timeout: Option<Duration>) -> io::Result<()> {
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
fn install(listener: RawFd, id: u64, call: &Call, sock: &OwnedFd) -> io::Result<()> {
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

fn id_valid(listener: RawFd, id: u64) -> bool {
    // SAFETY: SECCOMP_IOCTL_NOTIF_ID_VALID reads one u64.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// Copy `buf.len()` bytes at `addr` in process `pid`.
fn read_memory(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<()> {
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
fn socket_kind(pid: u32, fd: RawFd) -> io::Result<Option<(OwnedFd, libc::c_int, libc::c_int)>> {
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
fn pidfd_open(tid: u32) -> io::Result<OwnedFd> {
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
fn parse_tgid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

fn getsockopt_int(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sockaddr_in(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&ip);
        b
    }

    fn sockaddr_in6(ip: Ipv6Addr, port: u16) -> Vec<u8> {
        let mut b = vec![0u8; 28];
        b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[8..24].copy_from_slice(&ip.octets());
        b
    }

    fn sockaddr_un(path: &[u8]) -> Vec<u8> {
        let mut b = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        b.extend_from_slice(path);
        b
    }

    const INET: libc::c_int = libc::AF_INET;
    const INET6: libc::c_int = libc::AF_INET6;
    const UNIX: libc::c_int = libc::AF_UNIX;

    #[test]
    fn decode_inet() {
        let dest = decode_sockaddr(&sockaddr_in([127, 0, 0, 1], 8080), INET).unwrap();
        assert_eq!(dest, Destination::Inet("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(dest.family(), SocketFamily::Inet);
        assert_eq!(
            decode_sockaddr(&sockaddr_in([127, 0, 0, 1], 8080)[..15], INET),
            Err(libc::EINVAL)
        );
    }

    #[test]
    fn decode_inet6_with_and_without_scope() {
        let ip: Ipv6Addr = "::ffff:127.0.0.1".parse().unwrap();
        let full = sockaddr_in6(ip, 443);
        let Destination::Inet(addr) = decode_sockaddr(&full, INET6).unwrap() else {
            panic!("not inet")
        };
        assert_eq!(addr, "[::ffff:127.0.0.1]:443".parse().unwrap());
        assert!(
            decode_sockaddr(&full[..24], INET6).is_ok(),
            "RFC 2133 length"
        );
        assert_eq!(decode_sockaddr(&full[..23], INET6), Err(libc::EINVAL));
    }

    /// The kernel's answers when the address does not fit the socket.
    #[test]
    fn decode_family_mismatch() {
        let v4 = sockaddr_in([127, 0, 0, 1], 80);
        let mut v4_long = v4.clone();
        v4_long.resize(28, 0);
        let v6 = sockaddr_in6(Ipv6Addr::LOCALHOST, 80);
        assert_eq!(
            decode_sockaddr(&v4, INET6),
            Err(libc::EINVAL),
            "short for inet6"
        );
        assert_eq!(decode_sockaddr(&v4_long, INET6), Err(libc::EAFNOSUPPORT));
        assert_eq!(decode_sockaddr(&v6, INET), Err(libc::EAFNOSUPPORT));
        assert_eq!(decode_sockaddr(&v4, UNIX), Err(libc::EINVAL));
        assert_eq!(
            decode_sockaddr(&sockaddr_un(b"/x"), INET),
            Err(libc::EINVAL)
        );
        assert_eq!(
            decode_sockaddr(&v4, libc::AF_NETLINK),
            Ok(Destination::Other(libc::AF_INET as u16))
        );
    }

    #[test]
    fn decode_unix_path_abstract_unnamed() {
        assert_eq!(
            decode_sockaddr(&sockaddr_un(b"/run/x.sock\0garbage"), UNIX).unwrap(),
            Destination::UnixPath("/run/x.sock".into())
        );
        assert_eq!(
            decode_sockaddr(&sockaddr_un(b"rel.sock"), UNIX).unwrap(),
            Destination::UnixPath("rel.sock".into())
        );
        assert_eq!(
            decode_sockaddr(&sockaddr_un(b"\0name"), UNIX).unwrap(),
            Destination::UnixAbstract(b"name".to_vec())
        );
        assert_eq!(decode_sockaddr(&sockaddr_un(b""), UNIX), Err(libc::EINVAL));
        assert_eq!(decode_sockaddr(&[1], UNIX), Err(libc::EINVAL));
    }

    #[test]
    fn decode_unspec_and_other() {
        assert_eq!(
            decode_sockaddr(&[0, 0, 1, 2], INET).unwrap(),
            Destination::Unspec
        );
        assert_eq!(decode_sockaddr(&[0, 0, 1, 2], UNIX), Err(libc::EINVAL));
        let packet = (libc::AF_PACKET as u16).to_ne_bytes();
        assert_eq!(
            decode_sockaddr(&packet, libc::AF_PACKET).unwrap(),
            Destination::Other(libc::AF_PACKET as u16)
        );
    }

    proptest::proptest! {
        /// The address comes from a hostile process: any bytes, any length up to the cap, any
        /// socket domain, never a panic.
        #[test]
        fn decode_never_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..=MAX_ADDR_LEN),
            domain in proptest::sample::select(vec![INET, INET6, UNIX, libc::AF_NETLINK, 0]),
        ) {
            let _ = decode_sockaddr(&bytes, domain);
        }
    }

    #[test]
    fn proxy_matching() {
        let proxy: SocketAddr = "127.0.0.1:3128".parse().unwrap();
        let yes = ["127.0.0.1:3128", "[::ffff:127.0.0.1]:3128"];
        let no = [
            "127.0.0.2:3128",
            "127.0.0.1:3129",
            "10.0.0.1:3128",
            "[::1]:3128",
            "[::ffff:127.0.0.2]:3128",
            "[::127.0.0.1]:3128",
        ];
        for d in yes {
            assert!(is_proxy(d.parse().unwrap(), proxy), "{d}");
        }
        for d in no {
            assert!(!is_proxy(d.parse().unwrap(), proxy), "{d}");
        }
        assert_eq!(
            proxy_in_family(proxy, libc::AF_INET6),
            Some("[::ffff:127.0.0.1]:3128".parse().unwrap())
        );
        assert_eq!(proxy_in_family(proxy, libc::AF_INET), Some(proxy));
        let v6: SocketAddr = "[::1]:3128".parse().unwrap();
        assert_eq!(proxy_in_family(v6, libc::AF_INET), None);
    }

    #[test]
    fn fdinfo_flags() {
        let text = "pos:\t0\nflags:\t02004002\nmnt_id:\t8\nino:\t12345\n";
        assert_eq!(
            parse_fdinfo(text),
            Some(FdFlags {
                cloexec: true,
                nonblock: true
            })
        );
        assert_eq!(
            parse_fdinfo("pos:\t0\nflags:\t02\n"),
            Some(FdFlags::default())
        );
        assert_eq!(parse_fdinfo("pos:\t0\n"), None);
        assert_eq!(parse_fdinfo("flags:\tzz\n"), None);
    }

    #[test]
    fn tgid_from_status() {
        let status = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4250\n";
        assert_eq!(parse_tgid(status), Some(4242));
        assert_eq!(parse_tgid("Pid:\t1\n"), None);
    }

    /// Run the notifier program over `seccomp_data` {nr, arch, args}, like the kernel.
    fn eval(program: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let word = |offset: u32| -> u32 {
            match offset {
                0 => nr,
                4 => arch,
                o if (16..64).contains(&o) && (o - 16) % 8 == 0 => {
                    args[((o - 16) / 8) as usize] as u32
                }
                o => panic!("load at {o}"),
            }
        };
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = &program[pc];
            pc += 1;
            match i.code {
                BPF_LD_W_ABS => a = word(i.k),
                BPF_JMP_JA => pc += i.k as usize,
                BPF_RET_K => return i.k,
                BPF_JMP_JEQ_K | BPF_JMP_JGE_K | BPF_JMP_JSET_K => {
                    let hit = match i.code {
                        BPF_JMP_JEQ_K => a == i.k,
                        BPF_JMP_JGE_K => a >= i.k,
                        _ => a & i.k != 0,
                    };
                    pc += usize::from(if hit { i.jt } else { i.jf });
                }
                code => panic!("opcode {code:#x}"),
            }
        }
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn notifier_program_verdicts() {
        let p = notifier_program();
        let eperm = SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let nr = |n: libc::c_long| n as u32;
        let fastopen = u64::from(MSG_FASTOPEN);
        let cases: &[(u32, [u64; 6], u32, &str)] = &[
            (
                nr(libc::SYS_connect),
                [0; 6],
                SECCOMP_RET_USER_NOTIF,
                "connect",
            ),
            (nr(libc::SYS_sendto), [0; 6], SECCOMP_RET_ALLOW, "sendto"),
            (
                nr(libc::SYS_sendto),
                [0, 0, 0, fastopen, 0, 0],
                eperm,
                "sendto fastopen",
            ),
            (
                nr(libc::SYS_sendto),
                [0, 0, 0, fastopen | 0x4000, 0, 0],
                eperm,
                "sendto fastopen|nosignal",
            ),
            (
                nr(libc::SYS_sendmsg),
                [0, 0, 0x4000, 0, 0, 0],
                SECCOMP_RET_ALLOW,
                "sendmsg",
            ),
            (
                nr(libc::SYS_sendmsg),
                [0, 0, fastopen, 0, 0, 0],
                eperm,
                "sendmsg fastopen",
            ),
            (
                nr(libc::SYS_sendmsg),
                [0, 0, 0, fastopen, 0, 0],
                SECCOMP_RET_ALLOW,
                "sendmsg flag elsewhere",
            ),
            (
                nr(libc::SYS_sendmmsg),
                [0, 0, 0, fastopen, 0, 0],
                eperm,
                "sendmmsg fastopen",
            ),
            (
                nr(libc::SYS_sendmmsg),
                [0; 6],
                SECCOMP_RET_ALLOW,
                "sendmmsg",
            ),
            (
                nr(libc::SYS_read),
                [0, 0, 0, fastopen, 0, 0],
                SECCOMP_RET_ALLOW,
                "read",
            ),
            (
                nr(libc::SYS_connect) | X32_SYSCALL_BIT,
                [0; 6],
                eperm,
                "x32 connect",
            ),
        ];
        for (n, args, want, what) in cases {
            assert_eq!(eval(&p, *n, AUDIT_ARCH, *args), *want, "{what}");
        }
        assert_eq!(
            eval(&p, nr(libc::SYS_connect), 3 | 0x4000_0000, [0; 6]),
            SECCOMP_RET_KILL_PROCESS,
            "i386 killed"
        );
    }
}
