//! vminitd's spans, from `tracing` straight to the wire: each span is built
//! in its registry entry as it runs and sent to the buffer when it closes.
//!
//! This stands where `tracing-opentelemetry` and the OpenTelemetry SDK
//! stood. Under TCG most of a step's cost is the first translation of its
//! code, and theirs ran nowhere else in a start (docs/performance-tracing.md).
//! What they did that vminitd used is here: parents (local, and the host's
//! through `adopt`), fields as attributes (`otel.name` renames the span),
//! events with `level` and `target` (an error event marks the span failed),
//! the parent's sampling decision, and the SDK's span limits.

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, Registry};
use tracing_subscriber::Layer;
use voidbox_api::traces as wire;

use super::buffer::Sink;
use super::building::{self, string, value, Building};
use super::context::Parent;

pub struct SpanLayer {
    sink: Sink,
}

impl SpanLayer {
    pub fn new(sink: Sink) -> Self {
        SpanLayer { sink }
    }
}

impl<S> Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut b = Building::new(attrs.metadata().name());
        if let Some(parent) = span.parent() {
            if let Some(p) = parent.extensions().get::<Building>() {
                b.child_of(p);
            }
        }
        attrs.record(&mut Fields(&mut b));
        span.extensions_mut().insert(b);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(b) = ext.get_mut::<Building>() {
            values.record(&mut Fields(b));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else { return };
        let mut ext = span.extensions_mut();
        let Some(b) = ext.get_mut::<Building>() else { return };
        let meta = event.metadata();
        let mut e = wire::Event {
            time_unix_nano: voidbox_api::otel::unix_nanos(std::time::SystemTime::now()),
            ..Default::default()
        };
        e.set("level", string(meta.level().as_str()));
        e.set("target", string(meta.target()));
        event.record(&mut Fields(&mut e));
        if e.name.is_empty() {
            e.name = meta.name().to_string();
        }
        if *meta.level() == Level::ERROR && !b.failed() {
            b.fail(e.name.clone());
        }
        b.push_event(e);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(b) = span.extensions_mut().remove::<Building>() else {
            return;
        };
        if let Some(s) = b.finish() {
            self.sink.send(s);
        }
    }
}

/// Runs `f` on the span `span` is building, if it is being recorded.
fn with_building(span: &tracing::Span, f: impl FnOnce(&mut Building)) {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let data = registry.span(id)?;
        let mut ext = data.extensions_mut();
        ext.get_mut::<Building>().map(f)
    });
}

/// Puts `span` under the host's span `parent` (a span the host sent no
/// parent for stays a root of its own trace). Call it before the span has
/// children.
pub fn adopt(span: &tracing::Span, parent: Option<&Parent>) {
    if let Some(parent) = parent {
        with_building(span, |b| b.adopt(parent));
    }
}

/// Marks `span` failed with `message`, and its `error.kind`.
pub fn fail(span: &tracing::Span, message: String, kind: String) {
    with_building(span, |b| {
        b.fail(message);
        b.set("error.kind", string(kind));
    });
}

/// What a field visitor writes to: a span or an event.
trait Target {
    fn set(&mut self, key: &str, v: wire::Value);
    /// Takes a field that is no attribute (a span's `otel.name`, an event's
    /// `message`); false for any other.
    fn special(&mut self, key: &str, v: &str) -> bool;
}

impl Target for Building {
    fn set(&mut self, key: &str, v: wire::Value) {
        Building::set(self, key, v);
    }
    fn special(&mut self, key: &str, v: &str) -> bool {
        let renames = key == "otel.name";
        if renames {
            self.rename(v.to_string());
        }
        renames
    }
}

/// An event's fields: `message` is its name, the rest its attributes.
impl Target for wire::Event {
    fn set(&mut self, key: &str, v: wire::Value) {
        building::set(&mut self.attributes, &mut self.dropped_attributes, key, v);
    }
    fn special(&mut self, key: &str, v: &str) -> bool {
        let names = key == "message";
        if names {
            self.name = v.to_string();
        }
        names
    }
}

/// Fields as attributes, of the types tracing records.
struct Fields<'a, T>(&'a mut T);

impl<T: Target> Visit for Fields<'_, T> {
    fn record_debug(&mut self, field: &Field, v: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{v:?}"));
    }
    fn record_str(&mut self, field: &Field, v: &str) {
        if !self.0.special(field.name(), v) {
            self.0.set(field.name(), string(v));
        }
    }
    fn record_i64(&mut self, field: &Field, v: i64) {
        self.0.set(field.name(), value(wire::value::Kind::Int(v)));
    }
    /// As tracing-opentelemetry did: past i64, a string.
    fn record_u64(&mut self, field: &Field, v: u64) {
        let v = match i64::try_from(v) {
            Ok(i) => value(wire::value::Kind::Int(i)),
            Err(_) => string(v.to_string()),
        };
        self.0.set(field.name(), v);
    }
    fn record_f64(&mut self, field: &Field, v: f64) {
        self.0.set(field.name(), value(wire::value::Kind::Double(v)));
    }
    fn record_bool(&mut self, field: &Field, v: bool) {
        self.0.set(field.name(), value(wire::value::Kind::Bool(v)));
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::trace::buffer::channel;

    fn attr<'a>(s: &'a wire::Span, key: &str) -> Option<&'a wire::value::Kind> {
        s.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.kind.as_ref())
    }

    #[tokio::test]
    async fn spans_arrive_with_parents_fields_events_and_failures() {
        let (sink, buffer) = channel(16);
        let subscriber = tracing_subscriber::registry()
            .with(SpanLayer::new(sink).with_filter(tracing_subscriber::filter::LevelFilter::INFO));
        let host = Parent {
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            flags: 1,
            state: String::new(),
        };
        tracing::subscriber::with_default(subscriber, || {
            let rpc = tracing::info_span!("task.start", container.id = %"c1", pid = tracing::field::Empty);
            adopt(&rpc, Some(&host));
            rpc.in_scope(|| {
                let _crun = tracing::info_span!("crun", otel.name = %"crun.start", n = 3u64).entered();
                tracing::info!(pid = 42i64, "started");
                tracing::debug!("below the level: not an event");
                let _ignored = tracing::debug_span!("below the level: no span").entered();
            });
            rpc.record("pid", 42);
            fail(&rpc, "no such thing".into(), "not_found".into());
        });
        let mut rx = buffer.rx.lock().await;
        let crun = rx.try_recv().expect("the inner span first, as it ends first");
        let rpc = rx.try_recv().expect("then the RPC's");
        assert!(rx.try_recv().is_err(), "nothing else: {:?}", rx.try_recv());
        assert_eq!(rpc.name, "task.start");
        assert_eq!(
            (rpc.trace_id.clone(), rpc.parent_span_id.clone()),
            (vec![7; 16], vec![8; 8])
        );
        assert!(rpc.parent_is_remote);
        assert_eq!(
            attr(&rpc, "container.id"),
            Some(&wire::value::Kind::String("c1".into()))
        );
        assert_eq!(attr(&rpc, "pid"), Some(&wire::value::Kind::Int(42)), "recorded later");
        assert_eq!(
            attr(&rpc, "error.kind"),
            Some(&wire::value::Kind::String("not_found".into()))
        );
        assert_eq!(rpc.status.code.enum_value_or_default(), wire::status::Code::ERROR);
        assert_eq!(rpc.status.message, "no such thing");
        assert_eq!(crun.name, "crun.start", "otel.name renames");
        assert_eq!(
            (crun.trace_id.clone(), crun.parent_span_id.clone()),
            (vec![7; 16], rpc.span_id.clone())
        );
        assert_eq!(attr(&crun, "n"), Some(&wire::value::Kind::Int(3)));
        assert_eq!(crun.events.len(), 1);
        let e = &crun.events[0];
        assert_eq!(e.name, "started");
        let kinds: Vec<_> = e
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.kind.clone()))
            .collect();
        assert_eq!(kinds[0], ("level", Some(wire::value::Kind::String("INFO".into()))));
        assert!(kinds.contains(&("pid", Some(wire::value::Kind::Int(42)))));
        assert_eq!(crun.status.code.enum_value_or_default(), wire::status::Code::UNSET);
    }

    #[tokio::test]
    async fn an_error_event_fails_its_span() {
        let (sink, buffer) = channel(4);
        let subscriber = tracing_subscriber::registry().with(SpanLayer::new(sink));
        tracing::subscriber::with_default(subscriber, || {
            let _s = tracing::info_span!("s").entered();
            tracing::error!("it broke");
        });
        let s = buffer.rx.lock().await.try_recv().unwrap();
        assert_eq!(s.status.code.enum_value_or_default(), wire::status::Code::ERROR);
        assert_eq!(s.status.message, "it broke");
        assert!(
            !s.parent_is_remote && s.parent_span_id.is_empty(),
            "a root of its own trace"
        );
        assert_eq!(s.trace_id.len(), 16);
    }
}
