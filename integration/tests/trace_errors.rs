//! Errors where they happen, end to end through the OTLP decode: the span of
//! the step that failed carries error status and an `error.kind`, and so
//! does every ancestor up to the client's Create. (A bad spec:
//! tracing.rs's `a_failed_create_marks_its_span`; a guest that never
//! answers ClockSync: hostile_guest.rs.)

use std::time::Duration;

use containerd_shim_protos::api::CreateTaskRequest;
use voidbox_integration::otlp::{Receiver, Span};
use voidbox_integration::shim_client::{spec, ShimUnderTest};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// Creates a container that fails, with tracing to `otlp`; the shim is
/// shut down and gone, leaving nothing, when this returns.
async fn failed_create(name: &str, args: &[&str], otlp: &Receiver, env: &[(&str, &str)]) -> String {
    let endpoint = otlp.endpoint();
    let mut env = env.to_vec();
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint));
    let shim = ShimUnderTest::start_with_env(name, &spec(args), &env).await;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let create = CreateTaskRequest {
        id: shim.id.clone(),
        bundle: shim.bundle.display().to_string(),
        ..Default::default()
    };
    let err = shim
        .client
        .create(shim.ctx(&[("traceparent", &traceparent)]), &create)
        .await
        .expect_err("Create fails");
    shim.shutdown(&[]).await;
    shim.assert_gone_clean(Duration::from_secs(15)).await;
    err.to_string()
}

/// `leaf` and each of its ancestors, leaf first, up to the client's span
/// (which the test made, so it never arrives).
fn chain<'a>(spans: &'a [Span], leaf: &str) -> Vec<&'a Span> {
    let mut span = spans
        .iter()
        .find(|s| s.name == leaf)
        .unwrap_or_else(|| panic!("no {leaf} span among {:?}", names(spans)));
    let mut out = vec![span];
    while span.parent_span_id != CLIENT_SPAN {
        span = spans
            .iter()
            .find(|s| s.span_id == span.parent_span_id)
            .unwrap_or_else(|| panic!("{}'s parent did not arrive", span.name));
        out.push(span);
    }
    out
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

/// Every span of `chain` failed, each with the kind expected of it.
fn assert_failed(chain: &[&Span], kinds: &[(&str, &str)]) {
    for span in chain {
        assert_eq!(span.trace_id, CLIENT_TRACE, "{} is in the client's trace", span.name);
        assert_eq!(span.status_code, 2, "{} ({}) is an error", span.name, span.service);
        assert!(!span.status_message.is_empty(), "{} says why", span.name);
        let kind = span.attributes.get("error.kind").map(String::as_str);
        let expected = kinds.iter().find(|(n, _)| *n == span.name).map(|(_, k)| *k);
        match expected {
            Some(k) => assert_eq!(kind, Some(k), "{}'s error.kind", span.name),
            None => assert!(kind.is_some_and(|k| !k.is_empty()), "{} has an error.kind", span.name),
        }
    }
}

/// A guest that never dials in: WaitForReady runs out, and says so on its
/// own span, VMBoot's and Create's; VMSpawn did its part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_timeout_marks_wait_for_ready_and_its_ancestors() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let err = failed_create(
        "err-ready",
        &["true"],
        &otlp,
        &[
            ("VOIDBOX_GUEST_CMDLINE", "init=/hostile-init voidbox.hostile=mute"),
            ("VOIDBOX_READY_TIMEOUT", "5"),
        ],
    )
    .await;
    assert!(err.contains("ready"), "the error says what ran out: {err}");
    assert!(
        otlp.wait_for(Duration::from_secs(10), |s| s.iter().any(|s| s.name == "Create"))
            .await
    );
    let spans = otlp.spans();
    let chain = chain(&spans, "WaitForReady");
    assert_eq!(
        names(&chain.iter().map(|s| (*s).clone()).collect::<Vec<_>>()),
        ["WaitForReady", "VMBoot", "Create"]
    );
    assert_failed(
        &chain,
        &[
            ("WaitForReady", "ready_timeout"),
            ("VMBoot", "ready_timeout"),
            ("Create", "ready_timeout"),
        ],
    );
    let spawn = spans.iter().find(|s| s.name == "VMSpawn").expect("VMSpawn");
    assert_ne!(spawn.status_code, 2, "VMSpawn did not fail");
}

/// crun refuses the container in the guest: crun.create fails, and with it
/// the guest's task.create, the shim's TaskCreate and Create. The guest's
/// spans still arrive, though its VM ends with the failed Create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_crun_create_in_the_guest_marks_every_ancestor() {
    let otlp = Receiver::start("127.0.0.1:0").await.unwrap();
    let err = failed_create("err-crun", &["/no/such/binary"], &otlp, &[]).await;
    assert!(
        err.contains("/no/such/binary"),
        "crun's reason reaches the client: {err}"
    );
    assert!(
        otlp.wait_for(Duration::from_secs(10), |s| s.iter().any(|s| s.name == "crun.create")
            && s.iter().any(|s| s.name == "Create"))
            .await,
        "spans: {:?}",
        names(&otlp.spans())
    );
    let spans = otlp.spans();
    let chain = chain(&spans, "crun.create");
    let services: Vec<(&str, &str)> = chain.iter().map(|s| (s.name.as_str(), s.service.as_str())).collect();
    assert_eq!(
        services,
        [
            ("crun.create", "voidbox-vm"),
            ("task.create", "voidbox-vm"),
            ("TaskCreate", "voidbox"),
            ("Create", "voidbox")
        ]
    );
    assert_failed(
        &chain,
        &[
            ("crun.create", "crun"),
            ("TaskCreate", "guest_rpc"),
            ("Create", "guest_rpc"),
        ],
    );
}
