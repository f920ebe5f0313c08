//! Shared by the fuzz targets: drive the async `LineReader` synchronously over a reader that
//! hands out its bytes in chunks of chosen sizes, and the reference line splitter it must agree
//! with.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use mcp_guard::protocol::{Frame, LineReader};
use tokio::io::{AsyncRead, ReadBuf};

/// A reader that returns `data` in chunks whose sizes come from `sizes` (cycled; 0 is read as 1).
pub struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    sizes: Vec<usize>,
    next: usize,
}

impl<'a> Chunked<'a> {
    pub fn new(data: &'a [u8], sizes: Vec<usize>) -> Self {
        Chunked {
            data,
            pos: 0,
            sizes: if sizes.is_empty() {
                vec![usize::MAX]
            } else {
                sizes
            },
            next: 0,
        }
    }
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let want = self.sizes[self.next % self.sizes.len()].max(1);
        self.next += 1;
        let n = want.min(buf.remaining()).min(self.data.len() - self.pos);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// One frame, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    Line(Vec<u8>),
    Oversize {
        len: u64,
        head: Vec<u8>,
        tail: Vec<u8>,
    },
    Eof(Option<Vec<u8>>),
}

/// Poll a future that never waits (its reader is always ready) to completion.
pub fn run_ready<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("a future over an always-ready reader did not complete");
}

/// Every frame `LineReader` produces from `data` read in chunks of `sizes`.
pub fn frames(data: &[u8], sizes: Vec<usize>, max_line: usize) -> Vec<Owned> {
    let mut reader = LineReader::new(Chunked::new(data, sizes), max_line);
    let mut out = Vec::new();
    loop {
        // Asked between lines, as the relay does, on every other frame: must change nothing.
        if out.len() % 2 == 0 {
            reader.has_buffered_line();
        }
        let frame = run_ready(reader.next_frame()).expect("reading from memory cannot fail");
        let owned = match frame {
            Frame::Line(l) => Owned::Line(l.to_vec()),
            Frame::Oversize { len, head, tail } => Owned::Oversize { len, head, tail },
            Frame::Eof { partial } => Owned::Eof(partial.map(<[u8]>::to_vec)),
        };
        let end = matches!(owned, Owned::Eof(_));
        out.push(owned);
        if end {
            return out;
        }
        assert!(out.len() <= data.len() + 2, "more frames than bytes");
    }
}

/// What a line of the input is, by the framing contract: `\n` ends a line, one `\r` before it is
/// not part of it, and a line longer than the cap (the `\r` excluded) is oversize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected<'a> {
    Line(&'a [u8]),
    /// `raw` is the line with its `\r`, if it had one.
    Oversize {
        line: &'a [u8],
        raw: &'a [u8],
    },
    /// The unterminated rest (never oversize: that is reported as `Oversize` then `Eof(None)`).
    Eof(Option<&'a [u8]>),
}

pub fn expected(data: &[u8], max_line: usize) -> Vec<Expected<'_>> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
        let raw = &rest[..pos];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        out.push(if line.len() > max_line {
            Expected::Oversize { line, raw }
        } else {
            Expected::Line(line)
        });
        rest = &rest[pos + 1..];
    }
    if rest.len() > max_line {
        out.push(Expected::Oversize {
            line: rest,
            raw: rest,
        });
        out.push(Expected::Eof(None));
    } else {
        out.push(Expected::Eof((!rest.is_empty()).then_some(rest)));
    }
    out
}

/// Panics (with a description) unless `got` is what the contract says for `data`.
pub fn check_frames(data: &[u8], max_line: usize, got: &[Owned]) {
    let want = expected(data, max_line);
    assert_eq!(
        got.len(),
        want.len(),
        "frame count differs (lines lost or merged): got {got:?}, want {want:?}"
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        match (g, w) {
            (Owned::Line(g), Expected::Line(w)) => assert_eq!(g, w, "line {i} differs"),
            (Owned::Eof(g), Expected::Eof(w)) => {
                assert_eq!(g.as_deref(), *w, "partial last line differs")
            }
            (Owned::Oversize { len, head, tail }, Expected::Oversize { line, raw }) => {
                assert!(
                    *len == line.len() as u64 || *len == raw.len() as u64,
                    "frame {i}: oversize length {len}, line is {} bytes",
                    line.len()
                );
                assert!(raw.starts_with(head), "frame {i}: head is not a prefix");
                assert!(line.ends_with(tail), "frame {i}: tail is not a suffix");
            }
            _ => panic!("frame {i}: got {g:?}, want {w:?} (cap {max_line})"),
        }
    }
}

/// The top-level members of a JSON object line, in order, duplicates kept; `None` if the line
/// is not a JSON object (or nests deeper than serde_json's recursion limit).
pub fn top_level_members(line: &[u8]) -> Option<Vec<(String, Box<serde_json::value::RawValue>)>> {
    use serde::de::{Deserializer, MapAccess, Visitor};
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(String, Box<serde_json::value::RawValue>)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(line);
    let members = (&mut de).deserialize_map(Members).ok()?;
    de.end().ok()?;
    Some(members)
}

/// The id a line really carries at top level, by a generic JSON parser: `Some(Some(id))` for one
/// usable `id` member, `Some(None)` for none (or an unusable one), `None` when it cannot be said
/// (not an object, or `id` given twice).
pub fn true_top_level_id(line: &[u8]) -> Option<Option<mcp_guard::protocol::RequestId>> {
    let members = top_level_members(line)?;
    let mut ids = members.iter().filter(|(k, _)| k == "id");
    let first = ids.next();
    if ids.next().is_some() {
        return None;
    }
    Some(first.and_then(|(_, raw)| mcp_guard::protocol::RequestId::from_raw(raw)))
}
