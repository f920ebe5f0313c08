//! `mcp-guard audit verify`: walk the hash chain and report the first line that breaks it.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};

use serde_json::Value;

use super::chain::{line_hash, GENESIS};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub lines: u64,
    pub sessions: u64,
    /// Sessions with no `session_end` (the guard was killed, or the tail of the log is gone).
    pub unfinished: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("line {line} {why}: not a chained audit event")]
    Malformed { line: u64, why: String },
    #[error("line {line}: the chain is broken: `prev` does not match line {previous} (a line was edited, deleted, inserted or moved at or before line {line})")]
    Chain { line: u64, previous: u64 },
    #[error(
        "line {line}: the first line must have prev = {GENESIS} (lines were deleted at the start)"
    )]
    Start { line: u64 },
}

impl Broken {
    /// The line the chain breaks at (numbered from 1).
    pub fn line(&self) -> u64 {
        match self {
            Broken::Malformed { line, .. }
            | Broken::Chain { line, .. }
            | Broken::Start { line } => *line,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Broken(#[from] Broken),
    /// The first line is no chained event: this file never was an audit log (no tampering
    /// leaves a first line without `prev`: an edit of it still has one).
    #[error("not an mcp-guard audit log: line 1 {0}")]
    NotAuditLog(String),
    #[error("cannot read the audit log: {0}")]
    Io(#[from] std::io::Error),
}

pub fn verify(input: impl Read) -> Result<Report, VerifyError> {
    let mut reader = BufReader::new(input);
    let mut prev: Option<String> = None;
    let mut report = Report {
        lines: 0,
        sessions: 0,
        unfinished: Vec::new(),
    };
    let mut open = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        report.lines += 1;
        let n = report.lines;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let malformed = |why: String| match n {
            1 => VerifyError::NotAuditLog(why),
            _ => Broken::Malformed { line: n, why }.into(),
        };
        let value: Value =
            serde_json::from_slice(text).map_err(|e| malformed(format!("is not JSON ({e})")))?;
        let claimed = value
            .get("prev")
            .and_then(Value::as_str)
            .filter(|_| text.starts_with(b"{\"prev\":\""))
            .ok_or_else(|| malformed("has no leading `prev` member".into()))?;
        match &prev {
            None if claimed != GENESIS => return Err(Broken::Start { line: n }.into()),
            Some(p) if claimed != p => {
                return Err(Broken::Chain {
                    line: n,
                    previous: n - 1,
                }
                .into())
            }
            _ => {}
        }
        prev = Some(line_hash(text));
        if let Some(session) = value.get("session").and_then(Value::as_str) {
            if seen.insert(session.to_owned()) {
                open.insert(session.to_owned());
            }
            if value.get("event").and_then(Value::as_str) == Some("session_end") {
                open.remove(session);
            }
        }
    }
    report.sessions = seen.len() as u64;
    report.unfinished = open.into_iter().collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{ChainWriter, Destination};

    fn log(n: usize) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut w = ChainWriter::open(&Destination::File(path.clone())).unwrap();
        for i in 0..n {
            w.push(format!(r#"{{"session":"s","seq":{i},"event":"e"}}"#).as_bytes());
        }
        w.push(br#"{"session":"s","event":"session_end"}"#);
        w.flush().unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        (dir, text.lines().map(str::to_owned).collect())
    }

    fn check(lines: &[String]) -> Result<Report, VerifyError> {
        let mut text = lines.join("\n");
        text.push('\n');
        verify(text.as_bytes())
    }

    #[test]
    fn verify_accepts_intact_and_pinpoints_tampering() {
        let (_d, lines) = log(5);
        let ok = check(&lines).unwrap();
        assert_eq!((ok.lines, ok.sessions, ok.unfinished.len()), (6, 1, 0));

        let mut edited = lines.clone();
        edited[2] = edited[2].replace("\"seq\":2", "\"seq\":9");
        assert!(matches!(
            check(&edited),
            Err(VerifyError::Broken(Broken::Chain { line: 4, .. }))
        ));

        let mut deleted = lines.clone();
        deleted.remove(3);
        assert!(matches!(
            check(&deleted),
            Err(VerifyError::Broken(Broken::Chain { line: 4, .. }))
        ));

        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            check(&swapped),
            Err(VerifyError::Broken(Broken::Chain { line: 2, .. }))
        ));

        assert!(matches!(
            check(&lines[1..]),
            Err(VerifyError::Broken(Broken::Start { line: 1 }))
        ));
        let cut = check(&lines[..4]).unwrap();
        assert_eq!(cut.unfinished, ["s"]);
    }
}
