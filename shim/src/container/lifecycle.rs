//! Starting a container's processes and deleting them in the guest.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::{info_span, warn, Instrument};
use voidbox_api::task as guest;

use super::process::{Process, Status};
use super::Container;
use crate::error::{Result, ShimError};
use crate::io::{Owner, ProcessIo};

/// "init" for the init process, else the exec id: for messages.
pub fn display_exec(exec_id: &str) -> &str {
    if exec_id.is_empty() {
        "init"
    } else {
        exec_id
    }
}

impl Container {
    /// Starts process `p` (an exec's stdio is relayed from now on; the
    /// guest dials its streams) and returns its guest pid.
    pub async fn start(&self, p: &Arc<Process>, namespace: &str) -> Result<u32> {
        if p.status() != Status::Created {
            return Err(ShimError::FailedPrecondition(format!(
                "process {} already started",
                display_exec(&p.exec_id)
            )));
        }
        let is_exec = !p.exec_id.is_empty();
        if is_exec {
            let owner = Owner {
                container: &self.id,
                namespace,
            };
            let (ids, io) = ProcessIo::start(&self.sandbox.mux, &p.paths, owner).await?;
            let exec = guest::ExecRequest {
                id: self.id.clone(),
                exec_id: p.exec_id.clone(),
                process: p.spec.clone(),
                stdio: Some(ids).into(),
                ..Default::default()
            };
            if let Err(e) = self.ask(self.guest().exec(&exec)).await {
                io.abort(&self.sandbox.mux);
                return Err(e);
            }
            p.set_io(Arc::new(io));
        }
        let start = guest::StartRequest {
            id: self.id.clone(),
            exec_id: p.exec_id.clone(),
            ..Default::default()
        };
        match self.ask(self.guest().start(&start)).await {
            Ok(resp) => {
                p.set_pid(resp.pid);
                p.set_running();
                Ok(resp.pid)
            }
            Err(e) => {
                if let Some(io) = p.io().filter(|_| is_exec) {
                    io.abort(&self.sandbox.mux);
                }
                Err(e)
            }
        }
    }

    /// Checks that process `p` may be deleted: it is not running, or its
    /// VM is gone.
    pub fn check_deletable(&self, p: &Process) -> Result<()> {
        if matches!(p.status(), Status::Running) && !self.vm_gone() {
            return Err(ShimError::FailedPrecondition(format!(
                "process {} of container {} is running; kill it first",
                display_exec(&p.exec_id),
                self.id
            )));
        }
        Ok(())
    }

    /// Deletes the container in the guest, if the guest still runs and
    /// outlives it (a pod's other containers); a VM that ends with the
    /// container takes the container's state with it. A failure is logged:
    /// the VM (or the container's part of it) goes anyway.
    pub async fn delete_init(&self) {
        self.deleting.store(true, Ordering::SeqCst);
        if self.vm_gone() || self.owns_vm() {
            return;
        }
        let del = guest::DeleteRequest {
            id: self.id.clone(),
            ..Default::default()
        };
        let deleted = self.guest().delete(&del).instrument(info_span!("TaskDelete")).await;
        if let Err(e) = deleted {
            warn!(id = %self.id, "{e}");
        }
    }

    /// Deletes exec process `p` in the guest and forgets it.
    pub async fn delete_exec(&self, p: &Process) -> Result<()> {
        if p.status() != Status::Created && !self.vm_gone() {
            let del = guest::DeleteRequest {
                id: self.id.clone(),
                exec_id: p.exec_id.clone(),
                ..Default::default()
            };
            match self.ask(self.guest().delete(&del)).await {
                Ok(_) => {}
                // The VM ended under the call, and the exec with it.
                Err(_) if self.vm_gone() => {}
                Err(e) => return Err(e),
            }
        }
        self.execs.lock().expect("execs lock").remove(&p.exec_id);
        Ok(())
    }
}
