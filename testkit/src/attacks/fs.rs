//! Filesystem, exec, network, environment and /proc attacks (landlock and friends).

use serde_json::Value;

use super::Outcome;

pub const NAMES: &[&str] = &["read_file"];

pub fn run(name: &str, args: &Value) -> Option<Outcome> {
    let arg = |key: &str| args.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    Some(match name {
        "read_file" => std::fs::read_to_string(arg("path"))
            .map(|text| format!("read {} bytes", text.len()))
            .map_err(|e| e.to_string()),
        _ => return None,
    })
}
