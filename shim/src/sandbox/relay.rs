//! Guest spans into the trace: drained from vminitd's `Traces.Stream`,
//! rebased onto the host clock, and exported as service `voidbox-vm`
//! through their own bounded batch queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry::KeyValue;
use tokio::task::JoinHandle;
use tracing::{debug, warn};
use voidbox_api::otel::from_wire;

use super::clock::Clock;
use crate::guest::GuestClient;
use crate::otel::{metrics, GuestSink};

/// What one VM's relay saw.
#[derive(Debug, Default)]
pub struct RelayStats {
    pub relayed: AtomicU64,
    /// The guest's own count of spans its full buffer dropped.
    pub dropped: AtomicU64,
    pub capacity: AtomicU64,
}

/// Streams the guest's spans until the guest ends the stream. `attrs`
/// label the relayed and dropped counters.
pub fn start(
    guest: GuestClient,
    clock: Arc<Clock>,
    sink: GuestSink,
    stats: Arc<RelayStats>,
    attrs: Vec<KeyValue>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let m = metrics::get();
        let mut stream = match guest.span_stream().await {
            Ok(s) => s,
            Err(e) => return warn!("guest span stream: {e}"),
        };
        loop {
            match stream.recv().await {
                Ok(Some(batch)) => {
                    for span in &batch.spans {
                        match from_wire(span, |t| clock.rebase(t)) {
                            Some(data) => sink.on_end(data),
                            None => debug!("dropping a guest span with malformed ids"),
                        }
                    }
                    stats.relayed.fetch_add(batch.spans.len() as u64, Ordering::Relaxed);
                    m.spans_relayed.add(batch.spans.len() as u64, &attrs);
                    let before = stats.dropped.swap(batch.dropped_total, Ordering::Relaxed);
                    stats.capacity.store(batch.capacity, Ordering::Relaxed);
                    if batch.dropped_total > before {
                        m.spans_dropped.add(batch.dropped_total - before, &attrs);
                        warn!(
                            dropped = batch.dropped_total,
                            capacity = batch.capacity,
                            "the guest's span buffer overflowed; spans were dropped"
                        );
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!("guest span stream ended: {e}");
                    break;
                }
            }
        }
    })
}
