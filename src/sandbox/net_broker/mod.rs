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

mod address;
mod filter;
mod target;

use address::*;
pub use filter::install_connect_notifier;
use target::*;

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

#[cfg(test)]
mod tests {
    use super::filter::*;
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
        let program: Vec<_> = program.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect();
        crate::sandbox::bpf_eval::eval(&program, nr, arch, args)
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
