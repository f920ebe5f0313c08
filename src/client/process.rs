//! The server's process: its stdin, a thread per output pipe (std has no read with a timeout),
//! and stopping it.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ClientError;

/// Where the server's stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stderr {
    /// Kept, for [`super::Finished::stderr`] and error messages.
    #[default]
    Capture,
    /// Passed to ours: the user reads the guard's messages as they come.
    Inherit,
}

pub(super) struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Lines on its stdout, without the newline.
    pub lines: Receiver<Vec<u8>>,
    stderr: Option<Arc<Mutex<Vec<u8>>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    pub fn spawn(mut command: Command, stderr: Stderr) -> Result<Process, ClientError> {
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        command.stderr(match stderr {
            Stderr::Capture => Stdio::piped(),
            Stderr::Inherit => Stdio::inherit(),
        });
        let mut child = command.spawn().map_err(ClientError::Spawn)?;
        let (tx, lines) = mpsc::channel();
        let reader = child.stdout.take().map(|out| {
            std::thread::spawn(move || {
                for line in BufReader::new(out).split(b'\n') {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
        });
        let stderr = child.stderr.take().map(|mut err| {
            let sink = Arc::new(Mutex::new(Vec::new()));
            let kept = Arc::clone(&sink);
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut s) = kept.lock() {
                        s.extend_from_slice(&buf[..n]);
                    }
                }
            });
            sink
        });
        Ok(Process {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            reader,
        })
    }

    pub fn write_line(&mut self, mut bytes: Vec<u8>) -> Result<(), ClientError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(ClientError::Write(std::io::ErrorKind::BrokenPipe.into()));
        };
        bytes.push(b'\n');
        stdin
            .write_all(&bytes)
            .and_then(|()| stdin.flush())
            .map_err(ClientError::Write)
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// How it exited, waiting up to `patience` (its output closed, so it is likely on its way).
    pub fn exit_status(&mut self, patience: Duration) -> String {
        match self.wait(patience) {
            Some(status) => status.to_string(),
            None => "still running".into(),
        }
    }

    /// Close its stdin (a server's cue to stop) and wait up to `grace`, then kill it. The
    /// output read until it exited stays in `lines`.
    pub fn close(&mut self, grace: Duration) -> Option<i32> {
        drop(self.stdin.take());
        let status = match self.wait(grace) {
            Some(status) => Some(status),
            None => {
                let _ = self.child.kill();
                self.child.wait().ok()
            }
        };
        // Its stdout is closed now (or held by a grandchild): let the reader finish queueing.
        if let Some(reader) = self.reader.take() {
            let deadline = Instant::now() + Duration::from_millis(200);
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        status.and_then(|s| s.code())
    }

    fn wait(&mut self, patience: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + patience;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => return None,
            }
        }
    }

    /// Everything it wrote on stderr (empty when inherited).
    pub fn stderr_text(&self) -> String {
        self.stderr
            .as_ref()
            .and_then(|s| {
                s.lock()
                    .ok()
                    .map(|s| String::from_utf8_lossy(&s).into_owned())
            })
            .unwrap_or_default()
    }

    /// Its last stderr lines for an error message, or where to read them.
    pub fn last_words(&self) -> String {
        if self.stderr.is_none() {
            return "; see its messages above".into();
        }
        let text = self.stderr_text();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        if tail.is_empty() {
            return String::new();
        }
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("; its last words: {}", tail.join(" | "))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // An error path: do not leave the server (or the guard around it) behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
