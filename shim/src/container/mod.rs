//! A container in a sandbox: its rootfs and volumes in the sandbox's share,
//! its processes, and what they can be asked to do. Every guest call a
//! container makes is here or in `lifecycle` and `control`.

mod control;
mod create;
mod lifecycle;
mod process;
mod rootfs;

pub use create::{create, CreateOptions};
pub use process::{Process, Status};

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tracing::Instrument;

use self::rootfs::Rootfs;
use crate::error::{Result, ShimError};
use crate::guest::{GuestClient, GuestError};
use crate::sandbox::{ContainerShare, Sandbox};
use crate::spec::Role;
use crate::vm::MicroVm;

/// How long a guest call whose connection failed waits to learn whether the
/// VM ended under it: the VMM's end is known a moment after its socket's.
const VM_ENDING_GRACE: Duration = Duration::from_millis(500);

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub role: Role,
    pub sandbox: Arc<Sandbox>,
    pub rootfs: Mutex<Rootfs>,
    /// The container's root and volumes in the sandbox's shared directory.
    pub share: ContainerShare,
    pub init: Arc<Process>,
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    pub paused: AtomicBool,
    /// Set once Delete has begun: the VM's end is then expected.
    pub deleting: AtomicBool,
    /// OOM kills the guest reported while the container ran.
    pub ooms: AtomicU64,
    /// When Create arrived: container start latency runs from here.
    pub received: Instant,
    /// Exit watchers.
    pub tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Container {
    /// The init process for an empty exec id, else that exec process.
    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs
            .lock()
            .expect("execs lock")
            .get(exec_id)
            .cloned()
            .ok_or_else(|| ShimError::NotFound(format!("exec {exec_id} of container {} not found", self.id)))
    }

    /// Whether this container's end is its VM's end (a pod's sandbox, or a
    /// container on its own).
    pub fn owns_vm(&self) -> bool {
        !matches!(self.role, Role::Member { .. })
    }

    pub fn guest(&self) -> &GuestClient {
        &self.sandbox.guest
    }

    pub fn vm(&self) -> &Arc<MicroVm> {
        &self.sandbox.vm
    }

    /// Whether the container's VM has ended.
    pub fn vm_gone(&self) -> bool {
        self.sandbox.vm.try_exit().is_some()
    }

    /// Asks the guest. A VM that has ended, before the call or under it (its
    /// connection failed), gets the same clear error from every RPC rather
    /// than the broken connection's ("channel closed").
    async fn ask<T>(&self, call: impl Future<Output = std::result::Result<T, GuestError>>) -> Result<T> {
        if self.vm_gone() {
            return Err(self.vm_ended());
        }
        match call.await {
            Ok(v) => Ok(v),
            // The guest's own verdict passes through.
            Err(e) if e.code().is_some() => Err(e.into()),
            Err(e) => match tokio::time::timeout(VM_ENDING_GRACE, self.vm().wait()).await {
                Ok(_) => Err(self.vm_ended()),
                Err(_) => Err(e.into()),
            },
        }
    }

    fn vm_ended(&self) -> ShimError {
        ShimError::FailedPrecondition(format!("container {} is not running: its VM has ended", self.id))
    }

    /// Starts the host's writeback of the rootfs's filesystem, which its
    /// unmount would wait for: begun as Delete begins, it runs while the
    /// guest shuts down. `release_files` waits for it.
    pub fn start_writeback(&self) -> Option<JoinHandle<()>> {
        let path = self.rootfs.lock().expect("rootfs lock").mounted()?.to_path_buf();
        Some(tokio::task::spawn_blocking(move || {
            crate::mounts::sync_filesystem(&path)
        }))
    }

    /// Unmounts what the container put in the share and its rootfs. A span
    /// of its own: an overlay rootfs's unmount syncs the host filesystem
    /// under it, so it lasts as long as the host's writeback (what of it
    /// `writeback` has not done yet), on a blocking thread, not holding an
    /// async worker (a pod's other containers') for it.
    pub async fn release_files(self: &Arc<Self>, writeback: Option<JoinHandle<()>>) {
        let span = tracing::info_span!("Unmount");
        if let Some(w) = writeback {
            let _ = w.instrument(span.clone()).await;
        }
        let c = self.clone();
        let unmount = move || {
            let _entered = span.entered();
            c.share.remove();
            c.rootfs.lock().expect("rootfs lock").unmount();
        };
        if let Err(e) = tokio::task::spawn_blocking(unmount).await {
            tracing::error!(id = %self.id, "unmounting the container's files failed: {e}");
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        for t in self.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
    }
}
