//! Watching processes end: each started process gets a watcher that waits for
//! its exit in the guest, then for its output to drain, and only then records
//! the exit and publishes TaskExit. A VM that ends under a running container
//! ends every watcher with status 255.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use containerd_shim_protos::events::task::{TaskExit, TaskOOM};
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::topics;
use tracing::{error, info, info_span, warn, Instrument, Span};
use voidbox_api::task::{event, WaitRequest};

use super::events::Publisher;
use crate::container::{Container, Process};
use crate::sandbox::Sandbox;

/// The containers of a shim, by id, shared with the event relays.
pub type Containers = Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<Container>>>>;

/// The exit status of processes whose VM ended under them.
pub const VM_GONE_STATUS: u32 = 255;

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    }
}

/// Starts the watcher of a process that just started.
/// The watcher's span (`WaitForExit`) is a child of the span that started
/// the process, so the guest's `process.wait` joins the same trace.
pub fn watch(container: &Arc<Container>, process: &Arc<Process>, events: Arc<dyn Publisher>) {
    let c = container.clone();
    let p = process.clone();
    let span = info_span!("WaitForExit", exec.id = %p.exec_id, pid = p.pid(), exit.status = tracing::field::Empty);
    let task = tokio::spawn(
        async move {
            let req = WaitRequest {
                id: c.id.clone(),
                exec_id: p.exec_id.clone(),
                ..Default::default()
            };
            let (status, oom) = tokio::select! {
                r = c.guest().wait(&req) => match r {
                    Ok(r) => (r.exit_status, r.oom_killed),
                    Err(e) => {
                        warn!(id = %c.id, exec = %p.exec_id, "waiting for the process: {e}");
                        (VM_GONE_STATUS, false)
                    }
                },
                exit = c.vm().wait() => {
                    if !c.deleting.load(Ordering::SeqCst) {
                        error!(id = %c.id, exec = %p.exec_id, "the VM ended under a running process: {exit}");
                    }
                    (VM_GONE_STATUS, false)
                }
            };
            if let Some(io) = p.io() {
                io.drained().await;
                // Nothing reads this process's stdin any more: stop
                // waiting for a writer that may never come.
                io.close_stdin();
            }
            // An OOM kill the event stream did not report (it races the exit).
            if oom && p.exec_id.is_empty() && c.ooms.load(Ordering::SeqCst) == 0 {
                c.ooms.fetch_add(1, Ordering::SeqCst);
                publish_oom(&c, events.as_ref()).await;
            }
            p.set_exited(status);
            Span::current().record("exit.status", status);
            let (_, at) = p.exit().expect("just set");
            info!(id = %c.id, exec = %p.exec_id, status, "process exited");
            let exit = TaskExit {
                container_id: c.id.clone(),
                id: if p.exec_id.is_empty() {
                    c.id.clone()
                } else {
                    p.exec_id.clone()
                },
                pid: p.pid(),
                exit_status: status,
                exited_at: Some(timestamp(at)).into(),
                ..Default::default()
            };
            events.publish(topics::TASK_EXIT_EVENT_TOPIC, Box::new(exit)).await;
        }
        .instrument(span),
    );
    container.tasks.lock().expect("tasks lock").push(task);
}

async fn publish_oom(c: &Container, events: &dyn Publisher) {
    warn!(id = %c.id, "container was OOM-killed");
    let oom = TaskOOM {
        container_id: c.id.clone(),
        ..Default::default()
    };
    events.publish(topics::TASK_OOM_EVENT_TOPIC, Box::new(oom)).await;
}

/// Relays the guest's own events (OOM kills) to the containers they name,
/// for the sandbox's lifetime.
pub fn relay_guest_events(sandbox: &Arc<Sandbox>, containers: Containers, events: Arc<dyn Publisher>) {
    let guest = sandbox.guest.clone();
    let id = sandbox.id.clone();
    let task = tokio::spawn(async move {
        let mut stream = match guest.events().await {
            Ok(s) => s,
            Err(e) => return warn!(sandbox = %id, "guest events stream: {e}"),
        };
        while let Ok(Some(event)) = stream.recv().await {
            if !matches!(event.kind, Some(event::Kind::Oom(_))) {
                continue;
            }
            let c = containers.lock().expect("containers lock").get(&event.id).cloned();
            if let Some(c) = c {
                c.ooms.fetch_add(1, Ordering::SeqCst);
                publish_oom(&c, events.as_ref()).await;
            }
        }
    });
    sandbox.tasks.lock().expect("tasks lock").push(task);
}
