//! The OpenTelemetry sink for fleets (issue 19): the audit events as OTLP log records and the
//! session's counters as OTLP metrics, sent over HTTP/JSON to a collector the user names.
//!
//! Off unless `[audit] otlp_endpoint` or the guard's own `OTEL_EXPORTER_OTLP_ENDPOINT` names a
//! collector. The audit recorder hands every finished event line to [`event`]; the record is
//! queued for the SDK's batch thread, so the relay never waits on the network. A collector that
//! is down loses telemetry (said once), never messages, and the file log is unaffected.

mod attributes;
mod export;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::logs::Logger as _;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// The standard variable fleet operators already set on their machines and runners.
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard switch that turns every OpenTelemetry SDK off.
const DISABLED_VAR: &str = "OTEL_SDK_DISABLED";
/// How long one export may take, and how long the guard waits at exit for the last batch.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up the OpenTelemetry export to {endpoint}: {why} (fix [audit] otlp_endpoint or ${ENDPOINT_VAR}, or set it to \"\" to turn the export off)")]
    Setup { endpoint: String, why: String },
}

/// The exporters of this process: one session, one sink.
struct Sink {
    logger: SdkLogger,
    metrics: SdkMeterProvider,
    /// Taken at shutdown.
    providers: Mutex<Option<(SdkLoggerProvider, SdkMeterProvider)>>,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Which collector, if any: the policy's `otlp_endpoint` wins (`""` means none); else the
/// guard's own `OTEL_EXPORTER_OTLP_ENDPOINT`. `env` reads the guard's environment, never the
/// server's: what `--env` or `[env]` give the server cannot turn the export on.
pub fn choose_endpoint(
    policy: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    if env(DISABLED_VAR).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    let chosen = match policy {
        Some(p) => p.trim().to_owned(),
        None => env(ENDPOINT_VAR).unwrap_or_default().trim().to_owned(),
    };
    (!chosen.is_empty()).then_some(chosen)
}

/// An endpoint the exporter can use: `""` (off) or an `http://` base URL.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let e = endpoint.trim();
    if e.is_empty() {
        return Ok(());
    }
    if e.starts_with("https://") {
        return Err(
            "https:// is not supported by this build (no TLS in the exporter); \
                    send to a local or in-cluster collector over http://"
                .into(),
        );
    }
    let rest = e
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{e}` is not an http:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{e}` names no host"));
    }
    Ok(())
}

/// Exports while alive; dropping it sends what is queued (bounded wait) and stops the export.
#[derive(Debug)]
pub struct Running(());

impl Drop for Running {
    fn drop(&mut self) {
        shutdown();
    }
}

/// Start the export to `endpoint` (the collector's base URL; `/v1/logs` and `/v1/metrics` are
/// appended). `server_command` names the session on the resource.
pub fn start(endpoint: &str, server_command: &[String]) -> Result<Running, TelemetryError> {
    let fail = |why: String| TelemetryError::Setup {
        endpoint: endpoint.to_owned(),
        why,
    };
    check_endpoint(endpoint).map_err(fail)?;
    let (logs, metrics) = export::providers(endpoint, server_command).map_err(fail)?;
    use opentelemetry::logs::LoggerProvider as _;
    let sink = Sink {
        logger: logs.logger("mcp-guard"),
        metrics: metrics.clone(),
        providers: Mutex::new(Some((logs, metrics))),
    };
    SINK.set(sink)
        .map_err(|_| fail("the export is already running".into()))?;
    Ok(Running(()))
}

/// One finished audit event (a JSON object, as written to the log). A no-op when the export is
/// off (it is serialised again only then); never blocks (the batch queue drops records when
/// full).
pub fn event<T: serde::Serialize>(event: &T) {
    let Some(sink) = SINK.get() else {
        return;
    };
    // The body is the line as the log has it (field order kept); the map gives the attributes.
    let Ok(line) = serde_json::to_string(event) else {
        return;
    };
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&line) else {
        return;
    };
    let mut record = sink.logger.create_log_record();
    attributes::fill(&mut record, &fields, line);
    sink.logger.emit(record);
    if let Some(counters) = fields.get("counters").filter(|_| is_end(&fields)) {
        attributes::record_counters(&sink.metrics, counters, &fields);
    }
}

fn is_end(fields: &serde_json::Map<String, serde_json::Value>) -> bool {
    fields.get("event").and_then(|e| e.as_str()) == Some("session_end")
}

/// Send what is queued, waiting at most a few seconds: a slow collector delays the guard's exit
/// by that much at worst, and loses the rest.
fn shutdown() {
    let Some(sink) = SINK.get() else {
        return;
    };
    let Some((logs, metrics)) = sink.providers.lock().ok().and_then(|mut p| p.take()) else {
        return;
    };
    let (done, wait) = std::sync::mpsc::channel();
    // Its own thread: the HTTP client must not be dropped on the relay's runtime.
    let spawned = std::thread::Builder::new()
        .name("otlp-shutdown".into())
        .spawn(move || {
            let _ = logs.shutdown_with_timeout(EXPORT_TIMEOUT);
            let _ = metrics.shutdown_with_timeout(EXPORT_TIMEOUT);
            let _ = done.send(());
        });
    if spawned.is_ok() {
        let _ = wait.recv_timeout(EXPORT_TIMEOUT * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn policy_wins_and_empty_turns_off() {
        let set = [(ENDPOINT_VAR, "http://env:4318")];
        assert_eq!(choose_endpoint(None, env(&[])), None);
        assert_eq!(
            choose_endpoint(None, env(&set)).as_deref(),
            Some("http://env:4318")
        );
        assert_eq!(
            choose_endpoint(Some("http://p:4318"), env(&set)).as_deref(),
            Some("http://p:4318")
        );
        assert_eq!(choose_endpoint(Some(""), env(&set)), None);
        let off = [(ENDPOINT_VAR, "http://env:4318"), (DISABLED_VAR, "true")];
        assert_eq!(choose_endpoint(Some("http://p:4318"), env(&off)), None);
    }

    #[test]
    fn endpoints_checked() {
        assert!(check_endpoint("").is_ok());
        assert!(check_endpoint("http://collector:4318").is_ok());
        assert!(check_endpoint("https://collector:4318").is_err());
        assert!(check_endpoint("collector:4318").is_err());
        assert!(check_endpoint("http://").is_err());
    }
}
