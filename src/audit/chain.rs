//! The hash-chained JSON Lines writer. Each line is one JSON object whose first member, `prev`,
//! is the SHA-256 (hex) of the previous line in the file (64 zeros for the first line), so any
//! edit, deletion or reordering breaks the chain (`mcp-guard audit verify`).
//!
//! Events are buffered as bodies without `prev`; the chain is computed when they are written,
//! under an exclusive `flock`, from the file's actual last line, so several guards (one per
//! server of a host) can share one log without breaking it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// `prev` of the first line of a file.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    File(PathBuf),
    Stderr,
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::File(p) => write!(f, "{}", p.display()),
            Destination::Stderr => f.write_str("stderr"),
        }
    }
}

enum Sink {
    File(File),
    Stderr { prev: String },
}

pub struct ChainWriter {
    sink: Sink,
    /// Buffered bodies: JSON object members without braces, each ending in '\n'.
    pending: Vec<u8>,
    /// Reused for the lines written by one flush.
    out: Vec<u8>,
}

impl ChainWriter {
    /// Open (append, create 0600) the log; parent directories are created (0700).
    pub fn open(destination: &Destination) -> io::Result<Self> {
        let sink = match destination {
            Destination::Stderr => Sink::Stderr {
                prev: GENESIS.to_owned(),
            },
            Destination::File(path) => Sink::File(open_file(path)?),
        };
        Ok(Self {
            sink,
            pending: Vec::with_capacity(64 * 1024),
            out: Vec::with_capacity(64 * 1024),
        })
    }

    /// Queue one event: `body` is a serialised JSON object (`{...}`).
    pub fn push(&mut self, body: &[u8]) {
        let inner = body
            .strip_prefix(b"{")
            .and_then(|b| b.strip_suffix(b"}"))
            .unwrap_or(body);
        self.pending.extend_from_slice(inner);
        self.pending.push(b'\n');
    }

    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Chain and write what is buffered. On error the events stay buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match &mut self.sink {
            Sink::Stderr { prev } => {
                let mut out = std::mem::take(&mut self.out);
                out.clear();
                *prev = chain(&self.pending, prev, &mut out);
                let result = io::stderr().lock().write_all(&out);
                self.out = out;
                result?;
            }
            Sink::File(file) => {
                let _lock = Lock::exclusive(file)?;
                let prev = last_line_hash(file)?;
                self.out.clear();
                chain(&self.pending, &prev, &mut self.out);
                file.write_all(&self.out)?;
            }
        }
        self.pending.clear();
        Ok(())
    }
}

/// Append the chained lines for `bodies` to `out`; returns the hash of the last one.
fn chain(bodies: &[u8], prev: &str, out: &mut Vec<u8>) -> String {
    let mut prev = prev.to_owned();
    for body in bodies.split(|b| *b == b'\n').filter(|b| !b.is_empty()) {
        let start = out.len();
        out.extend_from_slice(b"{\"prev\":\"");
        out.extend_from_slice(prev.as_bytes());
        out.extend_from_slice(b"\",");
        out.extend_from_slice(body);
        out.push(b'}');
        prev = hex(&Sha256::digest(&out[start..]));
        out.push(b'\n');
    }
    prev
}

pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

/// SHA-256 (hex) of one line, without its newline.
pub fn line_hash(line: &[u8]) -> String {
    hex(&Sha256::digest(line))
}

fn open_file(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)
}

use std::os::unix::fs::DirBuilderExt;

/// The hash of the file's last complete line (GENESIS for an empty file). A partial last line
/// (a crash mid-write) is hashed as it is, so `verify` reports it rather than the next line.
fn last_line_hash(file: &mut File) -> io::Result<String> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(GENESIS.to_owned());
    }
    // Read backwards in blocks until the start of the last line.
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = len;
    loop {
        let step = pos.min(64 * 1024);
        pos -= step;
        let mut block = vec![0; step as usize];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&tail);
        tail = block;
        let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
        if let Some(i) = body.iter().rposition(|b| *b == b'\n') {
            return Ok(line_hash(&body[i + 1..]));
        }
        if pos == 0 {
            return Ok(line_hash(body));
        }
    }
}

/// An exclusive advisory lock on a file, released on drop (the file outlives it: both live in
/// one `flush` call).
struct Lock(RawFd);

impl Lock {
    fn exclusive(file: &File) -> io::Result<Self> {
        let fd = file.as_raw_fd();
        // SAFETY: flock takes no pointers; `fd` is open for as long as the lock lives.
        if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Lock(fd))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::flock(self.0, libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_continues_across_writers() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::File(dir.path().join("a/audit.jsonl"));
        let mut one = ChainWriter::open(&dest).unwrap();
        let mut two = ChainWriter::open(&dest).unwrap();
        one.push(br#"{"n":1}"#);
        one.flush().unwrap();
        two.push(br#"{"n":2}"#);
        two.flush().unwrap();
        one.push(br#"{"n":3}"#);
        one.flush().unwrap();
        let text = std::fs::read_to_string(dir.path().join("a/audit.jsonl")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with(&format!("{{\"prev\":\"{GENESIS}\",\"n\":1")));
        for pair in lines.windows(2) {
            let prev = line_hash(pair[0].as_bytes());
            assert!(pair[1].starts_with(&format!("{{\"prev\":\"{prev}\"")));
        }
    }
}
