//! Checks that need more than one value: the version, contradictions inside one file (a path
//! both allowed and denied), ports that a network mode ignores, names used as map keys.

use std::ops::Range;

use super::error::Diagnostic;
use super::model::Policy;
use super::values::{EnvName, Val};
use super::vars::PathPattern;
use crate::sandbox::NetworkMode;

/// The version this build reads.
pub const VERSION: i64 = 1;

/// Every problem in `policy` (parsed from `text`, shown as `file`).
/// What is valid but weak in `policy`'s network section, with what to write instead.
pub fn network_advice(policy: &Policy) -> Option<String> {
    let mode = policy.network.mode.as_ref().map(|m| m.value)?;
    match mode {
        NetworkMode::Ports => Some(
            "[network] mode \"ports\" is weak: the server may reach every host on the internet \
             on those ports (and cloud metadata on port 80). Name the hosts instead: \
             `allow = [\"api.example.com\"]` (mode \"hosts\"); only they are reachable, \
             through the guard's egress proxy"
                .to_owned(),
        ),
        NetworkMode::Open => Some(
            "[network] mode \"open\" lets the server reach any host and port; prefer \
             `allow = [...]` with the hosts it needs"
                .to_owned(),
        ),
        _ => None,
    }
}

pub fn validate(file: &str, text: &str, policy: &Policy) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let at =
        |span: &Option<Range<usize>>, msg: String| Diagnostic::at(file, text, span.clone(), msg);
    match &policy.version {
        None => out.push(
            at(&Some(0..0), "missing `version`".into())
                .with_help(format!("add `version = {VERSION}` as the first line")),
        ),
        Some(v) if v.value != VERSION => out.push(
            at(&v.span, format!("unsupported policy version {}", v.value))
                .with_help(format!("this mcp-guard reads `version = {VERSION}`")),
        ),
        Some(_) => {}
    }

    let fs = &policy.filesystem;
    for (list, name) in [
        (&fs.read, "read"),
        (&fs.write, "write"),
        (&fs.exec, "exec"),
        (&fs.create, "create"),
    ] {
        for allowed in list {
            if let Some(deny) = fs.deny.iter().find(|d| is_within(&allowed.value, &d.value)) {
                out.push(
                    at(&allowed.span, format!("`{}` is both in `{name}` and denied", allowed.value.as_str())).with_help(
                        format!(
                            "deny `{}` (line {}) wins, so this entry has no effect: remove it from `{name}`, or narrow the deny",
                            deny.value.as_str(),
                            line_of(text, &deny.span)
                        ),
                    ),
                );
            }
        }
    }

    let net = &policy.network;
    let mode = net.mode.as_ref().map(|m| m.value);
    for (ports, name) in [(&net.connect, "connect"), (&net.bind, "bind")] {
        for port in ports {
            if port.value == 0 {
                out.push(
                    at(&port.span, "port 0 is not a port".into())
                        .with_help("write a TCP port from 1 to 65535"),
                );
            }
        }
        if let (Some(first), Some(m @ (NetworkMode::Off | NetworkMode::Open))) =
            (ports.first(), mode)
        {
            let word = if m == NetworkMode::Off { "off" } else { "open" };
            out.push(
                at(
                    &first.span,
                    format!("`{name}` ports have no effect with `mode = \"{word}\"`"),
                )
                .with_help(
                    "write `mode = \"ports\"` to allow only the listed ports, or remove the list",
                ),
            );
        }
    }

    for entry in &net.allow {
        if let Err(e) = crate::egress::Rule::parse(&entry.value) {
            out.push(at(&entry.span, format!("[network] allow: {e}")));
        }
    }
    if let (Some(first), Some(m @ (NetworkMode::Off | NetworkMode::Ports | NetworkMode::Open))) =
        (net.allow.first(), mode)
    {
        out.push(
            at(
                &first.span,
                format!(
                    "`allow` hosts have no effect with `mode = \"{}\"`",
                    crate::policy::model::network_mode_str(m)
                ),
            )
            .with_help(
                "write `mode = \"hosts\"` (or leave `mode` out) to allow only the listed hosts",
            ),
        );
    }

    for (name, value) in &policy.env.set {
        if let Err(e) = EnvName::parse(name) {
            out.push(at(&value.span, format!("[env.set] {e}")));
        }
    }

    let both_lists = |out: &mut Vec<Diagnostic>, section, found: Vec<Overlap>| {
        for (name, allow_span, deny_span) in found {
            out.push(
                at(
                    allow_span,
                    format!("`{name}` is both allowed and denied in [{section}]"),
                )
                .with_help(format!(
                    "the deny (line {}) wins, so remove it from `allow`",
                    line_of(text, deny_span)
                )),
            );
        }
    };
    both_lists(
        &mut out,
        "syscalls",
        overlap(&policy.syscalls.allow, &policy.syscalls.deny, |s| {
            s.0.clone()
        }),
    );
    both_lists(
        &mut out,
        "launch",
        overlap(&policy.launch.allow, &policy.launch.deny, |c| {
            c.as_str().to_owned()
        }),
    );
    both_lists(
        &mut out,
        "tools",
        overlap(&policy.tools.allow, &policy.tools.deny, |g| g.0.clone()),
    );
    both_lists(
        &mut out,
        "prompts",
        overlap(&policy.prompts.allow, &policy.prompts.deny, |g| g.0.clone()),
    );
    both_lists(
        &mut out,
        "resources",
        overlap(&policy.resources.allow, &policy.resources.deny, |g| {
            g.0.clone()
        }),
    );

    for (kind, items) in [("tools", &policy.tools), ("prompts", &policy.prompts)] {
        for (item, rules) in &items.arguments {
            for (arg, rule) in rules {
                let r = &rule.value;
                if r.under.is_empty() && r.pattern.is_none() && r.max_length.is_none() {
                    out.push(
                        at(&rule.span, format!("the rule for argument `{arg}` of `{item}` checks nothing"))
                            .with_help(format!("[{kind}.arguments.{item}]\n{arg} = {{ under = [\"${{CWD}}\"], max_length = 4096 }}")),
                    );
                }
            }
        }
    }
    if let Some(endpoint) = &policy.audit.otlp_endpoint {
        if let Err(why) = crate::telemetry::check_endpoint(&endpoint.value) {
            out.push(
                at(&endpoint.span, format!("`otlp_endpoint`: {why}")).with_help(
                    "otlp_endpoint = \"http://collector:4318\"   # the collector's OTLP/HTTP base URL; \"\" turns the export off",
                ),
            );
        }
    }
    out
}

/// An entry in both `allow` and `deny`: its text, the allow's span, the deny's span.
type Overlap<'a> = (String, &'a Option<Range<usize>>, &'a Option<Range<usize>>);

/// Entries in both `allow` and `deny` of one section.
fn overlap<'a, T>(
    allow: &'a [Val<T>],
    deny: &'a [Val<T>],
    text: impl Fn(&T) -> String,
) -> Vec<Overlap<'a>> {
    allow
        .iter()
        .filter_map(|a| {
            deny.iter()
                .find(|d| text(&d.value) == text(&a.value))
                .map(|d| (text(&a.value), &a.span, &d.span))
        })
        .collect()
}

/// Whether `path` is `outer` or below it, comparing the patterns as written.
pub fn is_within(path: &PathPattern, outer: &PathPattern) -> bool {
    let (p, o) = (
        path.as_str().trim_end_matches('/'),
        outer.as_str().trim_end_matches('/'),
    );
    p == o || (p.starts_with(o) && p[o.len()..].starts_with('/')) || o.is_empty()
}

fn line_of(text: &str, span: &Option<Range<usize>>) -> usize {
    let pos = span.as_ref().map_or(0, |s| s.start).min(text.len());
    text.as_bytes()[..pos]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
