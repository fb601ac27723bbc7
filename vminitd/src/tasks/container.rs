//! A container in the guest: its bundle directory, rootfs mount, processes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::tasks::error::TaskError;
use crate::tasks::process::Process;

/// Where container bundles live in the guest.
pub const BUNDLES: &str = "/run/voidbox/containers";

pub struct Container {
    pub id: String,
    pub init: Arc<Process>,
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    pub paused: AtomicBool,
    /// Whether its spec has poststart hooks (set at create; see `crun::start`).
    pub poststart_hooks: AtomicBool,
    pub oom_watch: Mutex<Option<JoinHandle<()>>>,
}

impl Container {
    pub fn new(id: &str) -> Self {
        Container {
            id: id.to_string(),
            init: Process::new("", None),
            execs: Mutex::new(HashMap::new()),
            paused: AtomicBool::new(false),
            poststart_hooks: AtomicBool::new(false),
            oom_watch: Mutex::new(None),
        }
    }

    pub fn bundle(&self) -> PathBuf {
        bundle_dir(&self.id)
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// The init process for an empty exec id, else that exec process.
    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>, TaskError> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs
            .lock()
            .expect("execs lock")
            .get(exec_id)
            .cloned()
            .ok_or_else(|| TaskError::NoProcess {
                id: self.id.clone(),
                exec_id: exec_id.to_string(),
            })
    }
}

pub fn bundle_dir(id: &str) -> PathBuf {
    PathBuf::from(BUNDLES).join(id)
}

/// Container ids become path components: refuse anything that is not one.
pub fn check_id(id: &str) -> Result<(), TaskError> {
    voidbox_api::ids::check_container_id(id).map_err(TaskError::Invalid)
}

/// Removes the bundle directory (the rootfs lives in a share, not here).
pub fn remove_bundle(id: &str) {
    let _ = std::fs::remove_dir_all(bundle_dir(id));
}
