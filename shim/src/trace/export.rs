//! Exporting over OTLP/HTTP without ever holding up a container: spans go
//! through a bounded asynchronous batch queue, each request has a timeout,
//! and failures are counted and logged once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tracing::warn;

/// One HTTP request's bound.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Export outcomes, shared by the shim's and the guest's exporters.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub exported: AtomicU64,
    pub failed_batches: AtomicU64,
    pub failed_spans: AtomicU64,
    logged: AtomicBool,
}

#[derive(Debug)]
pub struct CountingExporter {
    inner: opentelemetry_otlp::SpanExporter,
    endpoint: String,
    stats: Arc<ExportStats>,
}

impl CountingExporter {
    pub fn new(endpoint: &str, stats: Arc<ExportStats>) -> Result<Self, String> {
        let inner = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
        Ok(CountingExporter {
            inner,
            endpoint: endpoint.to_string(),
            stats,
        })
    }
}

impl SpanExporter for CountingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                self.stats.exported.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                self.stats.failed_spans.fetch_add(n, Ordering::Relaxed);
                if !self.stats.logged.swap(true, Ordering::Relaxed) {
                    warn!(
                        "exporting spans to {} failed: {e}; later failures are only counted",
                        self.endpoint
                    );
                }
            }
        }
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
