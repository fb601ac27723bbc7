//! One container run gives one trace, across the VM boundary and on the host
//! clock, exported over OTLP/HTTP to an in-test receiver that decodes it with
//! opentelemetry-proto.

use std::time::Duration;

use containerd_shim_protos::api::*;
use voidbox_integration::otlp::Receiver;
use voidbox_integration::shim_client::{pod_sandbox_spec, spec, ShimUnderTest};
use voidbox_integration::trace_check::*;
use voidbox_integration::trace_tree::Tree;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The span `name` has `key` = `want`.
fn assert_attribute(spans: &[voidbox_integration::otlp::Span], name: &str, key: &str, want: &str) {
    let span = spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} span"));
    assert_eq!(
        span.attributes.get(key).map(String::as_str),
        Some(want),
        "{name}: {:?}",
        span.attributes
    );
}

/// Runs one container through the v3 API with `metadata` on every call.
async fn run_container(shim: &ShimUnderTest, metadata: &[(&str, &str)]) {
    shim.create_and_start(metadata).await;
    assert_eq!(shim.wait(metadata).await.exit_status, 0);
    shim.delete_and_shutdown(metadata).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v3_client_with_traceparent_gets_one_trace_across_the_vm() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let endpoint = otlp.endpoint();
    let shim = ShimUnderTest::start_with_env(
        "trace",
        &spec(&["sh", "-c", "echo traced"]),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    )
    .await;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    run_container(&shim, &[("traceparent", &traceparent), ("baggage", "tenant=tests")]).await;
    // The shim flushes when it exits.
    assert!(voidbox_integration::eventually(Duration::from_secs(10), || shim.shim_processes().is_empty()).await);
    assert!(
        otlp.wait_for(Duration::from_secs(5), |s| s.iter().any(|s| s.name == "Shutdown"))
            .await,
        "spans arrive"
    );
    let spans = otlp.spans();
    let tree = Tree::new(&spans).waterfall(40);

    one_container_trace(&spans, CLIENT_TRACE, CLIENT_SPAN).unwrap_or_else(|e| panic!("{e}\n{tree}"));

    // Both services, with the resource attributes.
    for service in [SHIM, GUEST] {
        let s = spans
            .iter()
            .find(|s| s.service == service)
            .unwrap_or_else(|| panic!("no {service} spans"));
        assert_eq!(s.resource.get("container.id"), Some(&shim.id));
        assert_eq!(s.resource.get("voidbox.namespace").map(String::as_str), Some("v3test"));
        assert!(s.resource.contains_key("voidbox.vm.id"));
    }
    let boot = spans.iter().find(|s| s.name == "VMBoot").unwrap();
    for attr in [
        "vm.backend",
        "vm.vcpus",
        "vm.memory_mib",
        "vm.kernel",
        "vm.image",
        "clock.offset_ns",
    ] {
        assert!(
            boot.attributes.contains_key(attr),
            "VMBoot lacks {attr}: {:?}",
            boot.attributes
        );
    }
    // The guest marked its last batch, so teardown did not wait for the
    // stream's end, which can trail behind the guest's power-off.
    assert_attribute(&spans, "LastSpans", "relay.end", "last_batch");
    let crun = spans.iter().find(|s| s.name == "crun.create").unwrap();
    assert!(
        crun.attributes.get("crun.args").is_some_and(|a| a.contains("create")),
        "guest attributes survive: {:?}",
        crun.attributes
    );
    // A spec without poststart hooks starts through crun's exec FIFO, with
    // no crun process of its own.
    assert_attribute(&spans, "crun.start", "crun.exec_fifo", "true");
    println!("{tree}");
    // make test-tracing keeps this run's trace for make jaeger-gantt.
    if let Ok(out) = std::env::var("VOIDBOX_TRACE_OUT") {
        std::fs::write(&out, voidbox_integration::otlp::to_json_lines(&otlp.requests())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_marks_its_span() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let endpoint = otlp.endpoint();
    let shim = ShimUnderTest::start_with_env(
        "tracefail",
        &spec(&["true"]),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    )
    .await;
    std::fs::write(shim.bundle.join("config.json"), b"{").unwrap();
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let create = CreateTaskRequest {
        id: shim.id.clone(),
        bundle: shim.bundle.display().to_string(),
        ..Default::default()
    };
    assert!(shim
        .client
        .create(shim.ctx(&[("traceparent", &traceparent)]), &create)
        .await
        .is_err());
    let _ = shim
        .client
        .shutdown(shim.ctx(&[("traceparent", &traceparent)]), &ShutdownRequest::default())
        .await;
    assert!(
        otlp.wait_for(Duration::from_secs(10), |s| s.iter().any(|s| s.name == "Create"))
            .await
    );
    let spans = otlp.spans();
    for name in ["Create", "BundleLoad"] {
        let s = spans.iter().find(|s| s.name == name).unwrap();
        assert_eq!(s.status_code, 2, "{name} is an error");
        assert_eq!(
            s.attributes.get("error.kind").map(String::as_str),
            Some("invalid_argument"),
            "{name}"
        );
    }
}

/// A pod as containerd 2.x drives it: the sandbox, then a container that
/// joins its VM, every call carrying the client's context. One trace under
/// the client's span; the VM boot belongs to the sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_containers_share_the_client_trace_and_the_vm_boot_is_the_sandboxs() {
    let netns = voidbox_integration::fake_cni::FakeCni::new();
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let endpoint = otlp.endpoint();
    let sandbox_id = format!("podtrace-{}", std::process::id());
    let sandbox = pod_sandbox_spec(
        &["sleep", "300"],
        &sandbox_id,
        "traced-pod",
        &netns.path().display().to_string(),
    );
    let shim = ShimUnderTest::start_with_env("podtrace", &sandbox, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]).await;
    assert_eq!(shim.id, sandbox_id);
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let md = [("traceparent", traceparent.as_str())];
    shim.create_and_start(&md).await;
    let pause_pid = shim
        .client
        .state(
            shim.ctx(&md),
            &StateRequest {
                id: shim.id.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .pid;

    let member_id = format!("{sandbox_id}-app");
    let mut member = spec(&["sh", "-c", "cat /sys/class/net/eth0/address"]);
    member["annotations"] = serde_json::json!({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": sandbox_id,
    });
    member["linux"]["namespaces"] = serde_json::json!([
        {"type": "pid"}, {"type": "mount"},
        {"type": "network", "path": format!("/proc/{pause_pid}/ns/net")},
        {"type": "ipc", "path": format!("/proc/{pause_pid}/ns/ipc")},
        {"type": "uts", "path": format!("/proc/{pause_pid}/ns/uts")},
    ]);
    let bundle = shim.add_bundle("app", &member);
    let (stdout, out) = shim.fifo("app-stdout");
    let create = CreateTaskRequest {
        id: member_id.clone(),
        bundle: bundle.display().to_string(),
        stdout,
        ..Default::default()
    };
    shim.client
        .create(shim.ctx(&md), &create)
        .await
        .expect("Create the pod's container");
    let id = |id: &str| StartRequest {
        id: id.into(),
        ..Default::default()
    };
    shim.client.start(shim.ctx(&md), &id(&member_id)).await.expect("Start");
    let wait = WaitRequest {
        id: member_id.clone(),
        ..Default::default()
    };
    assert_eq!(shim.client.wait(shim.ctx(&md), &wait).await.unwrap().exit_status, 0);
    let delete = DeleteRequest {
        id: member_id.clone(),
        ..Default::default()
    };
    shim.client
        .delete(shim.ctx(&md), &delete)
        .await
        .expect("Delete the pod's container");
    // The container saw the pod's interface: the VM's, with the veth's MAC.
    let mut mac = String::new();
    use std::io::Read;
    let mut out = out;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !mac.contains('\n') && std::time::Instant::now() < deadline {
        let mut buf = [0u8; 64];
        if let Ok(n) = out.read(&mut buf) {
            mac.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mac.trim(), "02:42:0a:d5:00:02");

    shim.kill(9, &md).await;
    shim.wait(&md).await;
    shim.delete_and_shutdown(&md).await;
    shim.assert_gone_clean(Duration::from_secs(10)).await;
    assert!(!netns.links_in_netns().contains("vbtap0"), "the tap is gone");

    assert!(
        otlp.wait_for(Duration::from_secs(5), |s| s
            .iter()
            .filter(|s| s.name == "Delete")
            .count()
            >= 2)
            .await,
        "spans arrive"
    );
    let spans = otlp.spans();
    let tree = Tree::new(&spans).waterfall(40);
    assert_eq!(one_trace(&spans).unwrap(), CLIENT_TRACE, "{tree}");
    assert!(
        roots(&spans).iter().all(|(_, parent)| parent == CLIENT_SPAN),
        "every root is a child of the client's span:\n{tree}"
    );
    pod_shape(&spans, &sandbox_id, &[&member_id]).unwrap_or_else(|e| panic!("{e}\n{tree}"));
    assert!(spans.iter().any(|s| s.name == "NetworkAttach"), "{tree}");
    assert!(spans.iter().any(|s| s.name == "network.configure"), "{tree}");
}
