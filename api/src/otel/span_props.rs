//! from_wire on arbitrary wire spans: no panic, and whatever is accepted is
//! within the limits.

use proptest::collection::vec;
use proptest::prelude::*;

use opentelemetry::{Array, KeyValue, Value};

use super::*;
use crate::otel::limits::{MAX_ARRAY_LEN, MAX_ATTRIBUTES, MAX_KEY_LEN};

/// An id of `n` bytes, mostly: sometimes zeros, sometimes any length.
fn id(n: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        18 => vec(any::<u8>(), n..=n),
        1 => Just(vec![0; n]),
        1 => vec(any::<u8>(), 0..20),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => ".{0,8}",
        2 => "[a-zé]{250,260}",
        1 => Just("x".repeat(MAX_VALUE_LEN + 3)),
        1 => Just("k=v,".repeat(200)),
    ]
}

fn scalar() -> impl Strategy<Value = wire::value::Kind> {
    use wire::value::Kind;
    prop_oneof![
        any::<bool>().prop_map(Kind::Bool),
        any::<i64>().prop_map(Kind::Int),
        any::<f64>().prop_map(Kind::Double),
        text().prop_map(Kind::String),
    ]
}

fn wrap(kind: wire::value::Kind) -> wire::Value {
    wire::Value {
        kind: Some(kind),
        ..Default::default()
    }
}

fn array(values: Vec<wire::Value>) -> wire::Value {
    wrap(wire::value::Kind::Array(wire::Array {
        values,
        ..Default::default()
    }))
}

/// Scalars, short arrays (nested or not), and arrays over the limit.
fn value() -> impl Strategy<Value = wire::Value> {
    let leaf = || scalar().prop_map(wrap);
    prop_oneof![
        4 => leaf(),
        2 => vec(leaf(), 0..4).prop_map(array),
        1 => vec(vec(leaf(), 0..2).prop_map(array), 1..3).prop_map(array),
        1 => vec(any::<i64>().prop_map(|i| wrap(wire::value::Kind::Int(i))), 126..132).prop_map(array),
    ]
}

fn attrs() -> impl Strategy<Value = Vec<wire::KeyValue>> {
    let kv = |value: BoxedStrategy<Option<wire::Value>>| {
        (prop_oneof![4 => ".{0,8}", 1 => "[a-z]{250,260}"], value).prop_map(|(key, value)| wire::KeyValue {
            key,
            value: value.into(),
            ..Default::default()
        })
    };
    let few = vec(kv(proptest::option::of(value()).boxed()), 0..4);
    let many = vec(kv(Just(Some(wrap(wire::value::Kind::Bool(true)))).boxed()), 126..132);
    prop_oneof![4 => few, 1 => many]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![9 => ".{0,8}", 1 => "[a-z]{250,260}"]
}

fn span() -> impl Strategy<Value = wire::Span> {
    let event = (name(), any::<i64>(), attrs()).prop_map(|(name, time_unix_nano, attributes)| wire::Event {
        name,
        time_unix_nano,
        attributes,
        ..Default::default()
    });
    let link = (id(16), id(8), text()).prop_map(|(trace_id, span_id, trace_state)| wire::Link {
        trace_id,
        span_id,
        trace_state,
        ..Default::default()
    });
    (
        (
            id(16),
            id(8),
            prop_oneof![Just(Vec::new()), id(8)],
            text(),
            name(),
            any::<i64>(),
            any::<i64>(),
        ),
        (attrs(), vec(event, 0..3), vec(link, 0..2), text(), text()),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent_span_id, trace_state, name, start, end),
                (attributes, events, links, scope_name, message),
            )| wire::Span {
                trace_id,
                span_id,
                parent_span_id,
                trace_state,
                name,
                start_unix_nano: start,
                end_unix_nano: end,
                attributes,
                events,
                links,
                scope_name,
                status: MessageField::some(wire::Status {
                    code: wire::status::Code::ERROR.into(),
                    message,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
}

fn within_limits(attrs: &[KeyValue]) -> Result<(), TestCaseError> {
    prop_assert!(attrs.len() <= MAX_ATTRIBUTES);
    for kv in attrs {
        prop_assert!(kv.key.as_str().len() <= MAX_KEY_LEN);
        match &kv.value {
            Value::String(s) => prop_assert!(s.as_str().len() <= MAX_VALUE_LEN),
            Value::Array(Array::String(v)) => {
                prop_assert!(v.len() <= MAX_ARRAY_LEN);
                for s in v {
                    prop_assert!(s.as_str().len() <= MAX_VALUE_LEN);
                }
            }
            Value::Array(Array::I64(v)) => prop_assert!(v.len() <= MAX_ARRAY_LEN),
            Value::Array(Array::F64(v)) => prop_assert!(v.len() <= MAX_ARRAY_LEN),
            Value::Array(Array::Bool(v)) => prop_assert!(v.len() <= MAX_ARRAY_LEN),
            _ => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_wire_span_converts_within_the_limits_or_is_refused(span in span(),
        window in prop_oneof![Just((i64::MIN, i64::MAX)), any::<(i64, i64)>()],
    ) {
        let (lo, hi) = (window.0.min(window.1), window.0.max(window.1));
        let rebase = |t: i64| (lo..=hi).contains(&t).then_some(t);
        let converted = from_wire(&span, rebase);
        if let Ok(got) = converted {
            let s = got.span;
            prop_assert!(s.span_context.is_valid());
            prop_assert!(s.name.len() <= MAX_NAME_LEN);
            prop_assert!(s.span_context.trace_state().header().len() <= MAX_TRACE_STATE_LEN);
            for t in [s.start_time, s.end_time] {
                let t = crate::otel::unix_nanos(t);
                prop_assert!(lo <= t && t <= hi);
            }
            within_limits(&s.attributes)?;
            prop_assert!(s.events.events.len() <= MAX_EVENTS);
            for e in &s.events.events {
                prop_assert!(e.name.len() <= MAX_NAME_LEN);
                within_limits(&e.attributes)?;
            }
            prop_assert!(s.links.links.len() <= MAX_LINKS);
            for l in &s.links.links {
                prop_assert!(l.span_context.is_valid());
                within_limits(&l.attributes)?;
            }
            if let Status::Error { description } = &s.status {
                prop_assert!(description.len() <= MAX_VALUE_LEN);
            }
            prop_assert!(s.instrumentation_scope.name().len() <= MAX_SCOPE_LEN);
        }
    }
}
