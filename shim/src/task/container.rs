//! A container and the VM it runs in.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinHandle;

use super::error::{Result, ShimError};
use super::process::Process;
use super::rootfs::Rootfs;
use crate::guest::GuestClient;
use crate::io::StreamMux;
use crate::otel::clock::Clock;
use crate::otel::relay::RelayStats;
use crate::vm::MicroVm;

pub struct Container {
    pub id: String,
    pub vm_id: String,
    /// When Create arrived: container start latency runs from here.
    pub received: Instant,
    /// Counted in the live-VM gauge until teardown.
    pub live: AtomicBool,
    pub bundle: PathBuf,
    pub vm: Arc<MicroVm>,
    pub guest: GuestClient,
    pub mux: Arc<StreamMux>,
    pub rootfs: Mutex<Rootfs>,
    pub init: Arc<Process>,
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    pub paused: AtomicBool,
    /// Set once Delete has begun: the VM's end is then expected.
    pub deleting: AtomicBool,
    /// OOM kills the guest reported while the container ran.
    pub ooms: AtomicU64,
    /// The guest clock against the host's, for rebasing guest spans.
    pub clock: Arc<Clock>,
    /// The guest span relay, when tracing is on; teardown waits for its end.
    pub relay: Mutex<Option<JoinHandle<()>>>,
    pub relay_stats: Arc<RelayStats>,
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
}

impl Drop for Container {
    fn drop(&mut self) {
        for t in self.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
    }
}
