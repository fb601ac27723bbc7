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
    let pid = shim.shim_processes()[0].split(':').next().unwrap().to_string();
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// `expected`: what the error may say (any one of them).
async fn survives(mode: &str, expected: &[&str]) {
    let cmdline = format!("init=/hostile-init voidbox.hostile={mode}");
    let shim = ShimUnderTest::start_with_env(
        &format!("hostile-{mode}"),
        &spec(&["true"]),
        &[("VOIDBOX_GUEST_CMDLINE", &cmdline)],
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
    survives("silent", &["guest RPC System.Clock: no answer within 10s"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_stdio_streams() {
    survives("flood", &["guest RPC System.Clock: no answer within 10s"]).await;
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
