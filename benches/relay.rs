//! Relay benchmark: the cost of putting `mcp-guard run` between a host and a fast server.
//!
//! Run it with release binaries of the whole workspace (the bench needs `echo-server` from the
//! testkit, which `cargo bench` does not build):
//!
//! ```text
//! cargo build --release --workspace && cargo bench --bench relay            # full run
//! cargo build --release --workspace && cargo bench --bench relay -- --quick # ~10x fewer messages
//! ```
//!
//! (`scripts/bench-relay [--quick]` does both.) For each message size it measures, against
//! (a) `echo-server` directly and (b) `mcp-guard run --allow-unsandboxed --no-audit -- echo-server`
//! (other flags with `MCP_GUARD_BENCH_FLAGS`):
//! - throughput: N `tools/call` lines pipelined (a writer thread keeps the pipe full while the
//!   reader drains the answers), in MB/s of request bytes and messages per second;
//! - latency: ping-pong round trips (write one request, wait for its answer), p50 and p99;
//!
//! and the start-up overhead: spawn to first `initialize` answer, median of many starts.
//! Ratios are guarded/direct. Direct and guarded runs alternate, best of `--rounds=N` (default
//! 3) per path, since a shared machine's load comes in bursts; each round's own throughput ratio
//! is printed too (their spread is the machine's). Options: `--quick` (fewer
//! messages, one round), `--only-1k` (skip the big sizes), `--rounds=N`, `--one-cpu` (run the
//! bench and everything it starts on CPU 0: round trips then measure the guard's own work,
//! without the cost of waking an idle CPU, which on a virtual machine is tens of microseconds
//! per hop and depends on where the scheduler happens to place each process).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

struct Config {
    quick: bool,
    only_small: bool,
    /// Direct and guarded are measured alternately this many times; the best round counts.
    rounds: usize,
    one_cpu: bool,
}

#[derive(Clone, Copy)]
struct SizeCase {
    bytes: usize,
    pipelined: usize,
    round_trips: usize,
}

/// The flags given to `mcp-guard run`: `MCP_GUARD_BENCH_FLAGS` (whitespace-separated) to compare
/// configurations, e.g. `MCP_GUARD_BENCH_FLAGS="--no-audit"` for the sandbox without the audit
/// log; by default the relay and firewall alone (`--allow-unsandboxed --no-audit`).
/// `MCP_GUARD_BENCH_GUARD=PATH` measures another build of the guard.
fn guard_flags() -> Vec<String> {
    std::env::var("MCP_GUARD_BENCH_FLAGS")
        .unwrap_or_else(|_| "--allow-unsandboxed --no-audit".into())
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = Config {
        quick: args.iter().any(|a| a == "--quick"),
        only_small: args.iter().any(|a| a == "--only-1k"),
        one_cpu: args.iter().any(|a| a == "--one-cpu"),
        rounds: args
            .iter()
            .find_map(|a| a.strip_prefix("--rounds="))
            .map(|n| n.parse().expect("--rounds=N"))
            .unwrap_or(if args.iter().any(|a| a == "--quick") {
                1
            } else {
                3
            }),
    };
    // `cargo bench` passes `--bench`; ignore what we do not know.
    let bins = Binaries::locate();
    if config.one_cpu {
        pin_to_cpu_zero();
    }
    let scale = if config.quick { 10 } else { 1 };
    let mut cases = vec![SizeCase {
        bytes: KIB,
        pipelined: 100_000 / scale,
        round_trips: 10_000 / scale,
    }];
    if !config.only_small {
        cases.extend([
            SizeCase {
                bytes: 64 * KIB,
                pipelined: 10_000 / scale,
                round_trips: 2_000 / scale,
            },
            SizeCase {
                bytes: MIB,
                pipelined: 500 / scale,
                round_trips: 200 / scale,
            },
            SizeCase {
                bytes: 8 * MIB,
                pipelined: (60 / scale).max(4),
                round_trips: (30 / scale).max(4),
            },
        ]);
    }

    println!(
        "mcp-guard relay benchmark ({} run, best of {} alternating rounds)",
        if config.quick { "quick" } else { "full" },
        config.rounds
    );
    // The machine may be shared: the load says how much to trust the figures.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "  load average {} on {cpus} CPUs",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if config.one_cpu {
        println!("  everything pinned to CPU 0 (--one-cpu)");
    }
    println!("  direct : {}", bins.echo.display());
    println!(
        "  guarded: {} run {} -- echo-server",
        bins.guard.display(),
        guard_flags().join(" ")
    );
    println!();
    println!(
        "{:>7} {:>8} | {:>7} {:>9} {:>10} | {:>6} {:>9} {:>9}",
        "size", "path", "msgs", "MB/s", "msg/s", "trips", "p50", "p99"
    );
    println!("{}", "-".repeat(80));
    for case in cases {
        // Alternate the two paths so a burst of load elsewhere hits both alike; keep the best.
        let (mut direct, mut guarded) = (Vec::new(), Vec::new());
        for _ in 0..config.rounds {
            direct.push(measure(&bins, false, case));
            guarded.push(measure(&bins, true, case));
        }
        // Each round's own ratio too: how much of the spread is the machine, not the guard.
        let mut per_round: Vec<f64> = direct
            .iter()
            .zip(&guarded)
            .map(|(d, g)| g.mb_per_s / d.mb_per_s)
            .collect();
        let (direct, guarded) = (best(direct), best(guarded));
        print_row(case, "direct", &direct);
        print_row(case, "guarded", &guarded);
        println!(
            "{:>7} {:>8} | {:>7} {:>9} {:>10} | {:>6} {:>9} {:>9}",
            "",
            "g/d",
            "",
            format!("{:.2}x", guarded.mb_per_s / direct.mb_per_s),
            format!("{:.2}x", guarded.msg_per_s / direct.msg_per_s),
            "",
            format!("{:.2}x", ratio(guarded.p50, direct.p50)),
            format!("{:.2}x", ratio(guarded.p99, direct.p99)),
        );
        println!(
            "{:>7} {:>8} | {:>28} | {:>6} {:>9} {:>9}",
            "",
            "g-d",
            "",
            "",
            format!("+{}", fmt_duration(guarded.p50.saturating_sub(direct.p50))),
            format!("+{}", fmt_duration(guarded.p99.saturating_sub(direct.p99))),
        );
        if per_round.len() > 1 {
            let listed: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
            per_round.sort_by(f64::total_cmp);
            println!(
                "{:>7} {:>8} | g/d MB/s per round: {} (median {:.2})",
                "",
                "rounds",
                listed.join(" "),
                per_round[per_round.len() / 2]
            );
        }
        println!("{}", "-".repeat(80));
    }

    let starts = if config.quick { 10 } else { 50 };
    let (mut direct, mut guarded) = (Vec::new(), Vec::new());
    for _ in 0..starts {
        direct.push(startup_time(&bins, false));
        guarded.push(startup_time(&bins, true));
    }
    let (direct, guarded) = (median(direct), median(guarded));
    println!();
    println!("start-up to the first initialize answer (median of {starts}):");
    println!("  direct  {:>10}", fmt_duration(direct));
    println!(
        "  guarded {:>10}  (+{}, {:.1}x)",
        fmt_duration(guarded),
        fmt_duration(guarded.saturating_sub(direct)),
        ratio(guarded, direct)
    );
}

/// Run this process, and so everything it starts, on CPU 0 only.
fn pin_to_cpu_zero() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; we pass its exact size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("cannot pin to CPU 0: {}", std::io::Error::last_os_error());
            std::process::exit(2);
        }
    }
}

struct Binaries {
    guard: PathBuf,
    echo: PathBuf,
}

impl Binaries {
    fn locate() -> Binaries {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_mcp-guard"));
        let echo = built.with_file_name("echo-server");
        // Another build of the guard (e.g. main's, to compare a change on the same machine).
        let guard = std::env::var_os("MCP_GUARD_BENCH_GUARD").map_or(built, PathBuf::from);
        if !echo.exists() {
            eprintln!(
                "{} is missing: build the workspace in release mode first:\n  \
                 cargo build --release --workspace && cargo bench --bench relay",
                echo.display()
            );
            std::process::exit(2);
        }
        Binaries { guard, echo }
    }
}

/// A running server (direct or behind the guard) with buffered pipes.
struct Peer {
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    stdout: BufReader<ChildStdout>,
    stderr_path: PathBuf,
}

impl Peer {
    fn spawn(bins: &Binaries, guarded: bool) -> Peer {
        let stderr_path =
            std::env::temp_dir().join(format!("mcp-guard-bench-{}.stderr", std::process::id()));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut command = if guarded {
            let mut c = Command::new(&bins.guard);
            c.arg("run").args(guard_flags()).arg("--").arg(&bins.echo);
            c
        } else {
            Command::new(&bins.echo)
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn the server");
        let stdin = BufWriter::with_capacity(MIB, child.stdin.take().expect("stdin"));
        let stdout = BufReader::with_capacity(MIB, child.stdout.take().expect("stdout"));
        Peer {
            child,
            stdin: Some(stdin),
            stdout,
            stderr_path,
        }
    }

    fn write_flush(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| self.fail(&format!("write: {e}")));
    }

    fn read_line(&mut self, line: &mut Vec<u8>) {
        line.clear();
        match self.stdout.read_until(b'\n', line) {
            Ok(0) => self.fail("the server closed its stdout"),
            Ok(_) => {}
            Err(e) => self.fail(&format!("read: {e}")),
        }
    }

    fn initialize(&mut self) {
        self.write_flush(
            b"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\
              \"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"0\"}}}\n\
              {\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n",
        );
        let mut line = Vec::new();
        self.read_line(&mut line);
        if !line.starts_with(b"{") || !contains(&line, b"\"result\"") {
            self.fail(&format!(
                "bad initialize answer: {}",
                String::from_utf8_lossy(&line)
            ));
        }
    }

    fn fail(&self, what: &str) -> ! {
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        panic!("{what}; server/guard stderr:\n{stderr}");
    }

    fn finish(mut self) {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_file(&self.stderr_path);
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A `tools/call` line of about `size` bytes (newline included) with this id.
fn request(id: usize, size: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":""#
    );
    let tail = "\"}}}\n";
    let pad = size.saturating_sub(head.len() + tail.len()).max(1);
    let mut line = Vec::with_capacity(size);
    line.extend_from_slice(head.as_bytes());
    line.resize(line.len() + pad, b'a');
    line.extend_from_slice(tail.as_bytes());
    line
}

struct Measurement {
    mb_per_s: f64,
    msg_per_s: f64,
    p50: Duration,
    p99: Duration,
}

fn measure(bins: &Binaries, guarded: bool, case: SizeCase) -> Measurement {
    // Throughput: pipelined through a writer thread.
    let mut peer = Peer::spawn(bins, guarded);
    peer.initialize();
    let mut stdin = peer.stdin.take().expect("stdin");
    let (count, size) = (case.pipelined, case.bytes);
    // Everything after the id, shared by all requests: the writer only formats the id.
    let template = request(1, size);
    let at = template
        .windows(9)
        .position(|w| w == b",\"method\"")
        .expect("method");
    let body = template[at..].to_vec();
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut sent = 0usize;
        let mut id_text = Vec::with_capacity(64);
        for id in 1..=count {
            id_text.clear();
            write!(id_text, "{{\"jsonrpc\":\"2.0\",\"id\":{id}").expect("format");
            stdin.write_all(&id_text).expect("write");
            stdin.write_all(&body).expect("write");
            sent += id_text.len() + body.len();
        }
        stdin.flush().expect("flush");
        (stdin, sent)
    });
    let mut line = Vec::with_capacity(size + 256);
    for id in 1..=count {
        peer.read_line(&mut line);
        if id == count
            && !line.starts_with(format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},").as_bytes())
        {
            peer.fail(&format!(
                "last answer is not id {id}: {}",
                String::from_utf8_lossy(&line[..line.len().min(200)])
            ));
        }
    }
    let elapsed = start.elapsed();
    let (stdin, sent) = writer.join().expect("writer");
    peer.stdin = Some(stdin);
    peer.finish();
    let secs = elapsed.as_secs_f64();

    // Latency: one request in flight at a time.
    let mut peer = Peer::spawn(bins, guarded);
    peer.initialize();
    let mut times = Vec::with_capacity(case.round_trips);
    let lines: Vec<Vec<u8>> = (0..case.round_trips.min(16))
        .map(|i| request(i + 1, size))
        .collect();
    for i in 0..case.round_trips {
        let request = &lines[i % lines.len()];
        let t = Instant::now();
        peer.write_flush(request);
        peer.read_line(&mut line);
        times.push(t.elapsed());
    }
    peer.finish();
    times.sort();
    Measurement {
        mb_per_s: sent as f64 / 1e6 / secs,
        msg_per_s: count as f64 / secs,
        p50: percentile(&times, 0.50),
        p99: percentile(&times, 0.99),
    }
}

fn startup_time(bins: &Binaries, guarded: bool) -> Duration {
    let t = Instant::now();
    let mut peer = Peer::spawn(bins, guarded);
    peer.initialize();
    let elapsed = t.elapsed();
    peer.finish();
    elapsed
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    percentile(&times, 0.5)
}

/// The best of several rounds: highest throughput, and the latencies of the round with the
/// lowest p50 (p50 and p99 from the same round).
fn best(rounds: Vec<Measurement>) -> Measurement {
    let mb_per_s = rounds.iter().map(|m| m.mb_per_s).fold(0.0, f64::max);
    let msg_per_s = rounds.iter().map(|m| m.msg_per_s).fold(0.0, f64::max);
    let fastest = rounds
        .into_iter()
        .min_by_key(|m| m.p50)
        .expect("at least one round");
    Measurement {
        mb_per_s,
        msg_per_s,
        ..fastest
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn fmt_size(bytes: usize) -> String {
    if bytes >= MIB {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / KIB)
    }
}

fn print_row(case: SizeCase, path: &str, m: &Measurement) {
    println!(
        "{:>7} {:>8} | {:>7} {:>9.1} {:>10.0} | {:>6} {:>9} {:>9}",
        fmt_size(case.bytes),
        path,
        case.pipelined,
        m.mb_per_s,
        m.msg_per_s,
        case.round_trips,
        fmt_duration(m.p50),
        fmt_duration(m.p99),
    );
}
