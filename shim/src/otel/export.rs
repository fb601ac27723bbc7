//! Exporting over OTLP (http/protobuf or gRPC) without ever holding up a
//! container: everything goes through bounded asynchronous queues, each
//! request has a timeout, and failures are counted and logged once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_otlp::{Protocol as Wire, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tracing::{debug, warn};

use super::endpoint::{Endpoint, Protocol};
use super::losses::{InFlight, SpanLosses};

/// One export's bound, retries included, over either protocol.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Export outcomes of every pipeline, and the spans the host lost.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub exported: AtomicU64,
    pub failed_batches: AtomicU64,
    /// Spans lost: refused by a full queue, or in failed exports.
    pub spans: Arc<SpanLosses>,
    logged: AtomicBool,
}

impl ExportStats {
    /// `vm` labels the span loss counters.
    pub fn new(vm: Vec<opentelemetry::KeyValue>) -> Self {
        ExportStats {
            spans: Arc::new(SpanLosses::new(vm)),
            ..Default::default()
        }
    }

    fn record(&self, signal: &str, endpoint: &str, items: u64, result: &OTelSdkResult) {
        match result {
            Ok(()) => {
                self.exported.fetch_add(items, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed_batches.fetch_add(1, Ordering::Relaxed);
                if signal == "spans" {
                    self.spans.export_failed(items);
                }
                if !self.logged.swap(true, Ordering::Relaxed) {
                    warn!(
                        items,
                        "exporting {signal} to {endpoint} failed: {e}; later failures are only counted"
                    );
                } else {
                    debug!(items, "exporting {signal} to {endpoint} failed: {e}");
                }
            }
        }
    }
}

/// One span export under way: whatever becomes of it, its spans leave the
/// pipeline's queue, and an export dropped before it settled (the batch
/// processor's timeout) counts as failed.
struct Outstanding<'a> {
    exporter: &'a CountingExporter,
    items: u64,
    settled: bool,
}

impl Outstanding<'_> {
    fn settle(mut self, result: &OTelSdkResult) {
        self.exporter
            .stats
            .record("spans", &self.exporter.endpoint, self.items, result);
        self.settled = true;
    }
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let abandoned = Err(opentelemetry_sdk::error::OTelSdkError::Timeout(REQUEST_TIMEOUT));
            self.exporter
                .stats
                .record("spans", &self.exporter.endpoint, self.items, &abandoned);
        }
        if let Some(q) = &self.exporter.in_flight {
            q.finish(self.items as usize);
        }
    }
}

/// An OTLP exporter whose outcomes are counted in `stats`.
#[derive(Debug)]
pub struct Counting<E> {
    inner: E,
    endpoint: String,
    stats: Arc<ExportStats>,
    /// The pipeline's spans in flight, which this exporter finishes.
    in_flight: Option<Arc<InFlight>>,
}

pub type CountingExporter = Counting<opentelemetry_otlp::SpanExporter>;
pub type CountingMetricExporter = Counting<opentelemetry_otlp::MetricExporter>;
pub type CountingLogExporter = Counting<opentelemetry_otlp::LogExporter>;

/// The HTTP client of every OTLP/HTTP exporter in this process, built on
/// the first export. A build loads and parses the system's CA certificates,
/// about 4 ms: once per process rather than per exporter (shim spans, guest
/// spans, metrics, logs), and on an exporter's thread rather than on the
/// way to serving Create.
#[derive(Debug, Clone, Copy)]
struct SharedClient;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for SharedClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<opentelemetry_http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError> {
        static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
        let client = CLIENT.get_or_init(build_client).as_ref().map_err(|e| e.clone())?;
        client.send_bytes(request).await
    }
}

/// Makes ring the process's TLS provider, which reqwest needs before it
/// builds a client: it is built without one of its own
/// (`rustls-no-provider`) in every binary of the workspace. tonic's TLS
/// uses ring too. Installing fails only when a provider is already
/// installed, which then serves as well.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn build_client() -> Result<reqwest::Client, String> {
    install_tls_provider();
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("build the HTTP client: {e}"))
}

/// OTLP/HTTP with protobuf bodies to `endpoint`, each request bounded. The
/// protocol is set, not left to the exporter: it would read
/// OTEL_EXPORTER_OTLP_PROTOCOL itself, which the config has already judged.
fn http<B: WithExportConfig + WithHttpConfig>(builder: B, endpoint: &str) -> B {
    builder
        .with_protocol(Wire::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(REQUEST_TIMEOUT)
        .with_http_client(SharedClient)
}

/// OTLP/gRPC (tonic) to `endpoint`, with the same bound as HTTP. An https
/// endpoint verifies the collector against the system's CAs (without roots
/// tonic's TLS would trust nobody).
fn grpc<B: WithExportConfig + WithTonicConfig>(builder: B, endpoint: &str) -> Result<B, String> {
    // tonic's channel spawns its connection task on the current runtime and
    // panics without one: say so instead.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err("OTLP gRPC exporters must be built inside the tokio runtime".into());
    }
    let builder = builder
        .with_protocol(Wire::Grpc)
        .with_endpoint(endpoint)
        .with_timeout(REQUEST_TIMEOUT);
    Ok(if endpoint.starts_with("https://") {
        builder.with_tls_config(ClientTlsConfig::new().with_enabled_roots())
    } else {
        builder
    })
}

impl<E> Counting<E> {
    fn wrap<Err: std::fmt::Display>(
        built: Result<Result<E, Err>, String>,
        signal: &str,
        endpoint: &Endpoint,
        stats: Arc<ExportStats>,
    ) -> Result<Self, String> {
        let fail = |e: String| format!("OTLP {signal} exporter for {endpoint}: {e}");
        let inner = built.map_err(fail)?.map_err(|e| fail(e.to_string()))?;
        Ok(Counting {
            inner,
            endpoint: endpoint.to_string(),
            stats,
            in_flight: None,
        })
    }
}

impl CountingExporter {
    pub fn new(endpoint: &Endpoint, stats: Arc<ExportStats>) -> Result<Self, String> {
        let builder = opentelemetry_otlp::SpanExporter::builder();
        let built = match endpoint.protocol {
            Protocol::HttpProtobuf => Ok(http(builder.with_http(), &endpoint.url).build()),
            Protocol::Grpc => grpc(builder.with_tonic(), &endpoint.url).map(|b| b.build()),
        };
        Self::wrap(built, "span", endpoint, stats)
    }

    /// Finishes the spans of every export, exported or failed, in
    /// `in_flight` (its pipeline's `queue::Bounded`).
    pub fn with_queue(mut self, in_flight: Arc<InFlight>) -> Self {
        self.in_flight = Some(in_flight);
        self
    }
}

impl CountingMetricExporter {
    pub fn new(endpoint: &Endpoint, stats: Arc<ExportStats>) -> Result<Self, String> {
        let builder = opentelemetry_otlp::MetricExporter::builder();
        let built = match endpoint.protocol {
            Protocol::HttpProtobuf => Ok(http(builder.with_http(), &endpoint.url).build()),
            Protocol::Grpc => grpc(builder.with_tonic(), &endpoint.url).map(|b| b.build()),
        };
        Self::wrap(built, "metric", endpoint, stats)
    }
}

impl CountingLogExporter {
    pub fn new(endpoint: &Endpoint, stats: Arc<ExportStats>) -> Result<Self, String> {
        let builder = opentelemetry_otlp::LogExporter::builder();
        let built = match endpoint.protocol {
            Protocol::HttpProtobuf => Ok(http(builder.with_http(), &endpoint.url).build()),
            Protocol::Grpc => grpc(builder.with_tonic(), &endpoint.url).map(|b| b.build()),
        };
        Self::wrap(built, "log", endpoint, stats)
    }
}

impl SpanExporter for CountingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let outstanding = Outstanding {
            exporter: self,
            items: batch.len() as u64,
            settled: false,
        };
        let result = self.inner.export(batch).await;
        outstanding.settle(&result);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn grpc_at(url: &str) -> Endpoint {
        Endpoint {
            url: url.into(),
            protocol: Protocol::Grpc,
        }
    }

    #[tokio::test]
    async fn grpc_exporters_build_for_http_and_https_collectors() {
        let stats = Arc::new(ExportStats::default());
        for url in ["http://127.0.0.1:4317", "https://collector.example:4317"] {
            CountingExporter::new(&grpc_at(url), stats.clone()).unwrap();
            CountingMetricExporter::new(&grpc_at(url), stats.clone()).unwrap();
            CountingLogExporter::new(&grpc_at(url), stats.clone()).unwrap();
        }
    }

    /// An https:// collector gets a TLS handshake, over either protocol: the
    /// clients have their provider. What answers is no TLS server, so the
    /// export fails, counted.
    #[tokio::test]
    async fn an_https_endpoint_is_spoken_to_in_tls() {
        for protocol in [Protocol::HttpProtobuf, Protocol::Grpc] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
            let first_bytes = tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut hello = [0u8; 3];
                conn.read_exact(&mut hello).await.unwrap();
                conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await.unwrap();
                hello
            });
            let stats = Arc::new(ExportStats::default());
            let exporter = CountingExporter::new(&Endpoint { url, protocol }, stats.clone()).unwrap();
            assert!(exporter.export(Vec::new()).await.is_err(), "{protocol:?}");
            // A TLS record: content type handshake (22), protocol version 3.x.
            assert_eq!(first_bytes.await.unwrap()[..2], [22, 3], "{protocol:?}");
            assert_eq!(stats.failed_batches.load(Ordering::Relaxed), 1, "{protocol:?}");
        }
    }

    #[test]
    fn grpc_exporters_outside_the_runtime_are_an_error_not_a_panic() {
        let err = CountingExporter::new(&grpc_at("http://127.0.0.1:4317"), Arc::default()).unwrap_err();
        assert!(err.contains("inside the tokio runtime"), "{err}");
    }

    /// Nothing listens: the export fails within its bound and is counted.
    #[tokio::test]
    async fn a_dead_grpc_endpoint_fails_within_the_bound_and_is_counted() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let stats = Arc::new(ExportStats::default());
        let exporter = CountingExporter::new(&grpc_at(&format!("http://127.0.0.1:{port}")), stats.clone()).unwrap();
        let started = Instant::now();
        assert!(exporter.export(Vec::new()).await.is_err());
        assert!(
            started.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(stats.failed_batches.load(Ordering::Relaxed), 1);
    }

    /// The endpoint takes the connection and never answers: the export is
    /// abandoned at a timeout (as the batch processor does), and its spans
    /// still leave the queue, counted as failed.
    #[tokio::test]
    async fn an_abandoned_export_finishes_its_spans_as_failed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let endpoint = Endpoint {
            url,
            protocol: Protocol::HttpProtobuf,
        };
        let stats = Arc::new(ExportStats::default());
        let in_flight = InFlight::new(10);
        for _ in 0..3 {
            assert!(in_flight.admit());
        }
        let exporter = CountingExporter::new(&endpoint, stats.clone())
            .unwrap()
            .with_queue(in_flight.clone());
        let batch = (0..3).map(|_| crate::otel::queue::tests::span(true)).collect();
        let gave_up = tokio::time::timeout(Duration::from_millis(200), exporter.export(batch)).await;
        assert!(gave_up.is_err(), "the endpoint never answers");
        assert_eq!(stats.spans.export_failed.load(Ordering::Relaxed), 3);
        assert_eq!(in_flight.get(), 0);
        drop(listener);
    }
}
