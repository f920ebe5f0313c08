//! Policy flags of `mcp-guard run` and `mcp-guard policy show` (flattened into their args):
//! `--policy`, `--profile` and the flags that layer on top of them.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;

use crate::filter::redact::KnownSecrets;
use crate::policy::model::Enforce;
use crate::policy::resolve::{create_dirs, ServerCommand};
use crate::policy::values::{Count, Cpus, DurationText, EnvName, Size, Val};
use crate::policy::vars::{PathPattern, Template};
use crate::policy::{load_layers, merge, EffectivePolicy, Origin, Policy, Resolved, Vars};
use crate::sandbox::{Isolation, Layer, NetworkMode, SandboxConfig};

const LAYERS: &str =
    "landlock, landlock-network, landlock-scope, seccomp, limits, capabilities, all";

/// The policy flags, boxed: they are many, and `RunArgs` sits in an enum with small variants.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub flags: Box<PolicyFlags>,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyFlags {
    /// Policy file (TOML, see policies/README.md), layered over the profile.
    #[arg(long, value_name = "FILE", value_parser = super::user_path::parse)]
    pub policy: Option<PathBuf>,

    /// Shipped profile to start from (`mcp-guard policy list`); without one, and unless the
    /// policy file `extends` something, `default` applies.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Let the server read PATH (repeatable; relative to the current directory; a leading `~/`
    /// is your home, also where no shell expands it, as in a host config's JSON).
    #[arg(long = "allow-read", value_name = "PATH", value_parser = parse_path)]
    pub allow_read: Vec<PathPattern>,

    /// Let the server read and change PATH (repeatable).
    #[arg(long = "allow-write", value_name = "PATH", value_parser = parse_path)]
    pub allow_write: Vec<PathPattern>,

    /// Let the server execute PATH (repeatable).
    #[arg(long = "allow-exec", value_name = "PATH", value_parser = parse_path)]
    pub allow_exec: Vec<PathPattern>,

    /// Weak, for old setups: TCP ports the server may connect to on ANY host (443),
    /// `bind:PORT` to listen, `hosts` / `open` / `off` for the mode. Prefer --allow-host.
    /// Comma-separated or repeated.
    #[arg(long = "allow-net", value_name = "PORTS", value_delimiter = ',', value_parser = parse_net)]
    pub allow_net: Vec<NetFlag>,

    /// Let the server reach HOST through the guard's egress proxy, and nothing else
    /// (repeatable): `api.github.com`, `*.githubusercontent.com`, `registry.npmjs.org:443`,
    /// `10.20.0.0/16:5432`, `[::1]:8080`, `host:80,443`. Without a port: 443 and 80.
    #[arg(long = "allow-host", value_name = "HOST[:PORTS]")]
    pub allow_host: Vec<String>,

    /// How the egress proxy is made the server's only way out: `namespace` (a private
    /// network namespace; needs unprivileged user namespaces) or `broker` (landlock and a
    /// seccomp broker that connects every socket itself). [default: the strongest available]
    #[arg(long = "network-isolation", value_name = "TIER", value_parser = parse_isolation)]
    pub network_isolation: Option<Isolation>,

    /// Memory limit (e.g. 512MiB, 2GiB, unlimited).
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| Size::parse(s))]
    pub memory: Option<Size>,

    /// CPU bandwidth in cores (e.g. 0.5, 2).
    #[arg(long, value_name = "CORES", value_parser = |s: &str| Cpus::parse(s))]
    pub cpus: Option<Cpus>,

    /// Most processes and threads the server may have.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub pids: Option<Count>,

    /// Stop the server after this long (wall clock, e.g. 30m, 8h).
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| DurationText::parse(s))]
    pub timeout: Option<DurationText>,

    /// Pass NAME from this environment, or set NAME=VALUE (repeatable). The value (8 characters
    /// or more) is redacted from the server's messages and the audit log. A value
    /// `keyring:SERVICE/ACCOUNT` is the secret `mcp-guard secret set` stored (also when passed).
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    pub env: Vec<(EnvName, Option<String>)>,

    /// Refuse to start unless these layers are enforced (comma-separated): landlock,
    /// landlock-network, landlock-scope, seccomp, limits, capabilities, or all.
    #[arg(long, value_name = "LAYERS", value_delimiter = ',', value_parser = parse_layer)]
    pub require: Vec<LayerFlag>,

    /// Refuse the server's messages that do not conform to the MCP schema (the host gets an
    /// error in place of a refused result) instead of forwarding and recording them.
    #[arg(long)]
    pub strict_validation: bool,

    /// Forward the server's messages that do not conform to the MCP schema (recorded), even
    /// under a profile that refuses them: `scan` runs servers so, to report every fault.
    #[arg(long, hide = true, conflicts_with = "strict_validation")]
    pub lenient_validation: bool,
}

/// One `--allow-net` item.
#[derive(Debug, Clone, PartialEq)]
pub enum NetFlag {
    Connect(u16),
    Bind(u16),
    Mode(NetworkMode),
}

/// One `--require` item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerFlag {
    One(Layer),
    All,
}

impl PolicyArgs {
    /// The flags as the top policy layer; each value names its flag.
    pub fn flags_layer(&self) -> Policy {
        let f = &*self.flags;
        let flag = |name: &str| Some(Origin::Flag(name.to_owned()));
        let vals = |v: &[PathPattern], name: &str| {
            v.iter().map(|p| Val::new(p.clone(), flag(name))).collect()
        };
        let mut p = Policy::default();
        p.filesystem.read = vals(&f.allow_read, "--allow-read");
        p.filesystem.write = vals(&f.allow_write, "--allow-write");
        p.filesystem.exec = vals(&f.allow_exec, "--allow-exec");
        for item in &f.allow_net {
            let net = &mut p.network;
            match item {
                NetFlag::Mode(m) => net.mode = Some(Val::new(*m, flag("--allow-net"))),
                NetFlag::Connect(port) => net.connect.push(Val::new(*port, flag("--allow-net"))),
                NetFlag::Bind(port) => net.bind.push(Val::new(*port, flag("--allow-net"))),
            }
            if matches!(item, NetFlag::Connect(_) | NetFlag::Bind(_)) && net.mode.is_none() {
                net.mode = Some(Val::new(NetworkMode::Ports, flag("--allow-net")));
            }
        }
        for host in &f.allow_host {
            let net = &mut p.network;
            net.allow.push(Val::new(host.clone(), flag("--allow-host")));
            if net.mode.is_none() {
                net.mode = Some(Val::new(NetworkMode::Hosts, flag("--allow-host")));
            }
        }
        if let Some(tier) = f.network_isolation {
            p.network.isolation = Some(Val::new(tier, flag("--network-isolation")));
        }
        p.limits.memory = f.memory.clone().map(|v| Val::new(v, flag("--memory")));
        p.limits.cpus = f.cpus.map(|v| Val::new(v, flag("--cpus")));
        p.limits.pids = f.pids.map(|v| Val::new(v, flag("--pids")));
        p.limits.wall_clock = f.timeout.clone().map(|v| Val::new(v, flag("--timeout")));
        for (name, value) in &f.env {
            match value {
                None => p.env.pass.push(Val::new(name.clone(), flag("--env"))),
                Some(v) => {
                    p.env.set.insert(
                        name.0.clone(),
                        Val::new(Template::literal(v), flag("--env")),
                    );
                }
            }
        }
        if f.strict_validation {
            p.validation.strict = Some(Val::new(true, flag("--strict-validation")));
        }
        if f.lenient_validation {
            p.validation.strict = Some(Val::new(false, flag("--lenient-validation")));
        }
        for item in &f.require {
            match item {
                LayerFlag::All => p.enforce = Some(Val::new(Enforce::Required, flag("--require"))),
                LayerFlag::One(l) => p.require.push(Val::new(*l, flag("--require"))),
            }
        }
        p
    }

    /// The values `--env` gives the server (set, or passed through from this environment):
    /// secrets more often than not, so redacted wherever they appear.
    pub fn env_secrets(&self) -> KnownSecrets {
        let mut secrets = KnownSecrets::default();
        for (name, value) in &self.flags.env {
            let passed = || std::env::var(&name.0).ok();
            // A `keyring:` reference is no secret: `run` adds the value it names once resolved.
            let value = value.clone().or_else(passed);
            if let Some(value) = value.filter(|v| !v.starts_with(crate::secrets::PREFIX)) {
                secrets.add_env(&name.0, &value);
            }
        }
        secrets
    }

    /// Every layer merged: built-in ← profile ← policy file ← these flags.
    pub fn effective(&self) -> anyhow::Result<EffectivePolicy> {
        check_allow_net(&self.flags.allow_net).map_err(anyhow::Error::msg)?;
        let mut layers = load_layers(self.flags.profile.as_deref(), self.flags.policy.as_deref())?;
        layers.push((Origin::Flags, self.flags_layer()));
        Ok(merge(layers))
    }

    /// The whole resolved policy for launching `command`: refuses a command `[launch]` does
    /// not allow, fills `${SERVER_DIR}` and `arg_paths`, creates `[filesystem] create`
    /// directories and logs the warnings. `run` should call this.
    pub fn resolve_for_launch(&self, command: &[OsString]) -> anyhow::Result<Resolved> {
        Self::resolve_effective_for_launch(&self.effective()?, command)
    }

    /// [`Self::resolve_for_launch`] for a policy already merged (`run` merges it once and
    /// hands it to the sandbox, the firewall and the audit).
    pub fn resolve_effective_for_launch(
        eff: &EffectivePolicy,
        command: &[OsString],
    ) -> anyhow::Result<Resolved> {
        let vars = Vars::from_env(None);
        let command = ServerCommand::new(command);
        let mut resolved = eff.resolve(&vars, Some(&command))?;
        if !resolved.create_dirs.is_empty() {
            create_dirs(&resolved.create_dirs)
                .context("cannot create the policy's [filesystem] create directories")?;
            // Shipped grants on paths that do not exist are dropped: resolve again so that
            // the ones in the new directories (node's `~/.npm/_npx` on npx's first run) stay.
            resolved = eff.resolve(&vars, Some(&command))?;
        }
        for warning in &resolved.warnings {
            tracing::warn!("policy: {warning}");
        }
        Ok(resolved)
    }

    /// The sandbox configuration these flags resolve to, without a server command (so no
    /// `${SERVER_DIR}`, `arg_paths` or launch check: prefer [`Self::resolve_for_launch`]).
    pub fn resolve_sandbox_config(&self) -> anyhow::Result<SandboxConfig> {
        Ok(self
            .effective()?
            .resolve(&Vars::from_env(None), None)?
            .sandbox)
    }
}

fn parse_path(text: &str) -> Result<PathPattern, String> {
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    PathPattern::from_flag(text, &cwd)
}

fn parse_net(text: &str) -> Result<NetFlag, String> {
    let port = |s: &str| {
        s.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            format!("`{text}` is not a port; write e.g. 443, bind:8080, open or off")
        })
    };
    match text {
        "open" => Ok(NetFlag::Mode(NetworkMode::Open)),
        "hosts" => Ok(NetFlag::Mode(NetworkMode::Hosts)),
        "off" => Ok(NetFlag::Mode(NetworkMode::Off)),
        _ => match text.strip_prefix("bind:") {
            Some(p) => port(p).map(NetFlag::Bind),
            None => port(text).map(NetFlag::Connect),
        },
    }
}

/// `--allow-net` items that contradict each other (`off,443`): refused here, or `policy show`
/// would print a policy that `policy check` refuses.
fn check_allow_net(items: &[NetFlag]) -> Result<(), String> {
    let word = |m: &NetworkMode| match m {
        NetworkMode::Off => "off",
        NetworkMode::Open => "open",
        NetworkMode::Hosts => "hosts",
        NetworkMode::Ports => "ports",
    };
    let modes: Vec<&str> = items
        .iter()
        .filter_map(|i| match i {
            NetFlag::Mode(m) => Some(word(m)),
            _ => None,
        })
        .collect();
    let ports: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            NetFlag::Connect(p) => Some(p.to_string()),
            NetFlag::Bind(p) => Some(format!("bind:{p}")),
            NetFlag::Mode(_) => None,
        })
        .collect();
    if let [first, second, ..] = modes[..] {
        if first != second {
            return Err(format!(
                "--allow-net {first},{second}: a server has one network mode; write one of them"
            ));
        }
    }
    match modes.first() {
        Some(&mode @ ("off" | "open")) if !ports.is_empty() => Err(format!(
            "--allow-net {mode} with ports {}: `{mode}` ignores ports; write `--allow-net {}` to \
             allow only those ports, or `--allow-net {mode}` alone",
            ports.join(","),
            ports.join(",")
        )),
        _ => Ok(()),
    }
}

fn parse_isolation(text: &str) -> Result<Isolation, String> {
    match text {
        "namespace" => Ok(Isolation::Namespace),
        "broker" => Ok(Isolation::Broker),
        _ => Err(format!("`{text}` is not a tier; write namespace or broker")),
    }
}

fn parse_count(text: &str) -> Result<Count, String> {
    if text == "unlimited" {
        return Ok(Count(None));
    }
    text.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| Count(Some(n)))
        .ok_or_else(|| format!("`{text}` is not a positive number; write e.g. 64 or unlimited"))
}

fn parse_env(text: &str) -> Result<(EnvName, Option<String>), String> {
    match text.split_once('=') {
        Some((name, value)) => Ok((EnvName::parse(name)?, Some(value.to_owned()))),
        None => Ok((EnvName::parse(text)?, None)),
    }
}

fn parse_layer(text: &str) -> Result<LayerFlag, String> {
    let layer = match text {
        "all" => return Ok(LayerFlag::All),
        "landlock" => Layer::Landlock,
        "landlock-network" => Layer::LandlockNetwork,
        "landlock-scope" => Layer::LandlockScope,
        "seccomp" => Layer::Seccomp,
        "limits" => Layer::Limits,
        "capabilities" => Layer::Capabilities,
        _ => return Err(format!("`{text}` is not a layer; write one of {LAYERS}")),
    };
    Ok(LayerFlag::One(layer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        policy: PolicyArgs,
    }

    fn args(argv: &[&str]) -> PolicyArgs {
        Cli::try_parse_from(std::iter::once("t").chain(argv.iter().copied()))
            .unwrap()
            .policy
    }

    #[test]
    fn flags_layer_over_profile() {
        let a = args(&[
            "--profile",
            "strict",
            "--allow-read",
            "/data",
            "--allow-net",
            "443,bind:8080",
            "--pids",
            "9",
            "--strict-validation",
        ]);
        let eff = a.effective().unwrap();
        let r = eff
            .resolve(&Vars::from_pairs(&[("HOME", "/h"), ("CWD", "/w")]), None)
            .unwrap();
        assert!(r.sandbox.fs.read.contains(&PathBuf::from("/data")));
        assert_eq!(r.sandbox.network.mode, NetworkMode::Ports);
        assert_eq!(
            (
                r.sandbox.network.connect.clone(),
                r.sandbox.network.bind.clone()
            ),
            (vec![443], vec![8080])
        );
        assert_eq!(r.sandbox.limits.pids, Some(9));
        assert_eq!(
            eff.policy.limits.pids.as_ref().unwrap().origin_label(),
            "flag --pids"
        );
        let strict = eff.policy.validation.strict.as_ref().unwrap();
        assert!(strict.value && strict.origin_label() == "flag --strict-validation");
    }

    #[test]
    fn flags_env_and_require() {
        let a = args(&[
            "--env",
            "TOKEN=abc",
            "--env",
            "LANG",
            "--require",
            "seccomp,landlock",
        ]);
        let r = a
            .effective()
            .unwrap()
            .resolve(&Vars::default(), None)
            .unwrap();
        assert_eq!(
            r.sandbox.env.set.get("TOKEN").map(String::as_str),
            Some("abc")
        );
        assert!(r.sandbox.env.pass.contains(&"LANG".to_owned()));
        assert!(r.sandbox.require.contains(&Layer::Seccomp));
    }

    #[test]
    fn env_values_long_enough_are_secrets() {
        let a = args(&[
            "--env",
            "API_TOKEN=tok-12345678",
            "--env",
            "PORT=8080",
            "--env",
            "MCPG_UNIT_UNSET_VARIABLE",
        ]);
        let secrets = a.env_secrets();
        assert_eq!(secrets.names(), ["API_TOKEN"]);
    }

    #[test]
    fn lenient_validation_turns_strict_off() {
        let lenient = args(&["--profile", "strict", "--lenient-validation"]);
        let strict = lenient
            .effective()
            .unwrap()
            .policy
            .validation
            .strict
            .unwrap();
        assert!(!strict.value && strict.origin_label() == "flag --lenient-validation");
    }

    #[test]
    fn flags_refuse_bad_values() {
        for bad in [
            &["--memory", "lots"][..],
            &["--allow-net", "http"],
            &["--require", "apparmor"],
            &["--env", "1X=2"],
            &["--pids", "0"],
        ] {
            let err = Cli::try_parse_from(std::iter::once("t").chain(bad.iter().copied()))
                .err()
                .map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains("write")),
                "{bad:?}: {err:?}"
            );
        }
    }
}
