//! A container, and the sandbox (VM) it runs in.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinHandle;

use super::error::{Result, ShimError};
use super::pod::Role;
use super::process::Process;
use super::rootfs::Rootfs;
use super::sandbox::Sandbox;
use super::shared::ContainerShare;

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

    pub fn guest(&self) -> &crate::guest::GuestClient {
        &self.sandbox.guest
    }

    pub fn vm(&self) -> &Arc<crate::vm::MicroVm> {
        &self.sandbox.vm
    }

    /// Unmounts what the container put in the share and its rootfs.
    pub fn release_files(&self) {
        self.share.remove();
        self.rootfs.lock().expect("rootfs lock").unmount();
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        for t in self.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
    }
}
