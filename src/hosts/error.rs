//! What can go wrong reading, rewriting and writing a host's config.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} cannot be parsed: {message}; fix the file (the host cannot read it either) and run again", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} changed while mcp-guard was working on it (is the host saving it?); run the command again", path.display())]
    Changed { path: PathBuf },
    #[error("`{0}` is neither a host ({hosts}) nor an existing file; give a host name or the path of its config file", hosts = super::locations::Host::names())]
    UnknownTarget(String),
    #[error(
        "no {host} config on this machine; looked at {looked}. Give the config file's path instead"
    )]
    NotFound { host: &'static str, looked: String },
}
