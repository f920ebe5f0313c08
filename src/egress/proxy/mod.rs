//! The listener: HTTP proxy (CONNECT tunnels and absolute-form plain HTTP) and SOCKS5 on one
//! port, told apart by the first byte (`0x05`: SOCKS5).
//!
//! Every connection: read the request (bounded in size and time), decide with the allow list and
//! the forbidden set, resolve names here and connect to exactly the address that was checked,
//! answer refusals with a reason (HTTP status + `X-MCP-Guard-Reason`, SOCKS reply codes), then
//! copy bytes both ways until either side closes or nothing moves for the idle timeout. One
//! [`ConnectionRecord`] per attempt. No TLS interception: a CONNECT tunnel is opaque.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

use super::addresses::{check_with, interface_addresses, Ban};
use super::attribution::{CallRef, InFlightCalls};
use super::record::{ConnectionRecord, Decision, Protocol};
use super::rules::{name_problem, normalize_name};
use super::ProxyConfig;

/// The largest HTTP request head the proxy reads.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most header fields in a request head.
const MAX_HEADERS: usize = 100;
/// Connections over `max_connections` still get a refusal (503 / SOCKS 0x01) while fewer than
/// this many such refusals are being written; beyond that they are closed at once.
const MAX_REFUSING: usize = 32;
/// The header carrying the reason of a refusal.
pub const REASON_HEADER: &str = "X-MCP-Guard-Reason";

mod http;
mod socks5;
mod tunnel;

use http::*;
use socks5::*;
use tunnel::*;

struct Shared {
    config: Arc<ProxyConfig>,
    calls: InFlightCalls,
    records: mpsc::UnboundedSender<ConnectionRecord>,
    /// The proxy's own listening address: never a destination.
    listen: Option<SocketAddr>,
}

impl Shared {
    /// Whether `addr` is this proxy's listener (a loop through the proxy itself).
    fn is_self(&self, addr: SocketAddr, own: &[IpAddr]) -> bool {
        let Some(listen) = self.listen else {
            return false;
        };
        addr.port() == listen.port()
            && (addr.ip() == listen.ip()
                || (listen.ip().is_unspecified()
                    && (own.contains(&addr.ip()) || addr.ip().is_loopback())))
    }
}

/// Accepts and serves connections until the listener fails (`Err`) or `records`' receiver is
/// dropped (`Ok`). Returning ends every connection it serves.
pub(super) async fn serve(
    listener: TcpListener,
    config: Arc<ProxyConfig>,
    calls: InFlightCalls,
    records: mpsc::UnboundedSender<ConnectionRecord>,
) -> io::Result<()> {
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let shared = Arc::new(Shared {
        config,
        calls,
        records: records.clone(),
        listen: listener.local_addr().ok(),
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::debug!(%addr, rules = shared.config.allow.rules().len(), "egress proxy listening");
    }
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = records.closed() => {
                tracing::debug!("egress proxy: the record receiver is gone, stopping");
                return Ok(());
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared = shared.clone();
                    if let Ok(permit) = limit.clone().try_acquire_owned() {
                        tasks.spawn(async move {
                            handle(stream, peer, &shared, false).await;
                            drop(permit);
                        });
                    } else if let Ok(permit) = refusing.clone().try_acquire_owned() {
                        tasks.spawn(async move {
                            handle(stream, peer, &shared, true).await;
                            drop(permit);
                        });
                    } else {
                        tracing::warn!(%peer, "egress proxy: too many connections, closing one unanswered");
                    }
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::Interrupted
                    | io::ErrorKind::WouldBlock => {}
                    _ if is_resource_exhaustion(&e) => {
                        tracing::warn!(error = %e, "egress proxy: accept failed, retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    _ => {
                        tracing::error!(error = %e, "egress proxy: accept failed, stopping");
                        return Err(e);
                    }
                },
            },
        }
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// What one connection attempt became; emitted as a [`ConnectionRecord`].
struct Attempt {
    protocol: Protocol,
    host: String,
    port: u16,
    address: Option<SocketAddr>,
    decision: Decision,
    rule: Option<String>,
    exception: Option<String>,
    reason: Option<String>,
    bytes_up: u64,
    bytes_down: u64,
    started: Instant,
    calls: Vec<CallRef>,
}

impl Attempt {
    fn deny(&mut self, reason: impl Into<String>) {
        self.decision = Decision::Deny;
        self.reason = Some(reason.into());
    }

    fn into_record(self) -> ConnectionRecord {
        ConnectionRecord {
            protocol: self.protocol,
            host: self.host,
            port: self.port,
            address: self.address,
            decision: self.decision,
            rule: self.rule,
            exception: self.exception,
            reason: self.reason,
            bytes_up: self.bytes_up,
            bytes_down: self.bytes_down,
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            calls: self.calls,
        }
    }
}

async fn handle(mut client: TcpStream, peer: SocketAddr, shared: &Shared, overloaded: bool) {
    let started = Instant::now();
    let calls = shared.calls.snapshot();
    let head_timeout = shared.config.head_timeout;
    let mut first = [0u8; 1];
    match timeout(head_timeout, client.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        // Closed, failed or silent before the first byte: no attempt, no record.
        _ => return,
    }
    let mut attempt = Attempt {
        protocol: if first[0] == 0x05 {
            Protocol::Socks5
        } else {
            Protocol::Http
        },
        host: String::new(),
        port: 0,
        address: None,
        // Until something refuses.
        decision: Decision::Allow,
        rule: None,
        exception: None,
        reason: None,
        bytes_up: 0,
        bytes_down: 0,
        started,
        calls,
    };
    let _ = client.set_nodelay(true);
    if first[0] == 0x05 {
        socks5(&mut client, shared, &mut attempt, overloaded).await;
    } else if first[0] == 0x04 {
        attempt.deny("SOCKS4 is not supported (use SOCKS5 or HTTP)");
    } else {
        http(&mut client, shared, &mut attempt, overloaded).await;
    }
    let record = attempt.into_record();
    if record.decision == Decision::Deny {
        tracing::info!(
            %peer,
            protocol = ?record.protocol,
            host = %record.host,
            port = record.port,
            address = ?record.address,
            reason = ?record.reason,
            "egress connection refused"
        );
    } else {
        tracing::debug!(
            %peer,
            protocol = ?record.protocol,
            host = %record.host,
            port = record.port,
            address = ?record.address,
            rule = ?record.rule,
            reason = ?record.reason,
            bytes_up = record.bytes_up,
            bytes_down = record.bytes_down,
            "egress connection"
        );
    }
    // A dropped receiver stops `serve`; nothing to do here.
    let _ = shared.records.send(record);
    // After the record: refusals are reported at once, the client still gets time to read them.
    linger_close(&mut client, head_timeout).await;
}

/// A requested destination host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// Lower case, no trailing dot.
    Name(String),
    Ip(IpAddr),
}

impl Host {
    fn parse(text: &str) -> Result<Host, String> {
        if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return inner
                .parse::<std::net::Ipv6Addr>()
                .map(|a| Host::Ip(IpAddr::V6(a)))
                .map_err(|_| format!("{} is not an IPv6 address", quote(text)));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        let name = normalize_name(text);
        match name_problem(&name) {
            None => Ok(Host::Name(name)),
            Some(problem) => Err(format!("{} is not a host name ({problem})", quote(text))),
        }
    }

    fn text(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }
}

/// Client-supplied text for a message: escaped and shortened.
fn quote(text: &str) -> String {
    let short: String = text.chars().take(80).collect();
    let mut q = format!("{short:?}");
    if text.chars().count() > 80 {
        q.push('…');
    }
    q
}

/// `host:port` / `[v6]:port`; `default_port` when the port is absent (`None`: required).
fn split_authority(text: &str, default_port: Option<u16>) -> Result<(Host, u16), String> {
    let bad_port = |p: &str| format!("{} is not a port", quote(p));
    let (host, port) = if text.starts_with('[') {
        match text.find(']') {
            Some(end) => {
                let (h, rest) = text.split_at(end + 1);
                match rest {
                    "" => (h, None),
                    _ => match rest.strip_prefix(':') {
                        Some(p) => (h, Some(p)),
                        None => return Err(format!("{} is not host:port", quote(text))),
                    },
                }
            }
            None => return Err(format!("{} is not host:port", quote(text))),
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(format!(
                    "{} has an IPv6 address without brackets",
                    quote(text)
                ))
            }
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{} has no host", quote(text)));
    }
    let port = match port {
        Some(p) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_port(p));
            }
            match p.parse::<u16>() {
                Ok(n) if n != 0 => n,
                _ => return Err(bad_port(p)),
            }
        }
        None => match default_port {
            Some(d) => d,
            None => return Err(format!("{} has no port", quote(text))),
        },
    };
    Ok((Host::parse(host)?, port))
}

/// Why a connection was not opened.
enum Refusal {
    /// The policy refused (403 / SOCKS 0x02).
    Denied(String),
    /// Allowed, but the name did not resolve (502 / SOCKS 0x04).
    Unresolved(String),
    /// Allowed, but no address accepted the connection (502 / SOCKS 0x03-0x05).
    Failed(String, io::ErrorKind),
}

/// Decides on `host:port` and connects to the first allowed address that answers.
async fn open(
    shared: &Shared,
    attempt: &mut Attempt,
    host: &Host,
    port: u16,
) -> Result<TcpStream, Refusal> {
    let config = &shared.config;
    let allow = &config.allow;
    let own = interface_addresses();
    // Each address to try, with the CIDR/IP entry that lifted a default ban on it.
    let candidates: Vec<(SocketAddr, Option<String>)> = match host {
        Host::Ip(ip) => {
            let addr = SocketAddr::new(*ip, port);
            attempt.address = Some(addr);
            match check_with(*ip, &own) {
                Some(ban) => match lifting_rule(shared, *ip, port, &ban) {
                    Some(rule) => attempt.rule = Some(rule),
                    None => return Err(Refusal::Denied(format!("{ip} is forbidden: {ban}"))),
                },
                None => match allow.match_ip(*ip, port) {
                    Some(rule) => attempt.rule = Some(rule.text().to_string()),
                    None => {
                        return Err(Refusal::Denied(format!(
                            "{} is not in the allow list",
                            addr
                        )))
                    }
                },
            }
            vec![(addr, None)]
        }
        Host::Name(name) => {
            let Some(rule) = allow.match_name(name, port) else {
                return Err(Refusal::Denied(match allow.name_listed(name) {
                    Some(r) => format!(
                        "port {port} is not allowed for {name} (entry `{}` allows {})",
                        r.text(),
                        r.ports()
                    ),
                    None => format!("{name} is not in the allow list"),
                }));
            };
            attempt.rule = Some(rule.text().to_string());
            let addrs =
                match timeout(config.connect_timeout, config.resolver.lookup(name, port)).await {
                    Ok(Ok(addrs)) => addrs,
                    Ok(Err(e)) => return Err(Refusal::Unresolved(e.to_string())),
                    Err(_) => {
                        return Err(Refusal::Unresolved(format!(
                            "resolving {name} timed out after {:?}",
                            config.connect_timeout
                        )))
                    }
                };
            let mut allowed = Vec::new();
            let mut refused: Option<(SocketAddr, String)> = None;
            for addr in addrs {
                match check_with(addr.ip(), &own) {
                    None => allowed.push((addr, None)),
                    Some(ban) => match lifting_rule(shared, addr.ip(), port, &ban) {
                        Some(exception) => allowed.push((addr, Some(exception))),
                        None => {
                            if refused.is_none() {
                                refused = Some((
                                    addr,
                                    format!(
                                        "{name} resolves to {}, which is forbidden: {ban}",
                                        addr.ip()
                                    ),
                                ));
                            }
                        }
                    },
                }
            }
            if allowed.is_empty() {
                let (addr, reason) = refused.unwrap_or_else(|| {
                    (
                        SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port),
                        format!("{name} has no allowed address"),
                    )
                });
                attempt.address = Some(addr);
                return Err(Refusal::Denied(reason));
            }
            allowed
        }
    };
    let (candidates, loops): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .partition(|(a, _)| !shared.is_self(*a, &own));
    if candidates.is_empty() {
        if let Some((addr, _)) = loops.first() {
            attempt.address = Some(*addr);
            return Err(Refusal::Denied(format!(
                "{addr} is the egress proxy itself"
            )));
        }
    }
    let mut last: Option<(String, io::ErrorKind)> = None;
    for (addr, exception) in candidates {
        attempt.address = Some(addr);
        attempt.exception = exception;
        match timeout(config.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some((format!("connecting to {addr} failed: {e}"), e.kind())),
            Err(_) => {
                last = Some((
                    format!(
                        "connecting to {addr} timed out after {:?}",
                        config.connect_timeout
                    ),
                    io::ErrorKind::TimedOut,
                ))
            }
        }
    }
    let (reason, kind) = last.unwrap_or_else(|| ("no address".to_string(), io::ErrorKind::Other));
    Err(Refusal::Failed(reason, kind))
}

/// The text of a CIDR/IP entry covering `ip:port` that lifts `ban`.
fn lifting_rule(shared: &Shared, ip: IpAddr, port: u16, ban: &Ban) -> Option<String> {
    shared
        .config
        .allow
        .ip_rules(ip, port)
        .find(|r| r.net().is_some_and(|net| ban.lifted_by(net)))
        .map(|r| r.text().to_string())
}

fn record_refusal(attempt: &mut Attempt, refusal: &Refusal) {
    match refusal {
        Refusal::Denied(reason) => attempt.deny(reason.clone()),
        Refusal::Unresolved(reason) | Refusal::Failed(reason, _) => {
            attempt.reason = Some(reason.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Host {
        Host::Ip(s.parse().unwrap())
    }

    #[test]
    fn authority_forms() {
        assert_eq!(
            split_authority("Example.COM.:443", None).unwrap(),
            (Host::Name("example.com".into()), 443)
        );
        assert_eq!(
            split_authority("[::1]:8080", None).unwrap(),
            (ip("::1"), 8080)
        );
        assert_eq!(
            split_authority("[::ffff:127.0.0.1]:80", None).unwrap(),
            (ip("::ffff:127.0.0.1"), 80)
        );
        assert_eq!(
            split_authority("10.0.0.1", Some(80)).unwrap(),
            (ip("10.0.0.1"), 80)
        );
        assert_eq!(split_authority("h.test", Some(80)).unwrap().1, 80);
        for bad in [
            "example.com",
            "example.com:",
            "example.com:0",
            "example.com:65536",
            "example.com:+1",
            ":443",
            "::1:443",
            "[::1]443",
            "[nope]:443",
            "[::1:443",
            "a b:443",
            "exa\r\nmple:443",
        ] {
            assert!(split_authority(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn absolute_targets() {
        assert_eq!(
            split_absolute("http://h.test/a/b?c=1#frag").unwrap(),
            ("h.test", "/a/b?c=1".to_string())
        );
        assert_eq!(
            split_absolute("HTTP://h.test").unwrap(),
            ("h.test", "/".to_string())
        );
        assert_eq!(
            split_absolute("http://h.test:8080?q").unwrap(),
            ("h.test:8080", "/?q".to_string())
        );
        assert!(split_absolute("https://h.test/")
            .unwrap_err()
            .contains("CONNECT"));
        assert!(split_absolute("/index.html")
            .unwrap_err()
            .contains("not a proxy request"));
        assert!(split_absolute("http://user:pw@h.test/").is_err());
        assert!(split_absolute("ftp://h.test/").is_err());
        assert!(split_absolute("").is_err());
    }

    #[test]
    fn rewritten_head_drops_proxy_and_hop_by_hop_fields() {
        let raw = b"GET http://h.test:8080/x HTTP/1.1\r\nHost: evil.test\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nAccept: */*\r\n\r\n";
        let head = parse_head(raw).unwrap();
        let out = String::from_utf8(rewrite_head(&head, "h.test:8080", "/x")).unwrap();
        assert_eq!(
            out,
            "GET /x HTTP/1.1\r\nHost: h.test:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    async fn through_response_head(pieces: &[&[u8]], rewrite: bool) -> Vec<u8> {
        let (mut w, r) = tokio::io::duplex(64);
        let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for p in pieces {
                w.write_all(&p).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut rh = ResponseHead::new(r, rewrite);
        let mut out = Vec::new();
        rh.read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        out
    }

    #[tokio::test]
    async fn response_head_gets_connection_close() {
        let out = through_response_head(
            &[
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConne",
                b"ction: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nContent-Length: 5\r\n",
                b"\r\nhello",
            ],
            true,
        )
        .await;
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        );
        // Not rewriting, unparsable, cut short, switching protocols: unchanged.
        let raw: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nx";
        assert_eq!(through_response_head(&[raw], false).await, raw);
        for raw in [
            &b"NOT HTTP AT ALL\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n\x81\x00",
            b"",
        ] {
            assert_eq!(through_response_head(&[raw], true).await, raw);
        }
    }

    #[test]
    fn printable_reasons() {
        assert_eq!(printable("a\r\nb\u{7f}é"), "a??b??");
        assert_eq!(printable(&"x".repeat(1000)).len(), 300);
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
    }
}

#[cfg(test)]
mod no_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn request_parsing_never_panics(text in "\\PC{0,80}", bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Host::parse(&text);
            let _ = split_authority(&text, None);
            let _ = split_authority(&text, Some(80));
            let _ = split_absolute(&text);
            let _ = crate::egress::AllowList::parse(&[text.as_str()]);
            if let Ok(head) = parse_head(&bytes) {
                let _ = rewrite_head(&head, "h", "/");
            }
            let _ = ResponseHead::<()>::parse(&bytes);
            let _ = printable(&text);
        }

        #[test]
        fn address_checks_never_panic(bits in any::<u128>(), v4 in any::<u32>(), port in any::<u16>()) {
            let list = crate::egress::AllowList::parse(&["10.0.0.0/8:*", "[::ffff:0:0/96]:443", "0.0.0.0/0"]).unwrap();
            for ip in [IpAddr::from(std::net::Ipv6Addr::from_bits(bits)), IpAddr::from(std::net::Ipv4Addr::from_bits(v4))] {
                if let Some(ban) = check_with(ip, &[]) {
                    let _ = ban.to_string();
                    for r in list.ip_rules(ip, port) {
                        let _ = r.net().map(|n| ban.lifted_by(n));
                    }
                }
            }
        }
    }
}
