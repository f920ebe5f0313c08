//! A minimal, fast MCP server for the relay benchmark and the flood test.
//!
//! It answers `initialize`, `tools/list` (one tool, `echo`), `ping`, and `tools/call` with the
//! call's `arguments.text` as a text content result; notifications and responses are ignored.
//! It must never be the bottleneck of a measurement, so it reads and writes the raw pipe fds
//! through 1 MiB buffers, flushes only when no more input is buffered, and never builds a
//! `Value` tree: the id and the text are copied through as the exact JSON text received.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

use serde_json::value::RawValue;

const BUFFER: usize = 1 << 20;

/// A JSON object's members, borrowed from the input line (fails on keys with escapes).
type Fields<'a> = HashMap<&'a str, &'a RawValue>;

fn main() {
    // SAFETY: fds 0 and 1 are open for the life of the process; ManuallyDrop never closes them.
    // Using them directly skips std's own (line-)buffering layers on stdin/stdout.
    let (input, output) = unsafe {
        (
            ManuallyDrop::new(File::from_raw_fd(0)),
            ManuallyDrop::new(File::from_raw_fd(1)),
        )
    };
    let mut input = BufReader::with_capacity(BUFFER, &*input);
    let mut output = BufWriter::with_capacity(BUFFER, &*output);
    let mut line = Vec::with_capacity(1 << 16);
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if answer(&line, &mut output).is_err() {
            return;
        }
        if input.buffer().is_empty() && output.flush().is_err() {
            return;
        }
    }
    let _ = output.flush();
}

fn answer(line: &[u8], out: &mut impl Write) -> io::Result<()> {
    let Ok(message) = serde_json::from_slice::<Fields>(line) else {
        return Ok(());
    };
    let (Some(id), Some(method)) = (message.get("id"), message.get("method")) else {
        return Ok(());
    };
    let params = message
        .get("params")
        .and_then(|p| serde_json::from_str::<Fields>(p.get()).ok())
        .unwrap_or_default();
    out.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":")?;
    out.write_all(id.get().as_bytes())?;
    match serde_json::from_str::<&str>(method.get()).unwrap_or_default() {
        "initialize" => {
            let version = params
                .get("protocolVersion")
                .map_or("\"2025-06-18\"", |v| v.get());
            out.write_all(b",\"result\":{\"protocolVersion\":")?;
            out.write_all(version.as_bytes())?;
            out.write_all(
                b",\"capabilities\":{\"tools\":{}},\
                  \"serverInfo\":{\"name\":\"echo-server\",\"version\":\"0.0.0\"}}}\n",
            )?;
        }
        "tools/list" => out.write_all(
            b",\"result\":{\"tools\":[{\"name\":\"echo\",\"description\":\"Returns its text\",\
              \"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}}}}]}}\n",
        )?,
        "tools/call" => {
            let text = params
                .get("arguments")
                .and_then(|a| serde_json::from_str::<Fields>(a.get()).ok())
                .and_then(|a| a.get("text").map(|t| t.get()))
                .filter(|t| t.starts_with('"'))
                .unwrap_or("\"\"");
            out.write_all(b",\"result\":{\"content\":[{\"type\":\"text\",\"text\":")?;
            out.write_all(text.as_bytes())?;
            out.write_all(b"}]}}\n")?;
        }
        "ping" => out.write_all(b",\"result\":{}}\n")?,
        _ => out.write_all(b",\"error\":{\"code\":-32601,\"message\":\"method not found\"}}\n")?,
    }
    Ok(())
}
