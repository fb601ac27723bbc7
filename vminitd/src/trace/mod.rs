//! Tracing in the guest: logs to the console, and (when the host asks, with
//! `voidbox.trace=1`) spans to a bounded buffer the host streams out.

mod boot;
mod buffer;
mod service;

use std::sync::Arc;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

pub use boot::BootSpans;
pub use buffer::SpanBuffer;
pub use service::TraceService;

use crate::cmdline::Cmdline;

/// The instrumentation scope of vminitd's spans.
pub const SCOPE: &str = "vminitd";

/// Sets up logging, and span export when the host asked for it.
pub fn init(cmdline: &Cmdline) -> Option<Arc<SpanBuffer>> {
    let console = crate::console::layer(cmdline.log_level());
    if !cmdline.tracing() {
        tracing_subscriber::registry().with(console).init();
        return None;
    }
    let capacity = cmdline.trace_buffer().unwrap_or(buffer::DEFAULT_CAPACITY);
    let (exporter, buffer) = buffer::channel(capacity);
    // Export on span end: the exporter only moves the span into the buffer.
    let provider = SdkTracerProvider::builder()
        .with_span_processor(SimpleSpanProcessor::new(exporter))
        .build();
    let tracer = provider.tracer(SCOPE);
    opentelemetry::global::set_tracer_provider(provider);
    // No thread ids or names, no busy/idle timings, no code location: each
    // costs this emulated guest time on every span (a clock read on every
    // enter and exit, for the timings) and bytes on the relay, and the span
    // names already say where they come from.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::registry().with(console).with(otel).init();
    Some(Arc::new(buffer))
}

/// The span context the host sent with a request.
pub fn parent(ctx: &ttrpc::r#async::TtrpcContext) -> opentelemetry::Context {
    voidbox_api::otel::propagation::extract(&ctx.metadata)
}
