//! What the commands print on stdout. A reader that stops early (`mcp-guard policy list |
//! head -1`) closes the pipe; that ends the output quietly instead of in a panic ("failed
//! printing to stdout: Broken pipe"), and the command keeps its own exit status.
//!
//! Why not SIGPIPE's default action instead: `scan` and `policy init` write to a server over
//! pipes too, and a server that dies mid-write is something they must report, not a reason for
//! the guard to vanish without a word. `run` never comes here: it relays on its own pipes.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write found stdout closed: the rest of the output has no reader either.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Write `text` to stdout as it is. A closed stdout is not an error; a full disk is.
pub fn print(text: &str) -> std::io::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}

/// [`print`] with a newline.
pub fn println(text: &str) -> std::io::Result<()> {
    print(&format!("{text}\n"))
}
