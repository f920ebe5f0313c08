//! A line-oriented output shared by both directions of the relay (for example, the host's
//! stdout carries the server's messages and the guard's own error replies).

use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::Mutex;

type Writer = BufWriter<Box<dyn AsyncWrite + Unpin>>;

pub struct Output {
    name: &'static str,
    writer: Mutex<Option<Writer>>,
}

/// Buffer size of each output; large writes bypass it.
const BUFFER: usize = 64 * 1024;

impl Output {
    pub fn new(name: &'static str, writer: Box<dyn AsyncWrite + Unpin>) -> Self {
        Self {
            name,
            writer: Mutex::new(Some(BufWriter::with_capacity(BUFFER, writer))),
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
        let result = async {
            writer.write_all(message).await?;
            writer.write_all(b"\n").await?;
            if flush {
                writer.flush().await?;
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            // The peer went away: stop writing to it for good.
            *guard = None;
        }
        result
    }

    pub async fn flush(&self) -> io::Result<()> {
        match self.writer.lock().await.as_mut() {
            Some(writer) => writer.flush().await,
            None => Ok(()),
        }
    }

    pub async fn is_open(&self) -> bool {
        self.writer.lock().await.is_some()
    }

    /// Flush and close (the peer sees EOF).
    pub async fn close(&self) {
        if let Some(mut writer) = self.writer.lock().await.take() {
            let _ = writer.flush().await;
            let _ = writer.shutdown().await;
        }
    }
}
