//! to_wire and from_wire: the round trip, and each limit on what the guest sends.

use opentelemetry::trace::SpanKind;
use opentelemetry::{Array, KeyValue, Value};

use super::*;
use crate::otel::limits::{MAX_ARRAY_LEN, MAX_ATTRIBUTES, MAX_KEY_LEN};

#[test]
fn a_span_survives_the_round_trip() {
    let ctx = SpanContext::new(
        TraceId::from_bytes([7; 16]),
        SpanId::from_bytes([3; 8]),
        TraceFlags::SAMPLED,
        false,
        TraceState::from_str("k=v").unwrap(),
    );
    let mut events = SpanEvents::default();
    events
        .events
        .push(Event::new("ev", system_time(1_500), vec![KeyValue::new("n", 2i64)], 0));
    let original = SpanData {
        span_context: ctx,
        parent_span_id: SpanId::from_bytes([9; 8]),
        parent_span_is_remote: true,
        span_kind: SpanKind::Server,
        name: "crun.create".into(),
        start_time: system_time(1_000),
        end_time: system_time(2_000),
        attributes: vec![
            KeyValue::new("container.id", "c1"),
            KeyValue::new("ok", true),
            KeyValue::new("ratio", 0.5),
            KeyValue::new("args", Value::Array(Array::String(vec!["sh".into(), "-c".into()]))),
        ],
        dropped_attributes_count: 1,
        events,
        links: SpanLinks::default(),
        status: Status::Error {
            description: "boom".into(),
        },
        instrumentation_scope: InstrumentationScope::builder("vminitd").with_version("0.1").build(),
    };
    let back = from_wire(&to_wire(&original), |t| Some(t - 100)).unwrap();
    assert_eq!(back.cuts, 0);
    let back = back.span;
    assert_eq!(back.span_context.trace_id(), original.span_context.trace_id());
    assert_eq!(back.span_context.span_id(), original.span_context.span_id());
    assert_eq!(back.span_context.trace_state().header(), "k=v");
    assert_eq!(back.parent_span_id, original.parent_span_id);
    assert!(back.parent_span_is_remote);
    assert_eq!(back.span_kind, SpanKind::Server);
    assert_eq!(back.start_time, system_time(900), "rebased");
    assert_eq!(back.end_time, system_time(1_900));
    assert_eq!(back.attributes, original.attributes);
    assert_eq!(back.dropped_attributes_count, 1);
    assert_eq!(back.events.events[0].timestamp, system_time(1_400));
    assert_eq!(back.events.events[0].attributes, vec![KeyValue::new("n", 2i64)]);
    assert_eq!(back.status, original.status);
    assert_eq!(back.instrumentation_scope.version(), Some("0.1"));
}

fn valid() -> wire::Span {
    wire::Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "ok".into(),
        start_unix_nano: 10,
        end_unix_nano: 20,
        ..Default::default()
    }
}

fn attr(key: &str, v: wire::value::Kind) -> wire::KeyValue {
    wire::KeyValue {
        key: key.into(),
        value: MessageField::some(wire::Value {
            kind: Some(v),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn refused(span: &wire::Span) -> Option<Rejection> {
    from_wire(span, Some).err()
}

#[test]
fn malformed_or_zero_ids_are_refused() {
    assert!(from_wire(&valid(), Some).is_ok());
    let cases: [fn(&mut wire::Span); 6] = [
        |s| s.trace_id = vec![0; 16],
        |s| s.trace_id = vec![1; 15],
        |s| s.span_id = vec![0; 8],
        |s| s.span_id = vec![1; 9],
        |s| s.parent_span_id = vec![0; 8],
        |s| {
            s.links.push(wire::Link {
                trace_id: vec![1; 16],
                span_id: vec![0; 8],
                ..Default::default()
            })
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut s = valid();
        case(&mut s);
        assert_eq!(refused(&s), Some(Rejection::MalformedId), "case {i}");
    }
}

#[test]
fn names_over_the_limit_are_refused() {
    let mut s = valid();
    s.name = "n".repeat(MAX_NAME_LEN);
    assert!(from_wire(&s, Some).is_ok());
    s.name.push('n');
    assert_eq!(refused(&s), Some(Rejection::NameTooLong));
    let mut s = valid();
    s.events.push(wire::Event {
        name: "e".repeat(MAX_NAME_LEN + 1),
        ..Default::default()
    });
    assert_eq!(refused(&s), Some(Rejection::NameTooLong));
}

#[test]
fn too_many_attributes_events_or_links_are_refused() {
    let one = || attr("k", wire::value::Kind::Int(1));
    let mut s = valid();
    s.attributes = vec![one(); MAX_ATTRIBUTES];
    assert!(from_wire(&s, Some).is_ok());
    s.attributes.push(one());
    assert_eq!(refused(&s), Some(Rejection::TooManyAttributes));

    let mut s = valid();
    s.events.push(wire::Event {
        attributes: vec![one(); MAX_ATTRIBUTES + 1],
        ..Default::default()
    });
    assert_eq!(refused(&s), Some(Rejection::TooManyAttributes));

    let mut s = valid();
    s.events = vec![wire::Event::default(); MAX_EVENTS + 1];
    assert_eq!(refused(&s), Some(Rejection::TooManyEvents));

    let link = wire::Link {
        trace_id: vec![1; 16],
        span_id: vec![1; 8],
        ..Default::default()
    };
    let mut s = valid();
    s.links = vec![link; MAX_LINKS + 1];
    assert_eq!(refused(&s), Some(Rejection::TooManyLinks));
}

#[test]
fn long_keys_and_nested_arrays_are_refused() {
    let mut s = valid();
    s.attributes
        .push(attr(&"k".repeat(MAX_KEY_LEN + 1), wire::value::Kind::Bool(true)));
    assert_eq!(refused(&s), Some(Rejection::AttributeKeyTooLong));

    let inner = wire::Value {
        kind: Some(wire::value::Kind::Array(wire::Array::default())),
        ..Default::default()
    };
    let mut s = valid();
    s.attributes.push(attr(
        "nested",
        wire::value::Kind::Array(wire::Array {
            values: vec![inner],
            ..Default::default()
        }),
    ));
    assert_eq!(refused(&s), Some(Rejection::MalformedAttribute));
}

#[test]
fn long_values_are_cut_and_counted() {
    let mut s = valid();
    s.attributes
        .push(attr("s", wire::value::Kind::String("v".repeat(MAX_VALUE_LEN + 10))));
    let many = wire::Value {
        kind: Some(wire::value::Kind::Int(1)),
        ..Default::default()
    };
    s.attributes.push(attr(
        "a",
        wire::value::Kind::Array(wire::Array {
            values: vec![many; MAX_ARRAY_LEN + 1],
            ..Default::default()
        }),
    ));
    s.trace_state = "k=v,".repeat(MAX_TRACE_STATE_LEN);
    s.scope_name = "s".repeat(MAX_SCOPE_LEN + 1);
    let got = from_wire(&s, Some).unwrap();
    assert_eq!(got.cuts, 4);
    match &got.span.attributes[0].value {
        Value::String(v) => assert_eq!(v.as_str().len(), MAX_VALUE_LEN),
        other => panic!("{other:?}"),
    }
    match &got.span.attributes[1].value {
        Value::Array(Array::I64(v)) => assert_eq!(v.len(), MAX_ARRAY_LEN),
        other => panic!("{other:?}"),
    }
    assert_eq!(got.span.span_context.trace_state().header(), "");
    assert_eq!(got.span.instrumentation_scope.name().len(), MAX_SCOPE_LEN);
}

#[test]
fn a_timestamp_the_clock_refuses_refuses_the_span() {
    let mut s = valid();
    s.events.push(wire::Event {
        time_unix_nano: -5,
        ..Default::default()
    });
    let rebase = |t: i64| (t >= 0).then_some(t);
    assert_eq!(from_wire(&s, rebase).err(), Some(Rejection::TimestampOutOfWindow));
    s.events.clear();
    assert!(from_wire(&s, rebase).is_ok());
    s.start_unix_nano = -1;
    assert_eq!(from_wire(&s, rebase).err(), Some(Rejection::TimestampOutOfWindow));
}
