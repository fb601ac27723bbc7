//! OpenTelemetry: the shim's own spans, the guest's spans relayed across the
//! VM boundary and the propagation that makes them one trace; metrics of the
//! shim and of the guest; logs that carry the trace.

pub mod config;
pub mod endpoint;
mod export;
mod logfmt;
pub mod losses;
pub mod metrics;
pub mod queue;
mod setup;
pub mod spans;

pub use config::OtelConfig;
pub use export::{install_tls_provider, ExportStats};
pub use queue::SpanSink;
pub use setup::{GuestSink, Identity, Telemetry};
