//! The spans the host loses, by cause, and what its span pipelines hold:
//! counted here, reported as `voidbox.spans.dropped{reason}` and on the
//! container's root span. Shared by the bounded queue (`queue`) and the
//! exporters (`export`), which both count into it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use opentelemetry::KeyValue;

use super::metrics::{self, DropReason};

/// Spans the host lost, the shim's pipelines together.
#[derive(Debug, Default)]
pub struct SpanLosses {
    /// Refused by a full host queue (`queue::Bounded`).
    pub queue_full: AtomicU64,
    /// In exports that failed, or were abandoned at their timeout.
    pub export_failed: AtomicU64,
    queue_logged: AtomicBool,
    /// The shim's VM attributes, on the metric.
    attrs: Vec<KeyValue>,
}

impl SpanLosses {
    pub fn new(attrs: Vec<KeyValue>) -> Self {
        SpanLosses {
            attrs,
            ..Default::default()
        }
    }

    /// Counts `n` spans a full queue refused; true the first time, for the
    /// caller to log once.
    pub fn queue_full(&self, n: u64) -> bool {
        self.queue_full.fetch_add(n, Ordering::Relaxed);
        metrics::get().span_drops(DropReason::HostQueueFull, n, &self.attrs);
        !self.queue_logged.swap(true, Ordering::Relaxed)
    }

    /// Counts `n` spans whose export failed.
    pub fn export_failed(&self, n: u64) {
        self.export_failed.fetch_add(n, Ordering::Relaxed);
        metrics::get().span_drops(DropReason::ExportFailed, n, &self.attrs);
    }
}

/// Spans a pipeline holds: handed to its batch processor, not yet finished
/// by its exporter.
#[derive(Debug)]
pub struct InFlight {
    count: AtomicUsize,
    bound: usize,
}

impl InFlight {
    pub fn new(bound: usize) -> Arc<InFlight> {
        Arc::new(InFlight {
            count: AtomicUsize::new(0),
            bound,
        })
    }

    /// Takes a place for one span; false when all `bound` are taken.
    pub fn admit(&self) -> bool {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.bound).then_some(n + 1)
            })
            .is_ok()
    }

    /// `n` spans left the pipeline (exported or failed).
    pub fn finish(&self, n: usize) {
        let _ = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| Some(c.saturating_sub(n)));
    }

    pub fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub fn bound(&self) -> usize {
        self.bound
    }
}
