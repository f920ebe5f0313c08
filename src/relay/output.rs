//! A line-oriented output shared by both directions of the relay (for example, the host's
//! stdout carries the server's messages and the guard's own error replies).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{Mutex, Notify};

type Writer = BufWriter<Box<dyn AsyncWrite + Unpin>>;

pub struct Output {
    name: &'static str,
    writer: Mutex<Option<Writer>>,
    /// Messages of the guard's own (errors, cancellations) waiting for [`Output::drain_queue`].
    queue: RefCell<VecDeque<Vec<u8>>>,
    queued_bytes: Cell<usize>,
    dropped: Cell<u64>,
    queued: Notify,
    /// When the write in progress started; a peer that stops reading shows up here.
    busy_since: Cell<Option<std::time::Instant>>,
}

/// Most bytes of the guard's own messages waiting for a peer that does not read; past this
/// they are dropped (and counted) rather than buffered without bound.
const QUEUE_LIMIT: usize = 1 << 20;

/// Buffer size of each output; large writes bypass it.
const BUFFER: usize = 64 * 1024;

impl Output {
    pub fn new(name: &'static str, writer: Box<dyn AsyncWrite + Unpin>) -> Self {
        Self {
            name,
            writer: Mutex::new(Some(BufWriter::with_capacity(BUFFER, writer))),
            queue: RefCell::new(VecDeque::new()),
            queued_bytes: Cell::new(0),
            dropped: Cell::new(0),
            queued: Notify::new(),
            busy_since: Cell::new(None),
        }
    }

    /// Queue a message of the guard's own without waiting: a peer that stops reading must not
    /// stall the relay's other duties (timeouts, the other direction, shutdown).
    pub fn enqueue(&self, message: Vec<u8>) {
        let size = self.queued_bytes.get() + message.len();
        if size > QUEUE_LIMIT {
            let dropped = self.dropped.get() + 1;
            self.dropped.set(dropped);
            if dropped.is_power_of_two() {
                tracing::warn!(
                    "{} is not being read: dropped {dropped} of the guard's own messages",
                    self.name
                );
            }
            return;
        }
        self.queued_bytes.set(size);
        self.queue.borrow_mut().push_back(message);
        self.queued.notify_one();
    }

    /// Write queued messages as they come; runs for the whole session.
    pub async fn drain_queue(&self) {
        loop {
            self.flush_queue().await;
            self.queued.notified().await;
        }
    }

    /// Write what is queued now.
    pub async fn flush_queue(&self) {
        loop {
            let Some(message) = self.queue.borrow_mut().pop_front() else {
                return;
            };
            self.queued_bytes
                .set(self.queued_bytes.get().saturating_sub(message.len()));
            if self.send(&message, true).await.is_err() {
                self.queue.borrow_mut().clear();
                self.queued_bytes.set(0);
                return;
            }
        }
    }

    /// Write one message and its newline; flush when `flush` (the sender has nothing more queued).
    /// A closed output (peer gone) swallows the message and says so in the error.
    pub async fn send(&self, message: &[u8], flush: bool) -> io::Result<()> {
        let mut guard = self.writer.lock().await;
        let Some(writer) = guard.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("{} is closed", self.name),
            ));
        };
        // Only a write that goes on to the pipe can wait for the peer; the rest just fills the
        // buffer (and reading the clock for each message would cost more than copying it).
        if flush || writer.buffer().len() + message.len() + 1 > BUFFER {
            self.busy_since.set(Some(std::time::Instant::now()));
        }
        let result = async {
            writer.write_all(message).await?;
            writer.write_all(b"\n").await?;
            if flush {
                writer.flush().await?;
            }
            Ok(())
        }
        .await;
        self.busy_since.set(None);
        if result.is_err() {
            // The peer went away: stop writing to it for good.
            *guard = None;
        }
        result
    }

    /// How long the write in progress has been waiting for the peer to read.
    pub fn stalled_for(&self) -> std::time::Duration {
        self.busy_since
            .get()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    pub async fn flush(&self) -> io::Result<()> {
        match self.writer.lock().await.as_mut() {
            Some(writer) => writer.flush().await,
            None => Ok(()),
        }
    }

    /// Flush and close (the peer sees EOF).
    pub async fn close(&self) {
        if let Some(mut writer) = self.writer.lock().await.take() {
            let _ = writer.flush().await;
            let _ = writer.shutdown().await;
        }
    }
}
