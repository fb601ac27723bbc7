//! Whole spans: the SDK's SpanData to the wire and back.

use std::borrow::Cow;
use std::str::FromStr;

use opentelemetry::trace::{Event, Link, SpanContext, SpanId, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use protobuf::{EnumOrUnknown, MessageField};

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

fn trace_id(b: &[u8]) -> Option<TraceId> {
    Some(TraceId::from_bytes(b.try_into().ok()?))
}

fn span_id(b: &[u8]) -> Option<SpanId> {
    Some(SpanId::from_bytes(b.try_into().ok()?))
}

fn context(trace: &[u8], span: &[u8], flags: u32, state: &str) -> Option<SpanContext> {
    Some(SpanContext::new(
        trace_id(trace)?,
        span_id(span)?,
        TraceFlags::new(flags as u8),
        false,
        TraceState::from_str(state).unwrap_or_default(),
    ))
}

/// A span from the guest, with every timestamp passed through `rebase`
/// (guest clock to host clock). None when its ids are malformed.
pub fn from_wire(span: &wire::Span, rebase: impl Fn(i64) -> i64) -> Option<SpanData> {
    let span_context = context(&span.trace_id, &span.span_id, span.trace_flags, &span.trace_state)?;
    let parent_span_id = if span.parent_span_id.is_empty() {
        SpanId::INVALID
    } else {
        span_id(&span.parent_span_id)?
    };
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .iter()
        .map(|e| {
            Event::new(
                e.name.clone(),
                system_time(rebase(e.time_unix_nano)),
                attrs_from_wire(&e.attributes),
                e.dropped_attributes,
            )
        })
        .collect();
    events.dropped_count = span.dropped_events;
    let mut links = SpanLinks::default();
    links.links = span
        .links
        .iter()
        .filter_map(|l| {
            Some(Link::new(
                context(&l.trace_id, &l.span_id, l.trace_flags, &l.trace_state)?,
                attrs_from_wire(&l.attributes),
                0,
            ))
        })
        .collect();
    links.dropped_count = span.dropped_links;
    let status = match span.status.code.enum_value_or_default() {
        wire::status::Code::UNSET => Status::Unset,
        wire::status::Code::OK => Status::Ok,
        wire::status::Code::ERROR => Status::Error {
            description: Cow::Owned(span.status.message.clone()),
        },
    };
    let mut scope = InstrumentationScope::builder(span.scope_name.clone());
    if !span.scope_version.is_empty() {
        scope = scope.with_version(span.scope_version.clone());
    }
    Some(SpanData {
        span_context,
        parent_span_id,
        parent_span_is_remote: span.parent_is_remote,
        span_kind: kind_from_wire(span.kind.enum_value_or_default()),
        name: Cow::Owned(span.name.clone()),
        start_time: system_time(rebase(span.start_unix_nano)),
        end_time: system_time(rebase(span.end_unix_nano)),
        attributes: attrs_from_wire(&span.attributes),
        dropped_attributes_count: span.dropped_attributes,
        events,
        links,
        status,
        instrumentation_scope: scope.build(),
    })
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::SpanKind;
    use opentelemetry::{Array, KeyValue, Value};

    use super::*;

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
        let back = from_wire(&to_wire(&original), |t| t - 100).unwrap();
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
}
