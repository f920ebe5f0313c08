//! Start-up benchmark: time from spawn to the first `initialize` answer, for the same fast
//! server (`echo-server`) started
//! - directly (plain exec),
//! - under `bwrap` (bubblewrap, a read-only bind of `/` and new namespaces), when installed,
//! - under `mcp-guard run --allow-unsandboxed` (relay and firewall, no sandbox),
//! - under `mcp-guard run` (the default sandbox: landlock, seccomp, limits),
//! - under `mcp-guard run` with the audit log written to a file,
//! - under `mcp-guard run` in `hosts` network mode, in each isolation tier (namespace, broker),
//!
//! and the time from spawn to exit of `/bin/true` started plainly, under bwrap and under
//! `mcp-guard run` (the figure of issue 18: what the sandbox adds to a process start).
//! Measured in alternation (one of each per round, so load bursts hit all alike), median and
//! p90 over N rounds; as the current user and, when run as root, again as the ordinary user
//! `mcpguard-test` when it exists (`--as=root` / `--as=user` for one of them). Also the cost of
//! starting the guard binary at all (`mcp-guard --version`) and, with `--strace`, one traced
//! start with the time of each step (fork of the supervisor, landlock, seccomp, exec of the
//! server, first answer). Without bwrap its rows are skipped, with the reason.
//!
//! ```text
//! cargo build --release --workspace && cargo bench --bench startup            # 40 rounds
//! cargo build --release --workspace && cargo bench --bench startup -- --rounds=10 --strace
//! ```

#[allow(dead_code)]
#[path = "../tests/support/users.rs"]
mod users;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INIT: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\
\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"0\"}}}\n";

struct Variant {
    name: &'static str,
    argv: Vec<String>,
    /// Time to the first `initialize` answer (else: to the exit, for `/bin/true`).
    initialize: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args
        .iter()
        .find_map(|a| a.strip_prefix("--rounds="))
        .map(|n| n.parse().expect("--rounds=N"))
        .unwrap_or(40);
    let only = args.iter().find_map(|a| a.strip_prefix("--as="));
    let guard = PathBuf::from(env!("CARGO_BIN_EXE_mcp-guard"));
    let echo = guard.with_file_name("echo-server");
    if !echo.exists() {
        eprintln!(
            "{} is missing: cargo build --release --workspace && cargo bench --bench startup",
            echo.display()
        );
        std::process::exit(2);
    }
    for who in users::identities() {
        let ordinary = matches!(who, users::Identity::Ordinary { .. });
        match only {
            Some("root") if ordinary => continue,
            Some("user") if !ordinary && unsafe { libc::geteuid() } == 0 => continue,
            _ => {}
        }
        println!("\n=== as {} ===", who.label());
        suite(
            &who,
            &guard,
            &echo,
            rounds,
            args.iter().any(|a| a == "--strace"),
        );
    }
}

/// Every variant, alternating, as `who`.
fn suite(who: &users::Identity, guard: &Path, echo: &Path, rounds: usize, strace: bool) {
    let scratch = who.scratch_dir();
    let audit = scratch.path().join("audit.jsonl");
    let (guard, echo) = (who.binary(guard), who.binary(echo));
    let (g, e) = (guard.display().to_string(), echo.display().to_string());
    let mut variants = vec![Variant {
        name: "plain exec",
        argv: vec![e.clone()],
        initialize: true,
    }];
    match bwrap_argv(who, &e, true) {
        Ok(argv) => variants.push(Variant {
            name: "bwrap",
            argv,
            initialize: true,
        }),
        Err(why) => println!("bwrap: not measured ({why})"),
    }
    let run = |extra: &[&str], server: &str| -> Vec<String> {
        let mut v = vec![g.clone(), "run".into()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(["--".into(), server.to_owned()]);
        v
    };
    let guarded = |name, extra: &[&str]| Variant {
        name,
        argv: run(extra, &e),
        initialize: true,
    };
    variants.push(guarded(
        "guard --allow-unsandboxed",
        &["--allow-unsandboxed", "--no-audit"],
    ));
    variants.push(guarded("guard (sandboxed)", &["--no-audit"]));
    let audit_arg = audit.display().to_string();
    variants.push(guarded(
        "guard (sandboxed, audit)",
        &["--audit-log", &audit_arg],
    ));
    // `hosts` mode: the egress proxy's thread and port, plus each isolation tier.
    variants.push(guarded(
        "guard, hosts, namespace",
        &[
            "--no-audit",
            "--allow-host",
            "api.example.org",
            "--network-isolation",
            "namespace",
        ],
    ));
    variants.push(guarded(
        "guard, hosts, broker",
        &[
            "--no-audit",
            "--allow-host",
            "api.example.org",
            "--network-isolation",
            "broker",
        ],
    ));
    // Spawn to exit of a process that does nothing: what each launcher adds to a start.
    let true_variants = [
        ("/bin/true, plain", vec!["/bin/true".to_string()]),
        (
            "/bin/true, bwrap",
            bwrap_argv(who, "/bin/true", false).unwrap_or_default(),
        ),
        ("/bin/true, guard", run(&["--no-audit"], "/bin/true")),
    ];
    for (name, argv) in true_variants {
        if !argv.is_empty() {
            variants.push(Variant {
                name,
                argv,
                initialize: false,
            });
        }
    }

    // Each variant must work before it is timed.
    variants.retain(|v| match start_once(who, v) {
        Ok(_) => true,
        Err(why) => {
            println!("{}: not measured ({why})", v.name);
            false
        }
    });

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "{rounds} alternating rounds; load average {} on {cpus} CPUs",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    let mut version = Vec::new();
    let version_variant = Variant {
        name: "mcp-guard --version",
        argv: vec![g.clone(), "--version".into()],
        initialize: false,
    };
    for _ in 0..rounds {
        for (v, t) in variants.iter().zip(times.iter_mut()) {
            t.push(start_once(who, v).expect("start"));
        }
        version.push(start_once(who, &version_variant).expect("mcp-guard --version"));
    }
    let median_of = |name: &str| {
        variants
            .iter()
            .position(|v| v.name == name)
            .map(|i| median(&mut times[i].clone()))
    };
    let plain_init = median_of("plain exec").unwrap_or_default();
    let plain_true = median_of("/bin/true, plain").unwrap_or_default();
    println!();
    println!(
        "{:<28} {:>10} {:>10} {:>12}",
        "to the first answer / exit", "median", "p90", "over plain"
    );
    for (v, t) in variants.iter().zip(times.iter()) {
        let m = median(&mut t.clone());
        let base = if v.initialize { plain_init } else { plain_true };
        println!(
            "{:<28} {:>10} {:>10} {:>12}",
            v.name,
            fmt(m),
            fmt(percentile(t, 0.9)),
            format!("+{}", fmt(m.saturating_sub(base)))
        );
    }
    println!(
        "{:<28} {:>10} {:>10}",
        "mcp-guard --version (exit)",
        fmt(median(&mut version)),
        fmt(percentile(&version, 0.9))
    );
    if let (Some(unsandboxed), Some(sandboxed)) = (
        median_of("guard --allow-unsandboxed"),
        median_of("guard (sandboxed)"),
    ) {
        println!();
        println!(
            "sandbox setup over a plain exec: +{} (whole guard, sandboxed, vs plain exec)",
            fmt(sandboxed.saturating_sub(plain_init))
        );
        println!(
            "  of which the relay process:    +{} (--allow-unsandboxed vs plain exec)",
            fmt(unsandboxed.saturating_sub(plain_init))
        );
        println!(
            "  of which the sandbox:          +{} (sandboxed vs --allow-unsandboxed)",
            fmt(sandboxed.saturating_sub(unsandboxed))
        );
    }
    if let (Some(guard), Some(bwrap)) =
        (median_of("/bin/true, guard"), median_of("/bin/true, bwrap"))
    {
        println!(
            "/bin/true: guard {} bwrap",
            if guard <= bwrap {
                format!("-{} under", fmt(bwrap - guard))
            } else {
                format!("+{} over", fmt(guard - bwrap))
            }
        );
    }
    if strace {
        strace_breakdown(who, &run(&["--no-audit"], &e), scratch.path());
    }
}

/// bwrap with a read-only `/`, fresh /dev and /proc and every namespace unshared (the usual
/// way to sandbox a command with it); `Err` says why it cannot run here.
fn bwrap_argv(
    who: &users::Identity,
    server: &str,
    initialize: bool,
) -> Result<Vec<String>, String> {
    let path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("bwrap"))
        .find(|p| p.exists())
        .ok_or("not installed (apt-get install bubblewrap)")?;
    let argv: Vec<String> = [
        path.display().to_string().as_str(),
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--unshare-all",
        "--die-with-parent",
        "--",
        server,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let probe = Variant {
        name: "bwrap",
        argv: argv.clone(),
        initialize,
    };
    start_once(who, &probe).map_err(|e| format!("fails here: {e}"))?;
    Ok(argv)
}

/// Spawn the variant as `who`; with `initialize`, send it and wait for the answer, else wait
/// for the exit. The time to it; then close stdin and reap (not timed).
fn start_once(who: &users::Identity, v: &Variant) -> Result<Duration, String> {
    let mut command = Command::new(&v.argv[0]);
    command
        .args(&v.argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    who.apply(&mut command);
    let t = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("spawn: {e}"))?;
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let (answered, elapsed) = if v.initialize {
        stdin.write_all(INIT).map_err(|e| format!("write: {e}"))?;
        let read = stdout.read_line(&mut line);
        let elapsed = t.elapsed();
        drop(stdin);
        let answered = matches!(read, Ok(n) if n > 0 && line.contains("\"result\""));
        (answered, elapsed)
    } else {
        drop((stdin, stdout));
        let status = child.wait();
        (status.is_ok_and(|s| s.success()), t.elapsed())
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    let _ = child.wait();
    if answered {
        Ok(elapsed)
    } else {
        Err(format!(
            "no {}; stderr: {}",
            if v.initialize {
                "initialize answer"
            } else {
                "successful exit"
            },
            stderr.lines().take(3).collect::<Vec<_>>().join(" | ")
        ))
    }
}

/// One start under `strace -f -ttt`: when each step happened, from the first exec.
fn strace_breakdown(who: &users::Identity, argv: &[String], scratch: &Path) {
    let log = scratch.join("strace.log");
    let mut cmd = vec![
        "strace".to_string(),
        "-f".into(),
        "-ttt".into(),
        "-e".into(),
        "trace=execve,clone,clone3,landlock_create_ruleset,landlock_restrict_self,seccomp,prlimit64,setrlimit,write,read".into(),
        "-o".into(),
        log.display().to_string(),
    ];
    cmd.extend(argv.iter().cloned());
    let traced = Variant {
        name: "strace",
        argv: cmd,
        initialize: true,
    };
    if let Err(e) = start_once(who, &traced) {
        println!("\nstrace breakdown: not available ({e})");
        return;
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut first: Option<f64> = None;
    println!("\none start under strace (times slowed by tracing; the order and the gaps are what count):");
    let mut shown = 0;
    for line in text.lines() {
        let line = line.trim_start();
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Some((ts, call)) = rest.trim_start().split_once(' ') else {
            continue;
        };
        let Ok(ts) = ts.parse::<f64>() else { continue };
        let t0 = *first.get_or_insert(ts);
        let interesting = call.starts_with("execve")
            || call.starts_with("landlock")
            || call.starts_with("seccomp")
            || call.starts_with("clone")
            || call.starts_with("prlimit64")
            || call.starts_with("setrlimit")
            || (call.starts_with("write(1,") && call.contains("result"))
            || (call.starts_with("read(0,") && call.contains("initialize"));
        if interesting && shown < 60 {
            let short: String = call.chars().take(90).collect();
            println!("  {:>9.3} ms  pid {pid:<7} {short}", (ts - t0) * 1e3);
            shown += 1;
        }
    }
}

fn median(t: &mut [Duration]) -> Duration {
    t.sort();
    percentile(t, 0.5)
}

fn percentile(t: &[Duration], q: f64) -> Duration {
    let mut v = t.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}
