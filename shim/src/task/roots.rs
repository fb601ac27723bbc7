//! The trace roots a Create opens: the container's lifetime span, and for
//! a pod's sandbox the pod's. With a propagated context they belong to the
//! Create request's trace; without one a container's is a root, or a child
//! of its pod's span.

use std::sync::atomic::Ordering;

use opentelemetry::trace::TraceContextExt;
use opentelemetry::KeyValue;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use ttrpc::r#async::TtrpcContext;
use voidbox_api::otel::propagation::extract;

use super::registry::Registry;
use crate::otel::metrics::DropReason;
use crate::otel::spans;
use crate::sandbox::Observability;
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

/// What became of the guest's spans and which spans the host lost, for a
/// container's root span as it ends: `voidbox.guest.spans.relayed`,
/// `voidbox.guest.spans.rejected` and `voidbox.spans.dropped.<reason>` for
/// each `DropReason` (docs/tracing-boundary.md). Counts as of that moment, for the
/// shim (one VM): what is lost later is in the metrics only.
pub fn span_losses(obs: &Observability) -> Vec<KeyValue> {
    let count = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed) as i64;
    let mut attrs = vec![
        KeyValue::new("voidbox.guest.spans.relayed", count(&obs.relay.relayed)),
        KeyValue::new("voidbox.guest.spans.rejected", count(&obs.relay.rejected)),
    ];
    for reason in DropReason::ALL {
        let n = match reason {
            DropReason::GuestBufferFull => &obs.relay.dropped,
            DropReason::HostQueueFull => &obs.export.spans.queue_full,
            DropReason::ExportFailed => &obs.export.spans.export_failed,
        };
        attrs.push(KeyValue::new(
            format!("voidbox.spans.dropped.{}", reason.as_str()),
            count(n),
        ));
    }
    attrs
}
