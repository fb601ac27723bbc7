//! The bounded span buffer: finished spans wait here, in the wire format,
//! until the host streams them out. When the buffer is full a span is
//! dropped and counted, never waited for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};
use voidbox_api::traces::Span;

/// The default capacity, in spans; `voidbox.trace_buffer=` overrides it.
pub const DEFAULT_CAPACITY: usize = 2048;

/// The sending end: where finished spans go.
#[derive(Clone, Debug)]
pub struct Sink {
    tx: mpsc::Sender<Span>,
    dropped: Arc<AtomicU64>,
}

impl Sink {
    /// Buffers `span`, or drops and counts it when the buffer is full.
    pub fn send(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
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

pub fn channel(capacity: usize) -> (Sink, SpanBuffer) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    (
        Sink {
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

    fn span(n: u8) -> Span {
        Span {
            span_id: vec![n; 8],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn overflow_is_counted_and_nothing_blocks() {
        let (sink, buffer) = channel(3);
        (1..=5).map(span).for_each(|s| sink.send(s));
        assert_eq!(buffer.dropped(), 2);
        let mut rx = buffer.rx.lock().await;
        let first = rx.recv().await.unwrap();
        assert_eq!(first.span_id, vec![1; 8], "the oldest spans are kept");
    }
}
