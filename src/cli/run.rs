//! `mcp-guard run -- SERVER_CMD [ARGS...]`: launch and relay.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::launch_failure::LaunchFailure;
use crate::relay::RelayOptions;
use crate::sandbox::SandboxError;

const RUN_AFTER_HELP: &str = "\
Examples:
  mcp-guard run -- node ./my-server.js          # secure default: no network, no user files
  mcp-guard run --profile everything -- npx -y @modelcontextprotocol/server-everything
  mcp-guard run --profile filesystem -- npx -y @modelcontextprotocol/server-filesystem ~/notes
  mcp-guard run --policy my-server.toml --request-timeout 5m -- uvx my-server
  mcp-guard run --allow-read ~/data --allow-host api.example.com --memory 512MiB -- python3 -m my_server
  mcp-guard run --profile node --allow-host api.github.com -- npx -y @modelcontextprotocol/server-github

`npx -y PKG` / `npm exec` / `pnpm dlx` / `bunx` / `uvx PKG` / `uv tool run` / `pipx run PKG` run
from mcp-guard's package store (pnpm, bun and pipx need not be installed): the
first start fetches the package under a sandbox (registry hosts only, writes only the store,
$XDG_CACHE_HOME/mcp-guard/store) and locks its version and content hash
($XDG_STATE_HOME/mcp-guard/packages.lock); later starts are offline, refuse a changed entry, and
keep the locked version until `mcp-guard update`.

In a host config (Claude Desktop, Cursor, VS Code), put `mcp-guard` as the command and
`run`, its options, `--`, then the original command and its arguments as the args.
`env NAME=VALUE… CMD` is looked through: CMD is launched and judged, with the variables.
A token need not sit in the host config: `mcp-guard secret set github/me` stores it in the OS
keychain and `--env GITHUB_TOKEN=keyring:github/me` gives it to the server (looked up by the
guard at launch; a missing one stops the launch and says how to store it).
With --allow-host (or a policy's `[network] allow`), the server reaches only those hosts,
through the guard's egress proxy; each connection is in the audit log with its tool call.
What the sandbox could not enforce on this kernel is said once on stderr; `--require` makes
that fatal. Decisions are logged as JSON lines to $XDG_STATE_HOME/mcp-guard/audit.jsonl
(`--audit-log`, `--no-audit`). Fleets: `[audit] otlp_endpoint = http://collector:4318` (or
the guard's own $OTEL_EXPORTER_OTLP_ENDPOINT) also sends them, and the counters, to an
OpenTelemetry collector over OTLP/HTTP; a collector that is down costs telemetry, never messages.

Trust on first use: the first session with a server pins the tools, prompts, resources and
instructions the host is shown ($XDG_STATE_HOME/mcp-guard/pins/); anything new or changed
later, or whose text looks like prompt injection, or a tool that shadows another server's
(its text names that server's tool, or it takes its name; the guards share
$XDG_STATE_HOME/mcp-guard/servers.json), is hidden and refused until `mcp-guard pin approve`
(`mcp-guard pin status` lists what waits; `--no-pin` turns it off).

Exit status: the server's own status (128+N when it died of signal N); 2 when mcp-guard itself
could not understand its arguments or policy (or the policy refuses the command); 127 when the
server command is not found, 126 when it exists but could not be started (the message says why
and what to do, and the host's pending `initialize` gets it as a JSON-RPC error).";

const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_MAX_MESSAGE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, clap::Args)]
#[command(after_help = RUN_AFTER_HELP)]
pub struct RunArgs {
    /// Answer a request with an error if the server has not replied in this long (progress
    /// notifications for the request restart the clock). Examples: 30s, 5m, 1h.
    /// [default: the policy's `[limits] request_timeout`, else 60s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,

    /// Largest JSON-RPC message accepted in either direction (e.g. 16MiB, 512KiB).
    /// [default: the policy's `[limits] max_message_bytes`, else 16MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_message_bytes: Option<u64>,

    /// After the host closes stdin, how long the server gets to exit before SIGTERM (and the
    /// same again before SIGKILL). A SIGTERM, SIGINT or SIGHUP to the guard ends it at once.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// After each message, keep polling for the next one this long instead of sleeping at
    /// once: on virtual machines waking an idle CPU costs tens of microseconds per hop, which
    /// the guard would add twice to every round trip. Costs at most this much CPU time per
    /// message. 0 turns it off; so does running on a single CPU (nothing to gain there).
    #[arg(long, value_name = "DURATION", default_value = "100us", value_parser = parse_duration)]
    pub busy_poll: Duration,

    #[command(flatten)]
    pub policy: super::policy_args::PolicyArgs,

    /// Run the server without any sandbox (required where the sandbox is not supported).
    #[arg(long)]
    pub allow_unsandboxed: bool,

    /// Write the audit log to PATH, or to stderr with `-`.
    /// [default: the policy's `[audit] path`, else $XDG_STATE_HOME/mcp-guard/audit.jsonl]
    #[arg(long, value_name = "PATH", conflicts_with = "no_audit", value_parser = super::user_path::parse)]
    pub audit_log: Option<std::path::PathBuf>,

    /// Write no audit log (and send no OpenTelemetry export: `[audit] otlp_endpoint`, else the
    /// guard's own $OTEL_EXPORTER_OTLP_ENDPOINT, names the collector that otherwise gets the
    /// events and counters).
    #[arg(long)]
    pub no_audit: bool,

    /// At exit, write the session's counters to FILE (Prometheus text format).
    #[arg(long, value_name = "FILE", value_parser = super::user_path::parse)]
    pub metrics_file: Option<std::path::PathBuf>,

    /// Hide and refuse tools, prompts and resources that are new or changed since
    /// `mcp-guard pin` recorded FILE (instead of the pin taken on first use).
    #[arg(long, value_name = "FILE", value_parser = super::user_path::parse, conflicts_with = "no_pin")]
    pub pin: Option<std::path::PathBuf>,

    /// Turn off pinning (trust on first use and the quarantine of items that look like
    /// prompt injection), like `[pin] mode = "off"`.
    #[arg(long)]
    pub no_pin: bool,

    /// The server command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "SERVER_CMD")]
    pub command: Vec<OsString>,
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (write e.g. 500ms, 30s, 5m)"))
}

pub fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<bytesize::ByteSize>()
        .map(|s| s.as_u64())
        .map_err(|e| format!("{e} (write e.g. 4096, 512KiB, 16MiB)"))
}

pub fn execute(args: RunArgs) -> anyhow::Result<ExitCode> {
    match launch_and_relay(args) {
        Err(e) => match e.downcast::<LaunchFailure>() {
            Ok(failure) => Ok(failure.report()),
            Err(e) => Err(e),
        },
        done => done,
    }
}

fn launch_and_relay(args: RunArgs) -> anyhow::Result<ExitCode> {
    if !cfg!(target_os = "linux") && !args.allow_unsandboxed {
        anyhow::bail!(
            "the sandbox is only available on Linux; pass --allow-unsandboxed to run the server \
             with the message firewall only"
        );
    }
    // `env A=B node server.js`: judge and confine node, with A=B in its environment.
    let env_launch = crate::launchers::look_through_env(&args.command)?;
    let command = env_launch
        .as_ref()
        .map_or_else(|| args.command.clone(), |l| l.command.clone());
    // `npx -y PKG` / `uvx PKG`: run the package from the guard's store (fetched under the
    // sandbox the first time, checked against the lock every time).
    let package = match crate::launchers::look_through_package(&command)? {
        Some(launch) => Some(crate::launchers::package::prepare(&launch).map_err(|e| {
            LaunchFailure::cannot_start(format!(
                "`{} {}`: {}",
                launch.launcher,
                launch.spec(),
                super::errors::describe(&e)
            ))
        })?),
        None => None,
    };
    let command = package.as_ref().map_or(command, |p| p.command.clone());
    // Merged once; the sandbox, the firewall and the audit all read this one policy.
    let effective = args.policy.effective()?;
    let resolved =
        super::policy_args::PolicyArgs::resolve_effective_for_launch(&effective, &command)?;
    let mut config = resolved.sandbox;
    config.disabled |= args.allow_unsandboxed;
    if let Some(launch) = &env_launch {
        apply_env_launch(&mut config.env, launch);
    }
    // `keyring:SERVICE/ACCOUNT` values: looked up here, outside the sandbox, before launch.
    crate::secrets::set_passed_references(&config.env.pass, &mut config.env.set, |name| {
        std::env::var(name).ok()
    });
    let from_keychain = crate::secrets::resolve_env(&mut config.env.set)
        .map_err(|e| LaunchFailure::cannot_start(super::errors::describe(&e)))?;
    if let Some(package) = &package {
        // The store entry: read-only and executable, nothing more.
        config.fs.read.push(package.entry.clone());
        config.fs.exec.push(package.entry.clone());
    }
    let mut plan = crate::sandbox::prepare(&config, &command).map_err(|e| match e {
        SandboxError::CommandNotFound { command, path } => {
            LaunchFailure::not_found(&command, &path)
        }
        other => LaunchFailure::cannot_start(other.to_string()),
    })?;
    let egress = crate::egress::launch::prepare(&mut plan)
        .map_err(|e| LaunchFailure::cannot_start(super::errors::describe(&e)))?;
    // Flags win over the policy, the policy over the built-in defaults.
    let max_message_bytes = args
        .max_message_bytes
        .or(resolved.relay.max_message_bytes)
        .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
    let options = RelayOptions {
        request_timeout: args
            .request_timeout
            .or(resolved.relay.request_timeout)
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT),
        max_message_bytes: usize::try_from(max_message_bytes).unwrap_or(usize::MAX),
        shutdown_grace: args.shutdown_grace,
        busy_poll: args.busy_poll,
    };
    // A content item can never be larger than its message: raising the message cap raises the
    // content caps with it.
    let defaults = crate::filter::Options::default();
    // What `--env` (or a looked-through `env NAME=VALUE`) gives the server stays in it.
    let mut secrets = args.policy.env_secrets();
    for (name, value) in env_launch.iter().flat_map(|l| &l.set) {
        secrets.add_env(name, value);
    }
    for name in &from_keychain.names {
        if let Some(value) = config.env.set.get(name) {
            secrets.add_env(name, value);
        }
    }
    let firewall_options = crate::filter::Options {
        max_text_bytes: defaults.max_text_bytes.max(options.max_message_bytes),
        max_blob_bytes: defaults.max_blob_bytes.max(options.max_message_bytes),
        secrets: secrets.clone(),
        server_label: server_label(&args.command),
        ..defaults
    };
    // The supervisor is forked without exec only from a single-threaded guard: the firewall's
    // schema warm-up thread starts after that fork.
    crate::deferred::hold();
    let firewall = crate::filter::Firewall::from_policy(&effective, firewall_options)
        .context("cannot build the message firewall from the policy")?;
    // Dropped after the relay: the last events and the counters are sent then.
    let _telemetry = super::audit::start_telemetry(&args, &effective, &command);
    let (audit, pin) = super::audit::open_for_run(&args, &effective, &secrets)?;
    let stages = crate::relay::Stages { firewall, pin };
    let status = crate::relay::run_guarded(plan, options, stages, audit, egress)?;
    Ok(ExitCode::from(status))
}

/// What `env` would have done to the environment, done by the guard instead.
fn apply_env_launch(env: &mut crate::sandbox::EnvRules, launch: &crate::launchers::EnvLaunch) {
    if launch.clear {
        env.pass.clear();
    }
    for name in &launch.unset {
        env.pass.retain(|n| n != name);
        env.set.remove(name);
    }
    for (name, value) in &launch.set {
        env.set.insert(name.clone(), value.clone());
    }
}

/// The server's command line as the user is shown it when asked to approve a call.
fn server_label(command: &[OsString]) -> String {
    let words: Vec<String> = command
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let label = words.join(" ");
    match label.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &label[..end]),
        None => label,
    }
}
