//! Every lost span is counted, by cause, as the metric
//! `voidbox.spans.dropped{reason}` (or `voidbox.guest.rejected{reason}`)
//! and on the container's root span (`voidbox.spans.dropped.<reason>`,
//! `voidbox.guest.spans.rejected`), with what was relayed
//! (`voidbox.guest.spans.relayed`). Real shim, real VM, real OTLP receiver
//! decoding with opentelemetry-proto; each test provokes its causes:
//!
//! - the guest's buffer overflows (`VOIDBOX_TRACE_BUFFER=2`): the count
//!   comes from the guest, whose boot timing decides it, so the test asserts
//!   the invariant exactly: the span attribute equals the metric, and every
//!   relayed span arrives;
//! - the host's queue is full and the guest lies (`init=/hostile-init
//!   voidbox.hostile=lies`, `VOIDBOX_SPAN_QUEUE=100`, the receiver holding
//!   the guest's exports): exact counts, known from what the hostile guest
//!   sends;
//! - exports fail (the receiver answers 500 to the first trace request of
//!   the shim's pipeline and of the guest's): exact counts, the spans in the
//!   refused requests.

use std::collections::HashMap;
use std::time::Duration;

use containerd_shim_protos::api::CreateTaskRequest;
use voidbox_integration::otlp::{Point, Receiver, Span};
use voidbox_integration::shim_client::{spec, ShimUnderTest};

const REASONS: [&str; 3] = ["guest_buffer_full", "host_queue_full", "export_failed"];

/// The last value of counter `name` (of `reason`, if given); 0 if it was
/// never exported (an OpenTelemetry counter appears at its first add).
fn counter(points: &[Point], name: &str, reason: Option<&str>) -> u64 {
    points
        .iter()
        .rev()
        .find(|p| p.name == name && reason.is_none_or(|r| p.attributes.get("reason").map(String::as_str) == Some(r)))
        .map_or(0, |p| p.value as u64)
}

/// The sum over reasons of counter `name`'s last values.
fn counter_all_reasons(points: &[Point], name: &str) -> u64 {
    let mut last: HashMap<String, u64> = HashMap::new();
    for p in points.iter().filter(|p| p.name == name) {
        last.insert(p.attributes.get("reason").cloned().unwrap_or_default(), p.value as u64);
    }
    last.values().sum()
}

/// The container's root span, once it arrives.
async fn container_span(otlp: &Receiver) -> Span {
    let arrived = otlp
        .wait_for(Duration::from_secs(15), |s| s.iter().any(|s| s.name == "Container"))
        .await;
    assert!(arrived, "the Container span arrives");
    otlp.spans().into_iter().find(|s| s.name == "Container").unwrap()
}

fn attr(span: &Span, key: &str) -> u64 {
    span.attributes
        .get(key)
        .unwrap_or_else(|| panic!("{key} on the Container span: {:?}", span.attributes))
        .parse()
        .unwrap()
}

fn dropped_attr(span: &Span, reason: &str) -> u64 {
    attr(span, &format!("voidbox.spans.dropped.{reason}"))
}

/// Waits until the metrics exported at the shim's exit have arrived: the
/// last export holds `voidbox.vms.live` at 0.
async fn final_points(otlp: &Receiver) -> Vec<Point> {
    let done = otlp
        .wait_for_points(Duration::from_secs(15), |p| {
            p.iter().rev().find(|p| p.name == "voidbox.vms.live").map(|p| p.value) == Some(0.0)
        })
        .await;
    assert!(done, "the shim's last metrics arrive");
    otlp.points()
}

fn env(otlp: &Receiver) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300".into()),
    ]
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Runs `true` to its end: Create, Start, Wait, Delete, Shutdown.
async fn run_true(name: &str, env: &[(&'static str, String)]) -> ShimUnderTest {
    let shim = ShimUnderTest::start_with_env(name, &spec(&["true"]), &borrowed(env)).await;
    shim.create_and_start(&[]).await;
    shim.wait(&[]).await;
    shim.delete_and_shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(15)).await;
    shim
}

fn of_service(spans: &[Span], service: &str) -> u64 {
    spans.iter().filter(|s| s.service == service).count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_guest_buffer_is_counted_on_the_metric_and_the_container_span() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let mut env = env(&otlp);
    // The boot alone makes more spans than this before the stream opens.
    env.push(("VOIDBOX_TRACE_BUFFER", "2".into()));
    run_true("drops-guest", &env).await;

    let root = container_span(&otlp).await;
    let points = final_points(&otlp).await;
    let spans = otlp.spans();
    let guest = dropped_attr(&root, "guest_buffer_full");
    println!(
        "guest buffer of 2: dropped {guest}, relayed {}; Container span {:?}",
        attr(&root, "voidbox.guest.spans.relayed"),
        root.attributes
    );
    assert!(guest > 0, "the guest's buffer overflowed");
    assert_eq!(
        counter(&points, "voidbox.spans.dropped", Some("guest_buffer_full")),
        guest,
        "the metric says what the span says"
    );
    let relayed = attr(&root, "voidbox.guest.spans.relayed");
    assert_eq!(counter(&points, "voidbox.guest.spans.relayed", None), relayed);
    assert_eq!(
        of_service(&spans, "voidbox-vm"),
        relayed,
        "every relayed span arrives, and nothing else of the guest's"
    );
    for reason in ["host_queue_full", "export_failed"] {
        assert_eq!(dropped_attr(&root, reason), 0, "{reason}");
        assert_eq!(counter(&points, "voidbox.spans.dropped", Some(reason)), 0, "{reason}");
    }
    assert_eq!(attr(&root, "voidbox.guest.spans.rejected"), 0);
}

/// The hostile guest sends a batch of 2000 spans, of which the host takes
/// 512 (1488 refused: `batch_too_large`), then 6 spans of which 4 are
/// refused and 2 are fine. With 100 places in the host's queue and the
/// receiver holding the guest's exports until Create has failed, 100 spans
/// are relayed and the other 412 + 2 refused by the full queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_host_queue_and_a_lying_guest_are_counted_exactly() {
    const BOUND: u64 = 100;
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    otlp.hold_traces(Some("voidbox-vm"));
    let mut env = env(&otlp);
    env.push(("VOIDBOX_SPAN_QUEUE", BOUND.to_string()));
    env.push((
        "VOIDBOX_GUEST_CMDLINE",
        "init=/hostile-init voidbox.hostile=lies".into(),
    ));
    let shim = ShimUnderTest::start_with_env("drops-queue", &spec(&["true"]), &borrowed(&env)).await;
    let create = CreateTaskRequest {
        id: shim.id.clone(),
        bundle: shim.bundle.display().to_string(),
        ..Default::default()
    };
    let queue_full = 512 - BOUND + 2;
    // The hold ends once the guest's export is held and the last of its
    // spans was refused (the metric says so): well within the exporter's
    // 3 s timeout, whatever Create takes.
    let release = async {
        let started = std::time::Instant::now();
        let refused_all = |p: &[Point]| counter(p, "voidbox.spans.dropped", Some("host_queue_full")) == queue_full;
        let ready = voidbox_integration::eventually(Duration::from_secs(20), || {
            refused_all(&otlp.points()) && otlp.held_traces() > 0
        })
        .await;
        let held = otlp.held_traces();
        println!(
            "after {:?}: refused and held {ready}, {held} export(s) held",
            started.elapsed()
        );
        otlp.hold_traces(None);
        held
    };
    let (created, held) = tokio::join!(shim.client.create(shim.ctx(&[]), &create), release);
    let err = created.unwrap_err();
    assert!(err.to_string().contains("a hostile guest creates nothing"), "{err}");
    assert_eq!(held, 1, "the guest pipeline's one export was held");
    shim.shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(15)).await;

    let root = container_span(&otlp).await;
    let points = final_points(&otlp).await;
    let spans = otlp.spans();
    println!("Container span: {:?}", root.attributes);
    let count = |name: &str| spans.iter().filter(|s| s.name == name).count() as u64;
    assert_eq!(count("lie.bulk"), BOUND, "the queue's worth arrives");
    assert_eq!(count("lie.ok"), 0, "the queue was still full");
    assert_eq!(of_service(&spans, "voidbox-vm"), BOUND);

    let rejected = 1488 + 4;
    assert_eq!(attr(&root, "voidbox.guest.spans.relayed"), BOUND);
    assert_eq!(counter(&points, "voidbox.guest.spans.relayed", None), BOUND);
    assert_eq!(dropped_attr(&root, "host_queue_full"), queue_full);
    assert_eq!(
        counter(&points, "voidbox.spans.dropped", Some("host_queue_full")),
        queue_full
    );
    assert_eq!(attr(&root, "voidbox.guest.spans.rejected"), rejected);
    assert_eq!(counter_all_reasons(&points, "voidbox.guest.rejected"), rejected);
    for reason in ["guest_buffer_full", "export_failed"] {
        assert_eq!(dropped_attr(&root, reason), 0, "{reason}");
        assert_eq!(counter(&points, "voidbox.spans.dropped", Some(reason)), 0, "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_exports_are_counted_by_span_on_the_metric_and_the_container_span() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    otlp.fail_traces("voidbox", 1);
    otlp.fail_traces("voidbox-vm", 1);
    let shim = ShimUnderTest::start_with_env("drops-export", &spec(&["true"]), &borrowed(&env(&otlp))).await;
    shim.create_and_start(&[]).await;
    shim.wait(&[]).await;
    // The span tells what was lost by the time it ends (at Delete): let
    // both pipelines' first exports fail before that. (A Delete faster
    // than the exporter's 500 ms batch delay would otherwise come first.)
    assert!(voidbox_integration::eventually(Duration::from_secs(10), || otlp.refused_requests() == 2).await);
    shim.delete_and_shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(15)).await;

    let root = container_span(&otlp).await;
    let points = final_points(&otlp).await;
    let spans = otlp.spans();
    let (shim_refused, guest_refused) = (otlp.refused_spans("voidbox"), otlp.refused_spans("voidbox-vm"));
    let refused = (shim_refused + guest_refused) as u64;
    println!(
        "refused {} requests: {shim_refused} shim spans, {guest_refused} guest spans; Container span {:?}",
        otlp.refused_requests(),
        root.attributes
    );
    assert_eq!(otlp.refused_requests(), 2);
    assert!(shim_refused > 0 && guest_refused > 0);
    assert_eq!(dropped_attr(&root, "export_failed"), refused, "on the span");
    assert_eq!(
        counter(&points, "voidbox.spans.dropped", Some("export_failed")),
        refused,
        "as a metric"
    );
    // What the guest relayed either arrived or was refused.
    let relayed = attr(&root, "voidbox.guest.spans.relayed");
    assert_eq!(counter(&points, "voidbox.guest.spans.relayed", None), relayed);
    assert_eq!(of_service(&spans, "voidbox-vm") + guest_refused as u64, relayed);
    for reason in REASONS.iter().filter(|r| **r != "export_failed") {
        assert_eq!(dropped_attr(&root, reason), 0, "{reason}");
    }
}
