//! Attribute values and span kinds, to and from the wire.

use opentelemetry::trace::SpanKind;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use protobuf::MessageField;

use super::limits::{at_most, Cuts, Rejection, MAX_ARRAY_LEN, MAX_ATTRIBUTES, MAX_KEY_LEN, MAX_VALUE_LEN};
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

/// A value that is no array: an element of one, or an attribute's own.
fn scalar_from_wire(v: &wire::Value, cuts: &mut Cuts) -> Result<Value, Rejection> {
    use wire::value::Kind;
    Ok(match &v.kind {
        Some(Kind::Bool(b)) => Value::Bool(*b),
        Some(Kind::Int(i)) => Value::I64(*i),
        Some(Kind::Double(f)) => Value::F64(*f),
        Some(Kind::String(s)) => Value::String(cuts.string(s, MAX_VALUE_LEN).into()),
        // OpenTelemetry arrays hold scalars; only a forged span nests them.
        Some(Kind::Array(_)) => return Err(Rejection::MalformedAttribute),
        None => Value::String("".into()),
    })
}

fn value_from_wire(v: &wire::Value, cuts: &mut Cuts) -> Result<Value, Rejection> {
    use wire::value::Kind;
    let Some(Kind::Array(a)) = &v.kind else {
        return scalar_from_wire(v, cuts);
    };
    if a.values.len() > MAX_ARRAY_LEN {
        cuts.0 += 1;
    }
    let vals = a.values[..a.values.len().min(MAX_ARRAY_LEN)]
        .iter()
        .map(|v| scalar_from_wire(v, cuts))
        .collect::<Result<Vec<Value>, Rejection>>()?;
    // OpenTelemetry arrays are homogeneous; the first element decides.
    Ok(match vals.first() {
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
        // Scalars as text: a number's or a bool's is short, a string's cut.
        _ => Value::Array(Array::String(
            vals.iter().map(|v| StringValue::from(v.to_string())).collect(),
        )),
    })
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

/// The guest's attributes, within the limits: refused over
/// [`MAX_ATTRIBUTES`] or with a key over [`MAX_KEY_LEN`], values cut to fit.
pub(super) fn attrs_from_wire(attrs: &[wire::KeyValue], cuts: &mut Cuts) -> Result<Vec<KeyValue>, Rejection> {
    at_most(attrs.len(), MAX_ATTRIBUTES, Rejection::TooManyAttributes)?;
    attrs
        .iter()
        .map(|kv| {
            at_most(kv.key.len(), MAX_KEY_LEN, Rejection::AttributeKeyTooLong)?;
            let value = match kv.value.as_ref() {
                Some(v) => value_from_wire(v, cuts)?,
                None => Value::Bool(false),
            };
            Ok(KeyValue::new(kv.key.clone(), value))
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
