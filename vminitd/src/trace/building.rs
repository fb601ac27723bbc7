//! A span while it is open: the wire span itself, filled in as it goes
//! (ids, parent, attributes, events, status), and sent whole when it ends.
//! Nothing is converted twice: what the host receives is what was built.

use std::time::SystemTime;

use voidbox_api::otel::limits::{MAX_ATTRIBUTES, MAX_EVENTS};
use voidbox_api::otel::unix_nanos;
use voidbox_api::protobuf::{EnumOrUnknown, MessageField};
use voidbox_api::traces as wire;

use super::context::Parent;
use super::ids;

pub fn string(s: impl Into<String>) -> wire::Value {
    value(wire::value::Kind::String(s.into()))
}

pub fn value(kind: wire::value::Kind) -> wire::Value {
    wire::Value {
        kind: Some(kind),
        ..Default::default()
    }
}

/// Sets `key` in `attrs` (a later value replaces an earlier one, as in
/// OpenTelemetry), or counts it in `dropped` when `attrs` is full: the
/// host's limit, so the host never refuses a guest span for its count.
pub fn set(attrs: &mut Vec<wire::KeyValue>, dropped: &mut u32, key: &str, value: wire::Value) {
    if let Some(kv) = attrs.iter_mut().find(|kv| kv.key == key) {
        kv.value = MessageField::some(value);
    } else if attrs.len() < MAX_ATTRIBUTES {
        attrs.push(wire::KeyValue {
            key: key.to_string(),
            value: MessageField::some(value),
            ..Default::default()
        });
    } else {
        *dropped += 1;
    }
}

#[derive(Debug)]
pub struct Building {
    span: wire::Span,
    /// The sampling decision, the parent's (a root span is sampled): an
    /// unsampled span is built, for its children's sake, but not sent.
    sampled: bool,
}

impl Building {
    /// A root span, starting now; `child_of` or `adopt` give it a parent.
    pub fn new(name: &str) -> Self {
        Self::starting_at(name, SystemTime::now())
    }

    pub fn starting_at(name: &str, start: SystemTime) -> Self {
        Building {
            span: wire::Span {
                trace_id: ids::trace_id(),
                span_id: ids::span_id(),
                name: name.to_string(),
                kind: EnumOrUnknown::new(wire::SpanKind::INTERNAL),
                start_unix_nano: unix_nanos(start),
                scope_name: super::SCOPE.to_string(),
                ..Default::default()
            },
            sampled: true,
        }
    }

    /// Puts this span under `parent`, a span of this guest.
    pub fn child_of(&mut self, parent: &Building) {
        self.span.trace_id = parent.span.trace_id.clone();
        self.span.parent_span_id = parent.span.span_id.clone();
        self.span.parent_is_remote = false;
        self.span.trace_state = parent.span.trace_state.clone();
        self.sampled = parent.sampled;
    }

    /// Puts this span under the host's span `parent`.
    pub fn adopt(&mut self, parent: &Parent) {
        self.span.trace_id = parent.trace_id.clone();
        self.span.parent_span_id = parent.span_id.clone();
        self.span.parent_is_remote = true;
        self.span.trace_state = parent.state.clone();
        self.sampled = parent.sampled();
    }

    /// The ids, for the Debug service's sample to report.
    #[cfg(any(test, feature = "debug-rpcs"))]
    pub fn span_id(&self) -> &[u8] {
        &self.span.span_id
    }

    #[cfg(any(test, feature = "debug-rpcs"))]
    pub fn trace_id(&self) -> &[u8] {
        &self.span.trace_id
    }

    pub fn rename(&mut self, name: String) {
        self.span.name = name;
    }

    pub fn set(&mut self, key: &str, value: wire::Value) {
        set(&mut self.span.attributes, &mut self.span.dropped_attributes, key, value);
    }

    /// Adds `event`, or counts it as dropped past the host's limit.
    pub fn push_event(&mut self, event: wire::Event) {
        if self.span.events.len() < MAX_EVENTS {
            self.span.events.push(event);
        } else {
            self.span.dropped_events += 1;
        }
    }

    pub fn fail(&mut self, message: String) {
        self.span.status = MessageField::some(wire::Status {
            code: wire::status::Code::ERROR.into(),
            message,
            ..Default::default()
        });
    }

    pub fn failed(&self) -> bool {
        self.span.status.code.enum_value_or_default() == wire::status::Code::ERROR
    }

    /// The finished span, ending at `end`: None when it is not sampled.
    pub fn finish_at(mut self, end: SystemTime) -> Option<wire::Span> {
        if !self.sampled {
            return None;
        }
        self.span.end_unix_nano = unix_nanos(end);
        self.span.trace_flags = 1;
        if self.span.status.is_none() {
            self.span.status = MessageField::some(wire::Status::default());
        }
        Some(self.span)
    }

    pub fn finish(self) -> Option<wire::Span> {
        self.finish_at(SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root under a host span with trace `flags`, and its child.
    fn tree(flags: u8) -> (Building, Building) {
        let mut root = Building::new("root");
        root.adopt(&Parent {
            trace_id: vec![5; 16],
            span_id: vec![6; 8],
            flags,
            state: "k=v".into(),
        });
        let mut child = Building::new("child");
        child.child_of(&root);
        (root, child)
    }

    #[test]
    fn children_share_the_trace_and_name_their_parent() {
        let (root, child) = tree(1);
        let root_id = root.span_id().to_vec();
        assert_eq!(root.trace_id(), [5; 16]);
        let root = root.finish().unwrap();
        let child = child.finish().unwrap();
        assert_eq!(
            (root.trace_id.clone(), root.parent_span_id.clone()),
            (vec![5; 16], vec![6; 8])
        );
        assert!(root.parent_is_remote && !child.parent_is_remote);
        assert_eq!(child.trace_id, vec![5; 16]);
        assert_eq!(child.parent_span_id, root_id);
        assert_eq!(child.trace_state, "k=v");
        assert_eq!(child.trace_flags, 1);
        assert!(child.end_unix_nano >= child.start_unix_nano);
    }

    #[test]
    fn an_unsampled_parent_sends_nothing_down_its_tree() {
        let (root, child) = tree(0);
        assert!(child.finish().is_none());
        assert!(root.finish().is_none());
        assert!(Building::new("a root").finish().is_some(), "a root span is sampled");
    }

    #[test]
    fn attributes_replace_and_overflow_is_counted() {
        let mut b = Building::new("s");
        b.set("k", string("a"));
        b.set("k", string("b"));
        for i in 0..MAX_ATTRIBUTES + 2 {
            b.set(&format!("n{i}"), string("x"));
        }
        for _ in 0..MAX_EVENTS + 3 {
            b.push_event(wire::Event::default());
        }
        let s = b.finish().unwrap();
        assert_eq!(s.attributes[0].value.kind, Some(wire::value::Kind::String("b".into())));
        assert_eq!(s.attributes.len(), MAX_ATTRIBUTES);
        assert_eq!(s.dropped_attributes, 3);
        assert_eq!((s.events.len(), s.dropped_events), (MAX_EVENTS, 3));
    }
}
