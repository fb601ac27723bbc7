//! Spans between the OpenTelemetry SDK and the wire, losslessly: ids, parent,
//! kind, times, attributes, events, links, status and scope all cross.
//!
//! `span` converts whole spans, `values` their attributes and kinds,
//! `limits` bounds what a span from the guest may hold, `propagation`
//! carries trace context in TTRPC metadata.
//!
//! Without the `otel` feature only `limits` and the wall-clock helpers are
//! here: vminitd builds wire spans itself, within the same limits, and
//! links no OpenTelemetry crate.

pub mod limits;
#[cfg(feature = "otel")]
mod span;
#[cfg(feature = "otel")]
mod values;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use limits::Rejection;
#[cfg(feature = "otel")]
pub use span::{from_wire, to_wire, Accepted};

#[cfg(feature = "otel")]
pub mod propagation;

/// The Debug service's sample span (test-only).
#[cfg(all(feature = "otel", feature = "debug"))]
pub mod sample;

pub fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

pub fn system_time(nanos: i64) -> SystemTime {
    if nanos >= 0 {
        UNIX_EPOCH + Duration::from_nanos(nanos as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(nanos.unsigned_abs())
    }
}
