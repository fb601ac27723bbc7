//! What the shim holds, by id: its containers, the sandboxes (VMs) they run
//! in, and their trace roots. An id is reserved when its Create begins and
//! stays taken until its Delete, so two Creates of one id cannot both pass
//! (the check and the insert used to be a whole VM boot apart). A
//! container's root span ends at its Delete, a pod's with its sandbox's,
//! so a long-lived pod shim holds no span of a container that is gone.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use opentelemetry::{Context, KeyValue};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::exits::Containers;
use crate::container::Container;
use crate::error::{Result, ShimError};
use crate::sandbox::Sandboxes;

#[derive(Default)]
struct Roots {
    /// Lifetime spans of the containers that exist.
    open: HashMap<String, Span>,
    /// What RPCs after a container's Delete (its Shutdown) still parent to.
    ended: HashMap<String, Context>,
    /// Pod spans, by sandbox id.
    pods: HashMap<String, Span>,
}

#[derive(Default)]
pub struct Registry {
    containers: Containers,
    sandboxes: Sandboxes,
    /// Ids whose Create is under way.
    creating: Mutex<HashSet<String>>,
    roots: Mutex<Roots>,
}

/// An id taken for a Create under way; freed when dropped, unless the
/// container was inserted.
pub struct Reservation<'a> {
    registry: &'a Registry,
    id: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.registry.creating.lock().expect("creating lock").remove(&self.id);
    }
}

impl Registry {
    /// Takes `id` for a Create, or refuses it if a container has it or is
    /// being created with it.
    pub fn reserve(&self, id: &str) -> Result<Reservation<'_>> {
        let mut creating = self.creating.lock().expect("creating lock");
        // Lock order: creating, then containers.
        if self.containers.lock().expect("containers lock").contains_key(id) || !creating.insert(id.to_string()) {
            return Err(ShimError::AlreadyExists(format!("container {id} already exists")));
        }
        Ok(Reservation {
            registry: self,
            id: id.to_string(),
        })
    }

    /// The created container takes its reserved id (in the map before the
    /// reservation goes: the id is never free in between).
    pub fn insert(&self, reservation: Reservation<'_>, container: Arc<Container>) {
        self.containers
            .lock()
            .expect("containers lock")
            .insert(reservation.id.clone(), container);
        drop(reservation);
    }

    pub fn get(&self, id: &str) -> Result<Arc<Container>> {
        self.containers
            .lock()
            .expect("containers lock")
            .get(id)
            .cloned()
            .ok_or_else(|| ShimError::NotFound(format!("container {id} not found")))
    }

    /// Forgets a deleted container and ends its root span (and its pod's,
    /// for a sandbox).
    pub fn remove(&self, id: &str) {
        self.containers.lock().expect("containers lock").remove(id);
        let mut roots = self.roots.lock().expect("roots lock");
        if let Some(root) = roots.open.remove(id) {
            roots.ended.insert(id.to_string(), root.context());
        }
        roots.pods.remove(id);
    }

    /// Whether no container exists or is being created.
    pub fn is_empty(&self) -> bool {
        self.creating.lock().expect("creating lock").is_empty()
            && self.containers.lock().expect("containers lock").is_empty()
    }

    /// The container map, shared with the guest event relays.
    pub fn containers(&self) -> Containers {
        self.containers.clone()
    }

    pub fn sandboxes(&self) -> &Sandboxes {
        &self.sandboxes
    }

    /// Sandbox `id`'s VM is ending: no container can join it any more.
    pub fn remove_sandbox(&self, id: &str) {
        self.sandboxes.lock().expect("sandboxes lock").remove(id);
    }

    /// The context container `id`'s RPC spans join: its root span, open or
    /// ended.
    pub fn root(&self, id: &str) -> Option<Context> {
        let roots = self.roots.lock().expect("roots lock");
        roots
            .open
            .get(id)
            .map(|s| s.context())
            .or_else(|| roots.ended.get(id).cloned())
    }

    pub fn has_root(&self, id: &str) -> bool {
        self.roots.lock().expect("roots lock").open.contains_key(id)
    }

    pub fn pod(&self, sandbox_id: &str) -> Option<Context> {
        self.roots
            .lock()
            .expect("roots lock")
            .pods
            .get(sandbox_id)
            .map(|s| s.context())
    }

    /// Keeps container `id`'s root span (and, for a sandbox, its pod's).
    pub fn open_root(&self, id: &str, root: Span, pod: Option<Span>) {
        let mut roots = self.roots.lock().expect("roots lock");
        roots.ended.remove(id);
        roots.open.insert(id.to_string(), root);
        if let Some(pod) = pod {
            roots.pods.insert(id.to_string(), pod);
        }
    }

    /// Container `id` is done with: the last trace of it goes.
    pub fn forget(&self, id: &str) {
        self.roots.lock().expect("roots lock").ended.remove(id);
    }

    /// Sets `attrs` on container `id`'s root span, if it is open.
    pub fn annotate_root(&self, id: &str, attrs: &[KeyValue]) {
        if let Some(root) = self.roots.lock().expect("roots lock").open.get(id) {
            for kv in attrs {
                root.set_attribute(kv.key.clone(), kv.value.clone());
            }
        }
    }

    /// Ends every root span (the shim is about to exit); those still open
    /// (their Delete never came) get `attrs` first.
    pub fn end_traces(&self, attrs: &[KeyValue]) {
        let mut roots = self.roots.lock().expect("roots lock");
        for root in roots.open.values() {
            for kv in attrs {
                root.set_attribute(kv.key.clone(), kv.value.clone());
            }
        }
        roots.open.clear();
        roots.pods.clear();
        roots.ended.clear();
    }
}
