//! The SDK's pipelines: OTLP over HTTP/JSON, each signal batched on the SDK's own thread, and
//! exporters that say once on stderr when the collector cannot be reached.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLoggerProvider};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;

use super::EXPORT_TIMEOUT;

/// Counters are recorded at the session's end and sent at shutdown; the periodic reader
/// itself has nothing to do before then.
const METRICS_INTERVAL: Duration = Duration::from_secs(60);

static WARNED: AtomicBool = AtomicBool::new(false);

/// Once per process: a collector that is down must not fill the user's terminal.
fn warn_once(endpoint: &str, error: &dyn std::fmt::Display) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "cannot send telemetry to the OpenTelemetry collector at {endpoint}: {error}; \
             telemetry is lost until it answers (messages are relayed and the audit log is written as usual)"
        );
    }
}

pub fn providers(
    endpoint: &str,
    server_command: &[String],
) -> Result<(SdkLoggerProvider, SdkMeterProvider), String> {
    let base = endpoint.trim().trim_end_matches('/');
    let resource = resource(server_command);
    let logs = opentelemetry_otlp::LogExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{base}/v1/logs"))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{base}/v1/metrics"))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let logs = SdkLoggerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(Warned {
            inner: logs,
            endpoint: base.to_owned(),
        })
        .build();
    let reader = PeriodicReader::builder(Warned {
        inner: metrics,
        endpoint: base.to_owned(),
    })
    .with_interval(METRICS_INTERVAL)
    .build();
    let metrics = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .build();
    Ok((logs, metrics))
}

/// `service.name`, the host, and the server this guard runs (semantic conventions' resource
/// attributes where they exist).
fn resource(server_command: &[String]) -> Resource {
    let mut attributes = vec![
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("process.pid", i64::from(std::process::id())),
        KeyValue::new(
            "mcp_guard.server.command",
            opentelemetry::Value::Array(
                server_command
                    .iter()
                    .map(|a| opentelemetry::StringValue::from(a.clone()))
                    .collect::<Vec<_>>()
                    .into(),
            ),
        ),
    ];
    if let Some(host) = host_name() {
        attributes.push(KeyValue::new("host.name", host));
    }
    Resource::builder_empty()
        .with_service_name("mcp-guard")
        .with_attributes(attributes)
        .build()
}

fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// An exporter that reports its first failure.
#[derive(Debug)]
struct Warned<E> {
    inner: E,
    endpoint: String,
}

impl<E: LogExporter> LogExporter for Warned<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        if let Err(e) = &result {
            warn_once(&self.endpoint, e);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Warned<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        if let Err(e) = &result {
            warn_once(&self.endpoint, e);
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
