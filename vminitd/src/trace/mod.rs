//! Tracing in the guest: logs to the console, and (when the host asks, with
//! `voidbox.trace=1`) spans to a bounded buffer the host streams out.
//!
//! `layer` builds each span in the wire format as it runs (`building`), with
//! `ids` of its own and the host's parent from `context`; `buffer` holds
//! them until `service` streams them; `boot` makes the boot's spans.

mod boot;
mod buffer;
pub mod building;
mod context;
mod ids;
mod layer;
mod service;

use std::sync::{Arc, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

pub use boot::BootSpans;
pub use buffer::{Sink, SpanBuffer};
pub use context::Parent;
pub use layer::{adopt, fail};
pub use service::TraceService;

use crate::cmdline::Cmdline;

/// The instrumentation scope of vminitd's spans.
pub const SCOPE: &str = "vminitd";

/// Where spans made outside `tracing` (the boot's) go: set when tracing is on.
static SINK: OnceLock<Sink> = OnceLock::new();

pub fn sink() -> Option<&'static Sink> {
    SINK.get()
}

/// Sets up logging, and span export when the host asked for it.
pub fn init(cmdline: &Cmdline) -> Option<Arc<SpanBuffer>> {
    let console = crate::console::layer(cmdline.log_level());
    if !cmdline.tracing() {
        tracing_subscriber::registry().with(console).init();
        return None;
    }
    let capacity = cmdline.trace_buffer().unwrap_or(buffer::DEFAULT_CAPACITY);
    let (sink, buffer) = buffer::channel(capacity);
    let _ = SINK.set(sink.clone());
    // No thread ids or names, busy/idle timings or code locations: each
    // would cost this emulated guest time on every span and bytes on the
    // relay, and the span names already say where they come from.
    let spans = layer::SpanLayer::new(sink).with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::registry().with(console).with(spans).init();
    Some(Arc::new(buffer))
}

/// The span context the host sent with a request, if any.
pub fn parent(ctx: &ttrpc::r#async::TtrpcContext) -> Option<Parent> {
    context::extract(&ctx.metadata)
}
