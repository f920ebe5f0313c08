//! The last session of each server command in the audit log, found in one streaming pass over
//! the log and its rotated files (oldest first): the log can be ~128 MiB, so only the summaries
//! of the commands asked about are kept, never the events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How one session went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SessionSummary {
    pub session: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it ended; `None`: still running, or the guard was killed.
    pub ended: Option<String>,
    pub exit: Option<ServerExit>,
    /// Messages the firewall refused.
    pub refusals: u64,
    /// Findings by severity (`low`, `medium`, `high`).
    pub findings: BTreeMap<String, u64>,
    /// Limits the server hit (`memory`, `cpu`, …), in order.
    pub limits: Vec<String>,
}

/// The `server_exit` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerExit {
    pub status: Option<u8>,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub limit: Option<String>,
    pub description: Option<String>,
}

/// The fields of an event this pass needs; the rest (arguments, reasons) is skipped unread.
#[derive(Deserialize)]
struct Event {
    ts: Option<String>,
    session: Option<String>,
    event: Option<String>,
    command: Option<Vec<String>>,
    decision: Option<String>,
    severity: Option<String>,
    limit: Option<String>,
    status: Option<u8>,
    code: Option<i32>,
    signal: Option<i32>,
    description: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the audit log {}: {source}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// `log` and its rotated files (`log.1`, `log.2`, …) that exist, oldest first.
pub fn log_files(log: &Path) -> Vec<PathBuf> {
    let numbered = |n: u32| {
        let mut name = log.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    let mut files: Vec<PathBuf> = (1..).map(numbered).take_while(|p| p.is_file()).collect();
    files.reverse();
    files.extend(Some(log.to_owned()).filter(|p| p.is_file()));
    files
}

/// The last session of each of `commands` in `files` (oldest first). Lines that are not
/// events (a torn last line, a foreign line) are skipped: status reports, `audit verify` judges.
pub fn last_sessions(
    files: &[PathBuf],
    commands: &HashSet<Vec<String>>,
) -> Result<HashMap<Vec<String>, SessionSummary>, ReadError> {
    let mut last: HashMap<Vec<String>, SessionSummary> = HashMap::new();
    // Sessions of wanted commands that have not ended: several guards share one log.
    let mut open: HashMap<String, Vec<String>> = HashMap::new();
    for path in files {
        let read_error = |source| ReadError {
            path: path.clone(),
            source,
        };
        let reader = BufReader::new(File::open(path).map_err(read_error)?);
        for line in reader.split(b'\n') {
            let line = line.map_err(read_error)?;
            let Ok(event) = serde_json::from_slice::<Event>(&line) else {
                continue;
            };
            apply(event, commands, &mut last, &mut open);
        }
    }
    Ok(last)
}

fn apply(
    event: Event,
    commands: &HashSet<Vec<String>>,
    last: &mut HashMap<Vec<String>, SessionSummary>,
    open: &mut HashMap<String, Vec<String>>,
) {
    let (Some(kind), Some(session)) = (event.event.as_deref(), event.session.clone()) else {
        return;
    };
    if kind == "session_start" {
        let Some(command) = event.command.filter(|c| commands.contains(c)) else {
            return;
        };
        open.insert(session.clone(), command.clone());
        last.insert(
            command,
            SessionSummary {
                session,
                started: event.ts.unwrap_or_default(),
                ..SessionSummary::default()
            },
        );
        return;
    }
    let Some(command) = open.get(&session) else {
        return;
    };
    let Some(summary) = last.get_mut(command).filter(|s| s.session == session) else {
        return;
    };
    match kind {
        "message" if event.decision.as_deref() == Some("refuse") => summary.refusals += 1,
        "finding" => {
            let severity = event.severity.unwrap_or_else(|| "unknown".to_owned());
            *summary.findings.entry(severity).or_default() += 1;
        }
        "limit" => summary.limits.extend(event.limit),
        "server_exit" => {
            summary.exit = Some(ServerExit {
                status: event.status,
                code: event.code,
                signal: event.signal,
                limit: event.limit,
                description: event.description,
            })
        }
        "session_end" => {
            summary.ended = event.ts;
            open.remove(&session);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_last_session_of_each_command_is_kept_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        let write = |path: &Path, lines: &[&str]| {
            let mut f = File::create(path).unwrap();
            for l in lines {
                writeln!(f, "{l}").unwrap();
            }
        };
        let rotated = PathBuf::from(format!("{}.1", log.display()));
        write(
            &rotated,
            &[
                r#"{"ts":"t1","session":"a","event":"session_start","command":["srv"]}"#,
                r#"{"ts":"t2","session":"a","event":"message","decision":"refuse"}"#,
            ],
        );
        write(
            &log,
            &[
                r#"{"ts":"t3","session":"b","event":"session_start","command":["srv"]}"#,
                r#"{"ts":"t4","session":"c","event":"session_start","command":["other"]}"#,
                r#"{"ts":"t5","session":"a","event":"message","decision":"refuse"}"#,
                r#"{"ts":"t6","session":"b","event":"message","decision":"refuse"}"#,
                r#"{"ts":"t6","session":"b","event":"message","decision":"forward"}"#,
                r#"{"ts":"t7","session":"b","event":"finding","severity":"high"}"#,
                "torn {",
                r#"{"ts":"t8","session":"b","event":"limit","limit":"memory"}"#,
                r#"{"ts":"t9","session":"b","event":"server_exit","status":137,"code":null,"signal":9,"limit":"memory","description":"killed"}"#,
                r#"{"ts":"t10","session":"b","event":"session_end","counters":{}}"#,
            ],
        );
        let files = log_files(&log);
        assert_eq!(files, [rotated, log]);
        let wanted = HashSet::from([vec!["srv".to_owned()]]);
        let last = last_sessions(&files, &wanted).unwrap();
        assert_eq!(last.len(), 1, "only the commands asked about");
        let s = &last[&vec!["srv".to_owned()]];
        assert_eq!((s.session.as_str(), s.started.as_str()), ("b", "t3"));
        assert_eq!(s.refusals, 1, "session a's late refusal is not b's");
        assert_eq!(s.findings, BTreeMap::from([("high".to_owned(), 1)]));
        assert_eq!(s.limits, ["memory"]);
        assert_eq!(s.exit.as_ref().unwrap().signal, Some(9));
        assert_eq!(s.ended.as_deref(), Some("t10"));
    }
}
