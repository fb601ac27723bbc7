//! Installing tracing: logs always, OTLP export when an endpoint is set.
//!
//! Two pipelines share one endpoint: the shim's spans (service `voidbox`, or
//! `OTEL_SERVICE_NAME`) through the tracing subscriber, and the guest's
//! (service `voidbox-vm`), which arrive already finished. Both batch on the
//! tokio runtime with bounded queues.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{BatchConfigBuilder, SdkTracerProvider, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::config::{TraceConfig, GUEST_SERVICE};
use super::export::{CountingExporter, ExportStats};
use super::relay::GuestSink;

/// How long shutdown waits for spans still queued.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
const QUEUE: usize = 4096;

/// What the shim's telemetry is attached to.
pub struct Identity {
    pub container_id: String,
    pub namespace: String,
    pub vm_id: String,
}

pub struct Telemetry {
    pub config: Option<TraceConfig>,
    provider: Option<SdkTracerProvider>,
    guest: Option<Arc<BatchSpanProcessor<Tokio>>>,
    pub stats: Arc<ExportStats>,
}

fn resource(service: &str, id: &Identity) -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", service.to_string()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("container.id", id.container_id.clone()),
            KeyValue::new("voidbox.namespace", id.namespace.clone()),
            KeyValue::new("voidbox.vm.id", id.vm_id.clone()),
        ])
        .build()
}

fn batch<E: SpanExporter + 'static>(exporter: E) -> BatchSpanProcessor<Tokio> {
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(QUEUE)
        .with_scheduled_delay(Duration::from_millis(500))
        .with_max_export_timeout(super::export::REQUEST_TIMEOUT)
        .build();
    BatchSpanProcessor::builder(exporter, Tokio)
        .with_batch_config(config)
        .build()
}

impl Telemetry {
    /// Installs the global subscriber. `logs` is where log lines go; must be
    /// called inside the tokio runtime when tracing is on.
    pub fn install<W>(logs: W, debug: bool, id: &Identity) -> Result<Telemetry, String>
    where
        W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
    {
        let level = if debug { "debug" } else { "info" };
        let filter = EnvFilter::try_from_env("VOIDBOX_LOG").unwrap_or_else(|_| EnvFilter::new(level));
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(logs)
            .with_ansi(false)
            .with_filter(filter);
        let stats = Arc::new(ExportStats::default());
        let config = TraceConfig::from_env()?;
        let Some(cfg) = config.clone() else {
            tracing_subscriber::registry().with(fmt).init();
            return Ok(Telemetry {
                config,
                provider: None,
                guest: None,
                stats,
            });
        };

        let shim_exporter = CountingExporter::new(&cfg.endpoint, stats.clone())?;
        let provider = SdkTracerProvider::builder()
            .with_resource(resource(&cfg.service_name, id))
            .with_span_processor(batch(shim_exporter))
            .build();
        let tracer = provider.tracer("voidbox-shim");
        let otel = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
        tracing_subscriber::registry().with(fmt).with(otel).init();

        let mut guest_exporter = CountingExporter::new(&cfg.endpoint, stats.clone())?;
        guest_exporter.set_resource(&resource(GUEST_SERVICE, id));
        Ok(Telemetry {
            config,
            provider: Some(provider),
            guest: Some(Arc::new(batch(guest_exporter))),
            stats,
        })
    }

    pub fn enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Where the guest's spans go, when tracing is on.
    pub fn guest_sink(&self) -> Option<GuestSink> {
        self.guest.clone().map(|g| g as GuestSink)
    }

    /// Flushes what is queued, waiting at most FLUSH_TIMEOUT per pipeline.
    /// Blocks: call it from a blocking thread.
    pub fn shutdown(&self) {
        if let Some(guest) = &self.guest {
            let _ = guest.shutdown_with_timeout(FLUSH_TIMEOUT);
        }
        if let Some(provider) = &self.provider {
            let _ = provider.shutdown_with_timeout(FLUSH_TIMEOUT);
        }
    }
}
