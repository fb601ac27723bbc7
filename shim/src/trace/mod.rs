//! OpenTelemetry: the shim's own spans, the guest's spans relayed across the
//! VM boundary, and the propagation that makes them one trace.

pub mod clock;
pub mod config;
mod export;
pub mod relay;
mod setup;
pub mod spans;

pub use config::TraceConfig;
pub use export::ExportStats;
pub use setup::{Identity, Telemetry};
