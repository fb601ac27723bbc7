//! Attribute values and span kinds, to and from the wire.

use opentelemetry::trace::SpanKind;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use protobuf::MessageField;

use crate::traces as wire;

fn value_to_wire(v: &Value) -> wire::Value {
    use wire::value::Kind;
    let kind = match v {
        Value::Bool(b) => Kind::Bool(*b),
        Value::I64(i) => Kind::Int(*i),
        Value::F64(f) => Kind::Double(*f),
        Value::String(s) => Kind::String(s.to_string()),
        Value::Array(a) => {
            let values: Vec<wire::Value> = match a {
                Array::Bool(v) => v.iter().map(|b| value_to_wire(&Value::Bool(*b))).collect(),
                Array::I64(v) => v.iter().map(|i| value_to_wire(&Value::I64(*i))).collect(),
                Array::F64(v) => v.iter().map(|f| value_to_wire(&Value::F64(*f))).collect(),
                Array::String(v) => v.iter().map(|s| value_to_wire(&Value::String(s.clone()))).collect(),
                _ => Vec::new(),
            };
            Kind::Array(wire::Array {
                values,
                ..Default::default()
            })
        }
        other => Kind::String(other.to_string()),
    };
    wire::Value {
        kind: Some(kind),
        ..Default::default()
    }
}

fn value_from_wire(v: &wire::Value) -> Value {
    use wire::value::Kind;
    match &v.kind {
        Some(Kind::Bool(b)) => Value::Bool(*b),
        Some(Kind::Int(i)) => Value::I64(*i),
        Some(Kind::Double(f)) => Value::F64(*f),
        Some(Kind::String(s)) => Value::String(s.clone().into()),
        Some(Kind::Array(a)) => {
            let vals: Vec<Value> = a.values.iter().map(value_from_wire).collect();
            // OpenTelemetry arrays are homogeneous; the first element decides.
            match vals.first() {
                Some(Value::Bool(_)) => Value::Array(Array::Bool(
                    vals.iter()
                        .filter_map(|v| match v {
                            Value::Bool(b) => Some(*b),
                            _ => None,
                        })
                        .collect(),
                )),
                Some(Value::I64(_)) => Value::Array(Array::I64(
                    vals.iter()
                        .filter_map(|v| match v {
                            Value::I64(i) => Some(*i),
                            _ => None,
                        })
                        .collect(),
                )),
                Some(Value::F64(_)) => Value::Array(Array::F64(
                    vals.iter()
                        .filter_map(|v| match v {
                            Value::F64(f) => Some(*f),
                            _ => None,
                        })
                        .collect(),
                )),
                _ => Value::Array(Array::String(
                    vals.iter().map(|v| StringValue::from(v.to_string())).collect(),
                )),
            }
        }
        None => Value::String("".into()),
    }
}

pub(super) fn attrs_to_wire(attrs: &[KeyValue]) -> Vec<wire::KeyValue> {
    attrs
        .iter()
        .map(|kv| wire::KeyValue {
            key: kv.key.to_string(),
            value: MessageField::some(value_to_wire(&kv.value)),
            ..Default::default()
        })
        .collect()
}

pub(super) fn attrs_from_wire(attrs: &[wire::KeyValue]) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|kv| {
            KeyValue::new(
                kv.key.clone(),
                kv.value.as_ref().map(value_from_wire).unwrap_or(Value::Bool(false)),
            )
        })
        .collect()
}

pub(super) fn kind_to_wire(k: &SpanKind) -> wire::SpanKind {
    match k {
        SpanKind::Internal => wire::SpanKind::INTERNAL,
        SpanKind::Server => wire::SpanKind::SERVER,
        SpanKind::Client => wire::SpanKind::CLIENT,
        SpanKind::Producer => wire::SpanKind::PRODUCER,
        SpanKind::Consumer => wire::SpanKind::CONSUMER,
    }
}

pub(super) fn kind_from_wire(k: wire::SpanKind) -> SpanKind {
    match k {
        wire::SpanKind::INTERNAL => SpanKind::Internal,
        wire::SpanKind::SERVER => SpanKind::Server,
        wire::SpanKind::CLIENT => SpanKind::Client,
        wire::SpanKind::PRODUCER => SpanKind::Producer,
        wire::SpanKind::CONSUMER => SpanKind::Consumer,
    }
}
