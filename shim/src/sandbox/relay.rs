//! Guest spans into the trace: drained from vminitd's `Traces.Stream`,
//! checked against the limits on what the guest sends (docs/security.md),
//! rebased onto the host clock, and exported as service `voidbox-vm`
//! through their own bounded batch queue.
//!
//! Every span the guest made is, in the end, one of: relayed (taken by the
//! host's queue, so handed to the exporter), dropped in the guest (its
//! buffer was full; the guest counts them), refused here (`rejected`), or
//! refused by the host's full queue (counted by `otel::queue`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry::KeyValue;
use tokio::task::JoinHandle;
use tracing::{debug, warn};
use voidbox_api::otel::from_wire;
use voidbox_api::traces::SpanBatch;

use super::clock::Clock;
use crate::guest::GuestClient;
use crate::otel::metrics::{self, DropReason};
use crate::otel::GuestSink;

/// Spans in one batch the relay takes; the rest are refused
/// (`batch_too_large`). vminitd sends at most 512, and about 1 MiB.
pub const MAX_BATCH_SPANS: usize = 512;

/// What the relays saw (one shim's; each VM's relay adds its own).
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Spans the sink took: handed to the exporter's queue.
    pub relayed: AtomicU64,
    /// The guests' own count of spans their full buffers dropped.
    pub dropped: AtomicU64,
    pub capacity: AtomicU64,
    /// Spans the relay refused (malformed, over a limit, out of time).
    pub rejected: AtomicU64,
}

/// Streams the guest's spans until the guest ends the stream. `attrs`
/// label the relayed, dropped and rejected counters; the stream is opened
/// under `parent`, where the guest puts its boot spans.
pub fn start(
    guest: GuestClient,
    clock: Arc<Clock>,
    sink: GuestSink,
    stats: Arc<RelayStats>,
    attrs: Vec<KeyValue>,
    parent: opentelemetry::Context,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = match guest.span_stream(&parent).await {
            Ok(s) => s,
            Err(e) => return warn!("guest span stream: {e}"),
        };
        // The guest's running total of drops, as of its last batch.
        let mut guest_dropped = 0;
        loop {
            match stream.recv().await {
                Ok(Some(batch)) => relay_batch(&batch, &clock, &sink, &stats, &attrs, &mut guest_dropped),
                Ok(None) => break,
                Err(e) => {
                    debug!("guest span stream ended: {e}");
                    break;
                }
            }
        }
    })
}

/// One batch: each span checked and converted, then offered to the sink or
/// counted as refused, by reason. `guest_dropped` is this guest's drop
/// total as of its previous batch.
fn relay_batch(
    batch: &SpanBatch,
    clock: &Clock,
    sink: &GuestSink,
    stats: &RelayStats,
    attrs: &[KeyValue],
    guest_dropped: &mut u64,
) {
    let m = metrics::get();
    let taken = batch.spans.len().min(MAX_BATCH_SPANS);
    let excess = (batch.spans.len() - taken) as u64;
    if excess > 0 {
        m.reject("batch_too_large", excess, attrs);
        stats.rejected.fetch_add(excess, Ordering::Relaxed);
        debug!(spans = batch.spans.len(), "refusing a guest span batch's excess");
    }
    let mut relayed = 0u64;
    for span in &batch.spans[..taken] {
        match from_wire(span, |t| clock.rebase(t)) {
            Ok(accepted) => {
                if accepted.cuts > 0 {
                    m.reject("span_truncated", 1, attrs);
                }
                // A span the host's queue refuses is counted there, and is
                // not relayed.
                if sink.offer(accepted.span) {
                    relayed += 1;
                }
            }
            Err(why) => {
                m.reject(why.reason(), 1, attrs);
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                debug!("{why}");
            }
        }
    }
    stats.relayed.fetch_add(relayed, Ordering::Relaxed);
    m.spans_relayed.add(relayed, attrs);
    stats.capacity.store(batch.capacity, Ordering::Relaxed);
    // A guest's total only grows; one that shrinks is not believed.
    let new = batch.dropped_total.saturating_sub(*guest_dropped);
    // Counted even when nothing was dropped: the VM's series then exists at
    // 0, so a dashboard shows "0 dropped" rather than "no data".
    m.span_drops(DropReason::GuestBufferFull, new, attrs);
    if new > 0 {
        *guest_dropped = batch.dropped_total;
        stats.dropped.fetch_add(new, Ordering::Relaxed);
        warn!(
            dropped = batch.dropped_total,
            capacity = batch.capacity,
            "the guest's span buffer overflowed; spans were dropped"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use opentelemetry_sdk::trace::SpanData;
    use voidbox_api::traces::Span as WireSpan;

    use super::*;
    use crate::sandbox::clock::now_ns;

    /// Takes up to `room` spans, like a host queue with that many places.
    #[derive(Debug)]
    struct Collect {
        taken: Mutex<Vec<SpanData>>,
        room: usize,
    }

    impl Collect {
        fn with_room(room: usize) -> Self {
            Collect {
                taken: Mutex::new(Vec::new()),
                room,
            }
        }
    }

    impl crate::otel::SpanSink for Collect {
        fn offer(&self, span: SpanData) -> bool {
            let mut taken = self.taken.lock().unwrap();
            if taken.len() == self.room {
                return false;
            }
            taken.push(span);
            true
        }
    }

    fn span(now: i64) -> WireSpan {
        WireSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "s".into(),
            start_unix_nano: now,
            end_unix_nano: now,
            ..Default::default()
        }
    }

    fn relay_into(spans: Vec<WireSpan>, clock: &Clock, room: usize) -> (usize, RelayStats) {
        let collect = Arc::new(Collect::with_room(room));
        let sink: GuestSink = collect.clone();
        let stats = RelayStats::default();
        let batch = SpanBatch {
            spans,
            ..Default::default()
        };
        relay_batch(&batch, clock, &sink, &stats, &[], &mut 0);
        let sunk = collect.taken.lock().unwrap().len();
        (sunk, stats)
    }

    fn relay(spans: Vec<WireSpan>, clock: &Clock) -> (usize, RelayStats) {
        relay_into(spans, clock, usize::MAX)
    }

    #[test]
    fn only_spans_handed_to_the_sink_count_as_relayed() {
        let now = now_ns();
        let clock = Clock::new(now - 1_000_000_000);
        let mut bad = span(now);
        bad.span_id = vec![0; 8];
        let mut early = span(now);
        early.start_unix_nano = now - 3600 * 1_000_000_000;
        let (sunk, stats) = relay(vec![span(now), bad, early], &clock);
        assert_eq!(sunk, 1);
        assert_eq!(stats.relayed.load(Ordering::Relaxed), 1);
        assert_eq!(stats.rejected.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_batch_over_the_limit_loses_its_excess() {
        let now = now_ns();
        let clock = Clock::new(now - 1_000_000_000);
        let (sunk, stats) = relay(vec![span(now); MAX_BATCH_SPANS + 3], &clock);
        assert_eq!(sunk, MAX_BATCH_SPANS);
        assert_eq!(stats.relayed.load(Ordering::Relaxed), MAX_BATCH_SPANS as u64);
        assert_eq!(stats.rejected.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn spans_the_host_queue_refuses_are_not_relayed() {
        let now = now_ns();
        let clock = Clock::new(now - 1_000_000_000);
        let (sunk, stats) = relay_into(vec![span(now); 10], &clock, 4);
        assert_eq!(sunk, 4);
        assert_eq!(stats.relayed.load(Ordering::Relaxed), 4);
        assert_eq!(stats.rejected.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_guests_drop_total_is_added_once_per_rise() {
        let collect = Arc::new(Collect::with_room(0));
        let sink: GuestSink = collect;
        let stats = RelayStats::default();
        let clock = Clock::new(now_ns());
        let mut seen = 0;
        for total in [5, 5, 7, 3] {
            let batch = SpanBatch {
                dropped_total: total,
                ..Default::default()
            };
            relay_batch(&batch, &clock, &sink, &stats, &[], &mut seen);
        }
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 7);
    }
}
