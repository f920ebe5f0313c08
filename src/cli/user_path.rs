//! Path flags as host configs pass them: JSON `"args"` reach the guard through no shell, so a
//! leading `~` is still there and would otherwise name a directory `~` under the CWD.

use std::path::PathBuf;

/// Clap value parser for file flags (`--policy`, `--audit-log`, …): `~` and `~/…` are $HOME.
pub fn parse(text: &str) -> Result<PathBuf, String> {
    let Some(rest) = text.strip_prefix('~') else {
        return Ok(PathBuf::from(text));
    };
    if !rest.is_empty() && !rest.starts_with('/') {
        return Err(format!(
            "only `~` and `~/` (your own home) are expanded; write the absolute path for `{text}`"
        ));
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .ok_or_else(|| format!("`{text}` needs HOME set to expand `~`; write the absolute path"))?;
    match rest.trim_start_matches('/') {
        "" => Ok(home),
        rest => Ok(home.join(rest)),
    }
}
