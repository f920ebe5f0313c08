//! Egress proxy benchmark: what going through the guard's proxy costs a server, against a
//! direct connection to the same loopback target, in alternating rounds.
//! - connection setup: connect + one echoed byte, direct vs HTTP CONNECT through the proxy
//!   (the proxy's rule check, its own connect, the 200 reply);
//! - throughput: a 100 MB download, direct vs through the proxy.
//!
//! The proxy runs in-process on its own thread, exactly as `mcp-guard run` runs it (allow list
//! `127.0.0.1/32:*`, which names loopback explicitly). The isolation tiers' start-up cost is in
//! the `startup` bench.
//!
//! ```text
//! cargo bench --bench egress                      # 200 connects, 3 downloads of 100 MB
//! cargo bench --bench egress -- --rounds=500 --mb=200
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mcp_guard::egress::{self, AllowList, InFlightCalls, ProxyConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_owned))
            .map_or(default, |n| n.parse().expect("a number"))
    };
    let rounds = arg("rounds", 200);
    let megabytes = arg("mb", 100);

    let target = TcpListener::bind("127.0.0.1:0").expect("bind the target");
    let target_port = target.local_addr().expect("addr").port();
    std::thread::spawn(move || serve_target(target, megabytes));

    let proxy = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let proxy_port = proxy.local_addr().expect("addr").port();
    let allow = AllowList::parse(&["127.0.0.1/32:*"]).expect("allow list");
    let (records, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    egress::spawn_thread(
        proxy,
        ProxyConfig::new(allow),
        InFlightCalls::new(),
        records,
    )
    .expect("start the proxy");
    // Drain the records as the relay would.
    std::thread::spawn(move || while receiver.blocking_recv().is_some() {});

    let direct = || TcpStream::connect(("127.0.0.1", target_port)).expect("connect");
    let proxied = || connect_via(proxy_port, target_port);

    let (mut setup_direct, mut setup_proxy) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        setup_direct.push(timed(|| echo(direct())));
        setup_proxy.push(timed(|| echo(proxied())));
    }
    let (d, p) = (median(&mut setup_direct), median(&mut setup_proxy));
    println!(
        "connection setup (connect + 1 echoed byte), {rounds} alternating rounds: direct p50 {:.1} µs, \
         through the proxy p50 {:.1} µs, added {:.1} µs",
        micros(d),
        micros(p),
        micros(p.saturating_sub(d))
    );

    let (mut down_direct, mut down_proxy) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        down_direct.push(timed(|| download(direct(), megabytes)));
        down_proxy.push(timed(|| download(proxied(), megabytes)));
    }
    let best = |t: &[Duration]| t.iter().min().copied().unwrap_or_default();
    let rate = |t: Duration| megabytes as f64 / t.as_secs_f64();
    let (bd, bp) = (best(&down_direct), best(&down_proxy));
    println!(
        "{megabytes} MB download, best of 3 alternating: direct {:.0} MB/s, through the proxy {:.0} MB/s, ratio {:.2}x",
        rate(bd),
        rate(bp),
        bd.as_secs_f64() / bp.as_secs_f64()
    );
}

/// A client line `e` gets one byte back; `d` gets the download.
fn serve_target(listener: TcpListener, megabytes: usize) {
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let mut command = [0u8; 1];
            let mut stream = stream;
            if stream.read_exact(&mut command).is_err() {
                return;
            }
            if command[0] == b'e' {
                let _ = stream.write_all(b"e");
            } else {
                let block = vec![7u8; 1 << 20];
                for _ in 0..megabytes {
                    if stream.write_all(&block).is_err() {
                        return;
                    }
                }
            }
        });
    }
}

fn connect_via(proxy_port: u16, target_port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", proxy_port)).expect("connect to the proxy");
    write!(
        stream,
        "CONNECT 127.0.0.1:{target_port} HTTP/1.1\r\nHost: 127.0.0.1:{target_port}\r\n\r\n"
    )
    .expect("write CONNECT");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("read the status");
    assert!(line.contains(" 200"), "the proxy refused: {line}");
    loop {
        line.clear();
        reader.read_line(&mut line).expect("read the head");
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    stream
}

fn echo(mut stream: TcpStream) {
    stream.set_nodelay(true).expect("nodelay");
    stream.write_all(b"e").expect("write");
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).expect("read the echo");
}

fn download(mut stream: TcpStream, megabytes: usize) {
    stream.write_all(b"d").expect("write");
    let mut buf = vec![0u8; 1 << 16];
    let mut left = megabytes << 20;
    while left > 0 {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "the download ended early");
        left = left.saturating_sub(n);
    }
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
