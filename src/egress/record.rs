//! One audit record per connection attempt.

use std::net::SocketAddr;

use serde::Serialize;

use super::attribution::CallRef;

/// How the client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Protocol {
    /// `CONNECT host:port` (a TLS tunnel, usually).
    #[serde(rename = "http-connect")]
    HttpConnect,
    /// An absolute-form plain-HTTP request (`GET http://host/path`), or a request the proxy
    /// could not read as anything else.
    #[serde(rename = "http")]
    Http,
    #[serde(rename = "socks5")]
    Socks5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

/// Emitted once per connection attempt when it ends; refused attempts at once. A client that
/// connects and closes without sending a byte leaves no record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionRecord {
    pub protocol: Protocol,
    /// The host as requested (a name or an IP literal, lower case); empty when the request could
    /// not be read.
    pub host: String,
    pub port: u16,
    /// The address connected to (allowed), or the address that was refused.
    pub address: Option<SocketAddr>,
    pub decision: Decision,
    /// The allow-list entry that matched (as written).
    pub rule: Option<String>,
    /// A CIDR/IP entry that lifted a default ban on the resolved address (see
    /// [`super::addresses::Ban::lifted_by`]), when it is not `rule` itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// Why the attempt was refused, or why an allowed one failed (upstream connect error,
    /// idle timeout).
    pub reason: Option<String>,
    /// Bytes from the client towards the destination (for plain HTTP: the rewritten head too).
    pub bytes_up: u64,
    /// Bytes from the destination towards the client.
    pub bytes_down: u64,
    pub duration_ms: u64,
    /// The MCP calls in flight when the connection opened.
    pub calls: Vec<CallRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_the_documented_names() {
        let r = ConnectionRecord {
            protocol: Protocol::HttpConnect,
            host: "example.com".into(),
            port: 443,
            address: Some("192.0.2.1:443".parse().unwrap()),
            decision: Decision::Allow,
            rule: Some("example.com".into()),
            exception: None,
            reason: None,
            bytes_up: 10,
            bytes_down: 20,
            duration_ms: 5,
            calls: vec![CallRef {
                id: "1".into(),
                method: "tools/call".into(),
                tool: Some("fetch".into()),
            }],
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["protocol"], "http-connect");
        assert_eq!(v["decision"], "allow");
        assert_eq!(v["address"], "192.0.2.1:443");
        assert_eq!(v["calls"][0]["tool"], "fetch");
        assert!(v.get("exception").is_none());
        assert_eq!(serde_json::to_value(Protocol::Socks5).unwrap(), "socks5");
        assert_eq!(serde_json::to_value(Protocol::Http).unwrap(), "http");
        assert_eq!(serde_json::to_value(Decision::Deny).unwrap(), "deny");
    }
}
