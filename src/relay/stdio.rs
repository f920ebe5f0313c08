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

/// True when the host has closed its end of our stdin (even if unread data remains). Used only
/// when relaying is stuck on a server that does not read, so the host's EOF is not seen in turn.
pub fn host_hung_up() -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let stdin = std::io::stdin();
    let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP))
}
