//! OTLP over gRPC: a container's trace (host and guest spans), metrics and
//! logs reach a gRPC collector, signals can be split between gRPC and
//! http/protobuf, and a protocol the shim does not speak is refused at start.

use std::time::Duration;

use voidbox_integration::otlp::{Point, Receiver, Transport};
use voidbox_integration::shim_client::{spec, ShimUnderTest};
use voidbox_integration::trace_check::*;
use voidbox_integration::trace_tree::Tree;

const CLIENT_TRACE: &str = "5b8efff798038103d269b633813fc60c";
const CLIENT_SPAN: &str = "eee19b7ec3c1b174";

/// One container run, every call under the client's span; the shim exits
/// (flushing its exports) and leaves nothing behind.
async fn run_traced(shim: &ShimUnderTest) {
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let md = [("traceparent", traceparent.as_str())];
    shim.create_and_start(&md).await;
    assert_eq!(shim.wait(&md).await.exit_status, 0);
    shim.delete_and_shutdown(&md).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
}

fn has_point(points: &[Point], name: &str) -> bool {
    points.iter().any(|p| p.name == name)
}

fn all_via(otlp: &Receiver, signal: &str, via: Transport) {
    let arrivals = otlp.arrivals(signal);
    assert!(
        !arrivals.is_empty() && arrivals.iter().all(|t| *t == via),
        "{signal} should all arrive over {via:?}: {arrivals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_carries_a_containers_trace_metrics_and_logs() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let grpc = otlp.grpc_endpoint();
    let shim = ShimUnderTest::start_with_env(
        "grpc",
        // Long enough for the guest to be sampled.
        &spec(&["sh", "-c", "echo hello; sleep 2"]),
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &grpc),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
            ("VOIDBOX_TELEMETRY_INTERVAL", "250"),
        ],
    )
    .await;
    run_traced(&shim).await;
    assert!(
        otlp.wait_for(Duration::from_secs(5), |s| s.iter().any(|s| s.name == "Shutdown"))
            .await,
        "spans arrive"
    );
    let spans = otlp.spans();
    let tree = Tree::new(&spans).waterfall(40);
    one_container_trace(&spans, CLIENT_TRACE, CLIENT_SPAN).unwrap_or_else(|e| panic!("{e}\n{tree}"));

    let points = otlp.points();
    let boot_total = points
        .iter()
        .any(|p| p.name == "voidbox.vm.boot.duration" && p.attributes.get("phase").is_some_and(|v| v == "total"));
    assert!(boot_total, "the shim's boot metric");
    let guest = points
        .iter()
        .find(|p| p.name == "voidbox.guest.memory.used")
        .expect("the guest's samples");
    assert_eq!(guest.attributes.get("container.id"), Some(&shim.id));

    let logs = otlp.logs();
    let created = logs
        .iter()
        .find(|r| r.body == "container created")
        .unwrap_or_else(|| panic!("no 'container created' record in {logs:#?}"));
    assert_eq!(created.trace_id, CLIENT_TRACE);
    assert!(
        logs.iter().any(|r| r.body.starts_with("[vm:")),
        "the guest console's records"
    );

    for signal in ["traces", "metrics", "logs"] {
        all_via(&otlp, signal, Transport::Grpc);
    }
    let log = shim.log();
    assert!(log.contains(&format!("traces={grpc} (grpc)")), "log:\n{log}");
}

/// The general protocol is gRPC; metrics alone say http/protobuf, with an
/// endpoint of their own, and win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_signal_protocols_split_grpc_and_http() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let grpc = otlp.grpc_endpoint();
    let metrics = format!("{}/v1/metrics", otlp.endpoint());
    let shim = ShimUnderTest::start_with_env(
        "grpcmix",
        &spec(&["true"]),
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &grpc),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &metrics),
        ],
    )
    .await;
    run_traced(&shim).await;
    assert!(
        otlp.wait_for(Duration::from_secs(5), |s| s.iter().any(|s| s.name == "Shutdown"))
            .await,
        "spans arrive"
    );
    let spans = otlp.spans();
    let tree = Tree::new(&spans).waterfall(40);
    one_container_trace(&spans, CLIENT_TRACE, CLIENT_SPAN).unwrap_or_else(|e| panic!("{e}\n{tree}"));
    assert!(has_point(&otlp.points(), "voidbox.vm.boot.duration"));
    assert!(otlp.logs().iter().any(|r| r.body == "container created"));
    all_via(&otlp, "traces", Transport::Grpc);
    all_via(&otlp, "metrics", Transport::Http);
    all_via(&otlp, "logs", Transport::Grpc);
}

/// No VM needed: a shim that is only shut down still exports its Shutdown
/// span, its RPC metric and its log lines, all over gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shim_with_no_container_exports_over_grpc() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let grpc = otlp.grpc_endpoint();
    let shim = ShimUnderTest::start_with_env(
        "grpcidle",
        &spec(&["true"]),
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &grpc),
        ],
    )
    .await;
    shim.shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
    assert!(
        otlp.wait_for(Duration::from_secs(5), |s| s.iter().any(|s| s.name == "Shutdown"))
            .await,
        "the Shutdown span arrives; log:\n{}",
        shim.log()
    );
    assert!(has_point(&otlp.points(), "voidbox.rpc.duration"));
    assert!(otlp.logs().iter().any(|r| r.body.contains("shim serving")));
    for signal in ["traces", "metrics", "logs"] {
        all_via(&otlp, signal, Transport::Grpc);
    }
}

/// No VM needed: `start` refuses before spawning anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_protocol_is_refused_at_start() {
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "foo"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
    ] {
        let err = ShimUnderTest::start_refused(
            "badproto",
            &spec(&["true"]),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"), (var, value)],
        )
        .await;
        assert_eq!(
            err,
            format!(
                "containerd-shim-voidbox-v2: {var}={value:?} is not a supported OTLP protocol: use grpc or http/protobuf"
            )
        );
    }
}
