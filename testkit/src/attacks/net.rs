//! Network attacks for the egress tests: reach a host the policy does not name by every road a
//! real server has — directly, through the guard's proxy as HTTP CONNECT, and as SOCKS5.
//!
//! The test's listener writes a banner on accept; an attack counts as SUCCEEDED only when the
//! banner came back, i.e. the bytes really crossed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

use super::Outcome;

pub const NAMES: &[&str] = &[
    "egress",
    "egress_direct",
    "egress_proxy",
    "udp_send_to",
    "proxy_port",
];

const TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(name: &str, args: &Value) -> Option<Outcome> {
    let host = args["host"].as_str().unwrap_or("127.0.0.1").to_owned();
    let port = args["port"].as_u64().unwrap_or(0) as u16;
    Some(match name {
        // Every road, in order: the attack succeeds if any one of them gets the banner back.
        "egress" => {
            let mut failures = Vec::new();
            for (road, attempt) in [
                ("direct", direct as fn(&str, u16) -> Outcome),
                ("http-connect", via_http_connect),
                ("socks5", via_socks5),
            ] {
                match attempt(&host, port) {
                    Ok(what) => return Some(Ok(format!("{road}: {what}"))),
                    Err(why) => failures.push(format!("{road}: {why}")),
                }
            }
            Err(failures.join("; "))
        }
        "egress_direct" => direct(&host, port),
        "egress_proxy" => via_http_connect(&host, port),
        "udp_send_to" => std::net::UdpSocket::bind(("0.0.0.0", 0))
            .and_then(|s| s.send_to(b"pwned", (host.as_str(), port)))
            .map(|n| format!("sent {n} bytes to {host}:{port}"))
            .map_err(|e| e.to_string()),
        // The port of the proxy the guard gave us (tests then listen on it elsewhere).
        "proxy_port" => proxy("HTTPS_PROXY").map(|(_, port)| format!("port {port}")),
        _ => return None,
    })
}

fn banner(stream: &mut TcpStream) -> Outcome {
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"secret\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    if line.starts_with("BANNER") {
        Ok(format!("got {}", line.trim()))
    } else {
        Err(format!("no banner, got {line:?}"))
    }
}

fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))
}

fn direct(host: &str, port: u16) -> Outcome {
    let mut stream = connect(host, port)?;
    banner(&mut stream)
}

/// The proxy named by the environment, as host and port.
fn proxy(var: &str) -> Result<(String, u16), String> {
    let url = std::env::var(var).map_err(|_| format!("no {var}"))?;
    let rest = url
        .split("://")
        .nth(1)
        .unwrap_or(&url)
        .trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{var} has no port"))?;
    Ok((
        host.to_owned(),
        port.parse().map_err(|_| format!("{var}: bad port"))?,
    ))
}

fn via_http_connect(host: &str, port: u16) -> Outcome {
    let (proxy_host, proxy_port) = proxy("HTTPS_PROXY")?;
    let mut stream = connect(&proxy_host, proxy_port)?;
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    write!(
        stream,
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    // Read the proxy's head byte by byte: the tunnel's first bytes must stay unread.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => break,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let status = head.lines().next().unwrap_or_default().to_owned();
    if !status.contains(" 200") {
        return Err(format!("proxy said {status:?}"));
    }
    banner(&mut stream)
}

fn via_socks5(host: &str, port: u16) -> Outcome {
    let (proxy_host, proxy_port) = proxy("ALL_PROXY")?;
    let mut stream = connect(&proxy_host, proxy_port)?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream.write_all(&[5, 1, 0]).map_err(|e| e.to_string())?;
    let mut choice = [0u8; 2];
    stream
        .read_exact(&mut choice)
        .map_err(|e| format!("greeting: {e}"))?;
    let mut request = vec![5, 1, 0, 3, host.len() as u8];
    request.extend_from_slice(host.as_bytes());
    request.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&request).map_err(|e| e.to_string())?;
    let mut reply = [0u8; 4];
    stream
        .read_exact(&mut reply)
        .map_err(|e| format!("reply: {e}"))?;
    if reply[1] != 0 {
        return Err(format!("SOCKS5 reply code {}", reply[1]));
    }
    let rest = match reply[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        _ => {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).map_err(|e| e.to_string())?;
            len[0] as usize + 2
        }
    };
    let mut skip = vec![0u8; rest];
    stream.read_exact(&mut skip).map_err(|e| e.to_string())?;
    banner(&mut stream)
}
