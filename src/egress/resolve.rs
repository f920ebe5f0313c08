//! Name resolution for the proxy. The proxy resolves names itself, checks every address and
//! connects to exactly the address it checked: the sandboxed server never picks the address, so
//! there is no window between check and use for DNS rebinding.
//!
//! Testing hook: with the environment variable [`RESOLVE_FILE_ENV`]
//! (`MCP_GUARD_RESOLVE_FILE`) set, the guard resolves from that file instead of the system
//! resolver ([`Resolver::from_env`]). The file holds lines `NAME ADDR [ADDR...]` (blank lines
//! and `#` comments ignored, names case-insensitive, a trailing dot ignored) and is read again at
//! every lookup, so a test can rewrite it between connections. A name not in the file does not
//! resolve.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::rules::normalize_name;

/// The environment variable selecting [`Resolver::File`] (a testing hook).
pub const RESOLVE_FILE_ENV: &str = "MCP_GUARD_RESOLVE_FILE";

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve {name}: {source}")]
    System {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot resolve {name}: no address")]
    NoAddress { name: String },
    #[error("cannot read the resolve file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("resolve file {path}, line {line}: `{text}` is not an IP address")]
    BadAddress {
        path: PathBuf,
        line: usize,
        text: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Resolver {
    /// The system resolver (`getaddrinfo` through `tokio::net::lookup_host`).
    #[default]
    System,
    /// A hosts-like file read at every lookup (testing hook).
    File(PathBuf),
}

impl Resolver {
    /// [`Resolver::File`] when `MCP_GUARD_RESOLVE_FILE` is set and not empty, else
    /// [`Resolver::System`].
    pub fn from_env() -> Resolver {
        match std::env::var_os(RESOLVE_FILE_ENV) {
            Some(path) if !path.is_empty() => Resolver::File(PathBuf::from(path)),
            _ => Resolver::System,
        }
    }

    /// The addresses of `name` with `port`, in resolver order, without duplicates.
    pub async fn lookup(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
        let mut addrs: Vec<SocketAddr> = Vec::new();
        match self {
            Resolver::System => {
                let found = tokio::net::lookup_host((name, port))
                    .await
                    .map_err(|source| ResolveError::System {
                        name: name.to_string(),
                        source,
                    })?;
                for a in found {
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
            }
            Resolver::File(path) => {
                // A small test file: read synchronously, the hook is not for production.
                let text = std::fs::read_to_string(path).map_err(|source| ResolveError::File {
                    path: path.clone(),
                    source,
                })?;
                for ip in lookup_in(path, &text, name)? {
                    let a = SocketAddr::new(ip, port);
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
            }
        }
        if addrs.is_empty() {
            return Err(ResolveError::NoAddress {
                name: name.to_string(),
            });
        }
        Ok(addrs)
    }
}

/// The addresses of `name` in a resolve file's text (every line naming it, in order).
fn lookup_in(path: &std::path::Path, text: &str, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
    let wanted = normalize_name(name);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if normalize_name(first) != wanted {
            continue;
        }
        for w in words {
            let ip = w
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map_err(|_| ResolveError::BadAddress {
                    path: path.to_path_buf(),
                    line: i + 1,
                    text: w.to_string(),
                })?;
            out.push(ip);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_is_read_at_every_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(
            &path,
            "# test\nExample.test. 192.0.2.1 [2001:db8::1] 192.0.2.1\n\nother 10.0.0.1\n",
        )
        .unwrap();
        let r = Resolver::File(path.clone());
        let a = r.lookup("example.test", 443).await.unwrap();
        assert_eq!(
            a,
            vec![
                "192.0.2.1:443".parse().unwrap(),
                "[2001:db8::1]:443".parse().unwrap()
            ]
        );
        std::fs::write(&path, "example.test 127.0.0.1\n").unwrap();
        let b = r.lookup("EXAMPLE.test.", 80).await.unwrap();
        assert_eq!(b, vec!["127.0.0.1:80".parse().unwrap()]);
        assert!(matches!(
            r.lookup("missing.test", 80).await,
            Err(ResolveError::NoAddress { .. })
        ));
        std::fs::write(&path, "example.test nonsense\n").unwrap();
        let e = r.lookup("example.test", 80).await.unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let gone = Resolver::File(dir.path().join("absent"));
        assert!(matches!(
            gone.lookup("example.test", 80).await,
            Err(ResolveError::File { .. })
        ));
    }

    #[tokio::test]
    async fn system_resolves_an_ip_literal() {
        let a = Resolver::System.lookup("127.0.0.1", 8).await.unwrap();
        assert_eq!(a, vec!["127.0.0.1:8".parse().unwrap()]);
    }
}
