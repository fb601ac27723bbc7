//! The Debug service's sample span: one of every attribute value the wire
//! carries, events with attributes, and an error status. The guest builds
//! it as it builds its other spans, from the wire forms below; a test
//! compares what reaches the OTLP receiver with this, value for value
//! (doubles bit for bit).

use opentelemetry::{Array, KeyValue, StringValue, Value};

use super::values::attrs_to_wire;
use crate::traces as wire;

pub const NAME: &str = "debug.sample";
pub const STATUS_MESSAGE: &str = "sample failure: ünïcode and \"quotes\"";

/// Attributes of every value type, with their edge values.
pub fn attributes() -> Vec<KeyValue> {
    let strings = |v: &[&str]| v.iter().map(|s| StringValue::from(s.to_string())).collect::<Vec<_>>();
    vec![
        KeyValue::new("sample.bool", true),
        KeyValue::new("sample.bool_false", false),
        KeyValue::new("sample.int", -42i64),
        KeyValue::new("sample.int_min", i64::MIN),
        KeyValue::new("sample.int_max", i64::MAX),
        KeyValue::new("sample.double", 2.5f64),
        KeyValue::new("sample.double_negative_zero", -0.0f64),
        KeyValue::new("sample.double_tiny", 5e-324f64),
        KeyValue::new("sample.double_max", f64::MAX),
        KeyValue::new("sample.double_infinity", f64::NEG_INFINITY),
        KeyValue::new("sample.string", "héllo, wörld ✓"),
        KeyValue::new("sample.string_empty", ""),
        KeyValue::new("sample.bools", Value::Array(Array::Bool(vec![true, false, true]))),
        KeyValue::new("sample.ints", Value::Array(Array::I64(vec![1, -1, i64::MAX]))),
        KeyValue::new("sample.doubles", Value::Array(Array::F64(vec![0.1, -1e300, 3.0]))),
        KeyValue::new("sample.strings", Value::Array(Array::String(strings(&["a", "", "ç"])))),
    ]
}

/// Events, in the order they are added, with their attributes.
pub fn events() -> Vec<(&'static str, Vec<KeyValue>)> {
    vec![
        (
            "sample.first",
            vec![
                KeyValue::new("event.int", 7i64),
                KeyValue::new("event.string", "one"),
                KeyValue::new("event.double", 0.25f64),
                KeyValue::new("event.bool", true),
            ],
        ),
        ("sample.empty", Vec::new()),
        (
            "sample.last",
            vec![KeyValue::new("event.ints", Value::Array(Array::I64(vec![3, 2, 1])))],
        ),
    ]
}

/// `attributes()` as the wire carries them.
pub fn wire_attributes() -> Vec<wire::KeyValue> {
    attrs_to_wire(&attributes())
}

/// `events()` as the wire carries them: names and attributes.
pub fn wire_events() -> Vec<(&'static str, Vec<wire::KeyValue>)> {
    events().into_iter().map(|(n, a)| (n, attrs_to_wire(&a))).collect()
}
