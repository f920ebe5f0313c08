//! Relay benchmark: the cost of putting `mcp-guard run` between a host and a fast server, as
//! users run it (the default policy, the audit log on) and with `--no-audit`.
//!
//! Run it with release binaries of the whole workspace (the bench needs `echo-server` from the
//! testkit, which `cargo bench` does not build):
//!
//! ```text
//! cargo build --release --workspace && cargo bench --bench relay            # full run
//! cargo build --release --workspace && cargo bench --bench relay -- --quick # ~10x fewer messages
//! ```
//!
//! (`scripts/bench-relay [--quick]` does both.) For each message size and each placement of
//! the processes it measures three paths, alternating round by round so bursts of load on a
//! shared machine hit them alike:
//! - `direct`: `echo-server` alone;
//! - `default`: `mcp-guard run -- echo-server` (default policy and sandbox, audit log on,
//!   written under a temporary `XDG_STATE_HOME`);
//! - `no-audit`: the same with `--no-audit`.
//!
//! `MCP_GUARD_BENCH_FLAGS` (whitespace-separated) adds flags to both guarded paths (e.g.
//! `--allow-unsandboxed` where the sandbox cannot run); `MCP_GUARD_BENCH_GUARD=PATH` measures
//! another build of the guard. For each path:
//! - throughput: N `tools/call` lines pipelined (a writer thread keeps the pipe full while the
//!   reader drains the answers), in MB/s of request bytes and messages per second;
//! - latency: ping-pong round trips (write one request, wait for its answer), p50 and p99;
//!
//! and the start-up overhead: spawn to first `initialize` answer, median of many starts.
//! Ratios are each guarded path's over direct, best of `--rounds=N` (default 3) per path; each
//! round's own throughput ratio is printed too (their spread is the machine's).
//!
//! Placements (`--placements=one-cpu,split,free`, all three by default):
//! - `one-cpu`: the bench, the guard and the server on CPU 0: round trips then measure the
//!   guard's own work, without the cost of waking an idle CPU, which on a virtual machine is
//!   tens of microseconds per hop;
//! - `split`: the bench and the server on CPU 0, the guard on CPU 1 (started with both CPUs
//!   allowed, so it busy-polls as on a machine of its own, then moved; the direct path: both
//!   peers on CPU 0);
//! - `free`: wherever the scheduler puts them.
//!
//! Other options: `--quick` (fewer messages, one round), `--only-1k` (skip the big sizes),
//! `--one-cpu` (= `--placements=one-cpu`).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

struct Config {
    quick: bool,
    only_small: bool,
    /// The paths are measured alternately this many times; the best round counts.
    rounds: usize,
    placements: Vec<Placement>,
}

#[derive(Clone, Copy)]
struct SizeCase {
    bytes: usize,
    pipelined: usize,
    round_trips: usize,
}

/// What is measured: the server alone, or behind the guard with or without the audit log.
#[derive(Clone, Copy, PartialEq)]
enum Route {
    Direct,
    Default,
    NoAudit,
}

impl Route {
    const ALL: [Route; 3] = [Route::Direct, Route::Default, Route::NoAudit];

    fn name(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Default => "default",
            Route::NoAudit => "no-audit",
        }
    }
}

/// Where the processes run.
#[derive(Clone, Copy, PartialEq)]
enum Placement {
    OneCpu,
    Split,
    Free,
}

impl Placement {
    fn parse(name: &str) -> Placement {
        match name {
            "one-cpu" => Placement::OneCpu,
            "split" => Placement::Split,
            "free" => Placement::Free,
            other => {
                eprintln!("unknown placement `{other}`: one-cpu, split or free");
                std::process::exit(2);
            }
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Placement::OneCpu => "one-cpu: bench, guard and server on CPU 0",
            Placement::Split => "split: bench and server on CPU 0, guard on CPU 1",
            Placement::Free => "free: no pinning",
        }
    }

    /// Pin this thread (and so what it spawns from now on) for this placement.
    fn pin_bench(self) {
        let cpus = match self {
            Placement::OneCpu | Placement::Split => vec![0],
            Placement::Free => (0..cpu_count()).collect(),
        };
        set_affinity(0, &cpus).unwrap_or_else(|e| {
            eprintln!("cannot set the CPU affinity: {e}");
            std::process::exit(2);
        });
    }

    /// Spawn a guard: with every CPU allowed in `split`, so that it sees two CPUs (and busy-polls,
    /// as it does on a machine of its own); [`place_guard`](Self::place_guard) then moves it.
    fn spawn_guard(self, command: &mut Command) -> std::io::Result<Child> {
        if self != Placement::Split {
            return command.spawn();
        }
        let all: Vec<usize> = (0..cpu_count()).collect();
        set_affinity(0, &all)?;
        let child = command.spawn();
        self.pin_bench();
        child
    }

    /// Move a started guard where this placement wants it: in `split`, its threads to CPU 1,
    /// its descendants (supervisor, server) to CPU 0 with the bench.
    fn place_guard(self, guard_pid: u32) {
        if self != Placement::Split {
            return;
        }
        move_tasks(guard_pid, &[1]);
        for pid in descendants(guard_pid) {
            move_tasks(pid, &[0]);
        }
    }
}

/// Run every thread of process `pid` on `cpus` (a thread that just ended is skipped).
fn move_tasks(pid: u32, cpus: &[usize]) {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten();
    for task in tasks {
        if let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) {
            let _ = set_affinity(tid, cpus);
        }
    }
}

/// The processes below `root`, from each process's parent in `/proc/PID/stat`.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `PID (COMM) STATE PPID …`; COMM may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.split_off(1)
}

fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The flags every guarded path gets besides its own (`MCP_GUARD_BENCH_FLAGS`).
fn extra_flags() -> Vec<String> {
    std::env::var("MCP_GUARD_BENCH_FLAGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut placements: Vec<Placement> = args
        .iter()
        .find_map(|a| a.strip_prefix("--placements="))
        .map(|list| list.split(',').map(Placement::parse).collect())
        .unwrap_or_else(|| vec![Placement::OneCpu, Placement::Split, Placement::Free]);
    if args.iter().any(|a| a == "--one-cpu") {
        placements = vec![Placement::OneCpu];
    }
    if cpu_count() < 2 {
        placements.retain(|p| *p != Placement::Split);
    }
    let config = Config {
        quick,
        only_small: args.iter().any(|a| a == "--only-1k"),
        placements,
        rounds: args
            .iter()
            .find_map(|a| a.strip_prefix("--rounds="))
            .map(|n| n.parse().expect("--rounds=N"))
            .unwrap_or(if quick { 1 } else { 3 }),
    };
    // `cargo bench` passes `--bench`; ignore what we do not know.
    let bins = Binaries::locate();
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
    println!(
        "  load average {} on {} CPUs",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        cpu_count()
    );
    let extra = extra_flags().join(" ");
    println!("  direct  : {}", bins.echo.display());
    println!(
        "  default : {} run {extra} -- echo-server (audit log under {})",
        bins.guard.display(),
        bins.state.path().display()
    );
    println!(
        "  no-audit: {} run --no-audit {extra} -- echo-server",
        bins.guard.display()
    );
    for case in cases {
        for &placement in &config.placements {
            placement.pin_bench();
            println!();
            println!("{} — {}", fmt_size(case.bytes), placement.describe());
            println!(
                "{:>9} | {:>7} {:>9} {:>10} | {:>6} {:>9} {:>9}",
                "path", "msgs", "MB/s", "msg/s", "trips", "p50", "p99"
            );
            println!("{}", "-".repeat(72));
            // Alternate the paths so a burst of load elsewhere hits them alike; keep the best.
            let mut rounds: Vec<Vec<Measurement>> = vec![Vec::new(); Route::ALL.len()];
            for _ in 0..config.rounds {
                for (i, path) in Route::ALL.into_iter().enumerate() {
                    rounds[i].push(measure(&bins, path, placement, case));
                }
            }
            let direct = best(&rounds[0]);
            print_row(case, "direct", &direct);
            for (i, path) in Route::ALL.into_iter().enumerate().skip(1) {
                let guarded = best(&rounds[i]);
                print_row(case, path.name(), &guarded);
                println!(
                    "{:>9} | {:>7} {:>9} {:>10} | {:>6} {:>9} {:>9}",
                    "÷ direct",
                    "",
                    format!("{:.2}x", guarded.mb_per_s / direct.mb_per_s),
                    format!("{:.2}x", guarded.msg_per_s / direct.msg_per_s),
                    "",
                    format!("+{}", fmt_duration(guarded.p50.saturating_sub(direct.p50))),
                    format!("+{}", fmt_duration(guarded.p99.saturating_sub(direct.p99))),
                );
                if config.rounds > 1 {
                    // Each round's own ratio: how much of the spread is the machine.
                    let mut per_round: Vec<f64> = rounds[0]
                        .iter()
                        .zip(&rounds[i])
                        .map(|(d, g)| g.mb_per_s / d.mb_per_s)
                        .collect();
                    let listed: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
                    per_round.sort_by(f64::total_cmp);
                    println!(
                        "{:>9} | MB/s ÷ direct per round: {} (median {:.2})",
                        "",
                        listed.join(" "),
                        per_round[per_round.len() / 2]
                    );
                }
            }
        }
    }

    let placement = config.placements[0];
    placement.pin_bench();
    let starts = if config.quick { 10 } else { 50 };
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); Route::ALL.len()];
    for _ in 0..starts {
        for (i, path) in Route::ALL.into_iter().enumerate() {
            times[i].push(startup_time(&bins, path, placement));
        }
    }
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    println!();
    println!(
        "start-up to the first initialize answer (median of {starts}, {}):",
        placement.describe()
    );
    for (i, path) in Route::ALL.into_iter().enumerate() {
        let extra = if i == 0 {
            String::new()
        } else {
            format!(
                "  (+{}, {:.1}x)",
                fmt_duration(medians[i].saturating_sub(medians[0])),
                ratio(medians[i], medians[0])
            )
        };
        println!(
            "  {:<9} {:>10}{extra}",
            path.name(),
            fmt_duration(medians[i])
        );
    }
}

/// Run thread (or process) `tid` (0: this thread) on `cpus` only.
fn set_affinity(tid: libc::pid_t, cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; we pass its exact size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

struct Binaries {
    guard: PathBuf,
    echo: PathBuf,
    /// `XDG_STATE_HOME` of the guarded paths: the default path's audit log goes there.
    state: tempfile::TempDir,
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
        let state = tempfile::tempdir().expect("a temporary state directory");
        Binaries { guard, echo, state }
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
    fn spawn(bins: &Binaries, route: Route, placement: Placement) -> Peer {
        let stderr_path =
            std::env::temp_dir().join(format!("mcp-guard-bench-{}.stderr", std::process::id()));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut command = match route {
            Route::Direct => Command::new(&bins.echo),
            Route::Default | Route::NoAudit => {
                let mut c = Command::new(&bins.guard);
                c.arg("run").env("XDG_STATE_HOME", bins.state.path());
                if route == Route::NoAudit {
                    c.arg("--no-audit");
                }
                c.args(extra_flags()).arg("--").arg(&bins.echo);
                c
            }
        };
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = match route {
            Route::Direct => command.spawn(),
            _ => placement.spawn_guard(&mut command),
        }
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

#[derive(Clone)]
struct Measurement {
    mb_per_s: f64,
    msg_per_s: f64,
    p50: Duration,
    p99: Duration,
}

/// A started, initialised peer, placed.
fn start_peer(bins: &Binaries, route: Route, placement: Placement) -> Peer {
    let mut peer = Peer::spawn(bins, route, placement);
    peer.initialize();
    if route != Route::Direct {
        placement.place_guard(peer.child.id());
    }
    peer
}

fn measure(bins: &Binaries, route: Route, placement: Placement, case: SizeCase) -> Measurement {
    // Throughput: pipelined through a writer thread.
    let mut peer = start_peer(bins, route, placement);
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
    let mut peer = start_peer(bins, route, placement);
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

fn startup_time(bins: &Binaries, route: Route, placement: Placement) -> Duration {
    let t = Instant::now();
    let peer = start_peer(bins, route, placement);
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
fn best(rounds: &[Measurement]) -> Measurement {
    let mb_per_s = rounds.iter().map(|m| m.mb_per_s).fold(0.0, f64::max);
    let msg_per_s = rounds.iter().map(|m| m.msg_per_s).fold(0.0, f64::max);
    let fastest = rounds
        .iter()
        .min_by_key(|m| m.p50)
        .cloned()
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
        "{:>9} | {:>7} {:>9.1} {:>10.0} | {:>6} {:>9} {:>9}",
        path,
        case.pipelined,
        m.mb_per_s,
        m.msg_per_s,
        case.round_trips,
        fmt_duration(m.p50),
        fmt_duration(m.p99),
    );
}
