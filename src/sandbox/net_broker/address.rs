//! Pure parts: a `connect()` destination as the server wrote it, and descriptor flags.

use super::*;

/// A `connect()` destination as the server wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Destination {
    Unspec,
    Inet(SocketAddr),
    UnixPath(PathBuf),
    UnixAbstract(Vec<u8>),
    Other(u16),
}

impl Destination {
    pub(super) fn family(&self) -> SocketFamily {
        match self {
            Destination::Unspec => SocketFamily::Unspec,
            Destination::Inet(SocketAddr::V4(_)) => SocketFamily::Inet,
            Destination::Inet(SocketAddr::V6(_)) => SocketFamily::Inet6,
            Destination::UnixPath(_) | Destination::UnixAbstract(_) => SocketFamily::Unix,
            Destination::Other(n) => SocketFamily::Other(*n),
        }
    }

    pub(super) fn describe(&self) -> String {
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
pub(super) fn decode_sockaddr(bytes: &[u8], domain: libc::c_int) -> Result<Destination, i32> {
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
pub(super) fn is_proxy(dest: SocketAddr, proxy: SocketAddr) -> bool {
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
pub(super) fn proxy_in_family(proxy: SocketAddr, domain: libc::c_int) -> Option<SocketAddr> {
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
pub(super) struct FdFlags {
    pub(super) cloexec: bool,
    pub(super) nonblock: bool,
}

/// Parse the `flags:` line (octal) of an fdinfo file.
pub(super) fn parse_fdinfo(text: &str) -> Option<FdFlags> {
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
