//! Handing a file descriptor to another process over a unix socket (`SCM_RIGHTS`).
//!
//! The sandboxed child creates descriptors only it can create (a seccomp listener belongs to the
//! filter it installed; a socket made inside a namespace stays in that namespace) and the
//! supervisor must hold them. A socketpair made before `fork` carries them across: the child
//! sends, the supervisor receives, and the child closes its copy before `execve` so the server
//! never holds it.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Send `fd` over the unix socket `socket`, with one byte of payload (a stream socket carries
/// ancillary data only alongside data). The receiver gets its own descriptor for the same open
/// file; the caller keeps (and should close) its own.
pub fn send_fd(socket: impl AsFd, fd: impl AsFd) -> io::Result<()> {
    send_tagged(socket, 0, Some(fd.as_fd()))
}

/// Receive one descriptor sent by [`send_fd`]; `None` when the peer closed the socket without
/// sending one (it failed before it could). The descriptor arrives close-on-exec. Blocks; bound
/// the wait with `SO_RCVTIMEO` (`UnixStream::set_read_timeout`) when the peer may hang.
pub fn recv_fd(socket: impl AsFd) -> io::Result<Option<OwnedFd>> {
    match recv_tagged(socket)? {
        None => Ok(None),
        Some((_, Some(fd))) => Ok(Some(fd)),
        Some((_, None)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a message without a descriptor",
        )),
    }
}

/// Send the byte `tag`, with `fd` when there is one: the tag tells the receiver what comes
/// (see `network_tier`: the namespace's listener, or "no descriptor: use your own").
pub fn send_tagged(socket: impl AsFd, tag: u8, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let fds: Vec<RawFd> = fd.iter().map(AsRawFd::as_raw_fd).collect();
    let payload = [tag];
    let iov = [IoSlice::new(&payload)];
    let with_fd = [ControlMessage::ScmRights(&fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &with_fd };
    loop {
        match sendmsg::<()>(
            socket.as_fd().as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receive a tag and the descriptor sent with it (if any); `None` at end of stream. A message
/// carrying several descriptors is an error (all of them are closed).
pub fn recv_tagged(socket: impl AsFd) -> io::Result<Option<(u8, Option<OwnedFd>)>> {
    let mut payload = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut payload)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let (bytes, truncated, fds) = loop {
        match recvmsg::<()>(
            socket.as_fd().as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for cmsg in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(received) = cmsg {
                        // SAFETY: the kernel just installed these descriptors in our table for
                        // this message; nothing else owns them.
                        fds.extend(
                            received
                                .into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                break (msg.bytes, msg.flags.contains(MsgFlags::MSG_CTRUNC), fds);
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if truncated {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "descriptors were dropped (control message truncated)",
        ));
    }
    if bytes == 0 {
        return Ok(None);
    }
    let mut fds = fds.into_iter();
    match (fds.next(), fds.next()) {
        (fd, None) => Ok(Some((payload[0], fd))),
        (_, Some(_)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "more than one descriptor in one message",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn fd_passing_round_trip() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut inner_a, inner_b) = UnixStream::pair().unwrap();
        send_fd(&a, &inner_b).unwrap();
        drop(inner_b);
        let received = recv_fd(&b).unwrap().unwrap();
        let mut received = UnixStream::from(received);
        inner_a.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        received.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        // SAFETY: fcntl on a descriptor we own.
        let flags = unsafe { libc::fcntl(received.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }

    #[test]
    fn fd_passing_eof_is_none() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        assert!(recv_fd(&b).unwrap().is_none());
    }

    #[test]
    fn fd_passing_tags_with_and_without_a_descriptor() {
        let (a, b) = UnixStream::pair().unwrap();
        let (inner, _other) = UnixStream::pair().unwrap();
        send_tagged(&a, b'B', None).unwrap();
        send_tagged(&a, b'N', Some(inner.as_fd())).unwrap();
        assert!(matches!(recv_tagged(&b).unwrap(), Some((b'B', None))));
        assert!(matches!(recv_tagged(&b).unwrap(), Some((b'N', Some(_)))));
        drop(a);
        assert!(recv_tagged(&b).unwrap().is_none());
    }
}
