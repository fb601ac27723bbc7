//! Guest spans into the trace: drained from vminitd's `Traces.Stream`,
//! checked against the limits on what the guest sends (docs/security.md),
//! rebased onto the host clock, and exported as service `voidbox-vm`
//! through their own bounded batch queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry::KeyValue;
use tokio::task::JoinHandle;
use tracing::{debug, warn};
use voidbox_api::otel::from_wire;
use voidbox_api::traces::SpanBatch;

use super::clock::Clock;
use crate::guest::GuestClient;
use crate::otel::{metrics, GuestSink};

/// Spans in one batch the relay takes; the rest are refused
/// (`batch_too_large`). vminitd sends at most 128.
pub const MAX_BATCH_SPANS: usize = 512;

/// What one VM's relay saw.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Spans handed to the sink.
    pub relayed: AtomicU64,
    /// The guest's own count of spans its full buffer dropped.
    pub dropped: AtomicU64,
    pub capacity: AtomicU64,
    /// Spans the relay refused (malformed, over a limit, out of time).
    pub rejected: AtomicU64,
}

/// Streams the guest's spans until the guest ends the stream. `attrs`
/// label the relayed, dropped and rejected counters.
pub fn start(
    guest: GuestClient,
    clock: Arc<Clock>,
    sink: GuestSink,
    stats: Arc<RelayStats>,
    attrs: Vec<KeyValue>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = match guest.span_stream().await {
            Ok(s) => s,
            Err(e) => return warn!("guest span stream: {e}"),
        };
        loop {
            match stream.recv().await {
                Ok(Some(batch)) => relay_batch(&batch, &clock, &sink, &stats, &attrs),
                Ok(None) => break,
                Err(e) => {
                    debug!("guest span stream ended: {e}");
                    break;
                }
            }
        }
    })
}

/// One batch: each span checked and converted, then handed to the sink or
/// counted as refused, by reason.
fn relay_batch(batch: &SpanBatch, clock: &Clock, sink: &GuestSink, stats: &RelayStats, attrs: &[KeyValue]) {
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
                sink.on_end(accepted.span);
                relayed += 1;
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
    let before = stats.dropped.swap(batch.dropped_total, Ordering::Relaxed);
    stats.capacity.store(batch.capacity, Ordering::Relaxed);
    // Counted even when nothing was dropped: the VM's series then exists at
    // 0, so a dashboard shows "0 dropped" rather than "no data".
    m.spans_dropped.add(batch.dropped_total.saturating_sub(before), attrs);
    if batch.dropped_total > before {
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
    use std::time::Duration;

    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
    use voidbox_api::traces::Span as WireSpan;

    use super::*;
    use crate::sandbox::clock::now_ns;

    #[derive(Debug, Default)]
    struct Collect(Mutex<Vec<SpanData>>);

    impl SpanProcessor for Collect {
        fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}
        fn on_end(&self, span: SpanData) {
            self.0.lock().unwrap().push(span);
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
            Ok(())
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

    fn relay(spans: Vec<WireSpan>, clock: &Clock) -> (usize, RelayStats) {
        let collect = Arc::new(Collect::default());
        let sink: GuestSink = collect.clone();
        let stats = RelayStats::default();
        let batch = SpanBatch {
            spans,
            ..Default::default()
        };
        relay_batch(&batch, clock, &sink, &stats, &[]);
        let sunk = collect.0.lock().unwrap().len();
        (sunk, stats)
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
}
