//! What the guest records arrives as recorded: a span with attributes of
//! every value type, events with attributes and an error status, made by
//! vminitd's real tracer, crosses the span buffer, `Traces.Stream`, the
//! relay, the clock rebase and the shim's OTLP exporter, and is compared
//! with the recording value for value once decoded from OTLP.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::{Array, Value};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Otlp;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use voidbox_api::otel::sample;
use voidbox_integration::otlp::Receiver;
use voidbox_integration::vm_config;
use voidbox_shim::guest::GuestClient;
use voidbox_shim::sandbox::clock::Clock;
use voidbox_shim::sandbox::relay::{self, RelayStats};
use voidbox_shim::vm::MicroVm;

/// What OTLP should carry for `v`.
fn otlp(v: &Value) -> Otlp {
    let array = |values: Vec<Otlp>| {
        Otlp::ArrayValue(ArrayValue {
            values: values.into_iter().map(|v| AnyValue { value: Some(v) }).collect(),
        })
    };
    match v {
        Value::Bool(b) => Otlp::BoolValue(*b),
        Value::I64(i) => Otlp::IntValue(*i),
        Value::F64(f) => Otlp::DoubleValue(*f),
        Value::String(s) => Otlp::StringValue(s.to_string()),
        Value::Array(Array::Bool(v)) => array(v.iter().map(|b| Otlp::BoolValue(*b)).collect()),
        Value::Array(Array::I64(v)) => array(v.iter().map(|i| Otlp::IntValue(*i)).collect()),
        Value::Array(Array::F64(v)) => array(v.iter().map(|f| Otlp::DoubleValue(*f)).collect()),
        Value::Array(Array::String(v)) => array(v.iter().map(|s| Otlp::StringValue(s.to_string())).collect()),
        other => panic!("the sample has no {other:?}"),
    }
}

/// Equal, doubles bit for bit (so -0.0 is not 0.0).
fn same(a: &Otlp, b: &Otlp) -> bool {
    match (a, b) {
        (Otlp::DoubleValue(x), Otlp::DoubleValue(y)) => x.to_bits() == y.to_bits(),
        (Otlp::ArrayValue(x), Otlp::ArrayValue(y)) => {
            x.values.len() == y.values.len()
                && x.values.iter().zip(&y.values).all(|(x, y)| match (&x.value, &y.value) {
                    (Some(x), Some(y)) => same(x, y),
                    _ => false,
                })
        }
        _ => a == b,
    }
}

/// `received` holds exactly `expected`, each value as recorded.
fn assert_attributes(what: &str, expected: &[opentelemetry::KeyValue], received: &[KeyValue]) {
    assert_eq!(
        received.len(),
        expected.len(),
        "{what}: {} attributes arrived, {} were recorded: {received:?}",
        received.len(),
        expected.len()
    );
    for kv in expected {
        let key = kv.key.as_str();
        let got = received
            .iter()
            .find(|r| r.key == key)
            .and_then(|r| r.value.as_ref()?.value.as_ref())
            .unwrap_or_else(|| panic!("{what}: {key} did not arrive"));
        let want = otlp(&kv.value);
        assert!(same(got, &want), "{what}: {key} arrived as {got:?}, recorded {want:?}");
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_span_arrives_as_recorded() {
    let receiver = Receiver::start("127.0.0.1:0").await.unwrap();
    // SAFETY (of set_var): this test is the binary's only one, and nothing
    // else reads the environment at this point.
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        format!("{}/v1/traces", receiver.endpoint()),
    );
    let telemetry = voidbox_integration::install_telemetry("fidelity", "test").expect("telemetry");

    let mut config = vm_config("fidelity");
    config.extra_cmdline.push("voidbox.trace=1".into());
    let started = voidbox_shim::sandbox::clock::now_ns();
    let vm = MicroVm::start(voidbox_integration::test_backend().as_ref(), config)
        .await
        .expect("start VM");
    let guest = GuestClient::connect(&vm).await.expect("guest");
    let clock = Arc::new(Clock::new(started));
    clock.sync_at_boot(&guest, true, true).await.expect("clock sync");
    let stats = Arc::new(RelayStats::default());
    let relaying = relay::start(
        guest.clone(),
        clock,
        telemetry.guest_sink().expect("tracing is on"),
        stats.clone(),
        Vec::new(),
        opentelemetry::Context::new(),
    );

    let (trace_id, span_id) = guest.debug().sample().await.expect("Debug.Sample");
    let exit = guest.power_off(&vm, Duration::from_secs(10)).await;
    assert!(exit.is_clean(), "{exit}");
    tokio::time::timeout(Duration::from_secs(5), relaying)
        .await
        .expect("the stream ends at power-off")
        .unwrap();
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await.unwrap();

    let requests = receiver.requests();
    let found: Vec<(&Span, String)> = requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Otlp::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            rs.scope_spans
                .iter()
                .flat_map(|ss| &ss.spans)
                .map(move |s| (s, service.clone()))
        })
        .filter(|(s, _)| s.name == sample::NAME)
        .collect();
    assert_eq!(found.len(), 1, "one sample span arrives");
    let (span, service) = &found[0];
    assert_eq!(service, "voidbox-vm");
    assert_eq!(
        (hex(&span.trace_id), hex(&span.span_id)),
        (trace_id, span_id),
        "its ids"
    );
    assert_attributes("the span", &sample::attributes(), &span.attributes);
    assert_eq!(span.dropped_attributes_count, 0);
    assert_eq!(span.dropped_events_count, 0);

    let status = span.status.as_ref().expect("a status");
    assert_eq!(status.code, 2, "error");
    assert_eq!(status.message, sample::STATUS_MESSAGE);

    let recorded = sample::events();
    let names: Vec<&str> = span.events.iter().map(|e| e.name.as_str()).collect();
    let recorded_names: Vec<&str> = recorded.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, recorded_names, "the events, in order");
    let mut last = span.start_time_unix_nano;
    for (event, (name, attrs)) in span.events.iter().zip(&recorded) {
        assert_attributes(name, attrs, &event.attributes);
        // Rebased with the span: between its start and end, in order.
        assert!(
            event.time_unix_nano >= last && event.time_unix_nano <= span.end_time_unix_nano,
            "{name} at {} outside [{last}, {}]",
            event.time_unix_nano,
            span.end_time_unix_nano
        );
        last = event.time_unix_nano;
    }
    assert_eq!(stats.rejected.load(std::sync::atomic::Ordering::Relaxed), 0);
}
