//! `policy show`: the effective policy as TOML, each value annotated with the layer that set
//! it. The output is itself a valid policy (`policy check` accepts it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use super::firewall::{Items, Permission};
use super::merge::EffectivePolicy;
use super::model::network_mode_str;
use super::resolve::ServerCommand;
use super::values::Val;
use super::vars::Vars;
use super::{Origin, PolicyError};

/// Where the origin comments start, so they line up.
const COMMENT_COLUMN: usize = 44;

/// Render `eff` resolved against `vars` (and the server command, when given).
pub fn render(
    eff: &EffectivePolicy,
    vars: &Vars,
    command: Option<&ServerCommand>,
) -> Result<String, PolicyError> {
    let resolved = eff.resolve(vars, command)?;
    let fs = eff.resolve_fs(vars, command, &mut Vec::new())?;
    let vars = &vars.with_server_dir(command.and_then(ServerCommand::server_dir));
    let p = &eff.policy;
    let mut o = Out::default();

    o.comment("Effective mcp-guard policy: variables expanded, layers merged.");
    let layers: Vec<String> = eff.layers.iter().map(Origin::to_string).collect();
    o.comment(&format!("Layers, lowest first: {}.", layers.join(" ← ")));
    if let Some(cmd) = command {
        o.comment(&format!("Server command: {}", cmd.argv.join(" ")));
    }
    for w in &resolved.warnings {
        o.comment(&format!("WARNING: {w}"));
    }
    o.blank();
    o.line("version = 1", "");
    o.opt("enforce", &p.enforce, |e| quote(e.as_str()));
    let require: Vec<(String, String)> = resolved
        .sandbox
        .require
        .iter()
        .map(|l| {
            let from = p
                .require
                .iter()
                .find(|r| r.value == *l)
                .map(Val::origin_label)
                .unwrap_or_else(|| {
                    format!(
                        "enforce = \"required\" ({})",
                        p.enforce
                            .as_ref()
                            .map(Val::origin_label)
                            .unwrap_or_default()
                    )
                });
            (quote(&layer_name(*l)), from)
        })
        .collect();
    o.list("require", &require);

    o.section("launch");
    if p.launch.allow.is_empty() {
        o.comment("allow: no layer restricts the command, so any command may be launched");
    }
    o.vals("allow", &p.launch.allow, |c| quote(c.as_str()));
    o.vals("deny", &p.launch.deny, |c| quote(c.as_str()));

    o.section("filesystem");
    let paths = |v: &[(PathBuf, String)]| {
        v.iter()
            .map(|(p, l)| (quote(&p.to_string_lossy()), l.clone()))
            .collect::<Vec<_>>()
    };
    o.list("read", &paths(&fs.read));
    o.list("write", &paths(&fs.write));
    o.list("exec", &paths(&fs.exec));
    o.list("deny", &paths(&fs.deny));
    o.list("create", &paths(&fs.create));
    o.comment(&format!(
        "protected in every writable directory (read-only to the server): {}",
        crate::sandbox::protect::DEFAULT_PROTECTED
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    o.vals("protect", &p.filesystem.protect, |n| quote(&n.0));
    o.opt("arg_paths", &p.filesystem.arg_paths, |a| quote(a.as_str()));

    o.section("network");
    o.opt("mode", &p.network.mode, |m| quote(network_mode_str(*m)));
    o.vals("connect", &p.network.connect, u16::to_string);
    o.vals("bind", &p.network.bind, u16::to_string);
    o.vals("allow", &p.network.allow, |h| quote(h));
    o.vals("udp", &p.network.udp, |h| quote(h));
    o.vals("unix", &p.network.unix, |u| quote(u.as_str()));
    o.opt("isolation", &p.network.isolation, |i| quote(i.as_str()));
    for line in egress_summary(&p.network) {
        o.comment(&line);
    }

    o.section("limits");
    let l = &p.limits;
    o.opt("memory", &l.memory, |v| quote(&v.text));
    o.opt("pids", &l.pids, |v| {
        v.0.map_or_else(|| quote("unlimited"), |n| n.to_string())
    });
    o.opt("cpus", &l.cpus, |v| {
        v.0.map_or_else(|| quote("unlimited"), |n| format!("{n:?}"))
    });
    o.opt("cpu_time", &l.cpu_time, |v| quote(&v.text));
    o.opt("wall_clock", &l.wall_clock, |v| quote(&v.text));
    o.opt("file_size", &l.file_size, |v| quote(&v.text));
    o.opt("open_files", &l.open_files, |v| {
        v.0.map_or_else(|| quote("unlimited"), |n| n.to_string())
    });
    o.opt("request_timeout", &l.request_timeout, |v| quote(&v.text));
    o.opt("max_message_bytes", &l.max_message_bytes, |v| {
        quote(&v.text)
    });

    o.section("env");
    o.vals("pass", &p.env.pass, |n| quote(&n.0));
    if !p.env.set.is_empty() {
        o.section("env.set");
        for (name, v) in &p.env.set {
            // Values written by the user may be secrets; shipped ones are not, nor is a
            // keychain reference (it names the secret, `run` looks it up).
            let shown = match &v.origin {
                Some(Origin::Builtin | Origin::Profile(_)) | None => v
                    .value
                    .expand(vars)
                    .unwrap_or_else(|_| v.value.as_str().to_owned()),
                _ if crate::secrets::SecretRef::in_env_value(v.value.as_str())
                    .is_some_and(|r| r.is_ok()) =>
                {
                    v.value.as_str().to_owned()
                }
                _ => "<hidden>".to_owned(),
            };
            o.line(
                &format!("{} = {}", key(name), quote(&shown)),
                &v.origin_label(),
            );
        }
    }

    o.section("syscalls");
    o.vals("deny", &p.syscalls.deny, |s| quote(&s.0));
    if !p.syscalls.allow.is_empty() {
        o.comment("WARNING: these syscalls are refused by the default filter for a reason");
    }
    o.vals("allow", &p.syscalls.allow, |s| quote(&s.0));

    items(&mut o, "tools", &p.tools, vars);
    items(&mut o, "prompts", &p.prompts, vars);

    o.section("resources");
    let r = &p.resources;
    o.vals("allow", &r.allow, |u| quote(&u.0));
    o.vals("deny", &r.deny, |u| quote(&u.0));
    o.opt("rate_limit", &r.rate_limit, |v| quote(&v.to_string()));
    o.vals("file_roots", &r.file_roots, |p| {
        quote(&p.expand_text(vars).unwrap_or_else(|_| p.as_str().into()))
    });

    o.section("server_requests");
    let perm = |v: &Permission| quote(v.as_str());
    o.opt("sampling", &p.server_requests.sampling, perm);
    o.opt("elicitation", &p.server_requests.elicitation, perm);
    o.opt("roots", &p.server_requests.roots, perm);

    o.section("redaction");
    let rd = &p.redaction;
    o.opt("enabled", &rd.enabled, bool::to_string);
    o.opt("builtin", &rd.builtin, bool::to_string);
    o.vals("allow", &rd.allow, |r| quote(&r.0));
    o.map("redaction.patterns", &rd.patterns, |r| quote(&r.0));

    o.section("errors");
    o.opt("sanitize", &p.errors.sanitize, bool::to_string);

    o.section("sanitize");
    o.opt("results", &p.sanitize.results, |v| quote(v.as_str()));

    o.section("validation");
    let v = &p.validation;
    o.opt("strict", &v.strict, bool::to_string);
    o.opt("require_listing", &v.require_listing, bool::to_string);
    o.vals("tolerate", &v.tolerate, |f| quote(f.as_str()));

    o.section("audit");
    let a = &p.audit;
    o.opt("enabled", &a.enabled, bool::to_string);
    o.opt("path", &a.path, |p| {
        quote(&p.expand_text(vars).unwrap_or_else(|_| p.as_str().into()))
    });
    o.opt("required", &a.required, bool::to_string);
    o.opt("on_suspicious", &a.on_suspicious, |v| quote(v.as_str()));
    o.opt("suspicious_refusals", &a.suspicious_refusals, |v| {
        v.0.map_or_else(|| quote("unlimited"), |n| n.to_string())
    });
    o.opt("suspicious_window", &a.suspicious_window, |v| {
        quote(&v.text)
    });
    o.vals("redact_keys", &a.redact_keys, |s| quote(s));
    o.opt("max_value_bytes", &a.max_value_bytes, |v| quote(&v.text));
    o.opt("max_size", &a.max_size, |v| quote(&v.text));
    o.opt("keep", &a.keep, |v| {
        v.0.map_or_else(|| quote("unlimited"), |n| n.to_string())
    });
    o.opt("excerpts", &a.excerpts, |v| quote(&v.text));
    o.opt("forwards", &a.forwards, |v| quote(v.as_str()));
    o.opt("otlp_endpoint", &a.otlp_endpoint, |v| quote(v));

    o.section("pin");
    o.opt("mode", &p.pin.mode, |v| quote(v.as_str()));
    o.opt("injection", &p.pin.injection, |v| quote(v.as_str()));
    Ok(o.0)
}

fn items(o: &mut Out, name: &str, it: &Items, vars: &Vars) {
    o.section(name);
    if it.allow.is_empty() {
        o.comment("allow: no layer restricts the names, so every item the server lists is allowed");
    }
    o.vals("allow", &it.allow, |g| quote(&g.0));
    o.vals("deny", &it.deny, |g| quote(&g.0));
    o.opt("rate_limit", &it.rate_limit, |v| quote(&v.to_string()));
    o.map(&format!("{name}.rate_limits"), &it.rate_limits, |v| {
        quote(&v.to_string())
    });
    o.opt("confirm_timeout", &it.confirm_timeout, |v| quote(&v.text));
    for (item, settings) in &it.each {
        o.section(&format!("{name}.{}", key(item)));
        match settings.value.confirm {
            Some(confirm) => o.line(&format!("confirm = {confirm}"), &settings.origin_label()),
            None => o.comment("confirm: not set"),
        }
    }
    for (item, rules) in &it.arguments {
        o.map(&format!("{name}.arguments.{}", key(item)), rules, |r| {
            let mut parts = Vec::new();
            if !r.under.is_empty() {
                let under: Vec<String> = r
                    .under
                    .iter()
                    .map(|p| quote(&p.expand_text(vars).unwrap_or_else(|_| p.as_str().into())))
                    .collect();
                parts.push(format!("under = [{}]", under.join(", ")));
            }
            if let Some(pat) = &r.pattern {
                parts.push(format!("pattern = {}", quote(&pat.0)));
            }
            if let Some(n) = r.max_length {
                parts.push(format!("max_length = {n}"));
            }
            format!("{{ {} }}", parts.join(", "))
        });
    }
}

/// The TOML text being built.
#[derive(Default)]
struct Out(String);

impl Out {
    fn blank(&mut self) {
        self.0.push('\n');
    }

    fn comment(&mut self, text: &str) {
        let _ = writeln!(self.0, "# {text}");
    }

    fn section(&mut self, name: &str) {
        let _ = write!(self.0, "\n[{name}]\n");
    }

    /// `text`, then `# origin` aligned.
    fn line(&mut self, text: &str, origin: &str) {
        if origin.is_empty() {
            let _ = writeln!(self.0, "{text}");
        } else {
            let _ = writeln!(
                self.0,
                "{text:<width$} # {origin}",
                width = COMMENT_COLUMN - 1
            );
        }
    }

    fn opt<T>(&mut self, name: &str, v: &Option<Val<T>>, fmt: impl Fn(&T) -> String) {
        match v {
            Some(v) => self.line(&format!("{name} = {}", fmt(&v.value)), &v.origin_label()),
            None => self.comment(&format!("{name}: not set")),
        }
    }

    fn vals<T>(&mut self, name: &str, v: &[Val<T>], fmt: impl Fn(&T) -> String) {
        let items: Vec<(String, String)> = v
            .iter()
            .map(|v| (fmt(&v.value), v.origin_label()))
            .collect();
        self.list(name, &items);
    }

    fn list(&mut self, name: &str, items: &[(String, String)]) {
        if items.is_empty() {
            self.line(&format!("{name} = []"), "");
            return;
        }
        let _ = writeln!(self.0, "{name} = [");
        for (value, origin) in items {
            self.line(&format!("  {value},"), origin);
        }
        let _ = writeln!(self.0, "]");
    }

    fn map<T>(
        &mut self,
        section: &str,
        map: &BTreeMap<String, Val<T>>,
        fmt: impl Fn(&T) -> String,
    ) {
        if map.is_empty() {
            return;
        }
        self.section(section);
        for (k, v) in map {
            self.line(
                &format!("{} = {}", key(k), fmt(&v.value)),
                &v.origin_label(),
            );
        }
    }
}

/// A TOML string literal.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A TOML key: bare when it can be.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_owned()
    } else {
        quote(s)
    }
}

fn layer_name(l: crate::sandbox::Layer) -> String {
    serde_json::to_value(l)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What the server can reach, in words, under the `[network]` section of `policy show`.
fn egress_summary(net: &super::model::Network) -> Vec<String> {
    use crate::sandbox::NetworkMode;
    let mode = net.mode.as_ref().map_or(NetworkMode::Off, |m| m.value);
    let mut lines = vec![match mode {
        NetworkMode::Off => "Egress: none. The server reaches no network.".to_owned(),
        NetworkMode::Hosts if net.allow.is_empty() => {
            "Egress: none (hosts mode without an allow list).".to_owned()
        }
        NetworkMode::Hosts => {
            let hosts: Vec<&str> = net.allow.iter().map(|v| v.value.as_str()).collect();
            format!(
                "Egress: only {} (a host without a port: 443 and 80), through the guard's \
                 proxy; loopback, link-local, private and the host's own addresses only where \
                 a CIDR entry names them. Every connection is audited.",
                hosts.join(", ")
            )
        }
        NetworkMode::Ports => {
            let ports: Vec<String> = net.connect.iter().map(|v| v.value.to_string()).collect();
            format!(
                "Egress: WEAK. Every host on the internet on TCP port(s) {}; name the hosts \
                 with `allow` instead.",
                ports.join(", ")
            )
        }
        NetworkMode::Open => "Egress: OPEN. Any host, any port, UDP too.".to_owned(),
    }];
    if mode != NetworkMode::Off {
        lines.push(if net.udp.is_empty() && mode != NetworkMode::Open {
            "UDP: none.".to_owned()
        } else {
            "UDP: allowed (this kernel cannot tell destinations apart).".to_owned()
        });
    }
    lines.push(if net.unix.is_empty() {
        "Unix sockets: none (socketpair stays allowed).".to_owned()
    } else {
        "Unix sockets: allowed (below landlock ABI 9 the kernel cannot tell paths apart)."
            .to_owned()
    });
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{load_layers, merge, parse_policy};

    #[test]
    fn show_output_is_a_valid_policy() {
        for profile in crate::policy::profiles::names() {
            let eff = merge(load_layers(Some(profile), None).unwrap());
            let vars = Vars::from_pairs(&[("HOME", "/home/u"), ("CWD", "/w"), ("TMPDIR", "/tmp")]);
            let text = render(&eff, &vars, None).unwrap();
            if let Err(e) = parse_policy("show", &text) {
                panic!(
                    "`policy show --profile {profile}` is not a valid policy:\n{e}\n---\n{text}"
                );
            }
        }
    }

    #[test]
    fn show_annotates_origins() {
        let mut layers = load_layers(Some("strict"), None).unwrap();
        layers.push((
            Origin::Flags,
            parse_policy("f", "version = 1\n[limits]\npids = 7").unwrap(),
        ));
        let text = render(&merge(layers), &Vars::from_pairs(&[("HOME", "/h")]), None).unwrap();
        assert!(
            text.contains("pids = 7")
                && text
                    .lines()
                    .any(|l| l.starts_with("pids = 7") && l.ends_with("# flags")),
            "{text}"
        );
    }
}
