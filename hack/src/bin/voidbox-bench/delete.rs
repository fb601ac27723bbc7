//! Stop: the Delete RPC of a container whose process has exited, as
//! containerd sends it (an overlay rootfs, which Delete unmounts), timed at
//! the client, and its phases from the shim's own spans (tracing on, to a
//! local receiver).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use containerd_shim_protos::api::DeleteRequest;
use voidbox_hack::stats::{ms, Samples};
use voidbox_integration::otlp::Receiver;
use voidbox_integration::shim_client::{spec, ShimUnderTest};

const GOAL_MS: f64 = 50.0;

/// One container: create, start, wait for `true` to exit, then Delete, timed.
async fn once(i: usize, endpoint: &str) -> Result<Duration, String> {
    let shim = ShimUnderTest::start_with_env(
        &format!("bench-delete-{i}"),
        &spec(&["true"]),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)],
    )
    .await;
    // The rootfs as containerd mounts it: Delete unmounts it, as it does
    // for `ctr run --rm`.
    shim.create_overlay_and_start().await;
    let status = shim.wait(&[]).await.exit_status;
    if status != 0 {
        return Err(format!("the container exited with {status}"));
    }
    let delete = DeleteRequest {
        id: shim.id.clone(),
        ..Default::default()
    };
    let t = Instant::now();
    shim.client
        .delete(shim.ctx(&[]), &delete)
        .await
        .map_err(|e| format!("Delete: {e}"))?;
    let took = t.elapsed();
    shim.shutdown(&[]).await;
    if !voidbox_integration::eventually(Duration::from_secs(15), || shim.shim_processes().is_empty()).await {
        return Err("the shim did not exit".into());
    }
    Ok(took)
}

pub async fn run(n: usize) -> Result<(), String> {
    let receiver = Receiver::start("127.0.0.1:0")
        .await
        .map_err(|e| format!("OTLP receiver: {e}"))?;
    println!("delete: {n} containers (`true`, exited), the Delete RPC timed at the client; traced");
    let mut delete = Samples::default();
    // One unmeasured run warms the page cache.
    once(n, &receiver.endpoint()).await?;
    for i in 0..n {
        delete.push(once(i, &receiver.endpoint()).await?);
    }
    // The phases: children of each Delete span, by name.
    let spans = receiver.spans();
    let mut phases: BTreeMap<String, Samples> = BTreeMap::new();
    for d in spans.iter().filter(|s| s.name == "Delete" && s.service == "voidbox") {
        for child in spans.iter().filter(|s| s.parent_span_id == d.span_id) {
            let took = |s: &voidbox_integration::otlp::Span| Duration::from_nanos(s.end_ns.saturating_sub(s.start_ns));
            phases.entry(child.name.clone()).or_default().push(took(child));
            for grandchild in spans.iter().filter(|s| s.parent_span_id == child.span_id) {
                let name = format!("{} > {}", child.name, grandchild.name);
                phases.entry(name).or_default().push(took(grandchild));
            }
        }
    }
    println!("  Delete                         {}", delete.summary());
    for (name, samples) in &phases {
        println!("    {name:<28} {}", samples.summary());
    }
    let median = ms(delete.median());
    println!(
        "  Delete median: {median:.1} ms (goal ≤ {GOAL_MS} ms: {})",
        if median <= GOAL_MS { "met" } else { "NOT met" }
    );
    Ok(())
}
