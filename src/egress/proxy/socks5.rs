//! The SOCKS5 side of the proxy: no authentication, CONNECT only, names resolved here.

use super::*;

pub(super) const SOCKS_OK: u8 = 0x00;
pub(super) const SOCKS_GENERAL: u8 = 0x01;
pub(super) const SOCKS_NOT_ALLOWED: u8 = 0x02;
pub(super) const SOCKS_NET_UNREACHABLE: u8 = 0x03;
pub(super) const SOCKS_HOST_UNREACHABLE: u8 = 0x04;
pub(super) const SOCKS_REFUSED: u8 = 0x05;
pub(super) const SOCKS_COMMAND: u8 = 0x07;
pub(super) const SOCKS_ADDRESS_TYPE: u8 = 0x08;

pub(super) async fn socks_reply(client: &mut TcpStream, code: u8, wait: Duration) -> bool {
    // BND.ADDR / BND.PORT: zeros (clients ignore them; the host's address stays private).
    let reply = [0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    matches!(timeout(wait, client.write_all(&reply)).await, Ok(Ok(())))
}

pub(super) enum SocksRequest {
    Connect(Host, u16),
    /// The request was read; answer with this code.
    Refuse(u8, String),
    /// Nothing more to answer (already answered, or the client went away).
    Done(String),
}

pub(super) async fn socks_read_request(client: &mut TcpStream) -> io::Result<SocksRequest> {
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

pub(super) async fn socks5(
    client: &mut TcpStream,
    shared: &Shared,
    attempt: &mut Attempt,
    overloaded: bool,
) {
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
