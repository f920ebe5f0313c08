//! The hash-chained JSON Lines writer. Each line is one JSON object whose first member, `prev`,
//! is the SHA-256 (hex) of the previous line in the file (64 zeros for the first line), so any
//! edit, deletion or reordering breaks the chain (`mcp-guard audit verify`).
//!
//! Events are buffered as bodies without `prev`; the chain is computed when they are written,
//! under an exclusive `flock`, from the file's actual last line, so several guards (one per
//! server of a host) can share one log without breaking it.
//!
//! # Rotation
//!
//! Before a write would take the file past [`Rotation::max_size`], the writer holding the lock
//! renames `audit.jsonl` to `audit.jsonl.1` (shifting `.1` to `.2` …, removing what is beyond
//! [`Rotation::keep`]) and starts a new file. Its first line is a `rotated` event that starts a
//! new chain (`prev` = genesis, so each file verifies on its own) and names, in `continues`,
//! the hash of the previous file's last line: a removed or edited rotated file shows as a
//! broken link. A guard that waited for the lock on the old file notices the rename and
//! reopens the log before writing.

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

/// When the log file is rotated, and how many rotated files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// `None`: never rotated.
    pub max_size: Option<u64>,
    /// `None`: rotated files are never removed.
    pub keep: Option<u64>,
}

impl Rotation {
    pub const NEVER: Rotation = Rotation {
        max_size: None,
        keep: None,
    };
}

pub struct ChainWriter {
    sink: Sink,
    /// The log's path and rotation (file sinks only).
    path: Option<(PathBuf, Rotation)>,
    /// Buffered events: JSON objects, each ending in '\n'.
    pending: Vec<u8>,
    /// Reused for the lines written by one flush.
    out: Vec<u8>,
    /// Where this writer's last write left the file (inode, size) and the hash of the line it
    /// ended with: when the file is still so, the next write chains on without reading it.
    tail: Option<(u64, u64, String)>,
}

impl ChainWriter {
    /// Open (append, create 0600) the log; parent directories are created (0700).
    pub fn open(destination: &Destination) -> io::Result<Self> {
        Self::open_rotating(destination, Rotation::NEVER)
    }

    /// [`open`](Self::open), rotating the file as `rotation` says.
    pub fn open_rotating(destination: &Destination, rotation: Rotation) -> io::Result<Self> {
        let (sink, path) = match destination {
            Destination::Stderr => (
                Sink::Stderr {
                    prev: GENESIS.to_owned(),
                },
                None,
            ),
            Destination::File(path) => {
                (Sink::File(open_file(path)?), Some((path.clone(), rotation)))
            }
        };
        Ok(Self {
            sink,
            path,
            pending: Vec::with_capacity(64 * 1024),
            out: Vec::with_capacity(64 * 1024),
            tail: None,
        })
    }

    /// Queue one event: `body` is a serialised JSON object (`{...}`).
    pub fn push(&mut self, body: &[u8]) {
        self.pending.extend_from_slice(body);
        self.pending.push(b'\n');
    }

    /// Queue one event, serialised straight into the buffer (a JSON object: a struct or map).
    pub fn push_event<T: serde::Serialize>(&mut self, event: &T) {
        let start = self.pending.len();
        if serde_json::to_writer(&mut self.pending, event).is_ok() {
            self.pending.push(b'\n');
        } else {
            self.pending.truncate(start);
        }
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
                let mut lock = Lock::exclusive(file)?;
                if let Some((path, _)) = &self.path {
                    // Another guard rotated the log while this one waited: write to the new one.
                    while was_replaced(file, path)? {
                        drop(lock);
                        *file = open_file(path)?;
                        lock = Lock::exclusive(file)?;
                    }
                }
                use std::os::unix::fs::MetadataExt;
                let meta = file.metadata()?;
                let mut size = meta.len();
                let mut prev = match self.tail.take() {
                    // Nobody wrote since this writer did: its own last line is the file's.
                    Some((ino, end, hash)) if ino == meta.ino() && end == size => hash,
                    _ => last_line_hash(file)?,
                };
                let rotation = self
                    .path
                    .as_ref()
                    .and_then(|(path, r)| Some((path, *r, r.max_size?)));
                self.out.clear();
                for body in lines(&self.pending) {
                    // `{"prev":"<64 hex>",` + body's members + `}\n`
                    let line = body.len() as u64 + 74;
                    let used = size + self.out.len() as u64;
                    if let Some((path, rotation, limit)) = rotation {
                        if used > 0 && used + line > limit {
                            file.write_all(&self.out)?;
                            self.out.clear();
                            let new = rotate_files(path, rotation)?;
                            let new_lock = Lock::exclusive(&new)?;
                            // The old file's lock goes before its fd closes (fd numbers are reused).
                            drop(lock);
                            *file = new;
                            lock = new_lock;
                            size = 0;
                            prev = chain(&rotated_event(&prev), GENESIS, &mut self.out);
                        }
                    }
                    prev = chain(body, &prev, &mut self.out);
                }
                file.write_all(&self.out)?;
                self.tail = Some((file.metadata()?.ino(), size + self.out.len() as u64, prev));
                drop(lock);
            }
        }
        self.pending.clear();
        Ok(())
    }
}

/// Append the chained lines for `bodies` to `out`; returns the hash of the last one.
fn chain(bodies: &[u8], prev: &str, out: &mut Vec<u8>) -> String {
    let mut prev = prev.to_owned();
    for body in lines(bodies) {
        // `{"prev":"<hash>",` then the event's members and closing brace.
        let members = body.strip_prefix(b"{").unwrap_or(body);
        let start = out.len();
        out.extend_from_slice(b"{\"prev\":\"");
        out.extend_from_slice(prev.as_bytes());
        out.extend_from_slice(b"\",");
        out.extend_from_slice(members);
        prev = hex(&Sha256::digest(&out[start..]));
        out.push(b'\n');
    }
    prev
}

/// The non-empty lines of `buffer`, found with `memchr` (the buffer holds many per write).
fn lines(buffer: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', buffer)
        .chain(std::iter::once(buffer.len()))
        .filter_map(move |end| {
            let line = &buffer[start.min(end)..end];
            start = end + 1;
            (!line.is_empty()).then_some(line)
        })
}

pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

/// SHA-256 (hex) of one line, without its newline.
pub fn line_hash(line: &[u8]) -> String {
    hex(&Sha256::digest(line))
}

/// The first line of a new file after a rotation: `previous` is the old file's last line hash.
fn rotated_event(previous: &str) -> Vec<u8> {
    let ts = super::event::now_text();
    format!("{{\"ts\":\"{ts}\",\"event\":\"rotated\",\"continues\":\"{previous}\"}}\n").into_bytes()
}

/// Is `file` no longer the file at `path` (renamed away by a rotation)?
fn was_replaced(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let ours = file.metadata()?;
    Ok(match std::fs::metadata(path) {
        Ok(now) => now.ino() != ours.ino() || now.dev() != ours.dev(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => return Err(e),
    })
}

/// Shift `path.N` → `path.N+1` (removing what `keep` does not keep), `path` → `path.1`, and
/// open a new, empty `path`.
fn rotate_files(path: &Path, rotation: Rotation) -> io::Result<File> {
    let numbered = |n: u64| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    let keep = rotation.keep.unwrap_or(u64::MAX);
    // Find the highest existing number (files are contiguous from 1).
    let mut highest = 0;
    while highest < keep && numbered(highest + 1).exists() {
        highest += 1;
    }
    if highest >= keep {
        remove_if_present(&numbered(keep))?;
        highest = keep - 1;
    }
    for n in (1..=highest).rev() {
        std::fs::rename(numbered(n), numbered(n + 1))?;
    }
    std::fs::rename(path, numbered(1))?;
    open_file(path)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
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

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn rotation_keeps_n_files_each_a_chain_linked_to_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let rotation = Rotation {
            max_size: Some(200),
            keep: Some(2),
        };
        let dest = Destination::File(path.clone());
        let mut one = ChainWriter::open_rotating(&dest, rotation).unwrap();
        // A second writer opened before the rotations: it must follow them.
        let mut two = ChainWriter::open_rotating(&dest, rotation).unwrap();
        for n in 0..20 {
            let w = if n % 2 == 0 { &mut one } else { &mut two };
            w.push(
                format!(r#"{{"n":{n},"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}"#)
                    .as_bytes(),
            );
            w.flush().unwrap();
        }
        let name = |n: u32| dir.path().join(format!("audit.jsonl.{n}"));
        assert!(name(1).exists() && name(2).exists());
        assert!(!name(3).exists(), "only `keep` rotated files stay");
        for file in [name(2), name(1), path.clone()] {
            let text = lines(&file);
            assert!(
                std::fs::metadata(&file).unwrap().len() <= 200 + 250,
                "{file:?}"
            );
            // Each file is a chain of its own...
            assert!(text[0].starts_with(&format!("{{\"prev\":\"{GENESIS}\"")));
            for pair in text.windows(2) {
                let prev = line_hash(pair[0].as_bytes());
                assert!(
                    pair[1].starts_with(&format!("{{\"prev\":\"{prev}\"")),
                    "{file:?}"
                );
            }
        }
        // ...and starts by naming the last line of the one before it.
        for (older, newer) in [(name(2), name(1)), (name(1), path.clone())] {
            let last = line_hash(lines(&older).last().unwrap().as_bytes());
            let first = &lines(&newer)[0];
            assert!(first.contains("\"event\":\"rotated\""), "{first}");
            assert!(
                first.contains(&format!("\"continues\":\"{last}\"")),
                "{first}"
            );
        }
        // Nothing was lost among what the kept files hold: the numbers run without a gap.
        let mut numbers: Vec<u64> = [name(2), name(1), path.clone()]
            .iter()
            .flat_map(|f| lines(f))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok()?["n"].as_u64())
            .collect();
        let first = numbers[0];
        numbers.sort();
        assert_eq!(numbers, (first..20).collect::<Vec<_>>());
    }
}
