//! The egress proxy driven by real clients (curl, python3 urllib) against local servers (python3
//! `http.server`, with TLS from an openssl self-signed certificate). All traffic stays on
//! loopback; names resolve through the proxy's resolve file. Skipped, with a message, when curl,
//! openssl or python3 is missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mcp_guard::egress::{
    spawn_thread, AllowList, ConnectionRecord, Decision, InFlightCalls, Protocol, ProxyConfig,
    Resolver,
};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The tools, or why the test is skipped.
fn tools_present(test: &str) -> bool {
    static MISSING: OnceLock<Vec<&'static str>> = OnceLock::new();
    let missing = MISSING.get_or_init(|| {
        ["curl", "openssl", "python3"]
            .into_iter()
            .filter(|t| !have(t))
            .collect()
    });
    if missing.is_empty() {
        true
    } else {
        eprintln!("SKIP {test}: {} not installed", missing.join(", "));
        false
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy under test

struct Proxy {
    port: u16,
    calls: InFlightCalls,
    rx: Option<mpsc::UnboundedReceiver<ConnectionRecord>>,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    resolve_file: PathBuf,
}

impl Proxy {
    fn start(allow: &[&str], tweak: impl FnOnce(&mut ProxyConfig)) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let resolve_file = dir.path().join("hosts");
        std::fs::write(&resolve_file, "").unwrap();
        let mut config = ProxyConfig::new(AllowList::parse(allow).unwrap());
        config.resolver = Resolver::File(resolve_file.clone());
        config.connect_timeout = Duration::from_secs(5);
        tweak(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls = InFlightCalls::new();
        let (tx, rx) = mpsc::unbounded_channel();
        spawn_thread(listener, config, calls.clone(), tx).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        Proxy {
            port,
            calls,
            rx: Some(rx),
            rt,
            _dir: dir,
            resolve_file,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn resolve(&self, lines: &str) {
        std::fs::write(&self.resolve_file, lines).unwrap();
    }

    /// The next record (fails after 20 s).
    fn record(&mut self) -> ConnectionRecord {
        let rx = self.rx.as_mut().unwrap();
        match self
            .rt
            .block_on(async { tokio::time::timeout(WAIT, rx.recv()).await })
        {
            Ok(Some(r)) => r,
            Ok(None) => panic!("the proxy stopped"),
            Err(_) => panic!("no connection record within {WAIT:?}"),
        }
    }

    fn no_record_for(&mut self, d: Duration) {
        let rx = self.rx.as_mut().unwrap();
        if let Ok(r) = self
            .rt
            .block_on(async { tokio::time::timeout(d, rx.recv()).await })
        {
            panic!("unexpected record {r:?}");
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
        s
    }
}

/// Reads byte by byte up to the end of a response head.
fn read_head(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => out.push(byte[0]),
            _ => break,
        }
    }
    text(&out)
}

fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Local servers

/// A python3 HTTP(S) server on 127.0.0.1 answering every GET with what it received.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SERVER_PY: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("path=%s host=%s proxy-auth=%s connection=%s" % (
            self.path, self.headers.get("Host"), self.headers.get("Proxy-Authorization"),
            self.headers.get("Connection"))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "keep-alive")
        self.send_header("Keep-Alive", "timeout=30")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
if sys.argv[1] == "tls":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SERVER_PY)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(WAIT)
            .expect("the test server did not start");
        let port = line
            .trim()
            .parse()
            .expect("the test server printed no port");
        Server { child, port }
    }

    fn plain() -> Server {
        Server::start(&["plain"])
    }

    fn tls(cert: &Cert) -> Server {
        Server::start(&[
            "tls",
            cert.cert.to_str().unwrap(),
            cert.key.to_str().unwrap(),
        ])
    }
}

struct Cert {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

impl Cert {
    fn new() -> Cert {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let out = run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=localhost"])
            .args([
                "-addext",
                "subjectAltName=DNS:localhost,DNS:tls.test,IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        assert!(out.status.success(), "openssl: {}", text(&out.stderr));
        Cert {
            _dir: dir,
            cert,
            key,
        }
    }
}

/// Runs a command to completion, killing it after 30 s.
fn run(cmd: &mut Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{cmd:?} did not finish within 30 s");
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn curl(args: &[&str]) -> Output {
    run(Command::new("curl")
        .args(["-sS", "--max-time", "20", "--noproxy", ""])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy"))
}

fn assert_allowed(r: &ConnectionRecord, protocol: Protocol, host: &str, rule: &str) {
    assert_eq!(r.decision, Decision::Allow, "{r:?}");
    assert_eq!(r.protocol, protocol, "{r:?}");
    assert_eq!(r.host, host, "{r:?}");
    assert_eq!(r.rule.as_deref(), Some(rule), "{r:?}");
    assert!(r.bytes_up > 0 && r.bytes_down > 0, "{r:?}");
    assert!(r.address.is_some(), "{r:?}");
}

fn assert_denied(r: &ConnectionRecord, host: &str, reason_has: &str) {
    assert_eq!(r.decision, Decision::Deny, "{r:?}");
    assert_eq!(r.host, host, "{r:?}");
    let reason = r.reason.as_deref().unwrap_or("");
    assert!(
        reason.contains(reason_has),
        "reason {reason:?} lacks {reason_has:?}"
    );
    assert_eq!((r.bytes_up, r.bytes_down), (0, 0), "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// Allowed traffic

#[test]
fn curl_https_through_connect_allowed_by_cidr() {
    if !tools_present("curl_https_through_connect_allowed_by_cidr") {
        return;
    }
    let cert = Cert::new();
    let server = Server::tls(&cert);
    let mut proxy = Proxy::start(&["127.0.0.0/8:*"], |_| {});
    proxy.calls.begin("7", "tools/call", Some("fetch"));
    let url = format!("https://127.0.0.1:{}/hello", server.port);
    let out = curl(&[
        "--proxy",
        &proxy.url(),
        "--cacert",
        cert.cert.to_str().unwrap(),
        &url,
    ]);
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("path=/hello "),
        "{}",
        text(&out.stdout)
    );
    let r = proxy.record();
    assert_allowed(&r, Protocol::HttpConnect, "127.0.0.1", "127.0.0.0/8:*");
    assert_eq!(r.port, server.port);
    assert_eq!(
        r.address,
        Some(SocketAddr::from(([127, 0, 0, 1], server.port)))
    );
    assert_eq!(r.reason, None);
    assert_eq!(r.calls.len(), 1);
    assert_eq!(r.calls[0].tool.as_deref(), Some("fetch"));
    // The record is JSON for the audit.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["protocol"], "http-connect");
    assert_eq!(json["decision"], "allow");
}

#[test]
fn curl_plain_http_absolute_form_is_rewritten() {
    if !tools_present("curl_plain_http_absolute_form_is_rewritten") {
        return;
    }
    let server = Server::plain();
    let mut proxy = Proxy::start(&["127.0.0.0/8:*"], |_| {});
    let url = format!("http://127.0.0.1:{}/a/b?c=1", server.port);
    let out = curl(&[
        "--proxy",
        &proxy.url(),
        "--proxy-user",
        "someone:secret",
        "-H",
        "Proxy-Connection: keep-alive",
        "-i",
        &url,
    ]);
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    let answer = text(&out.stdout);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    // The server said keep-alive; the client hears close.
    assert!(head.ends_with("\r\nConnection: close"), "{head}");
    assert!(
        !head.contains("Keep-Alive") && !head.contains("keep-alive"),
        "{head}"
    );
    assert_eq!(
        body,
        format!(
            "path=/a/b?c=1 host=127.0.0.1:{} proxy-auth=None connection=close",
            server.port
        )
    );
    let r = proxy.record();
    assert_allowed(&r, Protocol::Http, "127.0.0.1", "127.0.0.0/8:*");
    assert!(r.calls.is_empty());
}

#[test]
fn curl_socks5_hostname_resolves_in_the_proxy() {
    if !tools_present("curl_socks5_hostname_resolves_in_the_proxy") {
        return;
    }
    let cert = Cert::new();
    let server = Server::tls(&cert);
    let mut proxy = Proxy::start(&["tls.test:*", "127.0.0.0/8:*"], |_| {});
    // Only the proxy knows this name.
    proxy.resolve("tls.test 127.0.0.1\n");
    let url = format!("https://tls.test:{}/socks", server.port);
    let out = curl(&[
        "--socks5-hostname",
        &format!("127.0.0.1:{}", proxy.port),
        "--cacert",
        cert.cert.to_str().unwrap(),
        &url,
    ]);
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("path=/socks "));
    let r = proxy.record();
    assert_allowed(&r, Protocol::Socks5, "tls.test", "tls.test:*");
    // The name rule alone would not reach loopback: the CIDR entry lifted the ban.
    assert_eq!(r.exception.as_deref(), Some("127.0.0.0/8:*"));

    // And an IP literal through SOCKS5.
    let url = format!("https://127.0.0.1:{}/ip", server.port);
    let out = curl(&[
        "--proxy",
        &format!("socks5h://127.0.0.1:{}", proxy.port),
        "--cacert",
        cert.cert.to_str().unwrap(),
        &url,
    ]);
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    let r = proxy.record();
    assert_allowed(&r, Protocol::Socks5, "127.0.0.1", "127.0.0.0/8:*");
}

#[test]
fn python_urllib_uses_https_proxy_env() {
    if !tools_present("python_urllib_uses_https_proxy_env") {
        return;
    }
    let cert = Cert::new();
    let server = Server::tls(&cert);
    let mut proxy = Proxy::start(&["localhost:*", "127.0.0.0/8:*"], |_| {});
    proxy.resolve("localhost 127.0.0.1\n");
    let script = "import ssl, sys, urllib.request\n\
                  ctx = ssl.create_default_context(cafile=sys.argv[1])\n\
                  print(urllib.request.urlopen(sys.argv[2], context=ctx, timeout=20).read().decode())";
    let url = format!("https://localhost:{}/py", server.port);
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, cert.cert.to_str().unwrap(), &url])
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY");
    for (k, v) in mcp_guard::egress::proxy_env(proxy.port) {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    assert!(out.status.success(), "python3: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("path=/py "),
        "{}",
        text(&out.stdout)
    );
    let r = proxy.record();
    assert_allowed(&r, Protocol::HttpConnect, "localhost", "localhost:*");
    assert_eq!(r.exception.as_deref(), Some("127.0.0.0/8:*"));
}

// ---------------------------------------------------------------------------------------------
// Refusals

#[test]
fn unlisted_host_is_refused_with_403_and_a_reason() {
    if !tools_present("unlisted_host_is_refused_with_403_and_a_reason") {
        return;
    }
    let mut proxy = Proxy::start(&["listed.test"], |_| {});
    proxy.resolve("unlisted.test 127.0.0.1\nlisted.test 127.0.0.1\n");
    let out = curl(&[
        "--proxy",
        &proxy.url(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "https://unlisted.test/",
    ]);
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "403");
    let r = proxy.record();
    assert_eq!(r.protocol, Protocol::HttpConnect);
    assert_eq!(r.port, 443);
    assert_eq!(r.rule, None);
    assert_eq!(r.address, None, "an unlisted name is never resolved");
    assert_denied(&r, "unlisted.test", "not in the allow list");

    // The answer itself.
    let mut s = proxy.connect();
    s.write_all(b"CONNECT unlisted.test:443 HTTP/1.1\r\nHost: unlisted.test:443\r\n\r\n")
        .unwrap();
    let answer = text(&read_all(&mut s));
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    assert!(
        answer.contains("X-MCP-Guard-Reason: unlisted.test is not in the allow list\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("unlisted.test is not in the allow list\n"),
        "{answer}"
    );
    proxy.record();

    // A listed name on a port it does not list.
    let out = curl(&[
        "--proxy",
        &proxy.url(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "https://listed.test:8443/",
    ]);
    assert_eq!(text(&out.stdout), "403");
    let r = proxy.record();
    assert_denied(
        &r,
        "listed.test",
        "port 8443 is not allowed for listed.test",
    );

    // SOCKS5 refusal: curl reports the reply code.
    let out = curl(&[
        "--socks5-hostname",
        &format!("127.0.0.1:{}", proxy.port),
        "http://unlisted.test/",
    ]);
    assert!(!out.status.success());
    let r = proxy.record();
    assert_eq!(r.protocol, Protocol::Socks5);
    assert_denied(&r, "unlisted.test", "not in the allow list");
}

#[test]
fn name_rule_never_reaches_loopback() {
    if !tools_present("name_rule_never_reaches_loopback") {
        return;
    }
    let server = Server::plain();
    let mut proxy = Proxy::start(&["inside.test:*"], |_| {});
    proxy.resolve("inside.test 127.0.0.1\n");
    let url = format!("http://inside.test:{}/", server.port);
    let out = curl(&[
        "--proxy",
        &proxy.url(),
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &url,
    ]);
    assert_eq!(text(&out.stdout), "403");
    let r = proxy.record();
    assert_eq!(r.rule.as_deref(), Some("inside.test:*"));
    assert_eq!(
        r.address,
        Some(SocketAddr::from(([127, 0, 0, 1], server.port)))
    );
    assert_denied(&r, "inside.test", "loopback");
}

#[test]
fn rebinding_between_connections_is_caught() {
    if !tools_present("rebinding_between_connections_is_caught") {
        return;
    }
    let server = Server::plain();
    let mut proxy = Proxy::start(&["rebind.test:*", "127.0.0.1:*"], |_| {});
    let url = format!("http://rebind.test:{}/", server.port);
    proxy.resolve("rebind.test 127.0.0.1\n");
    let out = curl(&["--proxy", &proxy.url(), &url]);
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    let r = proxy.record();
    assert_allowed(&r, Protocol::Http, "rebind.test", "rebind.test:*");

    proxy.resolve("rebind.test 169.254.169.254\n");
    let out = curl(&[
        "--proxy",
        &proxy.url(),
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &url,
    ]);
    assert_eq!(text(&out.stdout), "403");
    let r = proxy.record();
    assert_denied(&r, "rebind.test", "link-local");

    // Several addresses: forbidden ones are skipped, the allowed one is used.
    proxy.resolve("rebind.test 169.254.169.254 127.0.0.1\n");
    let out = curl(&["--proxy", &proxy.url(), &url]);
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    let r = proxy.record();
    assert_allowed(&r, Protocol::Http, "rebind.test", "rebind.test:*");
    assert_eq!(
        r.address,
        Some(SocketAddr::from(([127, 0, 0, 1], server.port)))
    );
    assert_eq!(r.exception.as_deref(), Some("127.0.0.1:*"));
}

#[test]
fn mapped_loopback_and_metadata_literals_are_refused() {
    if !tools_present("mapped_loopback_and_metadata_literals_are_refused") {
        return;
    }
    let server = Server::plain();
    // 127.0.0.0/8 is allowed, but not its IPv4-mapped IPv6 form.
    let mut proxy = Proxy::start(&["127.0.0.0/8:*", "0.0.0.0/0:*"], |_| {});
    let url = format!("http://[::ffff:127.0.0.1]:{}/", server.port);
    let out = curl(&[
        "--proxy",
        &proxy.url(),
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &url,
    ]);
    assert_eq!(text(&out.stdout), "403");
    let r = proxy.record();
    assert_denied(&r, "::ffff:127.0.0.1", "IPv4-mapped");
    assert!(r.reason.as_deref().unwrap_or("").contains("loopback"));

    // 0.0.0.0/0 does not name the link-local range: the metadata address stays forbidden.
    let out = curl(&[
        "--proxy",
        &proxy.url(),
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        "http://169.254.169.254/latest/meta-data/",
    ]);
    assert_eq!(text(&out.stdout), "403");
    let r = proxy.record();
    assert_denied(&r, "169.254.169.254", "link-local");

    let out = curl(&[
        "--proxy",
        &proxy.url(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "https://[64:ff9b::a9fe:a9fe]/",
    ]);
    assert_eq!(text(&out.stdout), "403");
    let r = proxy.record();
    assert_denied(&r, "64:ff9b::a9fe:a9fe", "NAT64");
}

// ---------------------------------------------------------------------------------------------
// Protocol edges and limits (raw sockets)

#[test]
fn malformed_and_unsupported_requests() {
    let mut proxy = Proxy::start(&["127.0.0.0/8:*"], |_| {});
    for (request, status) in [
        (&b"GARBAGE\r\n\r\n"[..], "HTTP/1.1 400 "),
        (
            b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 400 ",
        ),
        (b"GET https://x.test/ HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "),
        (b"CONNECT x.test HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "),
        (b"CONNECT [::1:443 HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "),
    ] {
        let mut s = proxy.connect();
        s.write_all(request).unwrap();
        let answer = text(&read_all(&mut s));
        assert!(answer.starts_with(status), "{answer}");
        assert!(answer.contains("X-MCP-Guard-Reason: "), "{answer}");
        let r = proxy.record();
        assert_eq!(r.decision, Decision::Deny);
    }
    // Too large a head.
    let mut s = proxy.connect();
    let mut big = b"GET http://x.test/ HTTP/1.1\r\n".to_vec();
    let filler = format!("X-Filler: {}\r\n", "a".repeat(1000));
    while big.len() < 20_000 {
        big.extend_from_slice(filler.as_bytes());
    }
    let _ = s.write_all(&big);
    let answer = text(&read_all(&mut s));
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(proxy
        .record()
        .reason
        .unwrap()
        .contains("larger than 16 KiB"));
    // Garbage, truncated and odd SOCKS5 exchanges: answered or closed, never a crash.
    for garbage in [
        &[0x05u8][..],
        &[0x05, 0xff],
        &[0x05, 0x00],
        &[0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 0x00, 0x00, 0x50],
        &[
            0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 0x03, 0xff, 0xfe, 0xfd, 0x00, 0x50,
        ],
        &[0x05, 0x01, 0x00, 0x04, 0x01, 0x00, 0x01],
        &[0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0],
        &[0x00; 64],
        &[0xff; 17_000],
    ] {
        let mut s = proxy.connect();
        let _ = s.write_all(garbage);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = read_all(&mut s);
        let r = proxy.record();
        assert_eq!(r.decision, Decision::Deny, "{garbage:?}: {r:?}");
    }
    // A tunnel to the proxy itself.
    let mut s = proxy.connect();
    write!(s, "CONNECT 127.0.0.1:{} HTTP/1.1\r\n\r\n", proxy.port).unwrap();
    let answer = text(&read_all(&mut s));
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    assert_denied(&proxy.record(), "127.0.0.1", "the egress proxy itself");
    // A connection closed without a byte leaves no record.
    drop(proxy.connect());
    proxy.no_record_for(Duration::from_millis(300));
}

/// A SOCKS5 exchange: greeting, then `request`; returns the reply code.
fn socks(proxy: &Proxy, request: &[u8]) -> (u8, TcpStream) {
    let mut s = proxy.connect();
    s.write_all(&[5, 1, 0]).unwrap();
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).unwrap();
    assert_eq!(choice, [5, 0]);
    s.write_all(request).unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], 5);
    (reply[1], s)
}

#[test]
fn socks5_reply_codes() {
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in echo.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let mut proxy = Proxy::start(&["127.0.0.1:*", "[::1]:*", "gone.test:*"], |_| {});
    let p = echo_port.to_be_bytes();

    // CONNECT 127.0.0.1 (IPv4 address type): allowed, echoes.
    let (code, mut s) = socks(&proxy, &[5, 1, 0, 1, 127, 0, 0, 1, p[0], p[1]]);
    assert_eq!(code, 0);
    s.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    drop(s);
    let r = proxy.record();
    assert_eq!((r.bytes_up, r.bytes_down), (4, 4));
    assert_eq!(r.rule.as_deref(), Some("127.0.0.1:*"));

    // BIND: command not supported.
    let (code, _) = socks(&proxy, &[5, 2, 0, 1, 127, 0, 0, 1, p[0], p[1]]);
    assert_eq!(code, 0x07);
    assert!(proxy.record().reason.unwrap().contains("command 2"));

    // Address type 9: not supported.
    let (code, _) = socks(&proxy, &[5, 1, 0, 9, 127, 0, 0, 1, p[0], p[1]]);
    assert_eq!(code, 0x08);
    proxy.record();

    // 127.0.0.2 is loopback but not listed: not allowed by the ruleset.
    let (code, _) = socks(&proxy, &[5, 1, 0, 1, 127, 0, 0, 2, p[0], p[1]]);
    assert_eq!(code, 0x02);
    assert_denied(&proxy.record(), "127.0.0.2", "loopback");

    // A listed name that does not resolve: host unreachable.
    let mut req = vec![5, 1, 0, 3, 9];
    req.extend_from_slice(b"gone.test");
    req.extend_from_slice(&p);
    let (code, _) = socks(&proxy, &req);
    assert_eq!(code, 0x04);
    let r = proxy.record();
    assert_eq!(r.decision, Decision::Allow);
    assert!(r.reason.unwrap().contains("gone.test"));

    // Allowed, but nothing listens: connection refused.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let cp = closed.local_addr().unwrap().port().to_be_bytes();
    drop(closed);
    let (code, _) = socks(&proxy, &[5, 1, 0, 1, 127, 0, 0, 1, cp[0], cp[1]]);
    assert_eq!(code, 0x05);
    assert!(proxy.record().reason.unwrap().contains("failed"));

    // IPv6 address type, if this host has ::1.
    if let Ok(v6) = TcpListener::bind("[::1]:0") {
        let port = v6.local_addr().unwrap().port().to_be_bytes();
        // Accept and close at once: the tunnel ends.
        std::thread::spawn(move || drop(v6.accept()));
        let mut req = vec![5, 1, 0, 4];
        req.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        req.extend_from_slice(&port);
        let (code, _) = socks(&proxy, &req);
        assert_eq!(code, 0);
        let r = proxy.record();
        assert_eq!(r.host, "::1");
        assert_eq!(r.rule.as_deref(), Some("[::1]:*"));
    } else {
        eprintln!("no ::1 on this host: the IPv6 SOCKS5 case is skipped");
    }

    // No acceptable authentication method.
    let mut s = proxy.connect();
    s.write_all(&[5, 1, 2]).unwrap();
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).unwrap();
    assert_eq!(choice, [5, 0xff]);
    assert_eq!(proxy.record().decision, Decision::Deny);
}

#[test]
fn connection_limit_head_timeout_and_idle_timeout() {
    // A silent upstream.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn);
        }
    });
    let mut proxy = Proxy::start(&["127.0.0.1:*"], |c| {
        c.max_connections = 1;
        c.head_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(1);
    });

    // One tunnel holds the only slot...
    let mut first = proxy.connect();
    write!(first, "CONNECT 127.0.0.1:{silent_port} HTTP/1.1\r\n\r\n").unwrap();
    let ok = read_head(&mut first);
    assert!(ok.starts_with("HTTP/1.1 200 "), "{ok}");
    // ...so a second connection is answered 503.
    let mut second = proxy.connect();
    write!(second, "CONNECT 127.0.0.1:{silent_port} HTTP/1.1\r\n\r\n").unwrap();
    let answer = text(&read_all(&mut second));
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    let r = proxy.record();
    assert_denied(&r, "127.0.0.1", "too many connections");

    // ...and a SOCKS5 one gets reply 0x01.
    let p = silent_port.to_be_bytes();
    let (code, _) = socks(&proxy, &[5, 1, 0, 1, 127, 0, 0, 1, p[0], p[1]]);
    assert_eq!(code, 0x01);
    assert_denied(&proxy.record(), "127.0.0.1", "too many connections");

    // The idle tunnel closes after about a second without traffic.
    let started = Instant::now();
    let rest = read_all(&mut first);
    assert!(rest.is_empty());
    assert!(started.elapsed() < Duration::from_secs(10));
    let r = proxy.record();
    assert_eq!(r.decision, Decision::Allow);
    assert!(r.reason.unwrap().contains("without traffic"));

    // A head that never ends: 408 after the head timeout.
    let mut slow = proxy.connect();
    slow.write_all(b"GET http://127.0.0.1/ HTTP/1.1\r\n")
        .unwrap();
    let answer = text(&read_all(&mut slow));
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert_eq!(proxy.record().decision, Decision::Deny);
}

#[test]
fn serve_stops_when_the_records_receiver_is_dropped() {
    let mut proxy = Proxy::start(&[], |_| {});
    let port = proxy.port;
    drop(proxy.rx.take());
    // The listener closes once serve has returned.
    let deadline = Instant::now() + WAIT;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "the proxy kept listening");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `serve` on the caller's own runtime (what `spawn_thread` wraps).
#[tokio::test]
async fn serve_on_the_callers_runtime() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = std::sync::Arc::new(ProxyConfig::new(
        AllowList::parse(&["allowed.test"]).unwrap(),
    ));
    let server = tokio::spawn(mcp_guard::egress::serve(
        listener,
        config,
        InFlightCalls::new(),
        tx,
    ));
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"CONNECT other.test:443 HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(text(&answer).starts_with("HTTP/1.1 403 "));
    let r = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.decision, Decision::Deny);
    drop(rx);
    let stopped = tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
    assert!(stopped.is_ok());
}
