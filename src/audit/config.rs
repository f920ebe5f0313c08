//! The audit settings in force: the policy's `[audit]` and `[redaction]` sections, then the
//! `run` flags on top.

use std::path::PathBuf;
use std::time::Duration;

use super::chain::{Destination, Rotation};
use super::redact::Redactor;
use crate::filter::redact::PatternError;
use crate::policy::firewall::{self, Forwards, OnSuspicious};
use crate::policy::Vars;

/// The log's file name under the state directory.
const DEFAULT_FILE: &str = "mcp-guard/audit.jsonl";
/// Rotate before the file passes this (a laptop never notices 4 × 32 MiB)...
const DEFAULT_MAX_SIZE: u64 = 32 * 1024 * 1024;
/// ...and keep this many rotated files.
const DEFAULT_KEEP: u64 = 3;
/// A line per forwarded message, counts beyond 200 a second (BENCHMARKS.md measures the three).
const DEFAULT_FORWARDS: Forwards = Forwards::Auto;

#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// `None`: no log is written (`--no-audit`, `[audit] enabled = false`).
    pub destination: Option<Destination>,
    pub rotation: Rotation,
    pub required: bool,
    pub on_suspicious: OnSuspicious,
    pub suspicious_refusals: u64,
    pub suspicious_window: Duration,
    pub redactor: Redactor,
    pub metrics_file: Option<PathBuf>,
    /// Print the counters at exit.
    pub summary: bool,
    /// Bytes of a call's arguments a line carries; 0: none (metadata only).
    pub excerpts: usize,
    pub forwards: Forwards,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no audit log location: set $XDG_STATE_HOME or $HOME, or pass --audit-log PATH")]
    NoStateDir,
    #[error("[audit] path: {0}")]
    Path(String),
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

impl AuditConfig {
    /// From the merged policy sections; `vars` expand `${XDG_STATE_HOME}` and friends.
    pub fn from_policy(
        audit: &firewall::Audit,
        redaction: &firewall::Redaction,
        vars: &Vars,
    ) -> Result<Self, ConfigError> {
        let enabled = audit.enabled.as_ref().is_none_or(|v| v.value);
        let destination = if enabled {
            Some(Destination::File(match &audit.path {
                Some(p) => p
                    .value
                    .expand_text(vars)
                    .map(PathBuf::from)
                    .map_err(ConfigError::Path)?,
                None => default_path(vars)?,
            }))
        } else {
            None
        };
        let redaction_on = redaction.enabled.as_ref().is_none_or(|v| v.value);
        let builtin = redaction_on && redaction.builtin.as_ref().is_none_or(|v| v.value);
        let extra: Vec<(String, String)> = if redaction_on {
            redaction
                .patterns
                .iter()
                .map(|(k, v)| (k.clone(), v.value.0.clone()))
                .collect()
        } else {
            Vec::new()
        };
        let keys: Vec<String> = audit.redact_keys.iter().map(|v| v.value.clone()).collect();
        let max_value_bytes = audit
            .max_value_bytes
            .as_ref()
            .and_then(|v| v.value.bytes)
            .map_or(4096, |b| usize::try_from(b).unwrap_or(usize::MAX));
        let rotation = Rotation {
            max_size: match &audit.max_size {
                Some(v) => v.value.bytes,
                None => Some(DEFAULT_MAX_SIZE),
            },
            keep: match &audit.keep {
                Some(v) => v.value.0,
                None => Some(DEFAULT_KEEP),
            },
        };
        Ok(Self {
            destination,
            rotation,
            required: audit.required.as_ref().is_some_and(|v| v.value),
            on_suspicious: audit
                .on_suspicious
                .as_ref()
                .map_or(OnSuspicious::Log, |v| v.value),
            suspicious_refusals: audit
                .suspicious_refusals
                .as_ref()
                .and_then(|v| v.value.0)
                .unwrap_or(u64::MAX),
            suspicious_window: audit
                .suspicious_window
                .as_ref()
                .and_then(|v| v.value.duration)
                .unwrap_or(Duration::from_secs(60)),
            redactor: Redactor::new(&keys, builtin, &extra, max_value_bytes)?,
            metrics_file: None,
            summary: false,
            excerpts: audit.excerpts.as_ref().map_or(0, |v| {
                v.value
                    .bytes
                    .map_or(usize::MAX, |b| usize::try_from(b).unwrap_or(usize::MAX))
            }),
            forwards: audit
                .forwards
                .as_ref()
                .map_or(DEFAULT_FORWARDS, |v| v.value),
        })
    }
}

/// `$XDG_STATE_HOME/mcp-guard/audit.jsonl`, else `~/.local/state/mcp-guard/audit.jsonl`.
pub fn default_path(vars: &Vars) -> Result<PathBuf, ConfigError> {
    vars.get("XDG_STATE_HOME")
        .map(|d| d.join(DEFAULT_FILE))
        .or_else(|| {
            vars.get("HOME")
                .map(|h| h.join(".local/state").join(DEFAULT_FILE))
        })
        .ok_or(ConfigError::NoStateDir)
}
