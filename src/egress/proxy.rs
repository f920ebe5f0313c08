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
        tracing::info!(%addr, rules = shared.config.allow.rules().len(), "egress proxy listening");
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

// ---------------------------------------------------------------------------------------------
// HTTP

enum HeadError {
    Closed,
    TooLarge,
    Malformed(httparse::Error),
    Io(io::Error),
}

/// Reads until `buf` holds a whole request head; returns its length (bytes after it are the
/// start of the body or of the tunnelled stream).
async fn read_head(client: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, HeadError> {
    let mut chunk = [0u8; 4096];
    loop {
        let room = MAX_HEAD.saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return Err(HeadError::TooLarge);
        }
        let n = client
            .read(&mut chunk[..room])
            .await
            .map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(len)) => return Ok(len),
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(HeadError::Malformed(e)),
        }
    }
}

/// The parts of a request head the proxy uses.
struct Head {
    method: String,
    target: String,
    minor_version: u8,
    /// (name, value) in order.
    headers: Vec<(String, Vec<u8>)>,
}

fn parse_head(buf: &[u8]) -> Result<Head, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(buf)?;
    Ok(Head {
        method: req.method.unwrap_or("").to_string(),
        target: req.path.unwrap_or("").to_string(),
        minor_version: req.version.unwrap_or(1),
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
    })
}

/// An absolute-form `http://` target: the authority and the origin-form path.
fn split_absolute(target: &str) -> Result<(&str, String), String> {
    let scheme_len = "http://".len();
    let scheme = target.get(..scheme_len).unwrap_or("");
    if !scheme.eq_ignore_ascii_case("http://") {
        let https = target
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        return Err(if https {
            "https:// URLs go through CONNECT (set HTTPS_PROXY)".to_string()
        } else if target.starts_with('/') {
            "not a proxy request (origin-form target; expected http://host/path or CONNECT)"
                .to_string()
        } else {
            format!("unsupported request target {}", quote(target))
        });
    }
    let rest = &target[scheme_len..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err("credentials in the URL are not forwarded".to_string());
    }
    let tail = tail.split('#').next().unwrap_or("");
    let path = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    Ok((authority, path))
}

/// The head sent upstream: origin-form target, `Host` from the URL, no `Proxy-*`, hop-by-hop or
/// `Connection`-listed fields, `Connection: close`.
fn rewrite_head(head: &Head, authority: &str, path: &str) -> Vec<u8> {
    let listed = connection_tokens(head.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(format!(" HTTP/1.{}\r\n", head.minor_version.min(1)).as_bytes());
    out.extend_from_slice(b"Host: ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &head.headers {
        if hop_by_hop(name, &listed) || name.eq_ignore_ascii_case("host") {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

/// The field names listed in `Connection` headers, lower case.
fn connection_tokens<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<String> {
    headers
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Fields that concern one hop only: never forwarded by the proxy.
fn hop_by_hop(name: &str, listed: &[String]) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("proxy-")
        || matches!(lower.as_str(), "connection" | "keep-alive")
        || listed.contains(&lower)
}

/// Printable ASCII only, at most 300 characters: safe in a header and a text body.
fn printable(text: &str) -> String {
    text.chars()
        .take(300)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

async fn http_refuse(
    client: &mut TcpStream,
    status: u16,
    phrase: &str,
    reason: &str,
    wait: Duration,
) {
    let reason = printable(reason);
    let body = format!("mcp-guard egress proxy: {reason}\n");
    let head = format!(
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{REASON_HEADER}: {reason}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    let _ = timeout(wait, client.write_all(&out)).await;
}

/// Ends our side, then reads what the client still sends for a moment, so that closing with
/// unread bytes does not reset the connection before the client has read our answer.
async fn linger_close(client: &mut TcpStream, wait: Duration) {
    let _ = timeout(wait, client.shutdown()).await;
    let mut sink = [0u8; 4096];
    let _ = timeout(Duration::from_millis(500), async {
        let mut total = 0usize;
        while total < 256 * 1024 {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

async fn http(client: &mut TcpStream, shared: &Shared, attempt: &mut Attempt, overloaded: bool) {
    let config = &shared.config;
    let wait = config.head_timeout;
    let mut buf = Vec::with_capacity(1024);
    let head_len = match timeout(wait, read_head(client, &mut buf)).await {
        Ok(Ok(len)) => len,
        Ok(Err(HeadError::Closed)) => {
            attempt.deny("the client closed the connection before the request head ended");
            return;
        }
        Ok(Err(HeadError::Io(e))) => {
            attempt.deny(format!("reading the request failed: {e}"));
            return;
        }
        Ok(Err(HeadError::TooLarge)) => {
            let reason = format!("request head larger than {} KiB", MAX_HEAD / 1024);
            http_refuse(client, 400, "Bad Request", &reason, wait).await;
            attempt.deny(reason);
            return;
        }
        Ok(Err(HeadError::Malformed(e))) => {
            let reason = format!("malformed HTTP request: {e}");
            http_refuse(client, 400, "Bad Request", &reason, wait).await;
            attempt.deny(reason);
            return;
        }
        Err(_) => {
            let reason = format!("no complete request head within {wait:?}");
            http_refuse(client, 408, "Request Timeout", &reason, wait).await;
            attempt.deny(reason);
            return;
        }
    };
    let head = match parse_head(&buf[..head_len]) {
        Ok(h) => h,
        Err(e) => {
            let reason = format!("malformed HTTP request: {e}");
            http_refuse(client, 400, "Bad Request", &reason, wait).await;
            attempt.deny(reason);
            return;
        }
    };
    let connect = head.method.eq_ignore_ascii_case("CONNECT");
    let parsed = if connect {
        attempt.protocol = Protocol::HttpConnect;
        split_authority(&head.target, None).map(|(h, p)| (h, p, None))
    } else {
        split_absolute(&head.target).and_then(|(authority, path)| {
            split_authority(authority, Some(80))
                .map(|(h, p)| (h, p, Some((authority.to_ascii_lowercase(), path))))
        })
    };
    let (host, port, forward) = match parsed {
        Ok(v) => v,
        Err(reason) => {
            http_refuse(client, 400, "Bad Request", &reason, wait).await;
            attempt.deny(reason);
            return;
        }
    };
    attempt.host = host.text();
    attempt.port = port;
    if overloaded {
        let reason = format!("too many connections (limit {})", config.max_connections);
        http_refuse(client, 503, "Service Unavailable", &reason, wait).await;
        attempt.deny(reason);
        return;
    }
    let mut upstream = match open(shared, attempt, &host, port).await {
        Ok(s) => s,
        Err(refusal) => {
            record_refusal(attempt, &refusal);
            let (status, phrase, reason) = match &refusal {
                Refusal::Denied(r) => (403, "Forbidden", r),
                Refusal::Unresolved(r) | Refusal::Failed(r, _) => (502, "Bad Gateway", r),
            };
            http_refuse(client, status, phrase, reason, wait).await;
            return;
        }
    };
    let leftover = &buf[head_len..];
    let mut first_up = Vec::new();
    match &forward {
        None => {
            let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
            if timeout(wait, client.write_all(ok))
                .await
                .map_or(true, |r| r.is_err())
            {
                attempt.reason = Some("the client went away before the tunnel opened".to_string());
                return;
            }
        }
        Some((authority, path)) => first_up = rewrite_head(&head, authority, path),
    }
    first_up.extend_from_slice(leftover);
    if !first_up.is_empty() {
        match timeout(config.idle_timeout, upstream.write_all(&first_up)).await {
            Ok(Ok(())) => attempt.bytes_up += first_up.len() as u64,
            _ => {
                attempt.reason = Some("writing the request upstream failed".to_string());
                if forward.is_some() {
                    http_refuse(
                        client,
                        502,
                        "Bad Gateway",
                        "writing the request upstream failed",
                        wait,
                    )
                    .await;
                }
                return;
            }
        }
    }
    let rewrite = forward.is_some();
    tunnel(client, &mut upstream, config.idle_timeout, attempt, rewrite).await;
}

// ---------------------------------------------------------------------------------------------
// SOCKS5 (RFC 1928), no authentication, CONNECT only.

const SOCKS_OK: u8 = 0x00;
const SOCKS_GENERAL: u8 = 0x01;
const SOCKS_NOT_ALLOWED: u8 = 0x02;
const SOCKS_NET_UNREACHABLE: u8 = 0x03;
const SOCKS_HOST_UNREACHABLE: u8 = 0x04;
const SOCKS_REFUSED: u8 = 0x05;
const SOCKS_COMMAND: u8 = 0x07;
const SOCKS_ADDRESS_TYPE: u8 = 0x08;

async fn socks_reply(client: &mut TcpStream, code: u8, wait: Duration) -> bool {
    // BND.ADDR / BND.PORT: zeros (clients ignore them; the host's address stays private).
    let reply = [0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    matches!(timeout(wait, client.write_all(&reply)).await, Ok(Ok(())))
}

enum SocksRequest {
    Connect(Host, u16),
    /// The request was read; answer with this code.
    Refuse(u8, String),
    /// Nothing more to answer (already answered, or the client went away).
    Done(String),
}

async fn socks_read_request(client: &mut TcpStream) -> io::Result<SocksRequest> {
    let mut two = [0u8; 2];
    client.read_exact(&mut two).await?;
    let mut methods = vec![0u8; usize::from(two[1])];
    client.read_exact(&mut methods).await?;
    if !methods.contains(&0x00) {
        client.write_all(&[0x05, 0xff]).await?;
        return Ok(SocksRequest::Done(
            "the SOCKS5 client offered no \"no authentication\" method".to_string(),
        ));
    }
    client.write_all(&[0x05, 0x00]).await?;
    let mut req = [0u8; 4];
    client.read_exact(&mut req).await?;
    let [version, command, _reserved, atyp] = req;
    if version != 0x05 {
        return Ok(SocksRequest::Refuse(
            SOCKS_GENERAL,
            format!("SOCKS request version {version}, expected 5"),
        ));
    }
    let host = match atyp {
        0x01 => {
            let mut a = [0u8; 4];
            client.read_exact(&mut a).await?;
            Ok(Host::Ip(IpAddr::from(a)))
        }
        0x04 => {
            let mut a = [0u8; 16];
            client.read_exact(&mut a).await?;
            Ok(Host::Ip(IpAddr::from(a)))
        }
        0x03 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name).await?;
            match std::str::from_utf8(&name) {
                Ok(text) => Host::parse(text),
                Err(_) => Err("the SOCKS5 domain name is not UTF-8".to_string()),
            }
        }
        other => {
            return Ok(SocksRequest::Refuse(
                SOCKS_ADDRESS_TYPE,
                format!("SOCKS5 address type {other} is not supported"),
            ))
        }
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let port = u16::from_be_bytes(port);
    if command != 0x01 {
        return Ok(SocksRequest::Refuse(
            SOCKS_COMMAND,
            format!("SOCKS5 command {command} is not supported (CONNECT only)"),
        ));
    }
    match host {
        Ok(h) if port != 0 => Ok(SocksRequest::Connect(h, port)),
        Ok(_) => Ok(SocksRequest::Refuse(SOCKS_GENERAL, "port 0".to_string())),
        Err(reason) => Ok(SocksRequest::Refuse(SOCKS_GENERAL, reason)),
    }
}

async fn socks5(client: &mut TcpStream, shared: &Shared, attempt: &mut Attempt, overloaded: bool) {
    let config = &shared.config;
    let wait = config.head_timeout;
    let (host, port) = match timeout(wait, socks_read_request(client)).await {
        Ok(Ok(SocksRequest::Connect(h, p))) => (h, p),
        Ok(Ok(SocksRequest::Refuse(code, reason))) => {
            socks_reply(client, code, wait).await;
            attempt.deny(reason);
            return;
        }
        Ok(Ok(SocksRequest::Done(reason))) => {
            attempt.deny(reason);
            return;
        }
        Ok(Err(e)) => {
            attempt.deny(format!("reading the SOCKS5 request failed: {e}"));
            return;
        }
        Err(_) => {
            attempt.deny(format!("no complete SOCKS5 request within {wait:?}"));
            return;
        }
    };
    attempt.host = host.text();
    attempt.port = port;
    if overloaded {
        socks_reply(client, SOCKS_GENERAL, wait).await;
        attempt.deny(format!(
            "too many connections (limit {})",
            config.max_connections
        ));
        return;
    }
    let mut upstream = match open(shared, attempt, &host, port).await {
        Ok(s) => s,
        Err(refusal) => {
            record_refusal(attempt, &refusal);
            let code = match &refusal {
                Refusal::Denied(_) => SOCKS_NOT_ALLOWED,
                Refusal::Unresolved(_) => SOCKS_HOST_UNREACHABLE,
                Refusal::Failed(_, kind) => match kind {
                    io::ErrorKind::ConnectionRefused => SOCKS_REFUSED,
                    io::ErrorKind::NetworkUnreachable => SOCKS_NET_UNREACHABLE,
                    _ => SOCKS_HOST_UNREACHABLE,
                },
            };
            socks_reply(client, code, wait).await;
            return;
        }
    };
    if !socks_reply(client, SOCKS_OK, wait).await {
        attempt.reason = Some("the client went away before the tunnel opened".to_string());
        return;
    }
    tunnel(client, &mut upstream, config.idle_timeout, attempt, false).await;
}

// ---------------------------------------------------------------------------------------------
// The tunnel

/// A stream counting the bytes read from it and noting when bytes last moved.
struct Metered<'a> {
    inner: &'a mut TcpStream,
    read: Arc<AtomicU64>,
    /// Milliseconds since `base` of the last read of any stream of the tunnel.
    last: Arc<AtomicU64>,
    base: Instant,
}

impl AsyncRead for Metered<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut *this.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            this.read.fetch_add(n as u64, Ordering::Relaxed);
            let now = u64::try_from(this.base.elapsed().as_millis()).unwrap_or(u64::MAX);
            this.last.store(now, Ordering::Relaxed);
        }
        poll
    }
}

impl AsyncWrite for Metered<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Plain-HTTP responses: rewrites the first final response head (`Connection: close`, no
/// `Keep-Alive`, `Proxy-*` or `Connection`-listed fields) so that the client does not reuse the
/// connection for another request; interim `1xx` heads pass unchanged, and so does everything
/// after the head. A head that does not parse or exceeds [`MAX_HEAD`] passes unchanged too.
struct ResponseHead<S> {
    inner: S,
    /// `Some`: still reading the head, with the bytes so far.
    head: Option<Vec<u8>>,
    pending: Vec<u8>,
    sent: usize,
}

enum HeadParse {
    NeedMore,
    /// Pass everything from here on unchanged.
    GiveUp,
    /// An interim head of this length: pass it and look for the next.
    Interim(usize),
    /// The final head: its length and the rewritten head.
    Final(usize, Vec<u8>),
}

impl<S> ResponseHead<S> {
    fn new(inner: S, rewrite: bool) -> ResponseHead<S> {
        ResponseHead {
            inner,
            head: rewrite.then(Vec::new),
            pending: Vec::new(),
            sent: 0,
        }
    }

    fn parse(buf: &[u8]) -> HeadParse {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return HeadParse::NeedMore,
            _ => return HeadParse::GiveUp,
        };
        match resp.code {
            Some(101) => return HeadParse::GiveUp,
            Some(code) if (100..200).contains(&code) => return HeadParse::Interim(len),
            _ => {}
        }
        let status_end = buf.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
        let listed = connection_tokens(resp.headers.iter().map(|h| (h.name, h.value)));
        let mut out = Vec::with_capacity(len + 20);
        out.extend_from_slice(&buf[..status_end]);
        out.extend_from_slice(b"\r\n");
        for h in resp.headers.iter() {
            if hop_by_hop(h.name, &listed) {
                continue;
            }
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        HeadParse::Final(len, out)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ResponseHead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.sent < this.pending.len() {
                let n = out.remaining().min(this.pending.len() - this.sent);
                out.put_slice(&this.pending[this.sent..this.sent + n]);
                this.sent += n;
                if this.sent == this.pending.len() {
                    this.pending.clear();
                    this.sent = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let Some(buf) = this.head.as_mut() else {
                return Pin::new(&mut this.inner).poll_read(cx, out);
            };
            if !buf.is_empty() {
                match ResponseHead::<S>::parse(buf) {
                    HeadParse::NeedMore => {}
                    HeadParse::GiveUp => {
                        this.pending = std::mem::take(buf);
                        this.head = None;
                        continue;
                    }
                    HeadParse::Interim(len) => {
                        this.pending = buf.drain(..len).collect();
                        continue;
                    }
                    HeadParse::Final(len, mut rewritten) => {
                        rewritten.extend_from_slice(&buf[len..]);
                        this.pending = rewritten;
                        this.head = None;
                        continue;
                    }
                }
            }
            let mut chunk = [0u8; 4096];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            if rb.filled().is_empty() {
                // The upstream ended inside the head: pass what there is, then the end.
                this.pending = std::mem::take(buf);
                this.head = None;
                if this.pending.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            buf.extend_from_slice(rb.filled());
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ResponseHead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Copies both ways until both sides have closed, an error, or `idle` without a byte.
async fn tunnel(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    idle: Duration,
    attempt: &mut Attempt,
    rewrite_response: bool,
) {
    let base = Instant::now();
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let last = Arc::new(AtomicU64::new(0));
    let mut c = Metered {
        inner: client,
        read: up.clone(),
        last: last.clone(),
        base,
    };
    let mut u = ResponseHead::new(
        Metered {
            inner: upstream,
            read: down.clone(),
            last: last.clone(),
            base,
        },
        rewrite_response,
    );
    let watch = async {
        loop {
            let deadline = base
                .checked_add(Duration::from_millis(last.load(Ordering::Relaxed)))
                .and_then(|t| t.checked_add(idle));
            let Some(deadline) = deadline else {
                // An idle timeout beyond the clock's range: never.
                return std::future::pending::<()>().await;
            };
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut c, &mut u) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "egress tunnel ended with an error");
                if !matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof) {
                    attempt.reason = Some(format!("tunnel error: {e}"));
                }
            }
        }
        _ = watch => {
            attempt.reason = Some(format!("closed after {idle:?} without traffic"));
        }
    }
    attempt.bytes_up += up.load(Ordering::Relaxed);
    attempt.bytes_down += down.load(Ordering::Relaxed);
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
