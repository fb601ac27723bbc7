//! A hostile guest, for real: the test image's `/hostile-init` boots in
//! place of vminitd (`init=/hostile-init`) and attacks the host through
//! everything the guest can reach: garbage TTRPC frames, RPCs never
//! answered, a flood of stdio connections with stream ids the host never
//! gave, and a power-off in the middle of an RPC. (A 4 GiB frame header is
//! never allocated for: the host's bound on each RPC ends the wait.) Each time the shim stays
//! up, reports a clear error, answers State and Delete, stays small, and
//! leaves nothing behind.

use std::time::{Duration, Instant};

use containerd_shim_protos::api::{CreateTaskRequest, DeleteRequest, StateRequest};
use voidbox_integration::shim_client::{spec, ShimUnderTest};

/// The shim's resident memory, KiB.
fn rss_kib(shim: &ShimUnderTest) -> usize {
    let pid = shim.pid().expect("the shim runs");
    voidbox_integration::proc_status_field(pid, "VmRSS:").expect("the shim's VmRSS") as usize
}

/// `expected`: what the error may say (any one of them).
async fn survives(mode: &str, expected: &[&str]) {
    let cmdline = format!("init=/hostile-init voidbox.hostile={mode}");
    let shim = ShimUnderTest::start_with_env(
        &format!("hostile-{mode}"),
        &spec(&["true"]),
        // A guest that never answers costs each test the RPC bound: 2 s
        // rather than the default 10, and the message must name it.
        &[("VOIDBOX_GUEST_CMDLINE", &cmdline), ("VOIDBOX_RPC_TIMEOUT", "2")],
    )
    .await;
    let create = CreateTaskRequest {
        id: shim.id.clone(),
        bundle: shim.bundle.display().to_string(),
        ..Default::default()
    };
    let t = Instant::now();
    let err = shim.client.create(shim.ctx(&[]), &create).await.unwrap_err();
    let took = t.elapsed();
    println!("{mode}: Create failed after {took:?}: {err}");
    assert!(
        expected.iter().any(|e| err.to_string().contains(e)),
        "{mode}: {err}\n{}",
        shim.log()
    );
    assert!(took < Duration::from_secs(45), "{mode}: {took:?}");

    // Still up, still answering.
    let state = StateRequest {
        id: shim.id.clone(),
        ..Default::default()
    };
    let e = shim.client.state(shim.ctx(&[]), &state).await.unwrap_err();
    assert!(e.to_string().contains("NOT_FOUND"), "{mode}: {e}");
    let delete = DeleteRequest {
        id: shim.id.clone(),
        ..Default::default()
    };
    let e = shim.client.delete(shim.ctx(&[]), &delete).await.unwrap_err();
    assert!(e.to_string().contains("NOT_FOUND"), "{mode}: {e}");
    let rss = rss_kib(&shim);
    println!("{mode}: shim RSS {rss} KiB");
    assert!(rss < 64 << 10, "{mode}: the shim grew to {rss} KiB");

    shim.shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames() {
    survives("garbage", &["guest RPC System.Clock"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_never_answered() {
    survives("silent", &["guest RPC System.Clock: no answer within 2s"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_stdio_streams() {
    survives("flood", &["guest RPC System.Clock: no answer within 2s"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_off_in_the_middle_of_an_rpc() {
    // Whichever the shim sees first: the connection's end or the VM's.
    survives(
        "exit",
        &[
            "guest RPC System.Clock: socket err",
            "the VM ended before the guest was ready",
        ],
    )
    .await;
}

/// A guest that boots like vminitd, then lies in well-formed messages: a
/// span batch over the limit, spans with zero ids, timestamps from 1970 and
/// from the far future, 5000 attributes. The host exports what is within
/// its limits, nothing else, and counts each refusal by its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_formed_lies() {
    let otlp = voidbox_integration::otlp::Receiver::start("127.0.0.1:0").await.unwrap();
    let endpoint = otlp.endpoint();
    let shim = ShimUnderTest::start_with_env(
        "hostile-lies",
        &spec(&["true"]),
        &[
            ("VOIDBOX_GUEST_CMDLINE", "init=/hostile-init voidbox.hostile=lies"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
        ],
    )
    .await;
    let create = CreateTaskRequest {
        id: shim.id.clone(),
        bundle: shim.bundle.display().to_string(),
        ..Default::default()
    };
    let err = shim.client.create(shim.ctx(&[]), &create).await.unwrap_err();
    assert!(err.to_string().contains("a hostile guest creates nothing"), "{err}");
    let log = shim.log();
    shim.shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;

    let count = |spans: &[voidbox_integration::otlp::Span], name: &str| spans.iter().filter(|s| s.name == name).count();
    assert!(
        otlp.wait_for(Duration::from_secs(10), |s| count(s, "lie.ok") == 2)
            .await,
        "the guest's honest spans arrive: {:?}\n{log}",
        otlp.spans()
            .iter()
            .map(|s| format!("{}:{}", s.service, s.name))
            .collect::<std::collections::BTreeSet<_>>()
    );
    let spans = otlp.spans();
    assert_eq!(count(&spans, "lie.bulk"), 512, "a batch is cut at the limit");
    for lie in [
        "lie.zero-ids",
        "lie.from-1970",
        "lie.from-the-far-future",
        "lie.attributes",
    ] {
        assert_eq!(count(&spans, lie), 0, "{lie} is not exported");
    }
    let reasons = [
        "batch_too_large",
        "span_malformed_id",
        "timestamp_out_of_window",
        "span_too_many_attributes",
    ];
    let counted = |points: &[voidbox_integration::otlp::metrics::Point]| {
        reasons.iter().all(|r| {
            points.iter().any(|p| {
                p.name == "voidbox.guest.rejected"
                    && p.attributes.get("reason").map(String::as_str) == Some(r)
                    && p.value > 0.0
            })
        })
    };
    assert!(
        otlp.wait_for_points(Duration::from_secs(10), counted).await,
        "each refusal counted: {:?}",
        otlp.points()
            .iter()
            .filter(|p| p.name == "voidbox.guest.rejected")
            .collect::<Vec<_>>()
    );
}

/// The boot phase that failed carries the error on its own span, not only
/// VMBoot and Create: here ClockSync, whose guest never answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phase_that_failed_marks_its_own_span() {
    let otlp = voidbox_integration::otlp::Receiver::start("127.0.0.1:0").await.unwrap();
    let endpoint = otlp.endpoint();
    let shim = ShimUnderTest::start_with_env(
        "hostile-phase",
        &spec(&["true"]),
        &[
            ("VOIDBOX_GUEST_CMDLINE", "init=/hostile-init voidbox.hostile=silent"),
            ("VOIDBOX_RPC_TIMEOUT", "2"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &format!("{endpoint}/v1/traces")),
        ],
    )
    .await;
    let create = CreateTaskRequest {
        id: shim.id.clone(),
        bundle: shim.bundle.display().to_string(),
        ..Default::default()
    };
    assert!(shim.client.create(shim.ctx(&[]), &create).await.is_err());
    shim.shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
    assert!(
        otlp.wait_for(Duration::from_secs(10), |s| s.iter().any(|s| s.name == "ClockSync"))
            .await
    );
    let spans = otlp.spans();
    let of = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span"))
    };
    for failed in ["ClockSync", "VMBoot", "Create"] {
        assert_eq!(of(failed).status_code, 2, "{failed} is an error");
    }
    assert_eq!(
        of("ClockSync").attributes.get("error.kind").map(String::as_str),
        Some("guest_timeout")
    );
    for fine in ["VMSpawn", "WaitForReady"] {
        assert_ne!(of(fine).status_code, 2, "{fine} did not fail");
    }
}
