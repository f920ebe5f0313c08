//! Session counters: a one-screen summary at exit (`-v`) and a Prometheus text file
//! (`--metrics-file`).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub messages: u64,
    pub forwarded: u64,
    pub modified: u64,
    pub invalid: u64,
    /// Refusals by reason class (the reason's text up to the first `:`).
    pub refusals: BTreeMap<String, u64>,
    pub rate_limited: u64,
    pub redactions: u64,
    pub limit_kills: u64,
    pub suspicious: u64,
    pub findings: u64,
    pub pin_hidden: u64,
}

impl Counters {
    pub fn refused(&mut self, reason: &str) {
        *self.refusals.entry(reason_class(reason)).or_default() += 1;
        if is_rate_limit(reason) {
            self.rate_limited += 1;
        }
    }

    pub fn refusals_total(&self) -> u64 {
        self.refusals.values().sum()
    }

    /// The summary printed at exit with `-v`.
    pub fn summary(&self, session: &str) -> String {
        let mut s = format!("mcp-guard session {session}: audit summary\n");
        let mut row = |name: &str, n: u64| {
            let _ = writeln!(s, "  {name:<28} {n:>8}");
        };
        row("messages judged", self.messages);
        row("forwarded unchanged", self.forwarded);
        row("forwarded modified", self.modified);
        row("invalid messages", self.invalid);
        row("refused", self.refusals_total());
        row("rate-limit hits", self.rate_limited);
        row("values redacted (log)", self.redactions);
        row("hidden by the pin", self.pin_hidden);
        row("findings", self.findings);
        row("suspicious bursts", self.suspicious);
        row("limit kills", self.limit_kills);
        for (reason, n) in &self.refusals {
            let _ = writeln!(s, "    refused: {reason:<19} {n:>8}");
        }
        s
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self, session: &str) -> String {
        let mut s = String::new();
        let labels = format!("session=\"{}\"", escape_label(session));
        let mut metric = |name: &str, help: &str, value: u64| {
            let _ = writeln!(s, "# HELP mcp_guard_{name} {help}");
            let _ = writeln!(s, "# TYPE mcp_guard_{name} counter");
            let _ = writeln!(s, "mcp_guard_{name}{{{labels}}} {value}");
        };
        metric(
            "messages_total",
            "Messages judged by the relay.",
            self.messages,
        );
        metric(
            "modified_total",
            "Messages forwarded modified.",
            self.modified,
        );
        metric("invalid_total", "Invalid JSON-RPC messages.", self.invalid);
        metric(
            "rate_limited_total",
            "Rate-limit refusals.",
            self.rate_limited,
        );
        metric(
            "redactions_total",
            "Values redacted in the audit log.",
            self.redactions,
        );
        metric(
            "pin_hidden_total",
            "Items hidden or refused by the pin.",
            self.pin_hidden,
        );
        metric("findings_total", "Findings recorded.", self.findings);
        metric(
            "suspicious_total",
            "Suspicious bursts of refusals.",
            self.suspicious,
        );
        metric(
            "limit_kills_total",
            "Servers stopped by a resource limit.",
            self.limit_kills,
        );
        let _ = writeln!(
            s,
            "# HELP mcp_guard_refusals_total Refused messages by reason."
        );
        let _ = writeln!(s, "# TYPE mcp_guard_refusals_total counter");
        for (reason, n) in &self.refusals {
            let _ = writeln!(
                s,
                "mcp_guard_refusals_total{{{labels},reason=\"{}\"}} {n}",
                escape_label(reason)
            );
        }
        s
    }
}

/// A short, stable class for a refusal reason: its text before the first `:`, bounded.
fn reason_class(reason: &str) -> String {
    let head = reason.split(':').next().unwrap_or(reason).trim();
    head.chars().take(48).collect()
}

fn is_rate_limit(reason: &str) -> bool {
    reason.to_ascii_lowercase().contains("rate limit")
}

fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Refusals in a sliding window: a burst above the threshold is suspicious (once per window).
#[derive(Debug)]
pub struct BurstDetector {
    threshold: u64,
    window: Duration,
    recent: VecDeque<Instant>,
    quiet_until: Option<Instant>,
}

impl BurstDetector {
    pub fn new(threshold: u64, window: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            window,
            recent: VecDeque::new(),
            quiet_until: None,
        }
    }

    /// Record a refusal at `now`; `Some(count)` when this one makes a burst.
    pub fn refusal(&mut self, now: Instant) -> Option<u64> {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        if self.quiet_until.is_some_and(|q| now < q) {
            return None;
        }
        let count = self.recent.len() as u64;
        if count >= self.threshold {
            self.quiet_until = Some(now + self.window);
            return Some(count);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_detector_fires_once_per_window() {
        let mut d = BurstDetector::new(3, Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(d.refusal(t), None);
        assert_eq!(d.refusal(t), None);
        assert_eq!(d.refusal(t), Some(3));
        assert_eq!(d.refusal(t), None);
        assert_eq!(d.refusal(t + Duration::from_secs(30)), None);
    }

    #[test]
    fn counters_prometheus_has_reasons() {
        let mut c = Counters::default();
        c.refused("Rate limit exceeded: tools/call");
        c.refused("denied by policy: tool x");
        let text = c.prometheus("s1");
        assert!(text.contains("mcp_guard_rate_limited_total{session=\"s1\"} 1"));
        assert!(text.contains("reason=\"denied by policy\"} 1"));
    }
}
