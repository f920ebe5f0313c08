//! `mcp-guard check`: what this kernel offers and what `run` would enforce.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::sandbox::probe::{self, Probe};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Print the findings as one JSON object (stable field names, for scripts and CI).
    #[arg(long)]
    pub json: bool,
}

/// Exit status: 0 when `run` would enforce every layer by default, 1 when some layer would be
/// missing (the text says which and why).
pub fn execute(args: CheckArgs) -> anyhow::Result<ExitCode> {
    // What no policy means: the built-in layer and the `default` profile.
    let config = super::policy_args::PolicyArgs::default().resolve_sandbox_config()?;
    let probe = probe::probe(&config);
    let text = if args.json {
        serde_json::to_string_pretty(&probe)? + "\n"
    } else {
        render(&probe)
    };
    super::output::print(&text)?;
    let complete = probe.default_run.layers.iter().all(|l| l.enforced);
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn render(p: &Probe) -> String {
    let mut out = String::new();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(
        out,
        "System: {} {} {}",
        p.os,
        p.arch,
        p.kernel.as_deref().unwrap_or("(kernel version unknown)")
    );
    let _ = writeln!(out, "\nKernel offers:");
    let landlock = match (p.landlock.abi, &p.landlock.error) {
        (Some(abi), _) => format!("ABI {abi}"),
        (None, Some(e)) => format!("no ({e})"),
        (None, None) => "no".into(),
    };
    let _ = writeln!(out, "  landlock           {landlock}");
    let seccomp = if p.seccomp.filter_available {
        format!("filters, actions: {}", p.seccomp.actions.join(" "))
    } else {
        format!(
            "no ({})",
            p.seccomp.error.as_deref().unwrap_or("unavailable")
        )
    };
    let _ = writeln!(out, "  seccomp            {seccomp}");
    let _ = writeln!(out, "  x32 ABI            {}", p.seccomp.x32_abi);
    let v2 = match &p.cgroups.v2_controllers {
        None => "not mounted".to_owned(),
        Some(c) if c.is_empty() => "mounted, no controllers for our cgroup".to_owned(),
        Some(c) => format!("controllers: {}", c.join(" ")),
    };
    let _ = writeln!(out, "  cgroup v2          {v2}");
    let v1 = if p.cgroups.v1_controllers.is_empty() {
        "none mounted".to_owned()
    } else {
        format!("controllers: {}", p.cgroups.v1_controllers.join(" "))
    };
    let _ = writeln!(out, "  cgroup v1          {v1}");
    let usable = match (&p.cgroups.usable, &p.cgroups.error) {
        (Some(u), _) => format!("yes: {u}"),
        (None, Some(e)) => format!("no ({e})"),
        (None, None) => "no".into(),
    };
    let _ = writeln!(out, "  server cgroup      {usable}");
    let userns = match (
        p.user_namespaces.unprivileged_allowed,
        p.user_namespaces.max,
    ) {
        (Some(allowed), Some(max)) => format!("max {max}, unprivileged: {}", yes_no(allowed)),
        (Some(allowed), None) => format!("unprivileged: {}", yes_no(allowed)),
        _ => "unknown".into(),
    };
    let _ = writeln!(
        out,
        "  user namespaces    {userns} (used for the egress proxy's strongest tier)"
    );
    let egress = match (
        p.egress.tier,
        &p.egress.namespace_error,
        &p.egress.broker_error,
    ) {
        (Some(crate::sandbox::Isolation::Namespace), _, _) => {
            "namespace: the server gets a private network namespace with only the guard's \
             proxy in it"
                .to_owned()
        }
        (Some(crate::sandbox::Isolation::Broker), Some(ns), _) => format!(
            "broker: landlock and a seccomp broker hold the proxy as the only way out \
             (no private namespace: {ns})"
        ),
        (_, ns, broker) => format!(
            "NONE: `hosts` mode refuses to start here (namespace: {}; broker: {})",
            ns.as_deref().unwrap_or("?"),
            broker.as_deref().unwrap_or("?")
        ),
    };
    let _ = writeln!(out, "  egress (hosts)     {egress}");
    let who = if p.identity.root {
        format!("root (uid {}, euid {})", p.identity.uid, p.identity.euid)
    } else {
        format!("uid {}", p.identity.uid)
    };
    let _ = writeln!(out, "  running as         {who}");
    let caps = if p.identity.capabilities.is_empty() {
        "none".to_owned()
    } else if p.identity.capabilities.len() > 8 {
        let missing_resource = !p
            .identity
            .capabilities
            .iter()
            .any(|c| c == "CAP_SYS_RESOURCE");
        format!(
            "{} effective{}",
            p.identity.capabilities.len(),
            if missing_resource {
                " (without CAP_SYS_RESOURCE)"
            } else {
                ""
            }
        )
    } else {
        p.identity.capabilities.join(" ")
    };
    let _ = writeln!(out, "  capabilities       {caps}");
    let settings: Vec<String> = p
        .kernel_settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(out, "  kernel settings    {}", settings.join(" "));

    let _ = writeln!(out, "\n`mcp-guard run` would enforce by default:");
    for layer in &p.default_run.layers {
        let mark = if layer.enforced { "yes" } else { "NO " };
        let name = serde_json::to_value(layer.layer)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(out, "  {mark} {name:<17} {}", layer.detail);
    }
    let _ = writeln!(out, "\nLimits:");
    for (name, value, mechanism) in &p.default_run.limits.limits {
        let label = if value.is_empty() {
            name.clone()
        } else {
            format!("{name} {value}")
        };
        let _ = writeln!(out, "  {label:<22} {mechanism}");
    }
    let missing: Vec<&str> = p
        .default_run
        .layers
        .iter()
        .filter(|l| !l.enforced)
        .map(|l| match l.layer {
            crate::sandbox::Layer::Landlock => "landlock",
            crate::sandbox::Layer::LandlockNetwork => "landlock-network",
            crate::sandbox::Layer::LandlockScope => "landlock-scope",
            crate::sandbox::Layer::Seccomp => "seccomp",
            crate::sandbox::Layer::Limits => "limits",
            crate::sandbox::Layer::Capabilities => "capabilities",
            crate::sandbox::Layer::ProtectedPaths => "protected-paths",
        })
        .collect();
    if missing.is_empty() {
        let _ = writeln!(out, "\nEvery layer is available here.");
    } else {
        let _ = writeln!(
            out,
            "\nNot available here: {}. `run` will say so on stderr; `--require` refuses to start instead.",
            missing.join(", ")
        );
    }
    out
}
