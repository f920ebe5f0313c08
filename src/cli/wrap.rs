//! `mcp-guard wrap [HOST|FILE]…` and `mcp-guard unwrap [HOST|FILE]…`: put every stdio server of
//! an MCP host's config behind the guard, or take them out again.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::hosts::{self, Dirs, EntryReport, Host, HostError, Outcome, Rewrite};

const WRAP_AFTER_HELP: &str = "\
Hosts and where their configs are looked for (user level, then the current directory):
  claude-desktop  ~/.config/Claude/claude_desktop_config.json
                  (macOS: ~/Library/Application Support/Claude/claude_desktop_config.json)
  claude-code     ~/.claude.json (mcpServers and projects.*.mcpServers), ./.mcp.json
  vscode          ~/.config/Code/User/mcp.json (macOS: ~/Library/Application Support/Code/User/mcp.json),
                  ./.vscode/mcp.json
  cursor          ~/.cursor/mcp.json, ./.cursor/mcp.json
  windsurf        ~/.codeium/windsurf/mcp_config.json
  gemini          ~/.gemini/settings.json, ./.gemini/settings.json
  codex           ~/.codex/config.toml ($CODEX_HOME)
With no HOST or FILE: every one of these that exists.

Each stdio entry {command, args, env} becomes
  command: /abs/path/to/mcp-guard
  args:    [run, --profile P, --env NAME…, --, COMMAND, ARGS…]
P is chosen from the command: server-filesystem, server-memory, server-everything,
mcp-server-git and mcp-server-time get their own profile, other npx/node launches `node`,
uvx/python `python`, anything else `default` (`mcp-guard policy list`). The entry's env values
stay where they are, in the host config; `--env NAME` passes each to the server. To take a
token out of the config: `mcp-guard secret set SERVICE/ACCOUNT`, then make the env value
\"keyring:SERVICE/ACCOUNT\" (the guard looks it up at launch; unwrapped, the server would get
that text instead). Entries
already under the guard are left alone (running wrap twice changes nothing); remote (url)
entries are listed as not wrapped. Only the `command` and `args` values change: comments,
order and indentation stay as they were.

Nothing is written without --write: wrap edits other programs' configs, so it first shows the
diff, as `git add -p` or a formatter's check mode would, and you run it again with --write
when it looks right. The first write keeps the untouched file as FILE.mcp-guard-backup
(owner-only). Restart the host afterwards; `mcp-guard status` then lists each server with its
profile, pin and last session.

Examples:
  mcp-guard wrap                         # show what would change in every config found
  mcp-guard wrap claude-desktop --write  # rewrite Claude Desktop's servers
  mcp-guard wrap ./.vscode/mcp.json --write
  mcp-guard unwrap claude-desktop --write";

const UNWRAP_AFTER_HELP: &str = "\
Each wrapped entry gets back the command and args after `--` in its mcp-guard args; with the
backup wrap kept (FILE.mcp-guard-backup), exactly the text it had, so wrap then unwrap gives the
original file byte for byte (the backup is then removed). Like wrap, unwrap shows the diff and
writes only with --write.";

/// Which configs: host names or files.
#[derive(Debug, clap::Args)]
pub struct Targets {
    /// A host (claude-desktop, claude-code, vscode, cursor, windsurf, gemini, codex) or a config
    /// file. None: every host config found on this machine.
    #[arg(value_name = "HOST|FILE")]
    pub targets: Vec<String>,

    /// Write the changes. Without it, only the diff is shown.
    #[arg(long)]
    pub write: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = WRAP_AFTER_HELP)]
pub struct WrapArgs {
    #[command(flatten)]
    pub targets: Targets,

    /// The command written into the entries. [default: the absolute path of this mcp-guard,
    /// since hosts started from a desktop menu often lack ~/.cargo/bin in PATH]
    #[arg(long, value_name = "PATH")]
    pub guard_command: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(after_help = UNWRAP_AFTER_HELP)]
pub struct UnwrapArgs {
    #[command(flatten)]
    pub targets: Targets,
}

pub fn execute_wrap(args: WrapArgs) -> anyhow::Result<ExitCode> {
    // The absolute path, not a bare `mcp-guard`: Claude Desktop and other GUI hosts start
    // servers with the session's PATH, which rarely holds ~/.cargo/bin.
    let guard_command = match args.guard_command {
        Some(command) => command,
        None => std::env::current_exe()
            .context("cannot tell where this mcp-guard is; pass --guard-command PATH")?
            .display()
            .to_string(),
    };
    if !cfg!(target_os = "linux") {
        eprintln!(
            "note: the sandbox is Linux-only; here a wrapped server starts only with \
             --allow-unsandboxed added to its args (the message firewall alone)"
        );
    }
    run(&args.targets, Mode::Wrap, |path| {
        hosts::wrap_file(path, &guard_command)
    })
}

pub fn execute_unwrap(args: UnwrapArgs) -> anyhow::Result<ExitCode> {
    run(&args.targets, Mode::Unwrap, hosts::unwrap_file)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Wrap,
    Unwrap,
}

fn run(
    targets: &Targets,
    mode: Mode,
    rewrite: impl Fn(&Path) -> Result<(String, Rewrite), HostError>,
) -> anyhow::Result<ExitCode> {
    let files = config_files(&targets.targets)?;
    let mut pending = 0;
    let mut failed = 0;
    for (label, path) in &files {
        // One unreadable config must not keep the others from being done.
        let (original, rewrite) = match rewrite(path) {
            Ok(done) => done,
            Err(err) => {
                eprintln!("mcp-guard: error: {err}");
                failed += 1;
                continue;
            }
        };
        eprintln!("{} ({label}):", path.display());
        print_entries(&rewrite.entries);
        if rewrite.text == original {
            continue;
        }
        print_diff(path, &original, &rewrite.text)?;
        if !targets.write {
            pending += 1;
            continue;
        }
        match mode {
            Mode::Wrap => {
                let backup = hosts::write::write_wrapped(path, &original, &rewrite.text)?;
                let kept = backup.map_or_else(
                    || {
                        format!(
                            "earlier backup kept: {}",
                            hosts::write::backup_path(path).display()
                        )
                    },
                    |b| format!("backup: {}", b.display()),
                );
                eprintln!("  written ({kept}); restart {label} to use it");
            }
            Mode::Unwrap => {
                let removed = hosts::write::write_unwrapped(path, &original, &rewrite.text)?;
                let note = if removed {
                    "; the file is as before wrap, backup removed"
                } else {
                    ""
                };
                eprintln!("  written{note}; restart {label} to use it");
            }
        }
    }
    if pending > 0 {
        eprintln!("Nothing written: run again with --write to apply the changes above.");
    }
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// `(host label, path)` of each config to rewrite.
fn config_files(targets: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let dirs = Dirs::from_env();
    let existing = |host: Host| -> Vec<(String, PathBuf)> {
        host.config_paths(&dirs)
            .into_iter()
            .filter(|p| p.is_file())
            .map(|p| (host.name().to_owned(), p))
            .collect()
    };
    let mut files = Vec::new();
    if targets.is_empty() {
        files.extend(
            hosts::existing_configs(&dirs)
                .into_iter()
                .map(|(host, path)| (host.name().to_owned(), path)),
        );
        if files.is_empty() {
            anyhow::bail!(
                "no MCP host config found; looked at {}. Name the config file: mcp-guard wrap FILE",
                hosts::locations::looked_at(&dirs)
            );
        }
    }
    for target in targets {
        if let Some(host) = Host::from_name(target) {
            let found = existing(host);
            if found.is_empty() {
                let looked: Vec<String> = host
                    .config_paths(&dirs)
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(HostError::NotFound {
                    host: host.name(),
                    looked: looked.join(", "),
                }
                .into());
            }
            files.extend(found);
        } else if Path::new(target).is_file() {
            files.push(("its host".to_owned(), PathBuf::from(target)));
        } else if Path::new(target).is_dir() {
            anyhow::bail!("{target} is a directory; give the config file in it, or a host name");
        } else {
            return Err(HostError::UnknownTarget(target.clone()).into());
        }
    }
    // `wrap cursor` run in HOME names ~/.cursor/mcp.json twice: do it once.
    let mut seen = std::collections::HashSet::new();
    files.retain(|(_, path)| {
        seen.insert(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()))
    });
    Ok(files)
}

fn print_entries(entries: &[EntryReport]) {
    if entries.is_empty() {
        eprintln!("  no servers");
    }
    for entry in entries {
        let scope = match entry.scope.as_str() {
            "mcpServers" | "servers" | "mcp_servers" => String::new(),
            other => format!(" [{other}]"),
        };
        let marker = match entry.outcome {
            Outcome::Wrapped { .. } | Outcome::Unwrapped => '+',
            _ => ' ',
        };
        eprintln!(
            "  {marker} {}{scope}: {}",
            entry.name,
            entry.outcome.describe()
        );
    }
}

/// A unified diff on stdout, so that `mcp-guard wrap > changes.diff` keeps it.
fn print_diff(path: &Path, old: &str, new: &str) -> std::io::Result<()> {
    let name = path.display().to_string();
    let diff = similar::TextDiff::from_lines(old, new);
    let text = diff
        .unified_diff()
        .context_radius(2)
        .header(&name, &name)
        .to_string();
    super::output::print(&text)
}
