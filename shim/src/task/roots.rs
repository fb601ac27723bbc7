//! The trace roots a Create opens: the container's lifetime span, and for
//! a pod's sandbox the pod's. With a propagated context they belong to the
//! Create request's trace; without one a container's is a root, or a child
//! of its pod's span.

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use ttrpc::r#async::TtrpcContext;
use voidbox_api::otel::propagation::extract;

use super::registry::Registry;
use crate::otel::spans;
use crate::spec::{pod, Bundle, Role};

/// Opens container `id`'s root spans, unless it has them already. A bundle
/// that could not be read opens a standalone root (Create then says why).
pub fn open(registry: &Registry, ctx: &TtrpcContext, id: &str, bundle: Option<&Bundle>) {
    if registry.has_root(id) {
        return;
    }
    let incoming = extract(&ctx.metadata);
    let incoming = incoming.span().span_context().is_valid().then_some(incoming);
    let annotations = bundle.map(Bundle::annotations).unwrap_or_default();
    let (root, pod) = match bundle.map(|b| &b.role) {
        Some(Role::Sandbox) => {
            let get = |k: &str| annotations.get(k).map(String::as_str).unwrap_or_default();
            let pod = spans::pod_root(id, get(pod::SANDBOX_NAME), get(pod::SANDBOX_NAMESPACE), incoming);
            (spans::container_root(id, Some(pod.context()), "sandbox"), Some(pod))
        }
        Some(Role::Member { sandbox_id }) => {
            let parent = incoming.or_else(|| registry.pod(sandbox_id));
            (spans::container_root(id, parent, "container"), None)
        }
        _ => (spans::container_root(id, incoming, "standalone"), None),
    };
    registry.open_root(id, root, pod);
}
