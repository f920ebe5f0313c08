//! The host side's stdin/stdout as async streams.
//!
//! When they are pipes (as MCP hosts make them) they are driven as non-blocking pipe fds through
//! the reactor; tokio's `stdin()`/`stdout()` go through a blocking thread pool instead, which
//! measured at half the throughput and 3-4x the latency here (see platform notes). Anything else
//! (a file, a terminal) falls back to those.

use std::fs::File;
use std::os::fd::AsFd;

use tokio::io::{AsyncRead, AsyncWrite};

pub fn host_input() -> Box<dyn AsyncRead + Unpin> {
    #[cfg(unix)]
    if let Some(receiver) = dup_std(std::io::stdin().as_fd())
        .and_then(|f| tokio::net::unix::pipe::Receiver::from_file(f).ok())
    {
        return Box::new(receiver);
    }
    Box::new(tokio::io::stdin())
}

pub fn host_output() -> Box<dyn AsyncWrite + Unpin> {
    #[cfg(unix)]
    if let Some(sender) = dup_std(std::io::stdout().as_fd())
        .and_then(|f| tokio::net::unix::pipe::Sender::from_file(f).ok())
    {
        return Box::new(sender);
    }
    Box::new(tokio::io::stdout())
}

fn dup_std(fd: std::os::fd::BorrowedFd<'_>) -> Option<File> {
    fd.try_clone_to_owned().ok().map(File::from)
}
