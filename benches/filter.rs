//! Per-message cost of the message firewall on a 1 KiB `tools/call` (host → server) and on its
//! 1 KiB text result (server → host), with a representative policy (tool allow/deny globs, an
//! argument rule, a rate limit, redaction with a custom pattern, schema validation against
//! 2025-06-18, inputSchema from a listed tool). Each message is parsed as the relay parses it
//! (the body's tree built in the envelope pass) and then inspected; the envelope parse alone,
//! bodies kept raw, is timed too: the difference is what the firewall adds.
//! `cargo bench --bench filter`.

use std::time::Instant;

use mcp_guard::conversation::Entry;
use mcp_guard::filter::{Context, Direction, Firewall, Options};
use mcp_guard::policy::{merge, parse_policy, Origin};
use mcp_guard::protocol::{parse_line, parse_line_with, Bodies, Message, Parsed};

const POLICY: &str = r#"
version = 1
[tools]
allow = ["echo", "read_*"]
deny = ["delete_*"]
rate_limit = "1000000/s"
[tools.arguments.echo]
text = { max_length = 4096 }
[redaction.patterns]
internal_token = 'itk_[A-Za-z0-9]{32}'
"#;

fn message(line: &str) -> Message<'_> {
    match parse_line(line.as_bytes()) {
        Ok(Parsed::Single(m)) => m,
        _ => panic!("bench message does not parse"),
    }
}

fn main() {
    let policy = parse_policy("bench.toml", POLICY).expect("policy");
    let eff = merge(vec![(Origin::Builtin, policy)]);
    let options = Options {
        compile_schemas_in_background: false,
        ..Options::default()
    };
    let mut fw = Firewall::from_policy(&eff, options).expect("firewall");
    let v = Some("2025-06-18");
    let to_server = Context {
        direction: Direction::HostToServer,
        version: v,
        request: None,
    };
    let listing = Entry::for_method("tools/list");
    let list = r#"{"jsonrpc":"2.0","id":0,"method":"tools/list"}"#;
    fw.inspect(&message(list), &to_server);
    let listed = r#"{"jsonrpc":"2.0","id":0,"result":{"tools":[{"name":"echo","description":"Echo","inputSchema":{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}}]}}"#;
    let ctx = Context {
        direction: Direction::ServerToHost,
        version: v,
        request: Some(&listing),
    };
    fw.inspect(&message(listed), &ctx);

    let text = "lorem ipsum dolor sit amet ".repeat(36);
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{text}"}}}}}}"#
    );
    let result = format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"content":[{{"type":"text","text":"{text}"}}]}}}}"#
    );
    // The echo call's entry, as the relay's ledger opens it.
    let call_entry = Entry {
        target: Some(mcp_guard::conversation::Target {
            kind: mcp_guard::conversation::TargetKind::Tool,
            value: "echo".into(),
        }),
        ..Entry::for_method("tools/call")
    };
    let back = Context {
        direction: Direction::ServerToHost,
        version: v,
        request: Some(&call_entry),
    };
    let n = 200_000;
    for (label, line, ctx) in [
        ("tools/call", &call, &to_server),
        ("result", &result, &back),
    ] {
        let bodies = fw.bodies_for(line.len());
        let checked = time(n, || match parse_line_with(line.as_bytes(), bodies) {
            Ok(Parsed::Single(m)) => fw.inspect(&m, ctx),
            _ => panic!("bench message does not parse"),
        });
        let envelope = time(n, || parse_line_with(line.as_bytes(), Bodies::Raw).is_ok());
        println!(
            "{label:>10} ({} bytes): parse + inspect p50 {:.2} µs, p90 {:.2} µs, p99 {:.2} µs; \
             envelope parse alone p50 {:.2} µs",
            line.len(),
            checked.at(0.5),
            checked.at(0.9),
            checked.at(0.99),
            envelope.at(0.5),
        );
    }
}

/// Durations of `n` runs of `f`, sorted.
struct Samples(Vec<u64>);

impl Samples {
    /// The `q` quantile in µs.
    fn at(&self, q: f64) -> f64 {
        self.0[((self.0.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0
    }
}

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Samples {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        std::hint::black_box(f());
        samples.push(start.elapsed().as_nanos() as u64);
    }
    samples.sort_unstable();
    Samples(samples)
}
