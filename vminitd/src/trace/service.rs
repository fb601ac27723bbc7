//! `voidbox.traces.v1.Traces`: the span buffer, drained to the host.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use ttrpc::r#async::{ServerStreamSender, TtrpcContext};
use voidbox_api::traces::*;
use voidbox_api::traces_ttrpc::Traces;

use super::{BootSpans, SpanBuffer};
use crate::services::handler::handle;

/// Spans per message at most (the host takes up to 512): a backlog drains
/// in few messages, each costing this emulated guest a wakeup of the host.
const BATCH: usize = 512;
/// Bytes per message, roughly: keeps each TTRPC message far below its 4 MiB
/// limit whatever the spans hold (a message may pass it by one span, itself
/// bounded by the span limits).
const BATCH_BYTES: u64 = 1 << 20;
/// How long a batch waits for more spans after its first.
const LINGER: Duration = Duration::from_millis(50);

pub struct TraceService {
    buffer: Option<Arc<SpanBuffer>>,
    boot: BootSpans,
    closing: watch::Receiver<bool>,
}

impl TraceService {
    /// `closing` turns true when the guest powers off: streams then send
    /// what is buffered and end. The first stream opened with a trace
    /// context makes the guest's `boot` spans, children of that context.
    pub fn new(buffer: Option<Arc<SpanBuffer>>, boot: BootSpans, closing: watch::Receiver<bool>) -> Self {
        TraceService { buffer, boot, closing }
    }
}

#[async_trait]
impl Traces for TraceService {
    async fn stream(
        &self,
        ctx: &TtrpcContext,
        _req: StreamRequest,
        sender: ServerStreamSender<SpanBatch>,
    ) -> ttrpc::Result<()> {
        // The host opens the stream under its boot span: the guest's boot
        // goes there, and costs no RPC of its own.
        // (Tracing is on exactly when the sink, and the buffer, exist.)
        if let Some(sink) = super::sink() {
            self.boot.emit_once(super::parent(ctx).as_ref(), sink);
        }
        handle(ctx, tracing::Span::none(), self.drain(sender)).await
    }
}

impl TraceService {
    /// Sends the buffered spans in batches until the guest powers off.
    async fn drain(&self, sender: ServerStreamSender<SpanBatch>) -> ttrpc::Result<()> {
        let Some(buffer) = &self.buffer else { return Ok(()) };
        let mut rx = buffer.rx.lock().await;
        let mut closing = self.closing.clone();
        let batch = |spans: Vec<Span>, last: bool| SpanBatch {
            spans,
            dropped_total: buffer.dropped(),
            capacity: buffer.capacity as u64,
            last,
            ..Default::default()
        };
        loop {
            // `biased`: polled in order, without the fairness of a random
            // start (its code, run by nothing else in a start, is first
            // translated here under TCG), which the gathering below makes
            // moot: it takes what has come whatever woke it.
            let first = tokio::select! {
                biased;
                span = rx.recv() => span,
                _ = closing.wait_for(|c| *c) => None,
            };
            let mut spans = Gathered::default();
            if let Some(s) = first {
                spans.push(s);
            }
            let ending = spans.spans.is_empty();
            if !ending {
                // Spans end in bursts (one RPC makes several): gather the
                // burst into one message rather than wake the host, and
                // spend this guest's scarce CPU, once per span.
                let linger = tokio::time::sleep(LINGER);
                tokio::pin!(linger);
                while !spans.full() {
                    // A backlog is taken as it stands: polling the three
                    // futures below for every span made relaying one about
                    // a fifth slower under TCG.
                    if let Ok(s) = rx.try_recv() {
                        spans.push(s);
                        continue;
                    }
                    tokio::select! {
                        biased;
                        span = rx.recv() => match span {
                            Some(s) => spans.push(s),
                            None => break,
                        },
                        _ = &mut linger => break,
                        _ = closing.wait_for(|c| *c) => break,
                    }
                }
            }
            while !spans.full() || ending {
                match rx.try_recv() {
                    Ok(s) => spans.push(s),
                    Err(_) => break,
                }
                if ending && spans.full() {
                    sender.send(&batch(std::mem::take(&mut spans).spans, false)).await?;
                }
            }
            if !spans.spans.is_empty() || ending {
                sender.send(&batch(spans.spans, ending)).await?;
            }
            if ending {
                return Ok(());
            }
        }
    }
}

/// Spans gathered for one message, and their encoded size.
#[derive(Default)]
struct Gathered {
    spans: Vec<Span>,
    bytes: u64,
}

impl Gathered {
    fn push(&mut self, span: Span) {
        self.bytes += voidbox_api::protobuf::Message::compute_size(&span);
        self.spans.push(span);
    }

    fn full(&self) -> bool {
        self.spans.len() >= BATCH || self.bytes >= BATCH_BYTES
    }
}
