//! Tracing through real containerds driven by ctr: 1.6, which propagates
//! nothing, so each container is one trace under the shim's Container span;
//! and 2.1 with its own tracing on, which propagates W3C context to the
//! shim, so each containerd request is one trace from containerd through
//! the shim into the guest. Decoded from OTLP with opentelemetry-proto.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use voidbox_integration::clients::ContainerdVersion;
use voidbox_integration::containerd::Containerd;
use voidbox_integration::otlp::{Receiver, Span};
use voidbox_integration::trace_check::*;
use voidbox_integration::trace_tree::Tree;

/// Waits for the shim to exit: its span pipelines (its own, the guest's)
/// flush side by side as it leaves, so the Container span can arrive before
/// the guest's last batch; once the shim is gone, every export has been
/// answered.
async fn shim_flushed(ctd: &Containerd) {
    assert!(
        voidbox_integration::eventually(Duration::from_secs(15), || ctd.shim_processes().is_empty()).await,
        "the shim exits: {:?}",
        ctd.shim_processes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctr_run_on_containerd_1_6_gives_one_trace_rooted_at_the_shim() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let endpoint = otlp.endpoint();
    let ctd = tokio::task::spawn_blocking(move || {
        Containerd::start_with_env("trace16", &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)])
    })
    .await
    .unwrap();
    let mut cmd = ctd.run_command("traced1", &[], &["echo", "hi"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        otlp.wait_for(Duration::from_secs(15), |s| s.iter().any(|s| s.name == "Container"))
            .await,
        "the root span arrives when the shim exits"
    );
    shim_flushed(&ctd).await;
    let spans = otlp.spans();
    let tree = Tree::new(&spans).waterfall(40);
    one_trace(&spans).unwrap_or_else(|e| panic!("{e}\n{tree}"));
    let roots = roots(&spans);
    assert_eq!(roots.len(), 1, "one root: {roots:?}\n{tree}");
    assert_eq!(roots[0].0, "Container", "the root is the shim's");
    assert_eq!(roots[0].1, "", "with no parent: containerd 1.6 propagates nothing");
    for rpc in ["Create", "Start", "Wait", "Delete", "Shutdown"] {
        assert!(
            spans.iter().any(|s| s.name == rpc && s.service == SHIM),
            "no {rpc}:\n{tree}"
        );
    }
    assert_eq!(
        missing(
            &spans,
            GUEST,
            &["guest.kernel", "task.create", "crun.create", "crun.start"]
        ),
        Vec::<String>::new()
    );
    guest_parents_exist(&spans).unwrap();
    guest_inside_host_parents(&spans, uncertainty(&spans).unwrap())
        .unwrap_or_else(|e| panic!("clock test:\n{e}\n{tree}"));
    drop(ctd);
}

/// containerd 2.1 traces its own requests and hands the shim their context:
/// the shim's spans are children of containerd's, the guest's of the
/// shim's, nothing is orphaned, and the shim keeps its own service name
/// though it inherits containerd's OTEL_SERVICE_NAME.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctr_run_on_containerd_2_1_gives_one_trace_from_containerd_into_the_guest() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let endpoint = otlp.endpoint();
    let ctd = tokio::task::spawn_blocking(move || {
        Containerd::start_on(
            ContainerdVersion::V2_1,
            "trace21",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_SERVICE_NAME", "containerd"),
                ("OTEL_TRACES_SAMPLER", "always_on"),
                // containerd does not flush its batch at exit ("failed to
                // close plugin ... context canceled"): export it soon instead.
                ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ],
        )
    })
    .await
    .unwrap();
    let mut cmd = ctd.run_command("traced2", &[], &["echo", "hi"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert!(
        otlp.wait_for(Duration::from_secs(15), |s| s.iter().any(|s| s.name == "Container"))
            .await,
        "the shim's spans arrive when it exits"
    );
    shim_flushed(&ctd).await;
    // Every span's parent arrives: containerd's come in its own batches.
    otlp.wait_for(Duration::from_secs(15), parented).await;
    tokio::task::spawn_blocking(move || drop(ctd)).await.unwrap();
    let spans = otlp.spans();
    let tree = Tree::new(&spans).waterfall(40);
    let services: HashSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    assert!(
        services.contains(CONTAINERD) && services.contains(SHIM) && services.contains(GUEST),
        "containerd's, the shim's and the guest's spans: {services:?}\n{tree}"
    );
    assert!(
        spans
            .iter()
            .all(|s| s.service != "containerd"
                || s.resource.get("service.name").map(String::as_str) == Some("containerd")),
        "containerd's spans are its own"
    );

    // No orphan, and the shim's RPC spans are children of containerd's.
    under_containerd(&spans).unwrap_or_else(|e| panic!("{e}\n{tree}"));
    assert_eq!(
        missing(&spans, SHIM, &["Create", "Start", "Wait", "Delete"]),
        Vec::<String>::new(),
        "{tree}"
    );
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    // containerd 2.1 speaks task API v3 to the shim.
    assert!(
        spans
            .iter()
            .any(|s| s.service == CONTAINERD && s.name == "containerd.task.v3.Task/Create"),
        "containerd's client span of the shim's Create is task API v3\n{tree}"
    );
    // The Create request's trace runs from containerd through the shim
    // into the guest, with the container's lifetime span in it.
    let create = create_of(&spans, "traced2").expect("the shim's Create");
    let trace: Vec<Span> = spans
        .iter()
        .filter(|s| s.trace_id == create.trace_id)
        .cloned()
        .collect();
    let root = roots(&trace);
    assert_eq!(root.len(), 1, "one root: {root:?}\n{tree}");
    assert!(
        trace
            .iter()
            .any(|s| s.service == "containerd" && s.parent_span_id.is_empty()),
        "the trace starts in containerd\n{tree}"
    );
    assert_eq!(
        missing(&trace, GUEST, &["guest.kernel", "task.create", "crun.create"]),
        Vec::<String>::new(),
        "the guest's create is in containerd's trace\n{tree}"
    );
    let lifetime = trace
        .iter()
        .find(|s| s.service == SHIM && s.name == "Container")
        .unwrap_or_else(|| panic!("the Container span is in the Create request's trace\n{tree}"));
    assert_eq!(by_id[lifetime.parent_span_id.as_str()].service, "containerd");
    guest_inside_host_parents(&spans, uncertainty(&spans).unwrap())
        .unwrap_or_else(|e| panic!("clock test:\n{e}\n{tree}"));
    println!("{tree}");
    // make test-tracing keeps this run for make jaeger-gantt (TRACE_ID picks
    // a request's trace; this one is the Create request's).
    if let Ok(out) = std::env::var("VOIDBOX_TRACE_OUT") {
        let out = std::path::Path::new(&out).with_file_name("voidbox-trace-containerd.json");
        std::fs::write(&out, voidbox_integration::otlp::to_json_lines(&otlp.requests())).unwrap();
        println!("Create request's trace: {} in {}", create.trace_id, out.display());
    }
}
