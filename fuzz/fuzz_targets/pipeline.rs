//! The whole per-message filter pipeline (the firewall with `representative-policy.toml`):
//! any sequence of lines in either direction. Never panics; what it forwards in place of a
//! message is one valid JSON-RPC message, and every error it writes is a valid error response.
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use mcp_guard::conversation::Entry;
use mcp_guard::filter::{Context, Direction, Firewall, Options, Verdict};
use mcp_guard::policy::{merge, parse_policy, Origin, Vars};
use mcp_guard::protocol::{parse_line, parse_line_with, Message, Parsed};

const POLICY: &str = include_str!("../representative-policy.toml");

/// Methods a response may answer (the relay tells the firewall which request it answers).
const ANSWERED: &[&str] = &[
    "initialize",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "server/discover",
    "completion/complete",
];
const VERSIONS: &[Option<&str>] = &[
    None,
    Some("2024-11-05"),
    Some("2025-03-26"),
    Some("2025-06-18"),
    Some("2025-11-25"),
    Some("2026-07-28"),
];

fn firewall() -> Firewall {
    let layer = parse_policy("representative-policy.toml", POLICY).expect("policy parses");
    let merged = merge(vec![(
        Origin::File("representative-policy.toml".into()),
        layer,
    )]);
    let options = Options {
        compile_schemas_in_background: false,
        ..Options::default()
    };
    let vars = Vars::from_pairs(&[("HOME", "/home/u"), ("CWD", "/srv/data")]);
    Firewall::from_policy_with_vars(&merged, options, &vars).expect("firewall")
}

/// Compiling the schemas takes tens of milliseconds, so one firewall serves every input, as one
/// serves a whole session in the relay: its state (listings seen, pending requests) carries
/// over between inputs. A crash that does not reproduce alone needs the inputs before it.
fn shared() -> &'static Mutex<Firewall> {
    static FIREWALL: OnceLock<Mutex<Firewall>> = OnceLock::new();
    FIREWALL.get_or_init(|| Mutex::new(firewall()))
}

fn assert_one_message(bytes: &[u8], what: &str) {
    match parse_line(bytes) {
        Ok(Parsed::Single(_)) => {}
        other => panic!(
            "{what} is not one JSON-RPC message: {} -> {other:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

fn assert_error_reply(bytes: &[u8], what: &str) {
    match parse_line(bytes) {
        Ok(Parsed::Single(Message::Error { .. })) => {}
        other => panic!(
            "{what} is not an error response: {} -> {other:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut fw = shared().lock().unwrap_or_else(|e| e.into_inner());
    for line in data.split(|&b| b == b'\n') {
        // Byte 0 of each line: direction, answered method and session version.
        let Some((&ctl, line)) = line.split_first() else {
            continue;
        };
        let direction = if ctl & 1 == 0 {
            Direction::HostToServer
        } else {
            Direction::ServerToHost
        };
        let answered = ANSWERED[(ctl as usize >> 1) % ANSWERED.len()];
        let version = VERSIONS[(ctl as usize >> 4) % VERSIONS.len()];
        // Parsed as the relay parses it: with the bodies' trees when the firewall wants them.
        let Ok(parsed) = parse_line_with(line, fw.bodies_for(line.len())) else {
            continue;
        };
        let messages: Vec<Message<'_>> = match parsed {
            Parsed::Single(m) => vec![m],
            Parsed::Batch(items) => items.into_iter().flatten().collect(),
        };
        for message in &messages {
            let is_response = message.response_id().is_some();
            let entry = is_response.then(|| Entry::for_method(answered));
            let context = Context {
                direction,
                version,
                request: entry.as_ref(),
            };
            match fw.inspect(message, &context) {
                Verdict::Forward => {}
                Verdict::Replace(bytes) => assert_one_message(&bytes, "a replacement"),
                Verdict::Refuse {
                    reply_to_sender,
                    reply_to_receiver,
                    ..
                } => {
                    if let Some(r) = reply_to_sender {
                        assert_error_reply(&r, "the reply to the sender");
                    }
                    if let Some(r) = reply_to_receiver {
                        assert_one_message(&r, "the reply to the receiver");
                    }
                }
            }
            let _ = fw.take_findings();
        }
    }
});
