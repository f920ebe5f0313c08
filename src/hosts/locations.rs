//! Where each MCP host keeps its server list, per OS. User-level files are found from HOME (and
//! XDG_CONFIG_HOME, CODEX_HOME); project-level ones in the current directory.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    ClaudeDesktop,
    ClaudeCode,
    VsCode,
    Cursor,
    Windsurf,
    Gemini,
    Codex,
}

/// The file format family of a config: decides which rewriter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON, or JSON with comments and trailing commas (VS Code).
    Json,
    /// Codex's `config.toml`.
    Toml,
}

/// The directories host configs are found from.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME`, else `~/.config` (Linux); `~/Library/Application Support` (macOS).
    pub app_config: PathBuf,
    /// `$CODEX_HOME`, else `~/.codex`.
    pub codex_home: PathBuf,
    /// Where project-level configs (`.mcp.json`, `.vscode/mcp.json`) are looked for.
    pub project: PathBuf,
}

impl Dirs {
    pub fn from_env() -> Dirs {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let home = var("HOME").unwrap_or_else(|| PathBuf::from("/"));
        let app_config = if cfg!(target_os = "macos") {
            home.join("Library/Application Support")
        } else {
            var("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config"))
        };
        Dirs {
            codex_home: var("CODEX_HOME").unwrap_or_else(|| home.join(".codex")),
            project: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            app_config,
            home,
        }
    }
}

impl Host {
    pub const ALL: [Host; 7] = [
        Host::ClaudeDesktop,
        Host::ClaudeCode,
        Host::VsCode,
        Host::Cursor,
        Host::Windsurf,
        Host::Gemini,
        Host::Codex,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Host::ClaudeDesktop => "claude-desktop",
            Host::ClaudeCode => "claude-code",
            Host::VsCode => "vscode",
            Host::Cursor => "cursor",
            Host::Windsurf => "windsurf",
            Host::Gemini => "gemini",
            Host::Codex => "codex",
        }
    }

    pub fn from_name(name: &str) -> Option<Host> {
        Host::ALL.into_iter().find(|h| h.name() == name)
    }

    /// `claude-desktop, claude-code, …`
    pub fn names() -> String {
        Host::ALL.map(Host::name).join(", ")
    }

    /// Every file this host may keep servers in, whether it exists or not.
    pub fn config_paths(self, dirs: &Dirs) -> Vec<PathBuf> {
        let (home, project) = (&dirs.home, &dirs.project);
        match self {
            Host::ClaudeDesktop => vec![dirs.app_config.join("Claude/claude_desktop_config.json")],
            Host::ClaudeCode => vec![home.join(".claude.json"), project.join(".mcp.json")],
            Host::VsCode => vec![
                dirs.app_config.join("Code/User/mcp.json"),
                project.join(".vscode/mcp.json"),
            ],
            Host::Cursor => vec![
                home.join(".cursor/mcp.json"),
                project.join(".cursor/mcp.json"),
            ],
            Host::Windsurf => vec![home.join(".codeium/windsurf/mcp_config.json")],
            Host::Gemini => vec![
                home.join(".gemini/settings.json"),
                project.join(".gemini/settings.json"),
            ],
            Host::Codex => vec![dirs.codex_home.join("config.toml")],
        }
    }
}

/// Every host config that exists, each file once (`./.cursor/mcp.json` run in HOME is
/// `~/.cursor/mcp.json`).
pub fn existing_configs(dirs: &Dirs) -> Vec<(Host, PathBuf)> {
    let mut seen = std::collections::HashSet::new();
    Host::ALL
        .into_iter()
        .flat_map(|host| host.config_paths(dirs).into_iter().map(move |p| (host, p)))
        .filter(|(_, path)| path.is_file())
        .filter(|(_, path)| {
            seen.insert(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()))
        })
        .collect()
}

/// Every place a host config is looked for: `a, b, …`, for messages.
pub fn looked_at(dirs: &Dirs) -> String {
    Host::ALL
        .iter()
        .flat_map(|h| h.config_paths(dirs))
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn format_of(path: &Path) -> Format {
    match path.extension() {
        Some(ext) if ext == "toml" => Format::Toml,
        _ => Format::Json,
    }
}
