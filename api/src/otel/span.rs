//! Whole spans: the SDK's SpanData to the wire and back.

use std::borrow::Cow;
use std::str::FromStr;

use opentelemetry::trace::{Event, Link, SpanContext, SpanId, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use protobuf::{EnumOrUnknown, MessageField};

use super::limits::{
    at_most, Cuts, Rejection, MAX_EVENTS, MAX_LINKS, MAX_NAME_LEN, MAX_SCOPE_LEN, MAX_TRACE_STATE_LEN, MAX_VALUE_LEN,
};
use super::values::{attrs_from_wire, attrs_to_wire, kind_from_wire, kind_to_wire};
use super::{system_time, unix_nanos};
use crate::traces as wire;

/// A finished span as the guest sends it.
pub fn to_wire(span: &SpanData) -> wire::Span {
    let parent = if span.parent_span_id == SpanId::INVALID {
        Vec::new()
    } else {
        span.parent_span_id.to_bytes().to_vec()
    };
    let status = match &span.status {
        Status::Unset => wire::Status::default(),
        Status::Ok => wire::Status {
            code: wire::status::Code::OK.into(),
            ..Default::default()
        },
        Status::Error { description } => wire::Status {
            code: wire::status::Code::ERROR.into(),
            message: description.to_string(),
            ..Default::default()
        },
    };
    wire::Span {
        trace_id: span.span_context.trace_id().to_bytes().to_vec(),
        span_id: span.span_context.span_id().to_bytes().to_vec(),
        parent_span_id: parent,
        parent_is_remote: span.parent_span_is_remote,
        trace_flags: span.span_context.trace_flags().to_u8() as u32,
        trace_state: span.span_context.trace_state().header(),
        name: span.name.to_string(),
        kind: EnumOrUnknown::new(kind_to_wire(&span.span_kind)),
        start_unix_nano: unix_nanos(span.start_time),
        end_unix_nano: unix_nanos(span.end_time),
        attributes: attrs_to_wire(&span.attributes),
        dropped_attributes: span.dropped_attributes_count,
        events: span
            .events
            .iter()
            .map(|e| wire::Event {
                name: e.name.to_string(),
                time_unix_nano: unix_nanos(e.timestamp),
                attributes: attrs_to_wire(&e.attributes),
                dropped_attributes: e.dropped_attributes_count,
                ..Default::default()
            })
            .collect(),
        dropped_events: span.events.dropped_count,
        links: span
            .links
            .iter()
            .map(|l| wire::Link {
                trace_id: l.span_context.trace_id().to_bytes().to_vec(),
                span_id: l.span_context.span_id().to_bytes().to_vec(),
                trace_flags: l.span_context.trace_flags().to_u8() as u32,
                trace_state: l.span_context.trace_state().header(),
                attributes: attrs_to_wire(&l.attributes),
                ..Default::default()
            })
            .collect(),
        dropped_links: span.links.dropped_count,
        status: MessageField::some(status),
        scope_name: span.instrumentation_scope.name().to_string(),
        scope_version: span.instrumentation_scope.version().unwrap_or_default().to_string(),
        ..Default::default()
    }
}

/// A trace id: 16 bytes, not all zero.
fn trace_id(b: &[u8]) -> Result<TraceId, Rejection> {
    let id = TraceId::from_bytes(b.try_into().map_err(|_| Rejection::MalformedId)?);
    if id == TraceId::INVALID {
        return Err(Rejection::MalformedId);
    }
    Ok(id)
}

/// A span id: 8 bytes, not all zero.
fn span_id(b: &[u8]) -> Result<SpanId, Rejection> {
    let id = SpanId::from_bytes(b.try_into().map_err(|_| Rejection::MalformedId)?);
    if id == SpanId::INVALID {
        return Err(Rejection::MalformedId);
    }
    Ok(id)
}

fn context(trace: &[u8], span: &[u8], flags: u32, state: &str, cuts: &mut Cuts) -> Result<SpanContext, Rejection> {
    // A trace state is only passed along: one too long is dropped, the span kept.
    let state = if state.len() > MAX_TRACE_STATE_LEN {
        cuts.0 += 1;
        ""
    } else {
        state
    };
    Ok(SpanContext::new(
        trace_id(trace)?,
        span_id(span)?,
        TraceFlags::new(flags as u8),
        false,
        TraceState::from_str(state).unwrap_or_default(),
    ))
}

/// A guest span accepted into the host's trace.
#[derive(Debug)]
pub struct Accepted {
    pub span: SpanData,
    /// Values cut to fit the limits (strings, arrays, the trace state).
    pub cuts: u32,
}

/// A span from the guest, with every timestamp passed through `rebase`
/// (guest clock to host clock; None drops the span). Refused, with the
/// reason, when it breaks a limit (`super::limits`) that cutting cannot mend.
pub fn from_wire(span: &wire::Span, rebase: impl Fn(i64) -> Option<i64>) -> Result<Accepted, Rejection> {
    // Counts and sizes first: they are cheap, and bound the work below.
    at_most(span.name.len(), MAX_NAME_LEN, Rejection::NameTooLong)?;
    at_most(span.events.len(), MAX_EVENTS, Rejection::TooManyEvents)?;
    at_most(span.links.len(), MAX_LINKS, Rejection::TooManyLinks)?;
    let mut cuts = Cuts::default();
    let span_context = context(
        &span.trace_id,
        &span.span_id,
        span.trace_flags,
        &span.trace_state,
        &mut cuts,
    )?;
    let parent_span_id = if span.parent_span_id.is_empty() {
        SpanId::INVALID
    } else {
        span_id(&span.parent_span_id)?
    };
    let time = |t: i64| rebase(t).map(system_time).ok_or(Rejection::TimestampOutOfWindow);
    let start_time = time(span.start_unix_nano)?;
    let end_time = time(span.end_unix_nano)?;
    let attributes = attrs_from_wire(&span.attributes, &mut cuts)?;
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .iter()
        .map(|e| {
            at_most(e.name.len(), MAX_NAME_LEN, Rejection::NameTooLong)?;
            Ok(Event::new(
                e.name.clone(),
                time(e.time_unix_nano)?,
                attrs_from_wire(&e.attributes, &mut cuts)?,
                e.dropped_attributes,
            ))
        })
        .collect::<Result<_, Rejection>>()?;
    events.dropped_count = span.dropped_events;
    let mut links = SpanLinks::default();
    links.links = span
        .links
        .iter()
        .map(|l| {
            Ok(Link::new(
                context(&l.trace_id, &l.span_id, l.trace_flags, &l.trace_state, &mut cuts)?,
                attrs_from_wire(&l.attributes, &mut cuts)?,
                0,
            ))
        })
        .collect::<Result<_, Rejection>>()?;
    links.dropped_count = span.dropped_links;
    let status = match span.status.code.enum_value_or_default() {
        wire::status::Code::UNSET => Status::Unset,
        wire::status::Code::OK => Status::Ok,
        wire::status::Code::ERROR => Status::Error {
            description: Cow::Owned(cuts.string(&span.status.message, MAX_VALUE_LEN)),
        },
    };
    let mut scope = InstrumentationScope::builder(cuts.string(&span.scope_name, MAX_SCOPE_LEN));
    if !span.scope_version.is_empty() {
        scope = scope.with_version(cuts.string(&span.scope_version, MAX_SCOPE_LEN));
    }
    let span = SpanData {
        span_context,
        parent_span_id,
        parent_span_is_remote: span.parent_is_remote,
        span_kind: kind_from_wire(span.kind.enum_value_or_default()),
        name: Cow::Owned(span.name.clone()),
        start_time,
        end_time,
        attributes,
        dropped_attributes_count: span.dropped_attributes,
        events,
        links,
        status,
        instrumentation_scope: scope.build(),
    };
    Ok(Accepted { span, cuts: cuts.0 })
}

#[cfg(test)]
mod tests {
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

    mod arbitrary {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::*;

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
    }
}
