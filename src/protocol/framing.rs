//! Line framing for the MCP stdio transport: one message per `\n`-terminated line.
//!
//! The reader never holds more than the size cap (plus one read chunk) in memory: an oversize
//! line is consumed in discard mode, keeping only a small head and tail so the caller can try to
//! recover the request id, and the stream stays in sync at the next newline.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read from the pipe per call; 64 KiB matches the kernel's default pipe capacity.
const READ_CHUNK: usize = 64 * 1024;
/// How much of an oversize line's start and end is kept for id recovery.
const KEEP_EDGE: usize = 4 * 1024;

/// One unit read from the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line, without its `\n` (and without a trailing `\r`).
    Line(&'a [u8]),
    /// A line longer than the cap, already consumed; `head`/`tail` are its first and last bytes.
    Oversize {
        len: u64,
        head: Vec<u8>,
        tail: Vec<u8>,
    },
    /// End of stream; `partial` holds an unterminated last line, if any.
    Eof { partial: Option<&'a [u8]> },
}

/// Progress through an oversize line being discarded.
struct Discarding {
    len: u64,
    head: Vec<u8>,
    tail: Vec<u8>,
}

pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Start of unconsumed data in `buf`.
    start: usize,
    /// How far `buf[start..]` has been searched for `\n` without finding one.
    scanned: usize,
    max_line: usize,
    discarding: Option<Discarding>,
    eof: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max_line: usize) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(READ_CHUNK * 2),
            start: 0,
            scanned: 0,
            max_line,
            discarding: None,
            eof: false,
        }
    }

    /// True when a complete line is already buffered, so the next call will not block. The
    /// relay flushes its output only when this is false: batching writes while input keeps
    /// coming, flushing as soon as it pauses. What it searched is not searched again.
    pub fn has_buffered_line(&mut self) -> bool {
        let searched = &self.buf[self.start + self.scanned..];
        let found = memchr::memchr(b'\n', searched);
        // While discarding, `scanned` is not in use (the discarding search starts afresh).
        if self.discarding.is_none() {
            self.scanned += found.unwrap_or(searched.len());
        }
        found.is_some()
    }

    pub async fn next_frame(&mut self) -> io::Result<Frame<'_>> {
        loop {
            if let Some(state) = self.discarding.as_mut() {
                let pending = &self.buf[self.start..];
                match memchr::memchr(b'\n', pending) {
                    Some(pos) => {
                        keep_tail(&mut state.tail, &pending[..pos]);
                        state.len += pos as u64;
                        self.start += pos + 1;
                        self.scanned = 0;
                        let done = self.discarding.take().map(|mut d| {
                            strip_cr(&mut d.tail);
                            d
                        });
                        if let Some(d) = done {
                            return Ok(Frame::Oversize {
                                len: d.len,
                                head: d.head,
                                tail: d.tail,
                            });
                        }
                    }
                    None => {
                        keep_tail(&mut state.tail, pending);
                        state.len += pending.len() as u64;
                        self.start = self.buf.len();
                    }
                }
            } else {
                let pending = &self.buf[self.start..];
                if let Some(pos) = memchr::memchr(b'\n', &pending[self.scanned..]) {
                    let end = self.start + self.scanned + pos;
                    let line_start = self.start;
                    self.start = end + 1;
                    self.scanned = 0;
                    let mut line = &self.buf[line_start..end];
                    if line.last() == Some(&b'\r') {
                        line = &line[..line.len() - 1];
                    }
                    if line.len() > self.max_line {
                        return Ok(Frame::Oversize {
                            len: line.len() as u64,
                            head: line[..KEEP_EDGE.min(line.len())].to_vec(),
                            tail: line[line.len().saturating_sub(KEEP_EDGE)..].to_vec(),
                        });
                    }
                    return Ok(Frame::Line(line));
                }
                self.scanned = pending.len();
                // A line at the cap may still be waiting for the `\n` of its `\r\n`.
                let allowance = usize::from(pending.last() == Some(&b'\r'));
                if pending.len() > self.max_line + allowance {
                    // Too long already: keep the edges, drop the rest, resync at the next newline.
                    self.discarding = Some(Discarding {
                        len: pending.len() as u64,
                        head: pending[..KEEP_EDGE.min(pending.len())].to_vec(),
                        tail: pending[pending.len().saturating_sub(KEEP_EDGE)..].to_vec(),
                    });
                    self.start = self.buf.len();
                    self.scanned = 0;
                }
            }

            if self.eof {
                return Ok(self.finish());
            }
            self.fill().await?;
        }
    }

    fn finish(&mut self) -> Frame<'_> {
        if let Some(d) = self.discarding.take() {
            return Frame::Oversize {
                len: d.len,
                head: d.head,
                tail: d.tail,
            };
        }
        let rest = &self.buf[self.start..];
        self.start = self.buf.len();
        self.scanned = 0;
        if rest.len() > self.max_line {
            // Kept one byte over the cap in case it was the `\r` of a `\r\n`; it was not.
            return Frame::Oversize {
                len: rest.len() as u64,
                head: rest[..KEEP_EDGE.min(rest.len())].to_vec(),
                tail: rest[rest.len().saturating_sub(KEEP_EDGE)..].to_vec(),
            };
        }
        Frame::Eof {
            partial: (!rest.is_empty()).then_some(rest),
        }
    }

    /// Read more bytes, compacting the buffer first so it never grows past cap + one chunk.
    /// Cancel-safe: `read_buf` only extends the buffer once bytes have arrived.
    async fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(READ_CHUNK);
        let read = loop {
            match self.inner.read_buf(&mut self.buf).await {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if read == 0 {
            self.eof = true;
        }
        Ok(())
    }
}

fn keep_tail(tail: &mut Vec<u8>, more: &[u8]) {
    if more.len() >= KEEP_EDGE {
        tail.clear();
        tail.extend_from_slice(&more[more.len() - KEEP_EDGE..]);
    } else {
        tail.extend_from_slice(more);
        if tail.len() > KEEP_EDGE {
            tail.drain(..tail.len() - KEEP_EDGE);
        }
    }
}

fn strip_cr(bytes: &mut Vec<u8>) {
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<String> {
        let mut reader = LineReader::new(input, max);
        let mut out = Vec::new();
        loop {
            // As the relay does between lines; it must not change what is read.
            reader.has_buffered_line();
            match reader.next_frame().await.expect("read") {
                Frame::Line(l) => out.push(format!("line:{}", String::from_utf8_lossy(l))),
                Frame::Oversize { len, head, tail } => out.push(format!(
                    "oversize:{len}:{}..{}",
                    String::from_utf8_lossy(&head[..head.len().min(3)]),
                    String::from_utf8_lossy(&tail[tail.len().saturating_sub(3)..])
                )),
                Frame::Eof { partial } => {
                    out.push(format!(
                        "eof:{:?}",
                        partial.map(|p| String::from_utf8_lossy(p).into_owned())
                    ));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn line_reader_splits_lines_and_strips_cr() {
        let got = frames(b"a\nbb\r\n\nccc", 100).await;
        assert_eq!(got, ["line:a", "line:bb", "line:", "eof:Some(\"ccc\")"]);
    }

    #[tokio::test]
    async fn line_reader_discards_oversize_and_resyncs() {
        let mut input = b"ok1\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 300_000));
        input.extend_from_slice(b"END\nok2\n");
        let got = frames(&input, 1000).await;
        assert_eq!(
            got,
            [
                "line:ok1",
                "oversize:300003:xxx..END",
                "line:ok2",
                "eof:None"
            ]
        );
    }

    #[tokio::test]
    async fn line_reader_reports_oversize_at_eof() {
        let input = vec![b'y'; 5000];
        let got = frames(&input, 1000).await;
        assert_eq!(got, ["oversize:5000:yyy..yyy", "eof:None"]);
    }

    #[tokio::test]
    async fn line_reader_accepts_line_exactly_at_cap() {
        let mut input = vec![b'z'; 1000];
        input.push(b'\n');
        let got = frames(&input, 1000).await;
        assert_eq!(got.len(), 2);
        assert!(got[0].starts_with("line:zzz"));
    }
}
