//! Exporting over OTLP/HTTP without ever holding up a container: everything
//! goes through bounded asynchronous queues, each request has a timeout,
//! and failures are counted and logged once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tracing::{debug, warn};

/// One HTTP request's bound.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Export outcomes of every pipeline.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub exported: AtomicU64,
    pub failed_batches: AtomicU64,
    logged: AtomicBool,
}

impl ExportStats {
    fn record(&self, signal: &str, endpoint: &str, items: u64, result: &OTelSdkResult) {
        match result {
            Ok(()) => {
                self.exported.fetch_add(items, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed_batches.fetch_add(1, Ordering::Relaxed);
                if !self.logged.swap(true, Ordering::Relaxed) {
                    warn!("exporting {signal} to {endpoint} failed: {e}; later failures are only counted");
                } else {
                    debug!(items, "exporting {signal} to {endpoint} failed: {e}");
                }
            }
        }
    }
}

/// An OTLP exporter whose outcomes are counted in `stats`.
#[derive(Debug)]
pub struct Counting<E> {
    inner: E,
    endpoint: String,
    stats: Arc<ExportStats>,
}

pub type CountingExporter = Counting<opentelemetry_otlp::SpanExporter>;
pub type CountingMetricExporter = Counting<opentelemetry_otlp::MetricExporter>;
pub type CountingLogExporter = Counting<opentelemetry_otlp::LogExporter>;

/// OTLP/HTTP with protobuf bodies to `endpoint`, each request bounded.
fn http<B: WithExportConfig>(builder: B, endpoint: &str) -> B {
    builder
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(REQUEST_TIMEOUT)
}

impl<E> Counting<E> {
    fn wrap<Err: std::fmt::Display>(
        built: Result<E, Err>,
        signal: &str,
        endpoint: &str,
        stats: Arc<ExportStats>,
    ) -> Result<Self, String> {
        let inner = built.map_err(|e| format!("OTLP {signal} exporter for {endpoint}: {e}"))?;
        Ok(Counting {
            inner,
            endpoint: endpoint.to_string(),
            stats,
        })
    }
}

impl CountingExporter {
    pub fn new(endpoint: &str, stats: Arc<ExportStats>) -> Result<Self, String> {
        let builder = opentelemetry_otlp::SpanExporter::builder().with_http();
        Self::wrap(http(builder, endpoint).build(), "span", endpoint, stats)
    }
}

impl CountingMetricExporter {
    pub fn new(endpoint: &str, stats: Arc<ExportStats>) -> Result<Self, String> {
        let builder = opentelemetry_otlp::MetricExporter::builder().with_http();
        Self::wrap(http(builder, endpoint).build(), "metric", endpoint, stats)
    }
}

impl CountingLogExporter {
    pub fn new(endpoint: &str, stats: Arc<ExportStats>) -> Result<Self, String> {
        let builder = opentelemetry_otlp::LogExporter::builder().with_http();
        Self::wrap(http(builder, endpoint).build(), "log", endpoint, stats)
    }
}

impl SpanExporter for CountingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        self.stats.record("spans", &self.endpoint, n, &result);
        result
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

impl PushMetricExporter for CountingMetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.stats.record("metrics", &self.endpoint, 1, &result);
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

impl LogExporter for CountingLogExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let n = batch.iter().count() as u64;
        let result = self.inner.export(batch).await;
        self.stats.record("logs", &self.endpoint, n, &result);
        result
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}
