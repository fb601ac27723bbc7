//! The shim's spans: one per task RPC, child of the context the caller
//! propagated (containerd 2.x puts it in the TTRPC metadata) or, when there
//! is none (containerd 1.6), of the container's own root span, so that one
//! container is one trace either way.

use std::future::Future;

use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::Context;
use tracing::{info_span, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use voidbox_api::otel::propagation::{extract, Metadata};

/// An error a span is marked with: its message, and a short stable name of
/// the failure for the `error.kind` attribute.
pub trait SpanError: std::fmt::Display {
    fn kind(&self) -> &'static str;
}

/// The span of task RPC `name` for container `id`: a child of the caller's
/// propagated context, linked to the container's root span; or, when the
/// caller propagates nothing (containerd 1.6), a child of that root.
pub fn rpc(name: &'static str, id: &str, metadata: &Metadata, root: Option<Context>) -> Span {
    let span = info_span!("rpc", otel.name = name, otel.kind = "server", rpc.system = "ttrpc", rpc.method = name, container.id = %id);
    let incoming = extract(metadata);
    if incoming.span().span_context().is_valid() {
        let _ = span.set_parent(incoming);
        if let Some(root) = root {
            span.add_link(root.span().span_context().clone());
        }
    } else if let Some(root) = root {
        let _ = span.set_parent(root);
    }
    span
}

/// The root span of a container, its lifetime: under `parent` (the Create
/// request's context, or the pod's root span) or a root itself. `kind` is
/// standalone, sandbox or container.
pub fn container_root(id: &str, parent: Option<Context>, kind: &str) -> Span {
    let span =
        info_span!(parent: None, "container", otel.name = "Container", container.id = %id, container.kind = kind);
    if let Some(parent) = parent {
        let _ = span.set_parent(parent);
    }
    span
}

/// The root span of a pod (opened with its sandbox), named as Kubernetes
/// names it: under the sandbox's Create request, if it has a context.
pub fn pod_root(sandbox_id: &str, pod_name: &str, pod_namespace: &str, parent: Option<Context>) -> Span {
    let span = info_span!(
        parent: None,
        "pod",
        otel.name = "Pod",
        k8s.pod.name = %pod_name,
        k8s.namespace.name = %pod_namespace,
        pod.sandbox_id = %sandbox_id,
    );
    if let Some(parent) = parent {
        let _ = span.set_parent(parent);
    }
    span
}

/// Marks `span` failed with `err`.
pub fn fail(span: &Span, err: &dyn SpanError) {
    span.set_status(Status::error(err.to_string()));
    span.set_attribute("error.kind", err.kind());
}

/// Runs `fut` in `span`; an error marks the span. The span ends however the
/// future ends (completes, fails, or is dropped).
pub async fn traced<T, E: SpanError>(span: Span, fut: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    use tracing::Instrument;
    let result = fut.instrument(span.clone()).await;
    if let Err(e) = &result {
        fail(&span, e);
    }
    result
}
