//! Installing telemetry: logs always; traces, metrics and logs over OTLP
//! when their endpoints are set.
//!
//! Traces come in two pipelines on one endpoint: the shim's spans (service
//! `voidbox`, or `VOIDBOX_SERVICE_NAME`) through the tracing subscriber, and the
//! guest's (service `voidbox-vm`), which arrive already finished. Every
//! pipeline batches on the tokio runtime with bounded queues; a span
//! pipeline's bound is kept by `queue::Bounded`, which counts what it
//! refuses (the SDK's own queue would drop without a count).

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::log_processor_with_async_runtime::BatchLogProcessor;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{BatchConfigBuilder, SdkTracerProvider, SpanExporter as _, SpanProcessor};
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::config::{OtelConfig, GUEST_SERVICE};
use super::export::{CountingExporter, CountingLogExporter, CountingMetricExporter, ExportStats};
use super::logfmt::LogFormat;
use super::queue::{Bounded, InFlight, SpanSink};

/// Where the guest's relayed spans go: the guest pipeline's bounded queue.
pub type GuestSink = std::sync::Arc<dyn SpanSink>;

type Pipeline = Bounded<BatchSpanProcessor<Tokio>>;

/// How long shutdown waits for what is still queued, per pipeline.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// Spans per export request.
const BATCH: usize = 512;

/// What the shim's telemetry is attached to.
pub struct Identity {
    pub container_id: String,
    pub namespace: String,
    pub vm_id: String,
}

pub struct Telemetry {
    pub config: OtelConfig,
    tracer: Option<SdkTracerProvider>,
    guest: Option<Arc<Pipeline>>,
    /// Spans in flight in each span pipeline.
    in_flight: Vec<Arc<InFlight>>,
    meter: Option<SdkMeterProvider>,
    logger: Option<SdkLoggerProvider>,
    pub stats: Arc<ExportStats>,
}

fn resource(service: &str, id: &Identity) -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", service.to_string()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            // One shim per container: its series must not collide with
            // other shims' (Prometheus makes this the `instance` label).
            KeyValue::new("service.instance.id", id.vm_id.clone()),
            KeyValue::new("container.id", id.container_id.clone()),
            KeyValue::new("voidbox.namespace", id.namespace.clone()),
            KeyValue::new("voidbox.vm.id", id.vm_id.clone()),
        ])
        .build()
}

/// A span pipeline: `exporter` behind a batch processor behind a bound of
/// `bound` spans in flight. The SDK's channel has room for one more batch
/// than the bound (see `queue`), so only `Bounded` ever refuses a span.
fn pipeline(exporter: CountingExporter, bound: usize, stats: Arc<ExportStats>) -> Pipeline {
    let in_flight = InFlight::new(bound);
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(bound + BATCH)
        .with_max_export_batch_size(BATCH)
        .with_scheduled_delay(Duration::from_millis(500))
        .with_max_export_timeout(super::export::REQUEST_TIMEOUT)
        .build();
    let batch = BatchSpanProcessor::builder(exporter.with_queue(in_flight.clone()), Tokio)
        .with_batch_config(config)
        .build();
    Bounded::new(batch, in_flight, stats.spans.clone())
}

/// Log records from the exporters' own HTTP and gRPC stacks would feed
/// themselves.
fn bridge_filter() -> EnvFilter {
    EnvFilter::new("info,hyper=off,hyper_util=off,reqwest=off,h2=off,rustls=off,tonic=off,tower=off,opentelemetry=off")
}

impl Telemetry {
    /// Installs the global subscriber (and meter provider). `logs` is where
    /// log lines go. Must be called inside the tokio runtime.
    pub fn install<W>(logs: W, debug: bool, id: &Identity, config: OtelConfig) -> Result<Telemetry, String>
    where
        W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
    {
        let level = if debug { "debug" } else { "info" };
        let filter = config
            .log_filter
            .as_deref()
            .and_then(|f| EnvFilter::try_new(f).ok())
            .unwrap_or_else(|| EnvFilter::new(level));
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(logs)
            .with_ansi(false)
            .event_format(LogFormat { vm: id.vm_id.clone() })
            .with_filter(filter);
        let stats = Arc::new(ExportStats::new(super::metrics::vm_attrs(&id.container_id, &id.vm_id)));
        let shim = resource(&config.service_name, id);

        let mut in_flight = Vec::new();
        let (tracer, guest, otel) = match &config.traces {
            Some(endpoint) => {
                let own = pipeline(
                    CountingExporter::new(endpoint, stats.clone())?,
                    config.span_queue,
                    stats.clone(),
                );
                in_flight.push(own.queue());
                let provider = SdkTracerProvider::builder()
                    .with_resource(shim.clone())
                    .with_span_processor(own)
                    .build();
                // As vminitd's: no thread, timing or location attributes,
                // which cost every span and say nothing its name does not.
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("voidbox-shim"))
                    .with_threads(false)
                    .with_tracked_inactivity(false)
                    .with_location(false)
                    .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
                let mut guest_exporter = CountingExporter::new(endpoint, stats.clone())?;
                guest_exporter.set_resource(&resource(GUEST_SERVICE, id));
                let guest = pipeline(guest_exporter, config.span_queue, stats.clone());
                in_flight.push(guest.queue());
                (Some(provider), Some(Arc::new(guest)), Some(layer))
            }
            None => (None, None, None),
        };
        let meter = match &config.metrics {
            Some(endpoint) => {
                let reader = PeriodicReader::builder(CountingMetricExporter::new(endpoint, stats.clone())?, Tokio)
                    .with_interval(config.metric_interval)
                    .build();
                let provider = SdkMeterProvider::builder()
                    .with_resource(shim.clone())
                    .with_reader(reader)
                    .build();
                opentelemetry::global::set_meter_provider(provider.clone());
                Some(provider)
            }
            None => None,
        };
        let (logger, bridge) = match &config.logs {
            Some(endpoint) => {
                let processor =
                    BatchLogProcessor::builder(CountingLogExporter::new(endpoint, stats.clone())?, Tokio).build();
                let provider = SdkLoggerProvider::builder()
                    .with_resource(shim)
                    .with_log_processor(processor)
                    .build();
                let bridge = OpenTelemetryTracingBridge::new(&provider).with_filter(bridge_filter());
                (Some(provider), Some(bridge))
            }
            None => (None, None),
        };
        // RPC latency is timed from the RPC spans, when metrics are on.
        let timer = meter.as_ref().map(|_| super::metrics::RpcTimer);
        tracing_subscriber::registry()
            .with(fmt)
            .with(otel)
            .with(bridge)
            .with(timer)
            .init();
        Ok(Telemetry {
            config,
            tracer,
            guest,
            in_flight,
            meter,
            logger,
            stats,
        })
    }

    pub fn tracing(&self) -> bool {
        self.tracer.is_some()
    }

    pub fn metrics(&self) -> bool {
        self.meter.is_some()
    }

    /// Where the guest's spans go, when tracing is on.
    pub fn guest_sink(&self) -> Option<GuestSink> {
        self.guest.clone().map(|g| g as GuestSink)
    }

    /// Flushes what is queued, waiting at most FLUSH_TIMEOUT in all: a
    /// pipeline still stuck on a slow endpoint then loses what it holds
    /// (logged with its count) rather than keep the shim alive. The span
    /// pipelines flush first, so that the metrics' last export counts what
    /// their flush lost; the metrics and logs start when those are done, or
    /// at half the bound. Blocks: call it from a blocking thread.
    pub fn shutdown(&self) {
        let mut spans: Vec<Flush> = Vec::new();
        if let Some(guest) = self.guest.clone() {
            spans.push(Box::new(move || drop(guest.shutdown_with_timeout(FLUSH_TIMEOUT))));
        }
        if let Some(p) = self.tracer.clone() {
            spans.push(Box::new(move || drop(p.shutdown_with_timeout(FLUSH_TIMEOUT))));
        }
        let mut rest: Vec<Flush> = Vec::new();
        if let Some(p) = self.meter.clone() {
            rest.push(Box::new(move || drop(p.shutdown_with_timeout(FLUSH_TIMEOUT))));
        }
        if let Some(p) = self.logger.clone() {
            rest.push(Box::new(move || drop(p.shutdown_with_timeout(FLUSH_TIMEOUT))));
        }
        let start = Instant::now();
        let deadline = start + FLUSH_TIMEOUT;
        let (done, finished) = std::sync::mpsc::channel();
        let mut pending = run(spans, &done);
        pending -= wait(&finished, pending, start + FLUSH_TIMEOUT / 2);
        pending += run(rest, &done);
        pending -= wait(&finished, pending, deadline);
        if pending > 0 {
            let lost: usize = self.in_flight.iter().map(|q| q.get()).sum();
            tracing::warn!(
                spans_in_flight = lost,
                "telemetry flush still running after {FLUSH_TIMEOUT:?}; leaving without it"
            );
        }
    }
}

type Flush = Box<dyn FnOnce() + Send>;

/// Starts each flush on a thread of its own, which says when it is done.
fn run(flushes: Vec<Flush>, done: &std::sync::mpsc::Sender<()>) -> usize {
    let n = flushes.len();
    for flush in flushes {
        let done = done.clone();
        std::thread::spawn(move || {
            flush();
            let _ = done.send(());
        });
    }
    n
}

/// How many of `pending` flushes finish by `until`.
fn wait(finished: &std::sync::mpsc::Receiver<()>, pending: usize, until: Instant) -> usize {
    let mut n = 0;
    while n < pending {
        let left = until.saturating_duration_since(Instant::now());
        if finished.recv_timeout(left).is_err() {
            break;
        }
        n += 1;
    }
    n
}
