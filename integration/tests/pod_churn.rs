//! A long-lived pod shim: 50 containers created and deleted in one pod's
//! VM, as containerd drives a pod whose containers come and go (a CronJob's,
//! a crash-looping one's). Each container's root span ends at its Delete,
//! not at the shim's exit, and the shim's memory does not grow with them.

use std::time::Duration;

use containerd_shim_protos::api::*;
use voidbox_integration::otlp::{Receiver, Span};
use voidbox_integration::shim_client::{pod_sandbox_spec, spec, ShimUnderTest};

const CONTAINERS: usize = 50;
/// RSS growth allowed between the 10th and the 50th container: allocator
/// slack, not 40 containers' worth of state.
const RSS_SLACK_KIB: u64 = 4 * 1024;

fn rss_kib(pid: i32) -> u64 {
    voidbox_integration::proc_status_field(pid, "VmRSS:").unwrap_or_else(|| panic!("no VmRSS for the shim ({pid})"))
}

fn ended_members(spans: &[Span]) -> usize {
    spans
        .iter()
        .filter(|s| {
            s.name == "Container" && s.attributes.get("container.kind").map(String::as_str) == Some("container")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_containers_in_one_pod_shim_leave_no_open_span_and_no_memory_behind() {
    let netns = voidbox_integration::fake_cni::FakeCni::new();
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let endpoint = otlp.endpoint();
    let sandbox_id = format!("churn-{}", std::process::id());
    let sandbox = pod_sandbox_spec(
        &["sleep", "600"],
        &sandbox_id,
        "churn",
        &netns.path().display().to_string(),
    );
    let shim = ShimUnderTest::start_with_env("churn", &sandbox, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]).await;
    shim.create_and_start(&[]).await;
    let shim_pid = voidbox_integration::pids_mentioning(std::path::Path::new(&shim.id))
        .into_iter()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.contains("containerd-shim"))
        })
        .expect("the shim's pid");

    let mut member = spec(&["true"]);
    member["annotations"] = serde_json::json!({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": sandbox_id,
    });
    member["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]);
    let bundle = shim.add_bundle("member", &member);
    let mut rss_at_10 = 0;
    for i in 0..CONTAINERS {
        let id = format!("{sandbox_id}-{i}");
        let create = CreateTaskRequest {
            id: id.clone(),
            bundle: bundle.display().to_string(),
            ..Default::default()
        };
        shim.client.create(shim.ctx(&[]), &create).await.expect("Create");
        let start = StartRequest {
            id: id.clone(),
            ..Default::default()
        };
        shim.client.start(shim.ctx(&[]), &start).await.expect("Start");
        let wait = WaitRequest {
            id: id.clone(),
            ..Default::default()
        };
        assert_eq!(shim.client.wait(shim.ctx(&[]), &wait).await.unwrap().exit_status, 0);
        let delete = DeleteRequest {
            id: id.clone(),
            ..Default::default()
        };
        shim.client.delete(shim.ctx(&[]), &delete).await.expect("Delete");
        // containerd shuts a container's shim connection down after Delete;
        // the pod's shim stays for the sandbox.
        let shutdown = ShutdownRequest {
            id: id.clone(),
            ..Default::default()
        };
        shim.client.shutdown(shim.ctx(&[]), &shutdown).await.expect("Shutdown");
        if i + 1 == 10 {
            rss_at_10 = rss_kib(shim_pid);
        }
    }
    let rss_at_50 = rss_kib(shim_pid);

    // Every container's root span ended at its Delete: all have been
    // exported while the shim, and its sandbox, still run.
    assert!(
        otlp.wait_for(Duration::from_secs(20), |s| ended_members(s) == CONTAINERS)
            .await,
        "{} of {CONTAINERS} containers' root spans ended before the shim exits",
        ended_members(&otlp.spans())
    );
    println!("shim RSS: {rss_at_10} KiB after 10 containers, {rss_at_50} KiB after {CONTAINERS}");
    assert!(
        rss_at_50 <= rss_at_10 + RSS_SLACK_KIB,
        "the shim grew from {rss_at_10} KiB to {rss_at_50} KiB over {} containers",
        CONTAINERS - 10
    );

    shim.kill_and_remove().await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
}
