//! `mcp-guard pin`: record what a server offers; `pin diff` shows what changed since; `pin
//! status` / `pin diff SERVER` / `pin approve` manage the pins taken on first use; and the pin
//! stage `run` gets from `[pin]`, `--pin` and `--no-pin`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::run::RunArgs;
use crate::client::Launch;
use crate::pin::collect::snapshot;
use crate::pin::diff::{diff, render};
use crate::pin::identity::{identify, ServerId};
use crate::pin::lockfile::PendingReason;
use crate::pin::{store, Kind, Lockfile, PinGuard};
use crate::policy::model::{InjectionMode, PinMode};
use crate::policy::EffectivePolicy;
use crate::shell;

const DEFAULT_FILE: &str = "mcp-guard.pin.json";

const PIN_AFTER_HELP: &str = "\
Trust on first use (the default for `mcp-guard run`): the first session with a server pins
what the host is shown in $XDG_STATE_HOME/mcp-guard/pins/<id>.json. Anything new or changed
later, and anything whose text looks like prompt injection, is hidden and refused until
approved:
  mcp-guard pin status                      # every pinned server and what awaits approval
  mcp-guard pin diff 3f2a                   # what awaits approval, against the pin
  mcp-guard pin approve 3f2a exfiltrate     # approve one item (none named: all of them)
  mcp-guard pin approve -- npx -y @modelcontextprotocol/server-everything
SERVER is the id `pin status` shows or a unique prefix of it; or give the server command
after `--` instead.

An explicit lockfile instead (`run --pin FILE`):
  mcp-guard pin -o everything.pin.json -- npx -y @modelcontextprotocol/server-everything
  mcp-guard pin diff everything.pin.json -- npx -y @modelcontextprotocol/server-everything
  mcp-guard run --pin everything.pin.json -- npx -y @modelcontextprotocol/server-everything

The server is started under `mcp-guard run` (sandboxed, unpinned) to take the snapshot.
`pin diff` exits 1 when something changed or awaits approval.";

#[derive(Debug, clap::Args)]
#[command(after_help = PIN_AFTER_HELP, args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PinArgs {
    #[command(subcommand)]
    pub action: Option<PinAction>,

    /// The lockfile to write.
    #[arg(short, long, value_name = "FILE", default_value = DEFAULT_FILE, value_parser = super::user_path::parse)]
    pub output: PathBuf,

    /// Replace an existing lockfile (after showing what changed).
    #[arg(long)]
    pub update: bool,

    #[command(flatten)]
    pub launch: LaunchArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum PinAction {
    /// What awaits approval for a server pinned on first use (`pin diff SERVER`, or
    /// `pin diff -- COMMAND`); or, with a lockfile and a command, what the server offers now
    /// that differs from the lockfile (`pin diff FILE -- COMMAND`).
    Diff {
        /// A pinned server's id (or a unique prefix), or the lockfile written by `mcp-guard pin`.
        target: Option<String>,
        #[command(flatten)]
        options: LaunchOptions,
        /// The server command and its arguments.
        #[arg(last = true, value_name = "SERVER_CMD")]
        command: Vec<OsString>,
    },
    /// Every server pinned on first use: its id, command, what is pinned, what awaits approval.
    Status,
    /// Approve items awaiting approval (all of them when none is named; `instructions` names
    /// the server instructions).
    Approve {
        /// SERVER (an id or a unique prefix) then the items; only the items when the server
        /// command follows `--`.
        #[arg(value_name = "SERVER|ITEM")]
        words: Vec<String>,
        /// The server command, instead of its id.
        #[arg(last = true, value_name = "SERVER_CMD")]
        command: Vec<OsString>,
    },
}

/// How `pin` and `scan` start the server: through `mcp-guard run` with these options.
#[derive(Debug, Clone, clap::Args)]
pub struct LaunchArgs {
    #[command(flatten)]
    pub options: LaunchOptions,
    /// The server command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "SERVER_CMD")]
    pub command: Vec<OsString>,
}

/// The `mcp-guard run` options of [`LaunchArgs`].
#[derive(Debug, Clone, clap::Args)]
pub struct LaunchOptions {
    /// Policy file for `mcp-guard run`.
    #[arg(long, value_name = "FILE", value_parser = super::user_path::parse)]
    pub policy: Option<PathBuf>,
    /// Shipped profile for `mcp-guard run`.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Run the server without the sandbox.
    #[arg(long)]
    pub allow_unsandboxed: bool,
    /// How long to wait for each answer.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = super::run::parse_duration)]
    pub answer_timeout: Duration,
}

impl LaunchArgs {
    /// The `mcp-guard run` invocation, plus any extra guard arguments.
    pub fn launch(&self, extra: &[OsString]) -> Launch {
        let options = &self.options;
        let mut guard_args: Vec<OsString> = Vec::new();
        if let Some(p) = &options.policy {
            guard_args.extend(["--policy".into(), p.clone().into_os_string()]);
        }
        if let Some(p) = &options.profile {
            guard_args.extend(["--profile".into(), p.into()]);
        }
        if options.allow_unsandboxed {
            guard_args.push("--allow-unsandboxed".into());
        }
        // `pin` and `scan` must see everything the server offers, not what a pin lets through.
        guard_args.push("--no-pin".into());
        guard_args.extend(extra.iter().cloned());
        Launch {
            guard_args,
            command: self.command.clone(),
            timeout: options.answer_timeout,
        }
    }
}

pub fn execute(args: PinArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Some(PinAction::Diff {
            target: Some(file),
            options,
            command,
        }) if !command.is_empty() => pin_diff(Path::new(&file), &LaunchArgs { options, command }),
        Some(PinAction::Diff {
            target, command, ..
        }) => pending_diff(target.as_deref(), &command),
        Some(PinAction::Status) => status(),
        Some(PinAction::Approve { words, command }) => {
            let (server, items) = match (command.is_empty(), words.split_first()) {
                (false, _) => (None, words.as_slice()),
                (true, Some((server, items))) => (Some(server.as_str()), items),
                (true, None) => anyhow::bail!(
                    "name the server: `mcp-guard pin approve SERVER [ITEM…]` (SERVER as \
                     `mcp-guard pin status` shows it) or `mcp-guard pin approve [ITEM…] -- COMMAND…`"
                ),
            };
            approve(server, items, &command)
        }
        None => pin(&args.output, args.update, &args.launch),
    }
}

/// The pin file of `SERVER` (an id or prefix) or of the server `command` launches.
fn find_pin(server: Option<&str>, command: &[OsString]) -> anyhow::Result<(String, PathBuf)> {
    let dir = store::pins_dir()?;
    let id = match server {
        Some(prefix) => store::resolve(&dir, prefix)?,
        None if command.is_empty() => anyhow::bail!(
            "name the server: its id as `mcp-guard pin status` shows it, or its command after `--`"
        ),
        None => {
            let server = identify(command)?;
            let path = store::pin_path(&dir, &server.id);
            if !path.exists() {
                anyhow::bail!(
                    "`{}` has not been pinned yet (id {}): it is pinned the first time it runs \
                     under `mcp-guard run`",
                    shell::join(&server.command),
                    server.id
                );
            }
            server.id
        }
    };
    let path = store::pin_path(&dir, &id);
    Ok((id, path))
}

/// `server-everything 2.0.0`.
fn server_label(lock: &Lockfile) -> String {
    format!(
        "{} {}",
        lock.server.name.as_deref().unwrap_or("(unnamed server)"),
        lock.server.version.as_deref().unwrap_or("")
    )
}

/// `16 tools`, one per kind `show` picks.
fn counts(lock: &Lockfile, show: impl Fn(Kind) -> bool) -> Vec<String> {
    Kind::ALL
        .into_iter()
        .filter(|k| show(*k))
        .map(|k| format!("{} {}s", lock.count(k), k.noun()))
        .collect()
}

fn status() -> anyhow::Result<ExitCode> {
    let dir = store::pins_dir()?;
    let ids = store::list(&dir)?;
    if ids.is_empty() {
        super::output::println(&format!(
            "no server pinned yet in {} (a server is pinned the first time it runs under \
             `mcp-guard run`)",
            dir.display()
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut waiting = false;
    for id in ids {
        let lock = match Lockfile::load(&store::pin_path(&dir, &id)) {
            Ok(lock) => lock,
            Err(e) => {
                super::output::println(&format!("{id}  (unreadable: {e})"))?;
                continue;
            }
        };
        super::output::println(&format!("{id}  {}", shell::join(&lock.command)))?;
        // Only the kinds the host has listed are pinned (an unlisted kind pins on first use).
        let counts = counts(&lock, |k| lock.items.contains_key(&k));
        super::output::println(&format!(
            "    {}: {}{}",
            server_label(&lock),
            if counts.is_empty() {
                "nothing listed yet".to_owned()
            } else {
                counts.join(", ")
            },
            if lock.instructions.is_some() {
                ", instructions"
            } else {
                ""
            }
        ))?;
        let pending = pending_lines(&lock);
        if !pending.is_empty() {
            waiting = true;
            super::output::println(&format!("    awaiting approval: {}", pending.join(", ")))?;
        }
    }
    if waiting {
        super::output::println(
            "review with `mcp-guard pin diff ID`, approve with `mcp-guard pin approve ID [ITEM…]`",
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `tool `x` (new)`, `tool `y` (quarantined: hidden-tag)`, one per item awaiting approval.
pub(super) fn pending_lines(lock: &Lockfile) -> Vec<String> {
    let describe = |what: String, p: &crate::pin::lockfile::PendingItem| {
        if p.reason == PendingReason::Shadowing {
            format!("{what} (shadowing: it {})", p.findings.join("; it "))
        } else if p.findings.is_empty() {
            format!("{what} ({})", p.reason.as_str())
        } else {
            format!(
                "{what} ({}; looks like prompt injection: {})",
                p.reason.as_str(),
                p.findings.join(", ")
            )
        }
    };
    let mut out: Vec<String> = lock
        .pending
        .iter()
        .flat_map(|(kind, items)| {
            items
                .iter()
                .map(move |(key, p)| describe(format!("{} `{key}`", kind.noun()), p))
        })
        .collect();
    if let Some(p) = &lock.pending_instructions {
        out.push(describe(
            "the server instructions (`instructions`)".into(),
            p,
        ));
    }
    out
}

fn pending_diff(server: Option<&str>, command: &[OsString]) -> anyhow::Result<ExitCode> {
    let (id, path) = find_pin(server, command)?;
    let lock = Lockfile::load(&path)?;
    let mut now = lock.clone();
    for (kind, items) in &lock.pending {
        for (key, p) in items {
            now.items.entry(*kind).or_default().insert(
                key.clone(),
                crate::pin::lockfile::PinnedItem {
                    digest: p.digest.clone(),
                    item: p.item.clone(),
                },
            );
        }
    }
    if let Some(p) = &lock.pending_instructions {
        now.instructions = p.item.as_str().map(str::to_owned);
    }
    if lock.pending_count() == 0 {
        super::output::println(&format!("{id}: nothing awaits approval"))?;
        return Ok(ExitCode::SUCCESS);
    }
    super::output::print(&render(&diff(&lock, &now)))?;
    super::output::println(&format!(
        "awaiting approval: {}",
        pending_lines(&lock).join(", ")
    ))?;
    super::output::println(&format!(
        "approve with: mcp-guard pin approve {id} [ITEM…]   (no ITEM: all of them)"
    ))?;
    Ok(ExitCode::from(1))
}

fn approve(
    server: Option<&str>,
    items: &[String],
    command: &[OsString],
) -> anyhow::Result<ExitCode> {
    let (id, path) = find_pin(server, command)?;
    let mut approved = Vec::new();
    let mut unmatched = Vec::new();
    let lock = store::update(&path, |lock| {
        (approved, unmatched) = crate::pin::record::approve(lock, items);
        !approved.is_empty()
    })?;
    if !unmatched.is_empty() {
        let waiting = pending_lines(&lock);
        anyhow::bail!(
            "nothing named {} awaits approval for {id}{}",
            unmatched
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if waiting.is_empty() {
                " (nothing does)".to_owned()
            } else {
                format!("; awaiting approval: {}", waiting.join(", "))
            }
        );
    }
    if approved.is_empty() {
        super::output::println(&format!("{id}: nothing awaits approval"))?;
    } else {
        super::output::println(&format!("{id}: approved {}", approved.join(", ")))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The pin stage `run` asked for: `--pin FILE`, trust on first use, or none.
pub struct RunPin {
    pub path: PathBuf,
    source: RunPinSource,
}

enum RunPinSource {
    File(Lockfile),
    Tofu {
        lock: Option<Lockfile>,
        server: ServerId,
        quarantine: bool,
    },
}

impl RunPin {
    pub fn into_guard(self, command: &[String], session: &str) -> PinGuard {
        match self.source {
            RunPinSource::File(lock) => {
                PinGuard::file(lock, &self.path.display().to_string(), command, session)
            }
            RunPinSource::Tofu {
                lock,
                server,
                quarantine,
            } => PinGuard::tofu(lock, self.path, server, quarantine, session),
        }
    }
}

/// `--no-pin` and `[pin] mode = "off"` turn pinning off; `--pin FILE` pins to FILE; otherwise
/// trust on first use.
pub fn for_run(args: &RunArgs, eff: &EffectivePolicy) -> anyhow::Result<Option<RunPin>> {
    let section = &eff.policy.pin;
    let mode = section.mode.as_ref().map(|m| m.value).unwrap_or_default();
    if args.no_pin {
        return Ok(None);
    }
    if let Some(path) = &args.pin {
        return Ok(Some(RunPin {
            path: path.clone(),
            source: RunPinSource::File(Lockfile::load(path)?),
        }));
    }
    match mode {
        PinMode::Off => Ok(None),
        PinMode::File => anyhow::bail!(
            "the policy says `[pin] mode = \"file\"` but no lockfile was given: pass --pin FILE \
             (written by `mcp-guard pin -o FILE -- COMMAND`), or use mode \"tofu\""
        ),
        PinMode::Tofu => {
            let server = identify(&args.command)?;
            let path = store::pin_path(&store::pins_dir()?, &server.id);
            let quarantine = section
                .injection
                .as_ref()
                .map(|m| m.value)
                .unwrap_or_default()
                == InjectionMode::Quarantine;
            Ok(Some(RunPin {
                source: RunPinSource::Tofu {
                    lock: store::load(&path)?,
                    server,
                    quarantine,
                },
                path,
            }))
        }
    }
}

fn pin(output: &Path, update: bool, launch: &LaunchArgs) -> anyhow::Result<ExitCode> {
    let old = if output.exists() {
        if !update {
            anyhow::bail!(
                "{} exists; compare with `mcp-guard pin diff {} -- …` and pass --update to re-pin",
                output.display(),
                output.display()
            );
        }
        Some(Lockfile::load(output)?)
    } else {
        None
    };
    let lock = snapshot(&launch.launch(&["--no-audit".into()]))
        .context("cannot take a snapshot of the server")?;
    if let Some(old) = &old {
        super::output::print(&render(&diff(old, &lock)))?;
    }
    lock.save(output)?;
    super::output::println(&format!(
        "pinned {} ({}) in {}",
        server_label(&lock),
        counts(&lock, |_| true).join(", "),
        output.display()
    ))?;
    super::output::println(&format!(
        "use it with: mcp-guard run --pin {} -- {}",
        shell::quote_word(&output.display().to_string()),
        shell::join(&lock.command)
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn pin_diff(file: &Path, launch: &LaunchArgs) -> anyhow::Result<ExitCode> {
    let old = Lockfile::load(file)?;
    let now = snapshot(&launch.launch(&["--no-audit".into()]))
        .context("cannot take a snapshot of the server")?;
    let changes = diff(&old, &now);
    super::output::print(&render(&changes))?;
    if changes.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    super::output::println(&format!(
        "re-approve with: mcp-guard pin --update -o {} -- {}",
        shell::quote_word(&file.display().to_string()),
        shell::join(&now.command)
    ))?;
    Ok(ExitCode::from(1))
}
