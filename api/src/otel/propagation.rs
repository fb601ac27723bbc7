//! W3C trace context and baggage in TTRPC request metadata, where
//! containerd 2.x's otelttrpc interceptor puts them.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

pub type Metadata = HashMap<String, Vec<String>>;

fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

struct Reader<'a>(&'a Metadata);

impl Extractor for Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.first()).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct Writer<'a>(&'a mut Metadata);

impl Injector for Writer<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), vec![value]);
    }
}

/// The context the caller propagated (an empty one when it sent none).
pub fn extract(metadata: &Metadata) -> Context {
    propagator().extract(&Reader(metadata))
}

/// Adds `cx` (traceparent, tracestate, baggage) to `metadata`.
pub fn inject(cx: &Context, metadata: &mut Metadata) {
    propagator().inject_context(cx, &mut Writer(metadata));
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt;

    use super::*;

    #[test]
    fn traceparent_round_trips_through_metadata() {
        let mut md = Metadata::new();
        md.insert(
            "traceparent".into(),
            vec!["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()],
        );
        md.insert("baggage".into(), vec!["tenant=a".into()]);
        let cx = extract(&md);
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(cx.span().span_context().is_remote());
        let mut out = Metadata::new();
        inject(&cx, &mut out);
        assert_eq!(out["traceparent"], md["traceparent"]);
        assert_eq!(out["baggage"], md["baggage"]);
        assert!(!extract(&Metadata::new()).span().span_context().is_valid());
    }
}
