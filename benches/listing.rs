//! How the guard's cost grows with the number of tools in a listing (10 … 10 000) and with the
//! size of a message (1 KiB … 8 MiB):
//! - in-process: `Firewall::inspect` (every filter stage, the representative policy in
//!   `fuzz/representative-policy.toml`: allow/deny globs, argument rules, URI roots, redaction,
//!   error sanitising, schema checks against 2025-06-18), parse included;
//! - end to end: a `tools/list` round trip through `mcp-guard run --allow-unsandboxed` with that
//!   policy vs the same server directly (the server is this bench binary itself, re-executed
//!   with `LISTING_BENCH_SERVER=1`, answering with a prepared listing).
//!
//! ```text
//! cargo build --release --workspace && cargo bench --bench listing
//! cargo bench --bench listing -- --quick
//! ```

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_guard::conversation::Entry;
use mcp_guard::filter::{Context, Direction, Firewall, Options};
use mcp_guard::policy::{merge, parse_policy, Origin, Vars};
use mcp_guard::protocol::{parse_line, Parsed};

const POLICY: &str = include_str!("../fuzz/representative-policy.toml");
const TOOL_COUNTS: &[usize] = &[10, 100, 1_000, 10_000];
const SIZES: &[usize] = &[1 << 10, 64 << 10, 1 << 20, 8 << 20];

fn main() {
    if std::env::var_os("LISTING_BENCH_SERVER").is_some() {
        return serve();
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "listing/size benchmark ({}); load average {} on {} CPUs",
        if quick { "quick" } else { "full" },
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    println!("\nin-process Firewall::inspect of a tools/list result (parse + all stages), median:");
    println!(
        "{:>7} {:>10} {:>12} {:>12}",
        "tools", "bytes", "per listing", "per tool"
    );
    for &n in TOOL_COUNTS {
        let line = listing_result(1, n);
        let reps = if quick { 5 } else { (20_000 / n).clamp(5, 200) };
        let t = median(
            (0..reps)
                .map(|i| inspect_listing(&line, i as u64))
                .collect(),
        );
        println!(
            "{:>7} {:>10} {:>12} {:>12}",
            n,
            line.len(),
            fmt(t),
            fmt(t / n as u32)
        );
    }

    // A tool's inputSchema compiles on its first call after a listing, not when it is listed.
    let reps = if quick { 5 } else { 200 };
    let (first, next): (Vec<_>, Vec<_>) = (0..reps)
        .map(|i| {
            let id = 2_000_000 + 3 * i as u64;
            inspect_listing(&listing_result(1, 10), id);
            (
                inspect_request(&call(id + 1)),
                inspect_request(&call(id + 2)),
            )
        })
        .unzip();
    println!(
        "tools/call request after a listing, median: first (compiles the tool's inputSchema) {}, \
         next {}",
        fmt(median(first)),
        fmt(median(next))
    );

    println!("\nin-process Firewall::inspect of a tools/call text result of a given size, median:");
    println!("{:>7} {:>12} {:>10}", "size", "per message", "MB/s");
    for &size in SIZES {
        let reps = if quick {
            3
        } else {
            ((64 << 20) / size).clamp(5, 500)
        };
        let t = median((0..reps).map(|i| inspect_call(size, i as u64)).collect());
        println!(
            "{:>7} {:>12} {:>10.0}",
            fmt_size(size),
            fmt(t),
            size as f64 / t.as_secs_f64() / 1e6
        );
    }

    let guard = PathBuf::from(env!("CARGO_BIN_EXE_mcp-guard"));
    let policy = std::env::temp_dir().join(format!("listing-bench-{}.toml", std::process::id()));
    std::fs::write(&policy, POLICY).expect("policy file");
    println!(
        "\nend to end: tools/list round trip, direct vs mcp-guard run --allow-unsandboxed --policy \
         fuzz/representative-policy.toml (median):"
    );
    println!(
        "{:>7} {:>12} {:>12} {:>12} {:>8}",
        "tools", "direct", "guarded", "difference", "ratio"
    );
    for &n in TOOL_COUNTS {
        let reps = if quick {
            5
        } else {
            (20_000 / n).clamp(10, 200)
        };
        let mut direct = Peer::spawn(None, n);
        let mut guarded = Peer::spawn(Some((&guard, &policy)), n);
        let (mut d, mut g) = (Vec::new(), Vec::new());
        for i in 0..reps {
            d.push(direct.round_trip(i as u64 + 1));
            g.push(guarded.round_trip(i as u64 + 1));
        }
        let (d, g) = (median(d), median(g));
        println!(
            "{:>7} {:>12} {:>12} {:>12} {:>7.2}x",
            n,
            fmt(d),
            fmt(g),
            format!("+{}", fmt(g.saturating_sub(d))),
            g.as_secs_f64() / d.as_secs_f64()
        );
    }
    let _ = std::fs::remove_file(&policy);
}

fn tool(i: usize) -> String {
    let name = match i % 4 {
        0 => format!("read_{i}"),
        1 => format!("get_{i}"),
        2 => format!("delete_{i}"),
        _ => format!("other_{i}"),
    };
    format!(
        r#"{{"name":"{name}","description":"Tool number {i}: reads a thing and returns what it found there","inputSchema":{{"type":"object","properties":{{"path":{{"type":"string","description":"where"}},"count":{{"type":"integer"}}}},"required":["path"]}}}}"#
    )
}

fn listing_result(id: u64, n: usize) -> String {
    let tools: Vec<String> = (0..n).map(tool).collect();
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[{}]}}}}"#,
        tools.join(",")
    )
}

fn firewall() -> Firewall {
    let layer = parse_policy("representative-policy.toml", POLICY).expect("policy");
    let merged = merge(vec![(
        Origin::File("representative-policy.toml".into()),
        layer,
    )]);
    let options = Options {
        compile_schemas_in_background: false,
        ..Options::default()
    };
    Firewall::from_policy_with_vars(&merged, options, &Vars::from_pairs(&[])).expect("firewall")
}

thread_local! {
    static FIREWALL: std::cell::RefCell<Firewall> = std::cell::RefCell::new(firewall());
}

fn context(direction: Direction, request: Option<&Entry>) -> Context<'_> {
    Context {
        direction,
        version: Some("2025-06-18"),
        request,
    }
}

fn inspect(line: &[u8], direction: Direction, answered: Option<&str>) {
    FIREWALL.with(|fw| {
        let mut fw = fw.borrow_mut();
        let Ok(Parsed::Single(m)) = parse_line(line) else {
            panic!("bench line does not parse")
        };
        let entry = answered.map(Entry::for_method);
        std::hint::black_box(fw.inspect(&m, &context(direction, entry.as_ref())));
        fw.take_findings();
    })
}

/// The request (not timed), then its result (timed).
fn inspect_listing(result_template: &str, id: u64) -> Duration {
    let request = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#);
    inspect(request.as_bytes(), Direction::HostToServer, None);
    let result = result_template.replacen("\"id\":1,", &format!("\"id\":{id},"), 1);
    let t = Instant::now();
    inspect(
        result.as_bytes(),
        Direction::ServerToHost,
        Some("tools/list"),
    );
    t.elapsed()
}

fn call(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"read_0","arguments":{{"path":"/srv/a"}}}}}}"#
    )
}

fn inspect_request(line: &str) -> Duration {
    let t = Instant::now();
    inspect(line.as_bytes(), Direction::HostToServer, None);
    t.elapsed()
}

fn inspect_call(size: usize, id: u64) -> Duration {
    let id = id + 1_000_000;
    inspect_request(&call(id));
    let words = "lorem ipsum dolor sit amet ".repeat(size / 27 + 1);
    let result = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"{}"}}]}}}}"#,
        &words[..size.saturating_sub(80)]
    );
    let t = Instant::now();
    inspect(
        result.as_bytes(),
        Direction::ServerToHost,
        Some("tools/call"),
    );
    t.elapsed()
}

/// The server side: answers initialize, and tools/list with the prepared listing.
fn serve() {
    let n: usize = std::env::var("LISTING_BENCH_TOOLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let tools: Vec<String> = (0..n).map(tool).collect();
    let result = format!(r#","result":{{"tools":[{}]}}}}"#, tools.join(","));
    let stdin = std::io::stdin();
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout());
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let Some(id) = v.get("id") else { continue };
        match v["method"].as_str() {
            Some("initialize") => {
                let _ = writeln!(
                    out,
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":"2025-06-18","capabilities":{{"tools":{{}}}},"serverInfo":{{"name":"listing","version":"0"}}}}}}"#
                );
            }
            Some("tools/list") => {
                let _ = writeln!(out, r#"{{"jsonrpc":"2.0","id":{id}{result}"#);
            }
            _ => {
                let _ = writeln!(out, r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#);
            }
        }
        let _ = out.flush();
    }
}

struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn spawn(guard: Option<(&PathBuf, &PathBuf)>, tools: usize) -> Peer {
        let me = std::env::current_exe().expect("current exe");
        let mut cmd = match guard {
            Some((guard, policy)) => {
                let mut c = Command::new(guard);
                c.args(["run", "--allow-unsandboxed", "--no-audit", "--policy"])
                    .arg(policy)
                    .arg("--")
                    .arg(&me);
                c
            }
            None => Command::new(&me),
        };
        let mut child = cmd
            .env("LISTING_BENCH_SERVER", "1")
            .env("LISTING_BENCH_TOOLS", tools.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut peer = Peer {
            stdin: child.stdin.take().expect("stdin"),
            stdout: BufReader::with_capacity(1 << 20, child.stdout.take().expect("stdout")),
            child,
        };
        peer.send(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}"#,
        );
        peer.recv();
        peer.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        peer
    }

    fn send(&mut self, line: &str) {
        self.stdin
            .write_all(line.as_bytes())
            .and_then(|()| self.stdin.write_all(b"\n"))
            .and_then(|()| self.stdin.flush())
            .expect("write");
    }

    fn recv(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        let n = self.stdout.read_until(b'\n', &mut line).expect("read");
        assert!(n > 0, "the server closed its stdout");
        line
    }

    fn round_trip(&mut self, id: u64) -> Duration {
        let t = Instant::now();
        self.send(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#
        ));
        let answer = self.recv();
        let took = t.elapsed();
        assert!(
            answer.windows(8).any(|w| w == b"\"tools\":"),
            "not a listing: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
        took
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut t: Vec<Duration>) -> Duration {
    t.sort();
    t[t.len() / 2]
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1.0 {
        format!("{:.0} ns", us * 1000.0)
    } else if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn fmt_size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}
