//! The host's span queue, bounded and counted.
//!
//! The SDK's batch processor drops a span silently when its channel is
//! full. So each span pipeline (the shim's own and the guest's) has a
//! [`Bounded`] processor in front of its batch processor: it counts the
//! spans *in flight*, handed to the batch processor and not yet finished by
//! the pipeline's exporter (exported or failed, see `export::Counting`), and
//! refuses and counts a span when that count is at its bound.
//!
//! Why the SDK then never drops: a span in flight is in the SDK's channel,
//! in its batch being gathered, or in the batch being exported; so the
//! channel never holds more than the bound. The channel is made one
//! `max_export_batch_size` larger than the bound, which leaves room for the
//! SDK's own flush and shutdown messages too. A span is either refused here
//! (`host_queue_full`), or reaches the exporter, which either exports it or
//! counts it failed (`export_failed`), an abandoned (timed-out) export
//! included. What is still in flight when the shim's last flush runs out of
//! time is logged with its count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;
use tracing::warn;

pub use super::losses::InFlight;
use super::losses::SpanLosses;

/// The default bound on spans in flight, per pipeline
/// (`VOIDBOX_SPAN_QUEUE` changes it).
pub const DEFAULT_BOUND: usize = 4096;

/// Where a span pipeline's spans go, saying whether it took each one.
pub trait SpanSink: Send + Sync + std::fmt::Debug {
    /// Hands `span` on; false if it was refused (and counted).
    fn offer(&self, span: SpanData) -> bool;
}

/// A span processor that refuses (and counts) what would overflow the
/// batch processor `P` behind it.
#[derive(Debug)]
pub struct Bounded<P> {
    inner: P,
    in_flight: Arc<InFlight>,
    losses: Arc<SpanLosses>,
    closed: AtomicBool,
}

impl<P: SpanProcessor> Bounded<P> {
    /// `in_flight` is shared with the pipeline's exporter, which finishes
    /// what it exports or fails.
    pub fn new(inner: P, in_flight: Arc<InFlight>, losses: Arc<SpanLosses>) -> Self {
        Bounded {
            inner,
            in_flight,
            losses,
            closed: AtomicBool::new(false),
        }
    }

    /// Spans in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// The count of spans in flight, shared.
    pub fn queue(&self) -> Arc<InFlight> {
        self.in_flight.clone()
    }

    fn refuse(&self, why: &str) {
        if self.losses.queue_full(1) {
            warn!(
                bound = self.in_flight.bound(),
                "the host's span queue {why}; spans are dropped and counted (voidbox.spans.dropped, reason host_queue_full)"
            );
        }
    }
}

impl<P: SpanProcessor> SpanSink for Bounded<P> {
    fn offer(&self, span: SpanData) -> bool {
        // The SDK exports sampled spans only: the others never finish, so
        // they must not take a place.
        if !span.span_context.is_sampled() {
            self.inner.on_end(span);
            return true;
        }
        if self.closed.load(Ordering::Acquire) {
            self.refuse("is closed");
            return false;
        }
        if !self.in_flight.admit() {
            self.refuse("is full");
            return false;
        }
        self.inner.on_end(span);
        true
    }
}

impl<P: SpanProcessor> SpanProcessor for Bounded<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx)
    }
    fn on_end(&self, span: SpanData) {
        self.offer(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        // After this the SDK's channel is gone: what came later would be
        // lost without a count.
        self.closed.store(true, Ordering::Release);
        let result = self.inner.shutdown_with_timeout(timeout);
        let left = self.in_flight.get();
        if left > 0 {
            warn!(
                spans = left,
                "spans still in flight when the span pipeline shut down are lost"
            );
        }
        result
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
    use opentelemetry::InstrumentationScope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Mutex;
    use std::time::SystemTime;

    #[derive(Debug, Default)]
    struct Held(Mutex<Vec<SpanData>>);

    impl SpanProcessor for Held {
        fn on_start(&self, _span: &mut Span, _cx: &Context) {}
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

    pub(crate) fn span(sampled: bool) -> SpanData {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(1u128),
                SpanId::from(2u64),
                flags,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "s".into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::default(),
        }
    }

    #[test]
    fn spans_over_the_bound_are_refused_and_counted_until_some_finish() {
        let stats = Arc::new(SpanLosses::default());
        let in_flight = InFlight::new(3);
        let held = Bounded::new(Held::default(), in_flight.clone(), stats.clone());
        let taken: Vec<bool> = (0..5).map(|_| held.offer(span(true))).collect();
        assert_eq!(taken, [true, true, true, false, false]);
        assert_eq!(stats.queue_full.load(Relaxed), 2);
        assert_eq!(held.inner.0.lock().unwrap().len(), 3);
        in_flight.finish(2);
        assert!(held.offer(span(true)) && held.offer(span(true)) && !held.offer(span(true)));
        assert_eq!(stats.queue_full.load(Relaxed), 3);
    }

    #[test]
    fn unsampled_spans_take_no_place() {
        let stats = Arc::new(SpanLosses::default());
        let held = Bounded::new(Held::default(), InFlight::new(1), stats.clone());
        assert!(held.offer(span(false)) && held.offer(span(true)) && !held.offer(span(true)));
        assert_eq!(held.in_flight(), 1);
    }

    #[test]
    fn after_shutdown_spans_are_refused_and_counted() {
        let stats = Arc::new(SpanLosses::default());
        let held = Bounded::new(Held::default(), InFlight::new(10), stats.clone());
        held.shutdown_with_timeout(Duration::from_millis(10)).unwrap();
        assert!(!held.offer(span(true)));
        assert_eq!(stats.queue_full.load(Relaxed), 1);
    }
}
