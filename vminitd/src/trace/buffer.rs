//! The bounded channel exporter: finished spans wait here, converted to the
//! wire format with every attribute, until the host streams them out. When
//! the buffer is full a span is dropped and counted, never waited for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::sync::{mpsc, Mutex};
use voidbox_api::otel::to_wire;
use voidbox_api::traces::Span;

/// The default capacity, in spans; `voidbox.trace_buffer=` overrides it.
pub const DEFAULT_CAPACITY: usize = 2048;

#[derive(Debug)]
pub struct ChannelExporter {
    tx: mpsc::Sender<Span>,
    dropped: Arc<AtomicU64>,
}

impl SpanExporter for ChannelExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        for span in &batch {
            if self.tx.try_send(to_wire(span)).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// The receiving end: one reader at a time (the host's stream).
pub struct SpanBuffer {
    pub rx: Mutex<mpsc::Receiver<Span>>,
    dropped: Arc<AtomicU64>,
    pub capacity: usize,
}

impl SpanBuffer {
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

pub fn channel(capacity: usize) -> (ChannelExporter, SpanBuffer) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    (
        ChannelExporter {
            tx,
            dropped: dropped.clone(),
        },
        SpanBuffer {
            rx: Mutex::new(rx),
            dropped,
            capacity,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
    use opentelemetry::InstrumentationScope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    fn span(n: u8) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes([1; 16]),
                SpanId::from_bytes([n; 8]),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "s".into(),
            start_time: std::time::SystemTime::now(),
            end_time: std::time::SystemTime::now(),
            attributes: vec![opentelemetry::KeyValue::new("k", "v")],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("t").build(),
        }
    }

    #[tokio::test]
    async fn overflow_is_counted_and_nothing_blocks() {
        let (exporter, buffer) = channel(3);
        exporter.export((1..=5).map(span).collect()).await.unwrap();
        assert_eq!(buffer.dropped(), 2);
        let mut rx = buffer.rx.lock().await;
        let first = rx.recv().await.unwrap();
        assert_eq!(first.span_id, vec![1; 8], "the oldest spans are kept");
        assert_eq!(first.attributes[0].key, "k", "attributes travel");
    }
}
