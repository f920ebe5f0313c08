//! The connect broker (`hosts` mode without namespaces): a client confined by the connect
//! notifier reaches the proxy and the listed unix sockets, and nothing else — not even another
//! address on the proxy's own port, which landlock's port-only rules would let through. Each
//! refusal has an unguarded control beside it: the same client, no notifier, succeeds.
//!
//! The client is `python3 -c` (blocking and non-blocking connects, inet, inet6, unix, TCP Fast
//! Open); the child installs the notifier in `pre_exec` and hands the listener to the test over
//! a socketpair, as the supervisor's child will. Traffic goes to loopback only.
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_guard::sandbox::fd_passing::{recv_fd, send_fd};
use mcp_guard::sandbox::net_broker::{self, BrokerDecision, BrokerRules};
use mcp_guard::sandbox::{self, NetworkMode, Plan, SandboxConfig};
use serde_json::{json, Value};

const CHILD_TIMEOUT: Duration = Duration::from_secs(30);
const BROKER_END_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs each action of argv[1] (a JSON list) and prints one JSON line per action.
const CLIENT: &str = r#"
import errno, fcntl, json, os, select, socket, sys, time
for a in json.loads(sys.argv[1]):
    r = {"name": a["name"], "ok": False, "errno": None}
    try:
        k = a["kind"]
        if k == "fds":
            r["fds"] = []
            for x in os.listdir("/proc/self/fd"):
                try:
                    r["fds"].append(os.readlink("/proc/self/fd/" + x))
                except OSError:
                    pass
            r["ok"] = True
            print(json.dumps(r), flush=True)
            continue
        if k == "forked":
            pid = os.fork()
            if pid == 0:
                try:
                    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    c.connect((a["host"], a["port"]))
                    c.sendall(a["payload"].encode())
                    c.close()
                    os._exit(0)
                except OSError as e:
                    os._exit(100 + (e.errno or 0) % 100)
            r["exit"] = os.waitpid(pid, 0)[1] >> 8
            r["ok"] = r["exit"] == 0
            print(json.dumps(r), flush=True)
            continue
        if "chdir" in a:
            os.chdir(a["chdir"])
        if k == "bench":
            rounds = []
            for _ in range(a["rounds"]):
                start = time.perf_counter()
                for _ in range(a["n"]):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.connect((a["host"], a["port"]))
                    s.close()
                rounds.append((time.perf_counter() - start) * 1e6 / a["n"])
            r["us_per_connect"] = min(rounds)
            r["ok"] = True
            print(json.dumps(r), flush=True)
            continue
        if k == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = a["path"]
            if target.startswith("@"):
                target = "\0" + target[1:]
        elif k == "tcp6":
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            target = (a["host"], a["port"])
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = (a["host"], a["port"])
        if a.get("nodelay"):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if k == "fastopen":
            s.sendto(a["payload"].encode(), socket.MSG_FASTOPEN, target)
        elif a.get("nonblocking"):
            s.setblocking(False)
            rc = s.connect_ex(target)
            r["connect_ex"] = rc
            if rc == errno.EINPROGRESS:
                select.select([], [s], [], 5)
                rc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if rc:
                raise OSError(rc, os.strerror(rc))
        else:
            s.connect(target)
        r["nonblock"] = bool(fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)
        r["inheritable"] = os.get_inheritable(s.fileno())
        r["peer"] = str(s.getpeername())
        if k != "unix":
            r["nodelay"] = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        if k != "fastopen":
            s.setblocking(True)
            s.sendall(a["payload"].encode())
        s.close()
        r["ok"] = True
    except OSError as e:
        r["errno"] = e.errno
    print(json.dumps(r), flush=True)
"#;

/// One run of the client.
struct Run {
    results: Vec<Value>,
    /// The broker's decisions (empty for an unguarded run).
    decisions: Vec<BrokerDecision>,
}

impl Run {
    fn result(&self, name: &str) -> &Value {
        self.results
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no result for {name}: {:?}", self.results))
    }

    fn ok(&self, name: &str) -> bool {
        self.result(name)["ok"] == true
    }

    fn errno(&self, name: &str) -> Option<i64> {
        self.result(name)["errno"].as_i64()
    }
}

/// Run the client with `actions`; guarded by the broker with `rules` when given.
fn run_client(actions: &Value, rules: Option<&BrokerRules>) -> Run {
    run_python(CLIENT, &[actions.to_string()], rules)
}

/// Run `script`, return the JSON lines it printed.
fn run_script(script: &str, args: &[String], rules: Option<&BrokerRules>) -> Vec<Value> {
    run_python(script, args, rules).results
}

fn run_python(script: &str, args: &[String], rules: Option<&BrokerRules>) -> Run {
    let mut command = Command::new("python3");
    command.arg("-c").arg(script).args(args);
    run(command, rules.map_or(Guard::Off, Guard::Broker), None)
}

/// How the child is started.
#[derive(Clone, Copy)]
enum Guard<'a> {
    /// No notifier: the unguarded control.
    Off,
    /// The notifier, served by a broker with these rules.
    Broker(&'a BrokerRules),
    /// The notifier, whose listener the test closes without serving it.
    ListenerClosed,
}

/// Run `command`, guarded by the broker with `rules` when given, and confined by every other
/// layer of `plan` when given (applied after the notifier, as the supervisor's child would).
fn run(command: Command, guard: Guard<'_>, plan: Option<Plan>) -> Run {
    let (output, decisions) = run_raw(command, guard, plan);
    Run {
        results: parse(&output),
        decisions,
    }
}

/// [`run`], returning the child's output as it is.
fn run_raw(
    mut command: Command,
    guard: Guard<'_>,
    plan: Option<Plan>,
) -> (String, Vec<BrokerDecision>) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Guard::Off = guard {
        return (wait_output(command.spawn().expect("spawn")), Vec::new());
    };

    let (ours, theirs) = UnixStream::pair().unwrap();
    let theirs_fd = theirs.as_raw_fd();
    // SAFETY: test-only; the child makes a few syscalls (glibc's fork keeps malloc usable) and
    // then execs the client.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let notify = net_broker::install_connect_notifier().map_err(std::io::Error::other)?;
            send_fd(BorrowedFd::borrow_raw(theirs_fd), &notify)?;
            // The listener must not reach the server (it could answer its own notifications);
            // it is close-on-exec anyway.
            drop(notify);
            if let Some(plan) = &plan {
                sandbox::apply_to_current_process(plan)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            Ok(())
        });
    }
    let child = command.spawn().expect("spawn with the notifier");
    drop(theirs);
    ours.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let notify = recv_fd(&ours)
        .expect("receive the listener")
        .expect("the child sent no listener");
    let rules = match guard {
        Guard::Broker(rules) => rules.clone(),
        Guard::Off | Guard::ListenerClosed => {
            drop(notify);
            return (wait_output(child), Vec::new());
        }
    };

    let (decision_tx, decision_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = net_broker::serve(notify, &rules, |d| {
            let _ = decision_tx.send(d.clone());
        });
        let _ = done_tx.send(result.map_err(|e| e.to_string()));
    });
    let output = wait_output(child);
    // (f) The broker ends on its own once the child is gone (reaped by wait_output).
    match done_rx.recv_timeout(BROKER_END_TIMEOUT) {
        Ok(result) => result.expect("the broker failed"),
        Err(_) => panic!("the broker did not end after the child exited"),
    }
    // glibc asks nscd (a unix socket) before resolving names or users where nscd runs; the
    // broker refuses that like any unlisted socket, but it is not what these tests count.
    let decisions = decision_rx.try_iter().filter(|d| !is_nscd(d)).collect();
    (output, decisions)
}

fn is_nscd(decision: &BrokerDecision) -> bool {
    decision.destination.ends_with("/nscd/socket")
}

fn wait_output(mut child: std::process::Child) -> String {
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + CHILD_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "client failed: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the client did not finish within {CHILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    reader.join().unwrap()
}

fn parse(output: &str) -> Vec<Value> {
    output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A listener that accepts in the background and records what each connection sent.
struct Sink {
    received: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

enum AnyListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Sink {
    fn tcp(addr: &str) -> (Sink, SocketAddr) {
        let listener = TcpListener::bind(addr).unwrap();
        let local = listener.local_addr().unwrap();
        (Sink::start(AnyListener::Tcp(listener)), local)
    }

    fn unix(path: &Path) -> Sink {
        Sink::start(AnyListener::Unix(UnixListener::bind(path).unwrap()))
    }

    fn start(listener: AnyListener) -> Sink {
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            match &listener {
                AnyListener::Tcp(l) => l.set_nonblocking(true).unwrap(),
                AnyListener::Unix(l) => l.set_nonblocking(true).unwrap(),
            }
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                let stream: Option<Box<dyn Read + Send>> = match &listener {
                    AnyListener::Tcp(l) => l.accept().ok().map(|(c, _)| {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        Box::new(c) as Box<dyn Read + Send>
                    }),
                    AnyListener::Unix(l) => l.accept().ok().map(|(c, _)| {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        Box::new(c) as Box<dyn Read + Send>
                    }),
                };
                match stream {
                    Some(mut c) => {
                        let r = r.clone();
                        std::thread::spawn(move || {
                            let mut bytes = Vec::new();
                            let _ = c.read_to_end(&mut bytes);
                            if !bytes.is_empty() {
                                r.lock()
                                    .unwrap()
                                    .push(String::from_utf8_lossy(&bytes).into_owned());
                            }
                        });
                    }
                    None => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Sink { received, stop }
    }

    /// Whether a connection delivered `payload` (waits a little for the reader threads).
    fn got(&self, payload: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.received.lock().unwrap().iter().any(|p| p == payload) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Forget what arrived so far (between the control and the guarded run).
    fn clear(&self) {
        std::thread::sleep(Duration::from_millis(200));
        self.received.lock().unwrap().clear();
    }

    /// Nothing at all arrived (after a short grace period).
    fn got_nothing(&self) -> bool {
        std::thread::sleep(Duration::from_millis(200));
        self.received.lock().unwrap().is_empty()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn rules(proxy: SocketAddr, unix: Vec<PathBuf>) -> BrokerRules {
    BrokerRules { proxy, unix }
}

fn tcp(name: &str, kind: &str, addr: SocketAddr, payload: &str) -> Value {
    json!({"name": name, "kind": kind, "host": addr.ip().to_string(), "port": addr.port(), "payload": payload})
}

#[test]
fn proxy_connect_is_brokered_and_data_flows() {
    let (proxy, proxy_addr) = Sink::tcp("127.0.0.1:0");
    let mapped: SocketAddr = format!("[::ffff:127.0.0.1]:{}", proxy_addr.port())
        .parse()
        .unwrap();
    let mut nodelay = tcp("nodelay", "tcp4", proxy_addr, "to-proxy-nodelay");
    nodelay["nodelay"] = json!(true);
    let actions = json!([
        nodelay,
        tcp("v4", "tcp4", proxy_addr, "to-proxy-v4"),
        tcp("v6-mapped", "tcp6", mapped, "to-proxy-v6"),
        {"name": "fds", "kind": "fds"},
        tcp("forked", "forked", proxy_addr, "to-proxy-from-child"),
    ]);
    let run = run_client(&actions, Some(&rules(proxy_addr, Vec::new())));
    assert!(run.ok("v4"), "{:?}", run.results);
    assert!(proxy.got("to-proxy-v4"), "the proxy side read the bytes");
    assert_eq!(run.result("v4")["inheritable"], false, "O_CLOEXEC kept");
    assert_eq!(run.result("v4")["nonblock"], false);
    assert!(run.ok("v6-mapped"), "{:?}", run.results);
    assert!(proxy.got("to-proxy-v6"));
    assert!(run.decisions.iter().all(|d| d.allowed
        && d.pid > 0
        && d.destination.ends_with(&proxy_addr.port().to_string())));
    assert!(
        run.ok("forked"),
        "a forked child is brokered too: {:?}",
        run.results
    );
    assert!(proxy.got("to-proxy-from-child"));
    assert_eq!(run.decisions.len(), 4, "{:?}", run.decisions);
    assert_eq!(run.result("nodelay")["nodelay"], true, "TCP_NODELAY copied");
    assert_eq!(run.result("v4")["nodelay"], false);
    assert!(proxy.got("to-proxy-nodelay"));
    let fds = run.result("fds")["fds"].as_array().unwrap();
    assert!(
        !fds.iter().any(|f| f.as_str().unwrap().contains("seccomp")),
        "the listener leaked into the client: {fds:?}"
    );
}

#[test]
fn other_port_on_loopback_is_refused() {
    let (_proxy, proxy_addr) = Sink::tcp("127.0.0.1:0");
    let (other, other_addr) = Sink::tcp("127.0.0.1:0");
    let actions = json!([tcp("other", "tcp4", other_addr, "to-other")]);

    let control = run_client(&actions, None);
    assert!(control.ok("other"), "control: {:?}", control.results);
    assert!(other.got("to-other"));

    let (other, other_addr) = Sink::tcp("127.0.0.1:0");
    let actions = json!([tcp("other", "tcp4", other_addr, "to-other")]);
    let run = run_client(&actions, Some(&rules(proxy_addr, Vec::new())));
    assert_eq!(
        run.errno("other"),
        Some(libc::EACCES as i64),
        "{:?}",
        run.results
    );
    assert!(other.got_nothing());
    let refused = &run.decisions[0];
    assert!(!refused.allowed);
    assert_eq!(refused.destination, other_addr.to_string());
}

/// The gap landlock leaves: its rules are by port, so 127.0.0.2:PORT (any address, really)
/// on the proxy's port would pass. Also TCP Fast Open, which connects without connect().
#[test]
fn same_port_other_address_is_refused() {
    let (proxy, proxy_addr) = Sink::tcp("127.0.0.1:0");
    let twin_addr: SocketAddr = format!("127.0.0.2:{}", proxy_addr.port()).parse().unwrap();
    let (twin, _) = Sink::tcp(&twin_addr.to_string());
    let mapped_twin: SocketAddr = format!("[::ffff:127.0.0.2]:{}", proxy_addr.port())
        .parse()
        .unwrap();
    let actions = json!([
        tcp("twin", "tcp4", twin_addr, "to-twin"),
        tcp("twin-v6", "tcp6", mapped_twin, "to-twin-v6"),
        tcp("fastopen", "fastopen", twin_addr, "to-twin-tfo"),
    ]);

    let control = run_client(&actions, None);
    assert!(control.ok("twin"), "control: {:?}", control.results);
    assert!(control.ok("twin-v6"), "control: {:?}", control.results);
    assert!(twin.got("to-twin") && twin.got("to-twin-v6"));
    // TCP Fast Open in the control depends on net.ipv4.tcp_fastopen; report, don't assert.
    eprintln!("control fastopen: {}", control.result("fastopen"));
    twin.clear();

    let run = run_client(&actions, Some(&rules(proxy_addr, Vec::new())));
    assert_eq!(
        run.errno("twin"),
        Some(libc::EACCES as i64),
        "{:?}",
        run.results
    );
    assert_eq!(
        run.errno("twin-v6"),
        Some(libc::EACCES as i64),
        "{:?}",
        run.results
    );
    assert_eq!(
        run.errno("fastopen"),
        Some(libc::EPERM as i64),
        "{:?}",
        run.results
    );
    assert!(twin.got_nothing());
    assert!(proxy.got_nothing());
    assert!(
        run.decisions.iter().all(|d| !d.allowed),
        "{:?}",
        run.decisions
    );
}

#[test]
fn nonblocking_connect_ends_connected_to_proxy() {
    let (proxy, proxy_addr) = Sink::tcp("127.0.0.1:0");
    let mut action = tcp("nb", "tcp4", proxy_addr, "to-proxy-nb");
    action["nonblocking"] = json!(true);
    let run = run_client(&json!([action]), Some(&rules(proxy_addr, Vec::new())));
    let result = run.result("nb");
    assert!(run.ok("nb"), "{result}");
    assert_eq!(result["nonblock"], true, "O_NONBLOCK kept: {result}");
    assert_eq!(result["inheritable"], false, "O_CLOEXEC kept: {result}");
    assert_eq!(
        result["peer"],
        format!("('{}', {})", proxy_addr.ip(), proxy_addr.port())
    );
    assert!(proxy.got("to-proxy-nb"));
}

#[test]
fn unix_listed_path_allowed_unlisted_refused() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed.sock");
    let unlisted = dir.path().join("unlisted.sock");
    let (_proxy, proxy_addr) = Sink::tcp("127.0.0.1:0");
    let abstract_name = format!("@mcp-guard-broker-test-{}", std::process::id());
    let abstract_listener = {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name[1..]).unwrap();
        UnixListener::bind_addr(&addr).unwrap()
    };
    abstract_listener.set_nonblocking(true).unwrap();
    let actions = |allowed: &Path, unlisted: &Path| {
        json!([
            {"name": "allowed", "kind": "unix", "path": allowed, "payload": "to-allowed"},
            {"name": "unlisted", "kind": "unix", "path": unlisted, "payload": "to-unlisted"},
            {"name": "abstract", "kind": "unix", "path": abstract_name, "payload": "to-abstract"},
            {"name": "relative", "kind": "unix", "path": "allowed.sock", "chdir": allowed.parent().unwrap(), "payload": "to-allowed-rel"},
        ])
    };

    let allowed_sink = Sink::unix(&allowed);
    let unlisted_sink = Sink::unix(&unlisted);
    let control = run_client(&actions(&allowed, &unlisted), None);
    assert!(
        control.ok("allowed") && control.ok("unlisted") && control.ok("abstract"),
        "control: {:?}",
        control.results
    );
    assert!(allowed_sink.got("to-allowed") && unlisted_sink.got("to-unlisted"));
    allowed_sink.clear();
    unlisted_sink.clear();
    let (mut control_conn, _) = accept_within(&abstract_listener);
    let mut control_bytes = Vec::new();
    control_conn.read_to_end(&mut control_bytes).unwrap();
    assert_eq!(control_bytes, b"to-abstract");

    // The rule names the socket through a symlinked directory: the broker compares canonical
    // paths.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    let run = run_client(
        &actions(&allowed, &unlisted),
        Some(&rules(proxy_addr, vec![link.join("allowed.sock")])),
    );
    assert!(run.ok("allowed"), "{:?}", run.results);
    assert!(allowed_sink.got("to-allowed"));
    assert!(
        run.ok("relative"),
        "relative to the client's cwd: {:?}",
        run.results
    );
    assert!(allowed_sink.got("to-allowed-rel"));
    assert_eq!(run.errno("unlisted"), Some(libc::EACCES as i64));
    assert_eq!(run.errno("abstract"), Some(libc::EACCES as i64));
    assert!(unlisted_sink.got_nothing());
    let mut kinds: Vec<_> = run
        .decisions
        .iter()
        .map(|d| (d.destination.clone(), d.allowed))
        .collect();
    kinds.sort();
    assert!(
        kinds.contains(&(allowed.display().to_string(), true)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(unlisted.display().to_string(), false)),
        "{kinds:?}"
    );
    assert!(kinds.contains(&(abstract_name.clone(), false)), "{kinds:?}");
    match abstract_listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the abstract listener saw a connection: {other:?}"),
    }
}

/// A second thread rewrites the address between the proxy and 127.0.0.2 on the proxy's port
/// while connects (from a non-main thread) are pending: with the kernel re-reading memory
/// (FLAG_CONTINUE) some would land on 127.0.0.2. The broker connects its own socket, so every
/// success ends at the proxy.
const RACE: &str = r#"
import ctypes, json, socket, struct, sys, threading
sys.setswitchinterval(0.0001)
libc = ctypes.CDLL(None, use_errno=True)
port, n = int(sys.argv[1]), int(sys.argv[2])
def sockaddr(ip):
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(ip) + bytes(8)
good, evil = sockaddr("127.0.0.1"), sockaddr("127.0.0.2")
buf = ctypes.create_string_buffer(good, 16)
stop = False
def flipper():
    while not stop:
        ctypes.memmove(buf, evil, 16)
        ctypes.memmove(buf, good, 16)
r = {"proxy": 0, "elsewhere": 0, "errors": {}}
def worker():
    for _ in range(n):
        s = socket.socket()
        if libc.connect(s.fileno(), buf, 16) == 0:
            if s.getpeername() == ("127.0.0.1", port):
                r["proxy"] += 1
            else:
                r["elsewhere"] += 1
            s.sendall(b"race")
        else:
            e = str(ctypes.get_errno())
            r["errors"][e] = r["errors"].get(e, 0) + 1
        s.close()
f = threading.Thread(target=flipper)
f.start()
w = threading.Thread(target=worker)
w.start()
w.join()
stop = True
f.join()
print(json.dumps(r))
"#;

#[test]
fn rewriting_the_address_during_connect_never_escapes() {
    const N: u64 = 200;
    let (proxy, proxy_addr) = Sink::tcp("127.0.0.1:0");
    let twin_addr = format!("127.0.0.2:{}", proxy_addr.port());
    let (twin, _) = Sink::tcp(&twin_addr);
    let args = [proxy_addr.port().to_string(), N.to_string()];
    // The control: unguarded, the flips do reach the kernel (a race, so up to three tries).
    let escaped = (0..3).any(|_| {
        let control = run_script(RACE, &args, None);
        eprintln!("race, unguarded: {}", control[0]);
        control[0]["elsewhere"].as_u64().unwrap() > 0
    });
    assert!(escaped, "the unguarded race never reached 127.0.0.2");
    assert!(twin.got("race"));
    twin.clear();
    proxy.clear();

    let guarded = run_script(RACE, &args, Some(&rules(proxy_addr, Vec::new())));
    eprintln!("race, brokered: {}", guarded[0]);
    let r = &guarded[0];
    assert_eq!(r["elsewhere"], 0, "{r}");
    let refused = r["errors"][libc::EACCES.to_string()].as_u64().unwrap_or(0);
    assert_eq!(r["proxy"].as_u64().unwrap() + refused, N, "{r}");
    assert!(twin.got_nothing(), "a connection reached 127.0.0.2");
}

/// Calls the kernel would refuse get the kernel's own errno from the broker, and every one
/// of them is answered (no hang); a good connect still works afterwards.
const MISUSE: &str = r#"
import ctypes, json, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
port = int(sys.argv[1])
def err(rc):
    return 0 if rc == 0 else ctypes.get_errno()
good = struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton("127.0.0.1") + bytes(8)
r = {}
s = socket.socket()
r["bad fd"] = err(libc.connect(9999, good, 16))
r["bad pointer"] = err(libc.connect(s.fileno(), ctypes.c_void_p(1), 16))
r["too long"] = err(libc.connect(s.fileno(), good, 200))
r["too short"] = err(libc.connect(s.fileno(), good, 8))
rd, wr = os.pipe()
r["not a socket"] = err(libc.connect(rd, good, 16))
u = socket.socket(socket.AF_UNIX)
r["inet address, unix socket"] = err(libc.connect(u.fileno(), good, 16))
s6 = socket.socket(socket.AF_INET6)
r["inet address, inet6 socket"] = err(libc.connect(s6.fileno(), good, 16))
r["long inet address, inet6 socket"] = err(libc.connect(s6.fileno(), good + bytes(12), 28))
r["inet6 address, inet socket"] = err(libc.connect(s.fileno(), struct.pack("=H", socket.AF_INET6) + bytes(26), 28))
r["no address"] = err(libc.connect(s.fileno(), None, 0))
r["not a socket, bad pointer"] = err(libc.connect(rd, ctypes.c_void_p(1), 16))
r["unspec"] = err(libc.connect(s.fileno(), struct.pack("=H", 0) + bytes(14), 16))
r["good"] = err(libc.connect(s.fileno(), good, 16))
print(json.dumps(r))
"#;

#[test]
fn misuse_gets_the_kernels_errors() {
    let (_proxy, proxy_addr) = Sink::tcp("127.0.0.1:0");
    let args = [proxy_addr.port().to_string()];
    let control = run_script(MISUSE, &args, None);
    let guarded = run_script(MISUSE, &args, Some(&rules(proxy_addr, Vec::new())));
    eprintln!(
        "misuse, unguarded: {}\nmisuse, brokered: {}",
        control[0], guarded[0]
    );
    let (control, guarded) = (
        control[0].as_object().unwrap(),
        guarded[0].as_object().unwrap(),
    );
    for (name, errno) in control {
        // AF_UNSPEC on an unconnected TCP socket is a no-op for the kernel; the broker refuses it.
        if name == "unspec" {
            assert_eq!(guarded[name], libc::EAFNOSUPPORT, "{name}");
            continue;
        }
        assert_eq!(&guarded[name], errno, "{name}");
    }
    assert_eq!(guarded["good"], 0);
}

/// An allowed destination that does not answer: the broker's own connect error reaches the
/// client.
#[test]
fn proxy_down_is_connection_refused() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let actions = json!([tcp("down", "tcp4", closed, "x")]);
    let control = run_client(&actions, None);
    assert_eq!(control.errno("down"), Some(libc::ECONNREFUSED as i64));
    let run = run_client(&actions, Some(&rules(closed, Vec::new())));
    assert_eq!(
        run.errno("down"),
        Some(libc::ECONNREFUSED as i64),
        "{:?}",
        run.results
    );
    assert!(!run.decisions[0].allowed);
}

/// The broker under the other layers: landlock allows no TCP port at all and the main seccomp
/// filter is stacked on the notifier. The server's own connect never runs in the kernel, so
/// the proxy is reached (by the broker's socket) while landlock would refuse every port.
#[test]
fn broker_works_under_landlock_and_the_main_filter() {
    let (proxy, proxy_addr) = Sink::tcp("127.0.0.1:0");
    let (twin, _) = Sink::tcp(&format!("127.0.0.2:{}", proxy_addr.port()));
    let twin_addr: SocketAddr = format!("127.0.0.2:{}", proxy_addr.port()).parse().unwrap();
    let actions = json!([
        tcp("proxy", "tcp4", proxy_addr, "layered-proxy"),
        tcp("twin", "tcp4", twin_addr, "layered-twin"),
    ]);
    let mut config = SandboxConfig::default();
    // `ports` with no port: landlock handles TCP connect and allows none; seccomp allows inet
    // sockets.
    config.network.mode = NetworkMode::Ports;
    let python = Path::new("/usr/bin/python3");
    let argv = [
        python.as_os_str().to_owned(),
        "-c".into(),
        CLIENT.into(),
        actions.to_string().into(),
    ];
    let confined = |rules: Option<&BrokerRules>| {
        let plan = sandbox::prepare(&config, &argv).expect("plan");
        let private_dir = plan.private_dir.clone();
        let mut command = Command::new(&plan.program);
        command
            .args(&plan.argv[1..])
            .env_clear()
            .envs(&plan.env)
            .current_dir(&plan.cwd);
        let run = match rules {
            Some(rules) => run(command, Guard::Broker(rules), Some(plan)),
            None => {
                // Landlock alone, without the broker: the control.
                // SAFETY: as in `run`.
                unsafe {
                    command.pre_exec(move || {
                        sandbox::apply_to_current_process(&plan)
                            .map(drop)
                            .map_err(|e| std::io::Error::other(e.to_string()))
                    });
                }
                run(command, Guard::Off, None)
            }
        };
        if let Some(dir) = private_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        run
    };

    let control = confined(None);
    assert_eq!(
        control.errno("proxy"),
        Some(libc::EACCES as i64),
        "landlock alone refuses the proxy's port too: {:?}",
        control.results
    );
    let guarded = confined(Some(&rules(proxy_addr, Vec::new())));
    assert!(guarded.ok("proxy"), "{:?}", guarded.results);
    assert!(proxy.got("layered-proxy"));
    assert_eq!(guarded.errno("twin"), Some(libc::EACCES as i64));
    assert!(twin.got_nothing());
}

/// Fail closed: with the listener closed and nobody serving it, connect() fails (ENOSYS) and
/// never reaches anything.
#[test]
fn closed_listener_fails_closed() {
    let (proxy, proxy_addr) = Sink::tcp("127.0.0.1:0");
    let actions = json!([tcp("proxy", "tcp4", proxy_addr, "nobody-serves")]);
    let mut command = Command::new("python3");
    command.arg("-c").arg(CLIENT).arg(actions.to_string());
    let run = run(command, Guard::ListenerClosed, None);
    assert_eq!(
        run.errno("proxy"),
        Some(libc::ENOSYS as i64),
        "{:?}",
        run.results
    );
    assert!(proxy.got_nothing());
}

/// A minimal HTTP server: answers every request with `hello`.
fn http_server(addr: &str) -> SocketAddr {
    let listener = TcpListener::bind(addr).unwrap();
    let local = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { break };
            std::thread::spawn(move || {
                use std::io::Write;
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                );
            });
        }
    });
    local
}

/// Real clients with their own connect logic (curl: non-blocking connect + poll; node: libuv)
/// reach the proxy through the broker and are refused elsewhere; curl runs as a child of `sh`.
#[test]
fn curl_and_node_through_the_broker() {
    let proxy_addr = http_server("127.0.0.1:0");
    let twin_addr = http_server(&format!("127.0.0.2:{}", proxy_addr.port()));
    let script = format!(
        "curl -sS -m 5 http://{proxy_addr}/ ; echo \" curl-proxy=$?\"; \
         curl -sS -m 5 http://{twin_addr}/ 2>/dev/null; echo \" curl-twin=$?\"; \
         node -e '
           const http = require(\"http\");
           const get = (url) => new Promise((done) => http.get(url, (res) => {{
               let body = \"\"; res.on(\"data\", (c) => body += c); res.on(\"end\", () => done(body));
             }}).on(\"error\", (e) => done(e.code)));
           (async () => {{
             console.log(\"node-proxy=\" + await get(\"http://{proxy_addr}/\"));
             console.log(\"node-twin=\" + await get(\"http://{twin_addr}/\"));
           }})();'"
    );
    let sh = || {
        let mut command = Command::new("sh");
        command.arg("-c").arg(&script);
        command
    };
    let (control, _) = run_raw(sh(), Guard::Off, None);
    eprintln!("unguarded:\n{control}");
    for line in [
        "hello curl-proxy=0",
        "curl-twin=0",
        "node-proxy=hello",
        "node-twin=hello",
    ] {
        assert!(control.contains(line), "control lacks {line}: {control}");
    }
    let rules = rules(proxy_addr, Vec::new());
    let (guarded, decisions) = run_raw(sh(), Guard::Broker(&rules), None);
    eprintln!("brokered:\n{guarded}");
    // curl exit 7: could not connect.
    for line in [
        "hello curl-proxy=0",
        "curl-twin=7",
        "node-proxy=hello",
        "node-twin=EACCES",
    ] {
        assert!(guarded.contains(line), "guarded lacks {line}: {guarded}");
    }
    assert_eq!(
        decisions.iter().filter(|d| d.allowed).count(),
        2,
        "{decisions:?}"
    );
}

fn accept_within(listener: &UnixListener) -> (UnixStream, std::os::unix::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match listener.accept() {
            Ok((c, a)) => {
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                return (c, a);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("no connection on the abstract listener: {e}"),
        }
    }
}

/// Not asserted: what one brokered connect costs against a direct one (printed with
/// `--nocapture`): the best of three rounds of `N` connect + close.
#[test]
fn brokered_connect_cost() {
    const N: u64 = 200;
    const ROUNDS: u64 = 3;
    // A proxy that only accepts and closes, on a blocking thread, so its backlog never fills.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for _ in 0..2 * N * ROUNDS {
            if listener.accept().is_err() {
                break;
            }
        }
    });
    let actions = json!([{"name": "bench", "kind": "bench", "host": proxy_addr.ip().to_string(),
        "port": proxy_addr.port(), "n": N, "rounds": ROUNDS}]);
    let direct = run_client(&actions, None);
    let brokered = run_client(&actions, Some(&rules(proxy_addr, Vec::new())));
    assert!(direct.ok("bench") && brokered.ok("bench"));
    assert_eq!(brokered.decisions.len() as u64, N * ROUNDS);
    let d = direct.result("bench")["us_per_connect"].as_f64().unwrap();
    let b = brokered.result("bench")["us_per_connect"].as_f64().unwrap();
    eprintln!(
        "connect + close, best of {ROUNDS} x {N}: direct {d:.1} µs, brokered {b:.1} µs per connect (+{:.1} µs)",
        b - d
    );
}
