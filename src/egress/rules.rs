//! The egress allow list: which destinations the proxy may open connections to.
//!
//! # Syntax
//!
//! One entry per string, `TARGET[:PORTS]`, case-insensitive, surrounding whitespace ignored:
//!
//! | Target | Example | Matches |
//! |---|---|---|
//! | host name | `registry.npmjs.org` | that name only (a trailing dot is ignored) |
//! | wildcard | `*.githubusercontent.com` | names with one or more labels in front of the domain, never the bare domain itself (list `githubusercontent.com` too if you want it) |
//! | IPv4 / IPv6 address | `192.0.2.7`, `::1`, `[::1]:8080` | that address |
//! | IPv4 / IPv6 CIDR | `10.20.0.0/16:5432`, `127.0.0.0/8`, `[fd00::/8]:443` | addresses in the range |
//!
//! `PORTS` is a comma-separated list of ports and inclusive ranges (`443`, `80,443`,
//! `8000-8100,9000`) or `*` for every port. **Without `:PORTS` an entry allows ports 443 and
//! 80 only**, whatever its kind. An IPv6 address or range with ports must be bracketed
//! (`[::1]:8080`); a bare IPv6 text is always read as an address without ports.
//!
//! # What matches what
//!
//! A request names either a host name or an IP literal:
//! - a **name** is matched against the name rules (exact and wildcard) only. The proxy never
//!   resolves a name no rule lists, so unlisted names cannot be used to leak data through DNS.
//!   The addresses a listed name resolves to are then checked against the default-forbidden
//!   set ([`super::addresses`]): a name rule never lifts that ban, a CIDR/IP rule lying inside the
//!   banned range does (see [`super::addresses::Ban::lifted_by`]).
//! - an **IP literal** is matched against the CIDR/IP rules only, family by family: `127.0.0.0/8`
//!   does not match `::ffff:127.0.0.1`.

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;

/// The ports an entry allows when it names none.
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

/// A malformed allow-list entry. Each message names the entry, says what is wrong and shows a
/// correct example.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("egress allow entry is empty; write a host such as `registry.npmjs.org` or `api.github.com:443`")]
    Empty,
    #[error("egress allow entry `{entry}` is a URL; write only the host and the ports, e.g. `example.com:443` instead of `https://example.com/`")]
    Url { entry: String },
    #[error("egress allow entry `{entry}` has a path; rules are by host and port only, e.g. `example.com:443`")]
    Path { entry: String },
    #[error("egress allow entry `{entry}`: `{ports}` is not a port list; write ports 1-65535 separated by commas, ranges with `-`, or `*` for all, e.g. `example.com:443`, `example.com:80,443`, `10.0.0.0/8:8000-8100`, `example.com:*`")]
    Ports { entry: String, ports: String },
    #[error("egress allow entry `{entry}`: a wildcard must be the whole first label over a domain of at least two labels, e.g. `*.githubusercontent.com`")]
    Wildcard { entry: String },
    #[error("egress allow entry `{entry}`: `{host}` is not a host name ({problem}); write letters, digits, `-` and `_` in dot-separated labels (punycode `xn--` for international names), e.g. `registry.npmjs.org`")]
    Host {
        entry: String,
        host: String,
        problem: &'static str,
    },
    #[error("egress allow entry `{entry}`: `{host}` looks like an incomplete or unusual IP address; write a full address such as `192.0.2.7` or a range such as `192.0.2.0/24`")]
    Numeric { entry: String, host: String },
    #[error("egress allow entry `{entry}`: `{net}` is not a CIDR range ({problem}); e.g. `10.20.0.0/16:5432` or `[fd00::/8]:443`")]
    Cidr {
        entry: String,
        net: String,
        problem: String,
    },
    #[error("egress allow entry `{entry}`: `{net}` has bits set after the prefix; did you mean `{suggestion}`?")]
    HostBits {
        entry: String,
        net: String,
        suggestion: String,
    },
    #[error("egress allow entry `{entry}`: an IPv6 address with ports must be bracketed, e.g. `[{addr}]:{ports}`")]
    Brackets {
        entry: String,
        addr: String,
        ports: String,
    },
}

/// The ports of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    Any,
    /// Inclusive ranges, sorted by start (a single port is `p..=p`).
    List(Vec<RangeInclusive<u16>>),
}

impl Ports {
    pub fn contains(&self, port: u16) -> bool {
        match self {
            Ports::Any => true,
            Ports::List(ranges) => ranges.iter().any(|r| r.contains(&port)),
        }
    }

    fn default_ports() -> Ports {
        Ports::List(DEFAULT_PORTS.iter().map(|&p| p..=p).collect())
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ports::Any => f.write_str("*"),
            Ports::List(ranges) => {
                for (i, r) in ranges.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    if r.start() == r.end() {
                        write!(f, "{}", r.start())?;
                    } else {
                        write!(f, "{}-{}", r.start(), r.end())?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// What a rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One host name, lower case, no trailing dot.
    Exact(String),
    /// `*.DOMAIN`: holds `DOMAIN` (lower case, no trailing dot).
    Wildcard(String),
    /// An address range (a single address is a /32 or /128).
    Net(IpNet),
}

/// One parsed allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    text: String,
    target: Target,
    ports: Ports,
}

impl Rule {
    /// The entry as written (trimmed): what the audit shows.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The network of a CIDR/IP rule.
    pub fn net(&self) -> Option<&IpNet> {
        match &self.target {
            Target::Net(net) => Some(net),
            _ => None,
        }
    }

    fn matches_name(&self, host: &str) -> bool {
        match &self.target {
            Target::Exact(name) => name == host,
            Target::Wildcard(domain) => host
                .strip_suffix(domain.as_str())
                .and_then(|front| front.strip_suffix('.'))
                .is_some_and(|front| !front.is_empty()),
            Target::Net(_) => false,
        }
    }

    /// One entry (`api.github.com:443`, `*.example.com`, `10.0.0.0/8:5432`, `[::1]:8080`).
    pub fn parse(entry: &str) -> Result<Rule, RuleError> {
        let text = entry.trim();
        if text.is_empty() {
            return Err(RuleError::Empty);
        }
        let err_entry = || text.to_string();
        if text.contains("://") {
            return Err(RuleError::Url { entry: err_entry() });
        }
        let lower = text.to_ascii_lowercase();
        let (host, ports, bracketed) = split_ports(text, &lower)?;
        let ports = match ports {
            None => Ports::default_ports(),
            Some(p) => parse_ports(p).ok_or_else(|| RuleError::Ports {
                entry: err_entry(),
                ports: p.to_string(),
            })?,
        };
        let target = parse_target(text, host)?;
        if bracketed && !matches!(target, Target::Net(_)) {
            return Err(RuleError::Cidr {
                entry: err_entry(),
                net: host.to_string(),
                problem: "brackets hold an IP address or range only".to_string(),
            });
        }
        Ok(Rule {
            text: text.to_string(),
            target,
            ports,
        })
    }
}

type Split<'a> = (&'a str, Option<&'a str>, bool);

/// Splits `lower` (the lower-cased entry) into the target, the port text and whether the
/// target was bracketed.
fn split_ports<'a>(entry: &str, lower: &'a str) -> Result<Split<'a>, RuleError> {
    if let Some(inner) = lower.strip_prefix('[') {
        let Some((host, rest)) = inner.split_once(']') else {
            return Err(RuleError::Cidr {
                entry: entry.to_string(),
                net: lower.to_string(),
                problem: "`[` without `]`".to_string(),
            });
        };
        return match rest {
            "" => Ok((host, None, true)),
            _ => match rest.strip_prefix(':') {
                Some(ports) => Ok((host, Some(ports), true)),
                None => Err(RuleError::Ports {
                    entry: entry.to_string(),
                    ports: rest.to_string(),
                }),
            },
        };
    }
    if lower.parse::<IpAddr>().is_ok() || lower.parse::<IpNet>().is_ok() {
        return Ok((lower, None, false));
    }
    match lower.matches(':').count() {
        0 => Ok((lower, None, false)),
        1 => {
            let (host, ports) = lower.split_once(':').unwrap_or((lower, ""));
            Ok((host, Some(ports), false))
        }
        _ => {
            // An unbracketed IPv6 address or range followed by ports?
            if let Some((addr, ports)) = lower.rsplit_once(':') {
                if addr.parse::<IpAddr>().is_ok() || addr.parse::<IpNet>().is_ok() {
                    return Err(RuleError::Brackets {
                        entry: entry.to_string(),
                        addr: addr.to_string(),
                        ports: ports.to_string(),
                    });
                }
            }
            Err(RuleError::Cidr {
                entry: entry.to_string(),
                net: lower.to_string(),
                problem: "not an IPv6 address or range".to_string(),
            })
        }
    }
}

fn parse_ports(text: &str) -> Option<Ports> {
    if text == "*" {
        return Some(Ports::Any);
    }
    let mut ranges = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let range = match part.split_once('-') {
            Some((a, b)) => parse_port(a)?..=parse_port(b)?,
            None => {
                let p = parse_port(part)?;
                p..=p
            }
        };
        if range.is_empty() {
            return None;
        }
        ranges.push(range);
    }
    ranges.sort_by_key(|r| *r.start());
    Some(Ports::List(ranges))
}

fn parse_port(text: &str) -> Option<u16> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|&p| p != 0)
}

fn parse_target(entry: &str, host: &str) -> Result<Target, RuleError> {
    if host.contains('/') {
        return match host.parse::<IpNet>() {
            Ok(net) if net.trunc() != net => Err(RuleError::HostBits {
                entry: entry.to_string(),
                net: host.to_string(),
                suggestion: net.trunc().to_string(),
            }),
            Ok(net) => Ok(Target::Net(net)),
            Err(e) => {
                let front = host.split('/').next().unwrap_or("");
                if front.parse::<IpAddr>().is_ok() {
                    Err(RuleError::Cidr {
                        entry: entry.to_string(),
                        net: host.to_string(),
                        problem: e.to_string(),
                    })
                } else {
                    Err(RuleError::Path {
                        entry: entry.to_string(),
                    })
                }
            }
        };
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Target::Net(IpNet::from(ip)));
    }
    if host.contains(':') {
        return Err(RuleError::Cidr {
            entry: entry.to_string(),
            net: host.to_string(),
            problem: "not an IPv6 address".to_string(),
        });
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if let Some(domain) = name.strip_prefix("*.") {
        if domain.contains('*') || !domain.contains('.') {
            return Err(RuleError::Wildcard {
                entry: entry.to_string(),
            });
        }
        check_name(entry, domain)?;
        return Ok(Target::Wildcard(domain.to_string()));
    }
    if name.contains('*') {
        return Err(RuleError::Wildcard {
            entry: entry.to_string(),
        });
    }
    check_name(entry, name)?;
    Ok(Target::Exact(name.to_string()))
}

fn check_name(entry: &str, name: &str) -> Result<(), RuleError> {
    let host_err = |problem| RuleError::Host {
        entry: entry.to_string(),
        host: name.to_string(),
        problem,
    };
    if let Some(problem) = name_problem(name) {
        return Err(host_err(problem));
    }
    if looks_numeric(name) {
        return Err(RuleError::Numeric {
            entry: entry.to_string(),
            host: name.to_string(),
        });
    }
    Ok(())
}

/// What makes `name` (lower case, no trailing dot) no host name, if anything.
pub(crate) fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name.len() > 253 {
        return Some("longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("an empty label");
        }
        if label.len() > 63 {
            return Some("a label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Some("a character other than a-z, 0-9, `-` and `_`");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("a label starting or ending with `-`");
        }
    }
    None
}

/// Names whose last label is numeric (`127.1`, `2130706433`, `0x7f.1`) are read as IPv4
/// addresses by resolvers: never rules, never host names.
pub(crate) fn looks_numeric(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    last.bytes().all(|b| b.is_ascii_digit())
        || (last.starts_with("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Lower-cases a requested host name and drops one trailing dot.
pub fn normalize_name(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    match lower.strip_suffix('.') {
        Some(s) => s.to_string(),
        None => lower,
    }
}

/// The parsed allow list. Empty: nothing is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<Rule>,
}

impl AllowList {
    /// Parses every entry; the first malformed one is the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, RuleError> {
        let rules = entries
            .iter()
            .map(|e| Rule::parse(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowList { rules })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first name rule (exact or wildcard) allowing `host` on `port`. `host` is normalized
    /// here (case, trailing dot).
    pub fn match_name(&self, host: &str, port: u16) -> Option<&Rule> {
        let host = normalize_name(host);
        self.rules
            .iter()
            .find(|r| r.matches_name(&host) && r.ports.contains(port))
    }

    /// The first name rule listing `host` on any port (to explain a refused port).
    pub fn name_listed(&self, host: &str) -> Option<&Rule> {
        let host = normalize_name(host);
        self.rules.iter().find(|r| r.matches_name(&host))
    }

    /// The first CIDR/IP rule containing `ip` and allowing `port`.
    pub fn match_ip(&self, ip: IpAddr, port: u16) -> Option<&Rule> {
        self.ip_rules(ip, port).next()
    }

    /// Every CIDR/IP rule containing `ip` and allowing `port`, in list order.
    pub fn ip_rules(&self, ip: IpAddr, port: u16) -> impl Iterator<Item = &Rule> {
        self.rules
            .iter()
            .filter(move |r| r.ports.contains(port) && r.net().is_some_and(|net| net.contains(&ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(entry: &str) -> Rule {
        match AllowList::parse(&[entry]) {
            Ok(list) => list.rules()[0].clone(),
            Err(e) => panic!("{entry}: {e}"),
        }
    }

    fn bad(entry: &str) -> RuleError {
        match AllowList::parse(&[entry]) {
            Ok(list) => panic!("{entry} parsed: {list:?}"),
            Err(e) => e,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn exact_host_defaults_to_80_and_443() {
        let r = one("Registry.NPMjs.org.");
        assert_eq!(r.target(), &Target::Exact("registry.npmjs.org".into()));
        assert_eq!(r.text(), "Registry.NPMjs.org.");
        assert_eq!(r.ports().to_string(), "80,443");
        let list = AllowList::parse(&["registry.npmjs.org"]).unwrap();
        assert!(list.match_name("REGISTRY.npmjs.org.", 443).is_some());
        assert!(list.match_name("registry.npmjs.org", 80).is_some());
        assert!(list.match_name("registry.npmjs.org", 8080).is_none());
        assert!(list.name_listed("registry.npmjs.org").is_some());
        assert!(list.match_name("npmjs.org", 443).is_none());
        assert!(list.match_name("x.registry.npmjs.org", 443).is_none());
    }

    #[test]
    fn ports_single_list_range_any() {
        assert_eq!(one("api.github.com:443").ports().to_string(), "443");
        assert_eq!(one("host:443,80").ports().to_string(), "80,443");
        assert_eq!(
            one("host:9000,8000-8100").ports().to_string(),
            "8000-8100,9000"
        );
        assert_eq!(one("host:*").ports(), &Ports::Any);
        let list = AllowList::parse(&["h.example:8000-8100"]).unwrap();
        assert!(list.match_name("h.example", 8000).is_some());
        assert!(list.match_name("h.example", 8100).is_some());
        assert!(list.match_name("h.example", 8101).is_none());
        assert!(list.match_name("h.example", 443).is_none());
    }

    #[test]
    fn bad_ports() {
        for e in [
            "host:",
            "host:0",
            "host:65536",
            "host:http",
            "host:80,",
            "host:90-80",
            "host:+80",
            "[::1]:x",
            "[::1]x",
        ] {
            assert!(matches!(bad(e), RuleError::Ports { .. }), "{e}: {}", bad(e));
        }
        let msg = bad("host:http").to_string();
        assert!(msg.contains("example.com:80,443"), "{msg}");
    }

    #[test]
    fn wildcard_needs_a_label_and_never_matches_the_apex() {
        let list = AllowList::parse(&["*.githubusercontent.com"]).unwrap();
        assert!(list.match_name("raw.githubusercontent.com", 443).is_some());
        assert!(list.match_name("a.b.githubusercontent.com", 80).is_some());
        assert!(list.match_name("githubusercontent.com", 443).is_none());
        assert!(list.match_name("evilgithubusercontent.com", 443).is_none());
        assert!(list.match_name("githubusercontent.com.evil", 443).is_none());
        let both = AllowList::parse(&["*.example.com", "example.com"]).unwrap();
        assert_eq!(
            both.match_name("example.com", 443).map(Rule::text),
            Some("example.com")
        );
        for e in [
            "*",
            "*.com",
            "*.*.example.com",
            "a.*.example.com",
            "*example.com",
            "www.*",
        ] {
            assert!(
                matches!(bad(e), RuleError::Wildcard { .. }),
                "{e}: {:?}",
                bad(e)
            );
        }
    }

    #[test]
    fn bad_hosts() {
        assert_eq!(bad(""), RuleError::Empty);
        assert_eq!(bad("   "), RuleError::Empty);
        assert!(matches!(bad("https://example.com/"), RuleError::Url { .. }));
        assert!(matches!(bad("example.com/path"), RuleError::Path { .. }));
        for e in [
            "exa mple.com",
            "ex..com",
            "-a.com",
            "a-.com",
            "bücher.de",
            "a.com;b",
        ] {
            assert!(
                matches!(bad(e), RuleError::Host { .. }),
                "{e}: {:?}",
                bad(e)
            );
        }
        for e in ["127.1", "2130706433", "0x7f.1", "10.0.0.256"] {
            assert!(
                matches!(bad(e), RuleError::Numeric { .. }),
                "{e}: {:?}",
                bad(e)
            );
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(matches!(bad(&long), RuleError::Host { .. }));
        let msg = bad("bücher.de").to_string();
        assert!(msg.contains("registry.npmjs.org"), "{msg}");
    }

    #[test]
    fn cidr_v4() {
        let r = one("10.20.0.0/16:5432");
        assert_eq!(r.net(), Some(&"10.20.0.0/16".parse().unwrap()));
        let list = AllowList::parse(&["10.20.0.0/16:5432", "127.0.0.0/8"]).unwrap();
        assert_eq!(
            list.match_ip(ip("10.20.3.4"), 5432).map(Rule::text),
            Some("10.20.0.0/16:5432")
        );
        assert!(list.match_ip(ip("10.20.3.4"), 443).is_none());
        assert!(list.match_ip(ip("10.21.0.1"), 5432).is_none());
        assert!(list.match_ip(ip("127.0.0.1"), 443).is_some());
        assert!(list.match_ip(ip("127.0.0.1"), 8080).is_none());
        // family by family: the mapped form is not the IPv4 address
        assert!(list.match_ip(ip("::ffff:127.0.0.1"), 443).is_none());
        // names never match CIDR rules
        assert!(list.match_name("localhost", 443).is_none());
        assert!(matches!(
            bad("10.20.1.0/16"),
            RuleError::HostBits { ref suggestion, .. } if suggestion == "10.20.0.0/16"
        ));
        assert!(matches!(bad("10.0.0.0/33"), RuleError::Cidr { .. }));
    }

    #[test]
    fn cidr_v6_and_bare_ips() {
        let list = AllowList::parse(&["[::1]:8080", "fd00::/8", "[2001:db8::/32]:*", "192.0.2.7"])
            .unwrap();
        assert!(list.match_ip(ip("::1"), 8080).is_some());
        assert!(list.match_ip(ip("::1"), 443).is_none());
        assert!(list.match_ip(ip("fd12::1"), 443).is_some());
        assert!(list.match_ip(ip("fd12::1"), 22).is_none());
        assert!(list.match_ip(ip("2001:db8::5"), 22).is_some());
        assert!(list.match_ip(ip("192.0.2.7"), 80).is_some());
        assert!(list.match_ip(ip("192.0.2.8"), 80).is_none());
        assert_eq!(one("::1").net(), Some(&"::1/128".parse().unwrap()));
        assert_eq!(one("[10.0.0.1]:22").ports().to_string(), "22");
        assert!(matches!(bad("fd00::/8:443"), RuleError::Brackets { .. }));
        assert!(matches!(bad("::1:x:443"), RuleError::Cidr { .. }));
        assert!(matches!(bad("[::1"), RuleError::Cidr { .. }));
        assert!(matches!(bad("[nothost]:80"), RuleError::Cidr { .. }));
        assert!(matches!(bad("[fe80::1%eth0]:80"), RuleError::Cidr { .. }));
    }

    #[test]
    fn parses_a_policy_vec_of_strings() {
        let entries: Vec<String> = vec!["a.example".into(), "10.0.0.0/8:5432".into()];
        assert_eq!(AllowList::parse(&entries).unwrap().rules().len(), 2);
        let none: Vec<String> = Vec::new();
        assert!(AllowList::parse(&none).unwrap().is_empty());
    }

    #[test]
    fn first_error_wins_and_names_the_entry() {
        let e = AllowList::parse(&["ok.example", "bad host", "also bad"]).unwrap_err();
        assert!(e.to_string().contains("`bad host`"), "{e}");
    }
}
