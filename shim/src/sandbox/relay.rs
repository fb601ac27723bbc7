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
use ttrpc::r#async::ClientStreamReceiver;
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

/// How a relay ended (teardown's `LastSpans` span says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// The guest sent its last batch (it is powering off).
    LastBatch,
    /// The stream ended without a last batch.
    StreamEnd,
    /// The stream failed or never opened (the VM ended, say).
    Failed,
}

impl RelayEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            RelayEnd::LastBatch => "last_batch",
            RelayEnd::StreamEnd => "stream_end",
            RelayEnd::Failed => "failed",
        }
    }
}

/// Streams the guest's spans until its last batch or the stream's end.
/// `attrs` label the relayed, dropped and rejected counters; the stream is
/// opened under `parent`, where the guest puts its boot spans.
pub fn start(
    guest: GuestClient,
    clock: Arc<Clock>,
    sink: GuestSink,
    stats: Arc<RelayStats>,
    attrs: Vec<KeyValue>,
    parent: opentelemetry::Context,
) -> JoinHandle<RelayEnd> {
    tokio::spawn(async move {
        let mut stream = match guest.span_stream(&parent).await {
            Ok(s) => s,
            Err(e) => {
                warn!("guest span stream: {e}");
                return RelayEnd::Failed;
            }
        };
        // The guest's running total of drops, as of its last batch.
        let mut guest_dropped = 0;
        relay_until_last(&mut stream, |batch| {
            relay_batch(batch, &clock, &sink, &stats, &attrs, &mut guest_dropped)
        })
        .await
    })
}

/// Where the relay's batches come from: the guest's stream (or, in the
/// tests, a scripted one).
pub(crate) trait Batches {
    async fn next_batch(&mut self) -> ttrpc::Result<Option<SpanBatch>>;
}

impl Batches for ClientStreamReceiver<SpanBatch> {
    async fn next_batch(&mut self) -> ttrpc::Result<Option<SpanBatch>> {
        self.recv().await
    }
}

/// Hands each batch to `relay`, until the guest's last batch or the
/// stream's end. The last batch ends the relay at once: the stream's end
/// follows it over the same connection, but can trail behind the guest's
/// power-off by milliseconds, and teardown ends the VM as soon as the
/// relay has ended.
async fn relay_until_last(batches: &mut impl Batches, mut relay: impl FnMut(&SpanBatch)) -> RelayEnd {
    loop {
        match batches.next_batch().await {
            Ok(Some(batch)) => {
                relay(&batch);
                if batch.last {
                    return RelayEnd::LastBatch;
                }
            }
            Ok(None) => return RelayEnd::StreamEnd,
            Err(e) => {
                debug!("guest span stream ended: {e}");
                return RelayEnd::Failed;
            }
        }
    }
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

    /// Batches from a script, then none ever again (a stream left open).
    struct Scripted(std::collections::VecDeque<ttrpc::Result<Option<SpanBatch>>>);

    impl Batches for Scripted {
        async fn next_batch(&mut self) -> ttrpc::Result<Option<SpanBatch>> {
            match self.0.pop_front() {
                Some(next) => next,
                None => std::future::pending().await,
            }
        }
    }

    fn batch(spans: usize, last: bool) -> ttrpc::Result<Option<SpanBatch>> {
        Ok(Some(SpanBatch {
            spans: vec![span(now_ns()); spans],
            last,
            ..Default::default()
        }))
    }

    /// Relays `script` for at most a second: None if the relay is still
    /// waiting then; else how it ended and the spans it was handed.
    async fn relay_script(script: Vec<ttrpc::Result<Option<SpanBatch>>>) -> Option<(RelayEnd, usize)> {
        let mut relayed = 0;
        let mut source = Scripted(script.into());
        let relay = relay_until_last(&mut source, |b| relayed += b.spans.len());
        let end = tokio::time::timeout(std::time::Duration::from_secs(1), relay)
            .await
            .ok()?;
        Some((end, relayed))
    }

    #[tokio::test]
    async fn the_guests_last_batch_ends_the_relay_without_the_streams_end() {
        let ended = relay_script(vec![batch(2, false), batch(1, true)]).await;
        assert_eq!(
            ended,
            Some((RelayEnd::LastBatch, 3)),
            "the last batch's spans are relayed too"
        );
    }

    #[tokio::test]
    async fn a_stream_that_ends_or_fails_ends_the_relay() {
        let ended = relay_script(vec![batch(2, false), Ok(None)]).await;
        assert_eq!(ended, Some((RelayEnd::StreamEnd, 2)));
        let failed = relay_script(vec![batch(1, false), Err(ttrpc::Error::Others("gone".into()))]).await;
        assert_eq!(failed, Some((RelayEnd::Failed, 1)));
        assert_eq!(
            relay_script(vec![batch(1, false)]).await,
            None,
            "an open stream keeps the relay"
        );
    }
}
