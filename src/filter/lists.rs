//! Listings on their way to the host: items the policy does not allow are removed (the page's
//! `nextCursor` is kept, so pagination stays consistent), descriptions and instructions are
//! stripped of hiding characters, and likely injection phrases are recorded. A `tools/list`
//! page also refreshes the tool cache used to check calls.

use serde_json::Value;

use super::access::check_resource;
use super::inspection::{Inspection, Kind, Step};
use super::sanitize::{injection_phrases, strip_hidden};
use super::{Direction, Firewall};

/// Text members shown to the model or the user.
const TEXT_KEYS: &[&str] = &["description", "title", "instructions"];

pub fn stage(fw: &mut Firewall, m: &mut Inspection<'_>) -> Step {
    if m.direction != Direction::ServerToHost || m.kind != Kind::Result {
        return Step::Next;
    }
    let (key, family) = match m.method {
        Some("tools/list") => ("tools", "tool"),
        Some("prompts/list") => ("prompts", "prompt"),
        Some("resources/list") => ("resources", "resource"),
        Some("resources/templates/list") => ("resourceTemplates", "resource template"),
        Some("initialize" | "server/discover") => return instructions(m),
        _ => return Step::Next,
    };
    let rules = &fw.rules;
    let mut notes: Vec<(&'static str, String)> = Vec::new();
    let mut kept_tools = Vec::new();
    m.edit_body(|body| {
        let Some(items) = body.get_mut(key).and_then(Value::as_array_mut) else {
            return false;
        };
        let before = items.len();
        items.retain(|item| {
            let verdict = match family {
                "tool" => rules.tools.check(name(item)).map_err(|r| format!("{r:?}")),
                "prompt" => rules
                    .prompts
                    .check(name(item))
                    .map_err(|r| format!("{r:?}")),
                "resource" => {
                    check_resource(&rules.resources, &rules.file_roots, str_of(item, "uri"))
                }
                _ => check_template(fw, str_of(item, "uriTemplate")),
            };
            if let Err(why) = &verdict {
                notes.push((
                    "hidden",
                    format!("{family} `{}` removed from the listing: {why}", label(item)),
                ));
            }
            verdict.is_ok()
        });
        let mut changed = items.len() != before;
        for item in items.iter_mut() {
            changed |= sanitize_item(item, family, &mut notes);
        }
        if family == "tool" {
            kept_tools = items.clone();
        }
        changed
    });
    for (rule, detail) in notes {
        m.find(rule, detail);
    }
    if family == "tool" {
        let first_page = m.pending.as_ref().is_none_or(|p| p.first_page);
        for (tool, why) in fw.tools.record_page(first_page, &kept_tools) {
            m.find("schema", format!("tool `{tool}` has a schema that does not compile ({why}); its calls are not checked"));
        }
    }
    Step::Next
}

fn check_template(fw: &Firewall, template: &str) -> Result<(), String> {
    // A template's variables are not path segments yet: match the pattern on its text.
    let scheme_end = template.find(':').unwrap_or(0);
    let lowered = format!(
        "{}{}",
        template[..scheme_end].to_ascii_lowercase(),
        &template[scheme_end..]
    );
    fw.rules
        .resources
        .check(&lowered)
        .map_err(|r| format!("{r:?}"))
}

fn name(item: &Value) -> &str {
    str_of(item, "name")
}

fn str_of<'v>(item: &'v Value, key: &str) -> &'v str {
    item.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn label(item: &Value) -> String {
    ["name", "uri", "uriTemplate"]
        .iter()
        .map(|k| str_of(item, k))
        .find(|s| !s.is_empty())
        .unwrap_or("?")
        .to_owned()
}

/// Sanitise the text members of one listed item, and of its schema's and arguments'
/// descriptions (where tool poisoning hides as often as in the tool's own description).
fn sanitize_item(item: &mut Value, family: &str, notes: &mut Vec<(&'static str, String)>) -> bool {
    let label = label(item);
    let mut changed = false;
    let mut texts = Vec::new();
    walk_texts(item, 0, &mut |text: &mut String| {
        if let Some(clean) = strip_hidden(text) {
            *text = clean;
            changed = true;
        }
        texts.push(text.clone());
    });
    if changed {
        notes.push((
            "sanitized",
            format!("{family} `{label}`: hidden characters stripped from its text"),
        ));
    }
    for text in texts {
        let found = injection_phrases(&text);
        if !found.is_empty() {
            notes.push((
                "injection",
                format!(
                    "{family} `{label}` text looks like prompt injection ({})",
                    found.join(", ")
                ),
            ));
        }
    }
    changed
}

/// Call `f` on each string under a text key, in the item and its nested schemas/arguments.
fn walk_texts(v: &mut Value, depth: usize, f: &mut impl FnMut(&mut String)) {
    if depth > 16 {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match child {
                    Value::String(s) if TEXT_KEYS.contains(&k.as_str()) => f(s),
                    _ => walk_texts(child, depth + 1, f),
                }
            }
        }
        Value::Array(items) => {
            for child in items {
                walk_texts(child, depth + 1, f);
            }
        }
        _ => {}
    }
}

/// The server's `instructions` go to the model as-is: sanitise and check them.
fn instructions(m: &mut Inspection<'_>) -> Step {
    let has = m
        .raw()
        .is_some_and(|r| memchr::memmem::find(r.as_bytes(), b"\"instructions\"").is_some());
    if !has {
        return Step::Next;
    }
    let mut found = Vec::new();
    let mut stripped = false;
    m.edit_body(|body| {
        let Some(Value::String(text)) = body.get_mut("instructions") else {
            return false;
        };
        if let Some(clean) = strip_hidden(text) {
            *text = clean;
            stripped = true;
        }
        found = injection_phrases(text);
        stripped
    });
    if stripped {
        m.find(
            "sanitized",
            "server instructions: hidden characters stripped".into(),
        );
    }
    if !found.is_empty() {
        m.find(
            "injection",
            format!(
                "server instructions look like prompt injection ({})",
                found.join(", ")
            ),
        );
    }
    Step::Next
}
