//! The default-forbidden destinations: addresses the proxy refuses to connect to even when a
//! host-name rule allows the name that resolved to them.
//!
//! The set: loopback, unspecified / "this network", link-local (all of `169.254.0.0/16` and
//! `fe80::/10`), private (RFC 1918, `fc00::/7`, the deprecated site-local `fec0::/10`), CGNAT
//! `100.64.0.0/10`, multicast, broadcast, the reserved `240.0.0.0/4`, IETF protocol assignments
//! `192.0.0.0/24`, the discard prefix `100::/64`,
//! Teredo `2001::/32` (it hides an IPv4 address), the local-use NAT64 prefix `64:ff9b:1::/48`,
//! the cloud metadata addresses outside link-local (`100.100.100.200`, `168.63.129.16`,
//! `192.0.0.192`, `fd00:ec2::/32`) and the host's own interface addresses.
//!
//! Not banned: the documentation and benchmarking ranges (`192.0.2.0/24`, `198.51.100.0/24`,
//! `203.0.113.0/24`, `198.18.0.0/15`, `2001:db8::/32`). They hold no secrets, never appear on
//! the public internet, and private networks do use them (package mirrors, VPN fake-IP
//! resolvers): a ban would break those users for no protection.
//!
//! IPv6 forms that carry an IPv4 address — IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96`,
//! IPv4-translated `::ffff:0:0:0/96`, NAT64 `64:ff9b::/96` and 6to4 `2002::/16` — are unwrapped
//! and the IPv4 address is checked; the ban then covers the embedded form of the banned range
//! (for `::ffff:127.0.0.1`: `::ffff:127.0.0.0/104`).
//!
//! A CIDR/IP allow entry lifts a ban when it lies inside the banned range ([`Ban::lifted_by`]):
//! `127.0.0.0/8` or `127.0.0.1` lift the loopback ban for their addresses, `0.0.0.0/0` lifts
//! nothing. Metadata addresses are checked before the ranges holding them, so `100.64.0.0/10`
//! does not open `100.100.100.200`; the host's own addresses are checked last, so they need an
//! entry naming them unless a wider ban (loopback, private) was lifted first.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(bits: u128, len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::from_bits(bits), len)
}

const METADATA: &str = "cloud metadata address";

/// Checked in order: the first range holding an address is its ban.
const V4_BANNED: &[(Ipv4Net, &str)] = &[
    (v4(100, 100, 100, 200, 32), METADATA),
    (v4(168, 63, 129, 16, 32), METADATA),
    (v4(192, 0, 0, 192, 32), METADATA),
    (v4(0, 0, 0, 0, 8), "unspecified (\"this network\")"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (v4(10, 0, 0, 0, 8), "private (RFC 1918)"),
    (v4(172, 16, 0, 0, 12), "private (RFC 1918)"),
    (v4(192, 168, 0, 0, 16), "private (RFC 1918)"),
    (v4(100, 64, 0, 0, 10), "shared address space (CGNAT)"),
    (v4(169, 254, 0, 0, 16), "link-local"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    (v4(192, 88, 99, 0, 24), "6to4 relay anycast (reserved)"),
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(255, 255, 255, 255, 32), "broadcast"),
    (v4(240, 0, 0, 0, 4), "reserved"),
];

const V6_BANNED_FIRST: &[(Ipv6Net, &str)] =
    &[(v6(0, 128), "unspecified"), (v6(1, 128), "loopback")];

const V6_BANNED: &[(Ipv6Net, &str)] = &[
    (v6(0xfd00_0ec2 << 96, 32), METADATA),
    (v6(0x0064_ff9b_0001 << 80, 48), "local-use NAT64"),
    (v6(0x0100 << 112, 64), "discard-only"),
    (v6(0x2001 << 112, 32), "Teredo (hides an IPv4 address)"),
    (v6(0xfc00 << 112, 7), "unique local (private)"),
    (v6(0xfe80 << 112, 10), "link-local"),
    (v6(0xfec0 << 112, 10), "site-local (deprecated, private)"),
    (v6(0xff00 << 112, 8), "multicast"),
];

const OWN_ADDRESS: &str = "the host's own address";

/// An IPv6 form carrying an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:a.b.c.d`
    Mapped,
    /// `::a.b.c.d` (deprecated)
    Compatible,
    /// `::ffff:0:a.b.c.d` (SIIT)
    Translated,
    /// `64:ff9b::a.b.c.d`
    Nat64,
    /// `2002:AABB:CCDD::/48`
    SixToFour,
}

impl Embedding {
    pub fn as_str(self) -> &'static str {
        match self {
            Embedding::Mapped => "IPv4-mapped",
            Embedding::Compatible => "IPv4-compatible",
            Embedding::Translated => "IPv4-translated",
            Embedding::Nat64 => "NAT64",
            Embedding::SixToFour => "6to4",
        }
    }

    /// The IPv4 address inside `ip`, if `ip` is one of the embedding forms.
    pub fn unwrap(ip: Ipv6Addr) -> Option<(Ipv4Addr, Embedding)> {
        let bits = ip.to_bits();
        let low = Ipv4Addr::from_bits(bits as u32);
        let high = bits >> 32;
        if high == 0xffff {
            Some((low, Embedding::Mapped))
        } else if high == 0 {
            Some((low, Embedding::Compatible))
        } else if high == 0xffff_0000 {
            Some((low, Embedding::Translated))
        } else if high == 0x0064_ff9b << 64 {
            Some((low, Embedding::Nat64))
        } else if bits >> 112 == 0x2002 {
            Some((
                Ipv4Addr::from_bits((bits >> 80) as u32),
                Embedding::SixToFour,
            ))
        } else {
            None
        }
    }

    /// The IPv6 range holding the embedded forms of `net`.
    fn embed(self, net: Ipv4Net) -> Ipv6Net {
        let addr = u128::from(net.network().to_bits());
        let len = net.prefix_len();
        let (bits, len) = match self {
            Embedding::Mapped => ((0xffff << 32) | addr, 96 + len),
            Embedding::Compatible => (addr, 96 + len),
            Embedding::Translated => ((0xffff_0000 << 32) | addr, 96 + len),
            Embedding::Nat64 => ((0x0064_ff9b << 96) | addr, 96 + len),
            Embedding::SixToFour => ((0x2002 << 112) | (addr << 80), 16 + len),
        };
        // `len` is at most 128 for every form: `new` cannot fail; fall back to the host route.
        Ipv6Net::new(Ipv6Addr::from_bits(bits), len)
            .unwrap_or_else(|_| Ipv6Net::from(Ipv6Addr::from_bits(bits)))
    }
}

/// Why an address is forbidden, and the banned range it fell in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    pub reason: &'static str,
    /// The banned range, in the address's own family and form (for an embedded address: the
    /// embedded form of the IPv4 range).
    pub range: IpNet,
    /// Set when the address carried a banned IPv4 address.
    pub embedded: Option<(Ipv4Addr, Embedding)>,
}

impl Ban {
    /// Whether an allow entry for `net` lifts this ban: it must lie inside the banned range (same
    /// family), i.e. name the range or a part of it explicitly.
    pub fn lifted_by(&self, net: &IpNet) -> bool {
        self.range.contains(net)
    }
}

impl fmt::Display for Ban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            None => f.write_str(self.reason),
            Some((v4, form)) => write!(
                f,
                "{} ({v4} inside an {} address)",
                self.reason,
                form.as_str()
            ),
        }
    }
}

/// The reason `ip` is forbidden by default, if it is. Reads the host's interface addresses.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    check(ip).map(|ban| ban.reason)
}

/// The ban on `ip`, if any. Reads the host's interface addresses.
pub fn check(ip: IpAddr) -> Option<Ban> {
    check_with(ip, &interface_addresses())
}

/// The ban on `ip`, if any, with `own` as the host's interface addresses.
pub fn check_with(ip: IpAddr, own: &[IpAddr]) -> Option<Ban> {
    match ip {
        IpAddr::V4(a) => check_v4(a, own),
        IpAddr::V6(a) => {
            for (net, reason) in V6_BANNED_FIRST {
                if net.contains(&a) {
                    return Some(Ban {
                        reason,
                        range: IpNet::V6(*net),
                        embedded: None,
                    });
                }
            }
            if let Some((inner, form)) = Embedding::unwrap(a) {
                if let Some(ban) = check_v4(inner, own) {
                    let IpNet::V4(range) = ban.range else {
                        return Some(ban);
                    };
                    return Some(Ban {
                        reason: ban.reason,
                        range: IpNet::V6(form.embed(range)),
                        embedded: Some((inner, form)),
                    });
                }
            }
            for (net, reason) in V6_BANNED {
                if net.contains(&a) {
                    return Some(Ban {
                        reason,
                        range: IpNet::V6(*net),
                        embedded: None,
                    });
                }
            }
            own_address(ip, own)
        }
    }
}

fn check_v4(a: Ipv4Addr, own: &[IpAddr]) -> Option<Ban> {
    for (net, reason) in V4_BANNED {
        if net.contains(&a) {
            return Some(Ban {
                reason,
                range: IpNet::V4(*net),
                embedded: None,
            });
        }
    }
    own_address(IpAddr::V4(a), own)
}

fn own_address(ip: IpAddr, own: &[IpAddr]) -> Option<Ban> {
    own.contains(&ip).then(|| Ban {
        reason: OWN_ADDRESS,
        range: IpNet::from(ip),
        embedded: None,
    })
}

/// The addresses of the host's network interfaces (empty if they cannot be read).
pub fn interface_addresses() -> Vec<IpAddr> {
    #[cfg(target_os = "linux")]
    {
        match nix::ifaddrs::getifaddrs() {
            Ok(addrs) => {
                let mut out: Vec<IpAddr> = Vec::new();
                for ifa in addrs {
                    let Some(addr) = ifa.address else { continue };
                    let ip = if let Some(sin) = addr.as_sockaddr_in() {
                        IpAddr::V4(sin.ip())
                    } else if let Some(sin6) = addr.as_sockaddr_in6() {
                        IpAddr::V6(sin6.ip())
                    } else {
                        continue;
                    };
                    if !out.contains(&ip) {
                        out.push(ip);
                    }
                }
                out
            }
            Err(e) => {
                tracing::warn!(error = %e, "egress: cannot read the interface addresses");
                Vec::new()
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(s: &str) -> Option<Ban> {
        check_with(s.parse().unwrap(), &[])
    }

    fn reason(s: &str) -> Option<&'static str> {
        ban(s).map(|b| b.reason)
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_ranges() {
        assert_eq!(reason("127.0.0.1"), Some("loopback"));
        assert_eq!(reason("127.255.0.9"), Some("loopback"));
        assert_eq!(reason("0.0.0.0"), Some("unspecified (\"this network\")"));
        assert_eq!(reason("10.1.2.3"), Some("private (RFC 1918)"));
        assert_eq!(reason("172.31.255.255"), Some("private (RFC 1918)"));
        assert_eq!(reason("192.168.0.1"), Some("private (RFC 1918)"));
        assert_eq!(reason("100.64.0.1"), Some("shared address space (CGNAT)"));
        assert_eq!(reason("169.254.169.254"), Some("link-local"));
        assert_eq!(reason("169.254.0.1"), Some("link-local"));
        assert_eq!(reason("224.0.0.251"), Some("multicast"));
        assert_eq!(reason("255.255.255.255"), Some("broadcast"));
        assert_eq!(reason("250.1.1.1"), Some("reserved"));
        assert_eq!(
            reason("192.0.2.1"),
            None,
            "documentation ranges are not banned"
        );
        for m in ["100.100.100.200", "168.63.129.16", "192.0.0.192"] {
            assert_eq!(reason(m), Some(METADATA), "{m}");
        }
        for ok in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "11.0.0.1",
            "151.101.1.1",
        ] {
            assert_eq!(reason(ok), None, "{ok}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        assert_eq!(reason("::1"), Some("loopback"));
        assert_eq!(reason("::"), Some("unspecified"));
        assert_eq!(reason("fe80::1"), Some("link-local"));
        assert_eq!(reason("febf::1"), Some("link-local"));
        assert_eq!(reason("fd12:3456::1"), Some("unique local (private)"));
        assert_eq!(reason("fd00:ec2::254"), Some(METADATA));
        assert_eq!(reason("ff02::1"), Some("multicast"));
        assert_eq!(reason("2001:db8::1"), None);
        assert_eq!(
            reason("2001:0:4136:e378::1"),
            Some("Teredo (hides an IPv4 address)")
        );
        assert_eq!(reason("2606:4700::1111"), None);
        assert_eq!(reason("2a00:1450:4001::200e"), None);
    }

    #[test]
    fn embedded_ipv4_is_unwrapped() {
        let b = ban("::ffff:127.0.0.1").unwrap();
        assert_eq!(b.reason, "loopback");
        assert_eq!(b.embedded, Some((Ipv4Addr::LOCALHOST, Embedding::Mapped)));
        assert_eq!(b.range, net("::ffff:127.0.0.0/104"));
        assert!(b.to_string().contains("IPv4-mapped"), "{b}");
        assert_eq!(reason("::ffff:169.254.169.254"), Some("link-local"));
        assert_eq!(reason("::ffff:10.0.0.1"), Some("private (RFC 1918)"));
        assert_eq!(reason("::127.0.0.1"), Some("loopback"));
        assert_eq!(reason("::ffff:0:127.0.0.1"), Some("loopback"));
        let nat64 = ban("64:ff9b::a9fe:a9fe").unwrap();
        assert_eq!(nat64.reason, "link-local");
        assert_eq!(nat64.range, net("64:ff9b::a9fe:0/112"));
        let six = ban("2002:7f00:1::").unwrap();
        assert_eq!(six.reason, "loopback");
        assert_eq!(
            six.embedded,
            Some((Ipv4Addr::LOCALHOST, Embedding::SixToFour))
        );
        assert_eq!(six.range, net("2002:7f00::/24"));
        assert_eq!(reason("2002:a9fe:a9fe::1"), Some("link-local"));
        assert_eq!(reason("64:ff9b::100.100.100.200"), Some(METADATA));
        // public IPv4 inside an embedding is not banned
        assert_eq!(reason("::ffff:8.8.8.8"), None);
        assert_eq!(reason("64:ff9b::808:808"), None);
        assert_eq!(reason("2002:808:808::1"), None);
    }

    #[test]
    fn own_interface_addresses() {
        let own: Vec<IpAddr> = vec!["8.8.4.4".parse().unwrap(), "2a00::5".parse().unwrap()];
        let b = check_with("8.8.4.4".parse().unwrap(), &own).unwrap();
        assert_eq!(b.reason, OWN_ADDRESS);
        assert_eq!(b.range, net("8.8.4.4/32"));
        assert!(check_with("::ffff:8.8.4.4".parse().unwrap(), &own).is_some());
        assert!(check_with("2a00::5".parse().unwrap(), &own).is_some());
        assert!(check_with("8.8.4.5".parse().unwrap(), &own).is_none());
        // and the real ones: every interface address of this host is forbidden
        let real = interface_addresses();
        assert!(!real.is_empty());
        for ip in real {
            assert!(forbidden(ip).is_some(), "{ip}");
        }
    }

    #[test]
    fn lifting() {
        let lo = ban("127.0.0.1").unwrap();
        assert!(lo.lifted_by(&net("127.0.0.0/8")));
        assert!(lo.lifted_by(&net("127.0.0.1/32")));
        assert!(!lo.lifted_by(&net("0.0.0.0/0")));
        assert!(!lo.lifted_by(&net("126.0.0.0/7")));
        assert!(!lo.lifted_by(&net("::1/128")));
        let mapped = ban("::ffff:127.0.0.1").unwrap();
        assert!(!mapped.lifted_by(&net("127.0.0.0/8")));
        assert!(mapped.lifted_by(&net("::ffff:127.0.0.0/104")));
        let meta = ban("100.100.100.200").unwrap();
        assert!(!meta.lifted_by(&net("100.64.0.0/10")));
        assert!(meta.lifted_by(&net("100.100.100.200/32")));
        assert!(ban("100.64.0.1").unwrap().lifted_by(&net("100.64.0.0/10")));
    }
}
