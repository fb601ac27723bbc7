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
#[path = "span_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "span_props.rs"]
mod props;
