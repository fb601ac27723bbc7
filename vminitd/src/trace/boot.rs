//! The guest's boot as spans: kernel start to /init (from the kernel's own
//! clock), vminitd's setup with its steps, and the wait for the host. They
//! are made once, when the host opens the span stream with a trace context
//! (its boot span's), so they are children of the host's boot span and land
//! on the wall clock the host set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use opentelemetry::trace::{Span, TraceContextExt, Tracer};
use opentelemetry::{global, Context, KeyValue};

use crate::boot::{wall_time, BootClock};

pub struct BootSpans {
    clock: Arc<BootClock>,
    emitted: AtomicBool,
}

impl BootSpans {
    pub fn new(clock: Arc<BootClock>) -> Self {
        BootSpans {
            clock,
            emitted: AtomicBool::new(false),
        }
    }

    pub fn emit_once(&self, parent: &Context) {
        if !parent.span().span_context().is_valid() || self.emitted.swap(true, Ordering::SeqCst) {
            return;
        }
        let tracer = global::tracer(super::SCOPE);
        let c = &self.clock;
        let span = |name: &'static str, start: u64, end: u64, cx: &Context, attrs: Vec<KeyValue>| {
            let mut s = tracer
                .span_builder(name)
                .with_start_time(wall_time(start))
                .with_attributes(attrs)
                .start_with_context(&tracer, cx);
            s.end_with_timestamp(wall_time(end));
        };
        span(
            "guest.kernel",
            0,
            c.init_start_ns(),
            parent,
            vec![KeyValue::new("boot.init_start_ns", c.init_start_ns() as i64)],
        );
        let init = tracer
            .span_builder("guest.vminitd.init")
            .with_start_time(wall_time(c.init_start_ns()))
            .start_with_context(&tracer, parent);
        let init_cx = parent.with_span(init);
        for (name, start, end) in c.steps() {
            span(name, start, end, &init_cx, Vec::new());
        }
        init_cx.span().end_with_timestamp(wall_time(c.serving_ns()));
        span(
            "guest.ready",
            c.serving_ns(),
            c.ready_ns(),
            parent,
            vec![KeyValue::new("boot.ready_ns", c.ready_ns() as i64)],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState, TracerProvider as _};
    use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor};

    #[tokio::test]
    async fn boot_spans_are_children_of_the_host_span() {
        let (exporter, buffer) = crate::trace::buffer::channel(64);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(SimpleSpanProcessor::new(exporter))
            .build();
        let _ = provider.tracer("t");
        global::set_tracer_provider(provider);
        let clock = Arc::new(BootClock::at_init_start());
        clock.step("guest.mounts", || ());
        clock.mark_serving();
        clock.mark_ready();
        let mut md = std::collections::HashMap::new();
        md.insert(
            "traceparent".to_string(),
            vec!["00-05050505050505050505050505050505-0606060606060606-01".to_string()],
        );
        md.insert("tracestate".to_string(), vec!["".to_string()]);
        md.insert("baggage".to_string(), vec!["tenant=tests".to_string()]);
        let parent = voidbox_api::otel::propagation::extract(&md);
        let _ = (
            SpanContext::empty_context(),
            SpanId::INVALID,
            TraceFlags::SAMPLED,
            TraceId::INVALID,
            TraceState::default(),
        );
        let spans = BootSpans::new(clock);
        spans.emit_once(&parent);
        spans.emit_once(&parent);
        let mut rx = buffer.rx.lock().await;
        let mut names = Vec::new();
        while let Ok(s) = rx.try_recv() {
            assert_eq!(s.trace_id, vec![5; 16]);
            names.push(s.name);
        }
        names.sort();
        assert_eq!(
            names,
            ["guest.kernel", "guest.mounts", "guest.ready", "guest.vminitd.init"],
            "once each"
        );
    }
}
