//! Guest telemetry, shim metrics and trace-correlated logs, exported over
//! OTLP/HTTP to an in-test receiver that decodes them with
//! opentelemetry-proto.

use std::time::Duration;

use containerd_shim_protos::api::*;
use voidbox_integration::otlp::{Point, Receiver};
use voidbox_integration::shim_client::{spec, ShimUnderTest};

const MIB: f64 = 1024.0 * 1024.0;
const CLIENT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

/// Metrics (and, with `more`, other signals) to `otlp`, exported every
/// 300 ms, the guest sampled every 250 ms.
async fn shim(name: &str, args: &[&str], otlp: &Receiver, more: &[(&str, &str)]) -> ShimUnderTest {
    let metrics = format!("{}/v1/metrics", otlp.endpoint());
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", metrics.as_str()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
        ("VOIDBOX_TELEMETRY_INTERVAL", "250"),
    ];
    env.extend_from_slice(more);
    ShimUnderTest::start_with_env(name, &spec(args), &env).await
}

/// Kill, Wait, Delete, Shutdown; the shim exits (flushing its exports) and
/// leaves nothing behind.
async fn finish(shim: &ShimUnderTest, metadata: &[(&str, &str)]) {
    // The container may have exited already.
    let kill = KillRequest {
        id: shim.id.clone(),
        signal: 9,
        all: true,
        ..Default::default()
    };
    let _ = shim.client.kill(shim.ctx(metadata), &kill).await;
    shim.wait(metadata).await;
    shim.delete_and_shutdown(metadata).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
}

fn named<'a>(points: &'a [Point], name: &str) -> Vec<&'a Point> {
    points.iter().filter(|p| p.name == name).collect()
}

fn of_container<'a>(points: &'a [Point], name: &str, id: &str) -> Vec<&'a Point> {
    named(points, name)
        .into_iter()
        .filter(|p| p.attributes.get("container.id").map(String::as_str) == Some(id))
        .collect()
}

/// How many telemetry streams the guest says it sampled for (its console is
/// in the shim's log); `None` if the guest's console never reached the log.
fn telemetry_streams(log: &str) -> Option<usize> {
    log.contains("serving TTRPC to host port").then(|| {
        log.lines()
            .filter(|l| l.contains("telemetry stream sampling ("))
            .count()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_allocation_raises_the_container_memory_metric_by_as_much() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    // dd fills a 200 MiB buffer, then blocks writing it to a pipe nobody
    // reads: the memory stays resident.
    let shim = shim(
        "memory",
        &["sh", "-c", "sleep 3; dd if=/dev/zero bs=200M count=1 | sleep 300"],
        &otlp,
        &[],
    )
    .await;
    shim.create_and_start(&[]).await;
    let id = shim.id.clone();
    // Two samples past 200 MiB: the first may catch dd still filling its
    // buffer (about 40 MiB a sample here), the next finds it full.
    let risen = otlp
        .wait_for_points(Duration::from_secs(30), |p| {
            of_container(p, "voidbox.container.memory.usage", &id)
                .iter()
                .filter(|p| p.value > 200.0 * MIB)
                .count()
                >= 2
        })
        .await;
    let points = otlp.points();
    let memory: Vec<f64> = of_container(&points, "voidbox.container.memory.usage", &id)
        .iter()
        .map(|p| p.value / MIB)
        .collect();
    assert!(risen, "container memory (MiB) not past 200 in two samples: {memory:?}");
    let before = memory[0];
    let peak = memory.iter().cloned().fold(0.0, f64::max);
    assert!(before < 32.0, "before the allocation: {before:.1} MiB ({memory:?})");
    assert!(
        (200.0..240.0).contains(&(peak - before)),
        "a 200 MiB allocation raised memory by {:.1} MiB ({memory:?})",
        peak - before
    );
    println!("container memory, MiB: {before:.1} before, {peak:.1} at the peak");
    // Every guest metric carries the container and the VM.
    for name in [
        "voidbox.guest.memory.used",
        "voidbox.guest.memory.available",
        "voidbox.guest.pressure",
        "voidbox.guest.cpu.utilization",
        "voidbox.container.memory.usage",
    ] {
        let p = named(&points, name);
        assert!(!p.is_empty(), "no {name}");
        assert!(
            p.iter().all(|p| p.attributes.get("container.id") == Some(&id)
                && p.attributes.get("voidbox.vm.id").is_some_and(|v| v.len() == 16)),
            "{name} attributes: {:?}",
            p[0].attributes
        );
    }
    let used: Vec<f64> = named(&points, "voidbox.guest.memory.used")
        .iter()
        .map(|p| p.value / MIB)
        .collect();
    assert!(
        used.iter().cloned().fold(0.0, f64::max) > 200.0,
        "guest memory used follows (MiB): {used:?}"
    );
    let resources: Vec<String> = named(&points, "voidbox.guest.pressure")
        .iter()
        .map(|p| format!("{}/{}", p.attributes["resource"], p.attributes["kind"]))
        .collect();
    for r in ["cpu/some", "memory/some", "memory/full", "io/some", "io/full"] {
        assert!(resources.iter().any(|x| x == r), "PSI {r} missing: {resources:?}");
    }
    finish(&shim, &[]).await;
    assert_eq!(telemetry_streams(&shim.log()), Some(1), "log:\n{}", shim.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_loop_raises_cpu_utilization() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let shim = shim("busy", &["sh", "-c", "sleep 4; while :; do :; done"], &otlp, &[]).await;
    shim.create_and_start(&[]).await;
    let id = shim.id.clone();
    let busy = otlp
        .wait_for_points(Duration::from_secs(30), |p| {
            let cpu = of_container(p, "voidbox.container.cpu.time", &id);
            named(p, "voidbox.guest.cpu.utilization").iter().any(|p| p.value > 0.9)
                && cpu.last().is_some_and(|p| p.value > 1.5)
        })
        .await;
    let points = otlp.points();
    let utilization: Vec<String> = named(&points, "voidbox.guest.cpu.utilization")
        .iter()
        .map(|p| format!("{:.2}", p.value))
        .collect();
    let cpu_time: Vec<String> = of_container(&points, "voidbox.container.cpu.time", &id)
        .iter()
        .map(|p| format!("{:.2}", p.value))
        .collect();
    assert!(busy, "utilization {utilization:?}, container CPU seconds {cpu_time:?}");
    println!("guest CPU utilization {utilization:?}; container CPU seconds {cpu_time:?}");
    // While the container slept, the guest was mostly idle.
    assert!(
        named(&points, "voidbox.guest.cpu.utilization")
            .iter()
            .any(|p| p.value < 0.5),
        "never idle before the loop: {utilization:?}"
    );
    finish(&shim, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shim_measures_boot_start_rpcs_clock_spans_and_live_vms() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let traces = format!("{}/v1/traces", otlp.endpoint());
    let shim = shim(
        "shimmetrics",
        &["sleep", "300"],
        &otlp,
        &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &traces)],
    )
    .await;
    shim.create_and_start(&[]).await;
    let live = otlp
        .wait_for_points(Duration::from_secs(10), |p| {
            named(p, "voidbox.vms.live").iter().any(|p| p.value == 1.0)
        })
        .await;
    assert!(live, "one live VM while the container runs");
    finish(&shim, &[]).await;

    let points = otlp.points();
    let last = |name: &str| named(&points, name).last().map(|p| (*p).clone());
    let phases: Vec<String> = named(&points, "voidbox.vm.boot.duration")
        .iter()
        .map(|p| p.attributes.get("phase").cloned().unwrap_or_default())
        .collect();
    for phase in ["spawn", "ready", "clock_sync", "total"] {
        assert!(
            phases.iter().any(|p| p == phase),
            "boot phase {phase} missing: {phases:?}"
        );
    }
    let total = named(&points, "voidbox.vm.boot.duration")
        .into_iter()
        .find(|p| p.attributes["phase"] == "total")
        .unwrap()
        .clone();
    assert_eq!((total.kind, total.unit.as_str(), total.count), ("histogram", "s", 1));
    assert!(total.value > 0.1 && total.value < 30.0, "boot took {} s", total.value);
    assert_eq!(
        total.attributes.get("vm.backend").map(String::as_str),
        Some(voidbox_integration::test_backend().name())
    );

    let start = last("voidbox.container.start.duration").expect("container start latency");
    assert_eq!((start.count, start.unit.as_str()), (1, "s"));
    assert!(
        start.value >= total.value,
        "start {} s includes boot {} s",
        start.value,
        total.value
    );

    let methods: Vec<String> = named(&points, "voidbox.rpc.duration")
        .iter()
        .map(|p| p.attributes.get("rpc.method").cloned().unwrap_or_default())
        .collect();
    for m in ["Create", "Start", "Kill", "Wait", "Delete"] {
        assert!(methods.iter().any(|x| x == m), "RPC {m} not timed: {methods:?}");
    }
    let relayed = last("voidbox.guest.spans.relayed").expect("relayed spans counted");
    assert_eq!((relayed.kind, relayed.unit.as_str()), ("sum", "{span}"));
    assert!(relayed.value >= 10.0, "relayed {}", relayed.value);
    let offset = last("voidbox.clock.offset").expect("clock offset");
    let uncertainty = last("voidbox.clock.uncertainty").expect("clock uncertainty");
    assert_eq!((offset.unit.as_str(), uncertainty.unit.as_str()), ("s", "s"));
    assert!(offset.value.abs() < 0.05, "offset after sync {} s", offset.value);
    assert!(
        uncertainty.value > 0.0 && uncertainty.value < 0.05,
        "uncertainty {} s",
        uncertainty.value
    );
    let live = last("voidbox.vms.live").unwrap();
    assert_eq!(
        (live.value, live.unit.as_str()),
        (0.0, "{vm}"),
        "no live VM after Delete"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_the_trace_of_create_and_the_guest_console() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let endpoint = otlp.endpoint();
    let shim = ShimUnderTest::start_with_env(
        "logs",
        &spec(&["sh", "-c", "echo hello; sleep 300"]),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    )
    .await;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let md = [("traceparent", traceparent.as_str())];
    shim.create_and_start(&md).await;
    finish(&shim, &md).await;
    assert!(
        otlp.wait_for(Duration::from_secs(5), |s| s.iter().any(|s| s.name == "Create"))
            .await,
        "spans arrive"
    );
    let create = otlp.spans().into_iter().find(|s| s.name == "Create").unwrap();
    assert_eq!(create.trace_id, CLIENT_TRACE);
    let logs = otlp.logs();
    let created = logs
        .iter()
        .find(|r| r.body == "container created")
        .unwrap_or_else(|| panic!("no 'container created' record in {logs:#?}"));
    assert_eq!(
        (created.trace_id.as_str(), created.span_id.as_str()),
        (CLIENT_TRACE, create.span_id.as_str()),
        "the record carries the Create span"
    );
    assert_eq!(created.resource.get("container.id"), Some(&shim.id));
    let vm_id = created.resource["voidbox.vm.id"].clone();
    // The guest's console, vminitd's lines among it, prefixed with the VM.
    let console: Vec<&str> = logs
        .iter()
        .filter(|r| r.body.starts_with(&format!("[vm:{vm_id}] ")))
        .map(|r| r.body.as_str())
        .collect();
    assert!(
        console.iter().any(|l| l.contains("vminitd")),
        "guest console records: {console:#?}"
    );

    // The shim's own log: structured, with the VM and the trace.
    let log = shim.log();
    let line = log
        .lines()
        .find(|l| l.contains("container created"))
        .unwrap_or_else(|| panic!("log:\n{log}"));
    assert!(line.contains(&format!("vm={vm_id}")), "{line}");
    assert!(line.contains(&format!("trace_id={CLIENT_TRACE}")), "{line}");
    assert!(line.contains(&format!("span_id={}", create.span_id)), "{line}");
    assert!(
        log.lines().any(|l| l.contains(&format!("[vm:{vm_id}] "))),
        "console lines in the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_endpoint_the_guest_never_samples() {
    let shim = ShimUnderTest::start("quiet", &spec(&["true"])).await;
    shim.create_and_start(&[]).await;
    finish(&shim, &[]).await;
    let log = shim.log();
    assert!(log.contains("metrics=off"), "log:\n{log}");
    assert_eq!(telemetry_streams(&log), Some(0), "log:\n{log}");
}
