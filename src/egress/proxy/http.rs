//! The HTTP side of the proxy: `CONNECT host:port` tunnels and absolute-form plain HTTP.

use super::*;

pub(super) enum HeadError {
    Closed,
    TooLarge,
    Malformed(httparse::Error),
    Io(io::Error),
}

/// Reads until `buf` holds a whole request head; returns its length (bytes after it are the
/// start of the body or of the tunnelled stream).
pub(super) async fn read_head(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<usize, HeadError> {
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
pub(super) struct Head {
    pub(super) method: String,
    pub(super) target: String,
    pub(super) minor_version: u8,
    /// (name, value) in order.
    pub(super) headers: Vec<(String, Vec<u8>)>,
}

pub(super) fn parse_head(buf: &[u8]) -> Result<Head, httparse::Error> {
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
pub(super) fn split_absolute(target: &str) -> Result<(&str, String), String> {
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
pub(super) fn rewrite_head(head: &Head, authority: &str, path: &str) -> Vec<u8> {
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
pub(super) fn connection_tokens<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Vec<String> {
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
pub(super) fn hop_by_hop(name: &str, listed: &[String]) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("proxy-")
        || matches!(lower.as_str(), "connection" | "keep-alive")
        || listed.contains(&lower)
}

/// Printable ASCII only, at most 300 characters: safe in a header and a text body.
pub(super) fn printable(text: &str) -> String {
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

pub(super) async fn http_refuse(
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
pub(super) async fn linger_close(client: &mut TcpStream, wait: Duration) {
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

pub(super) async fn http(
    client: &mut TcpStream,
    shared: &Shared,
    attempt: &mut Attempt,
    overloaded: bool,
) {
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
