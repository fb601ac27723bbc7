//! A container process as the host sees it: its state, its stdio relays.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::io::{IoPaths, ProcessIo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Exited { status: u32, at: SystemTime },
}

pub struct Process {
    /// Empty for the container's init process.
    pub exec_id: String,
    pub paths: IoPaths,
    /// The OCI process (JSON) of an exec process.
    pub spec: Vec<u8>,
    pid: AtomicU32,
    state: watch::Sender<Status>,
    io: Mutex<Option<Arc<ProcessIo>>>,
}

impl Process {
    pub fn new(exec_id: &str, paths: IoPaths, spec: Vec<u8>) -> Arc<Self> {
        Arc::new(Process {
            exec_id: exec_id.to_string(),
            paths,
            spec,
            pid: AtomicU32::new(0),
            state: watch::channel(Status::Created).0,
            io: Mutex::new(None),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    pub fn set_pid(&self, pid: u32) {
        self.pid.store(pid, Ordering::SeqCst);
    }

    pub fn status(&self) -> Status {
        *self.state.borrow()
    }

    pub fn set_running(&self) {
        self.state.send_if_modified(|s| {
            let created = *s == Status::Created;
            if created {
                *s = Status::Running;
            }
            created
        });
    }

    pub fn set_exited(&self, status: u32) {
        self.state.send_replace(Status::Exited {
            status,
            at: SystemTime::now(),
        });
    }

    pub fn exit(&self) -> Option<(u32, SystemTime)> {
        match self.status() {
            Status::Exited { status, at } => Some((status, at)),
            _ => None,
        }
    }

    /// Waits for the exit (which is recorded only after the output drained).
    pub async fn wait(&self) -> (u32, SystemTime) {
        let mut rx = self.state.subscribe();
        let result = rx.wait_for(|s| matches!(s, Status::Exited { .. })).await.map(|s| *s);
        match result {
            Ok(Status::Exited { status, at }) => (status, at),
            _ => (255, SystemTime::now()),
        }
    }

    pub fn set_io(&self, io: Arc<ProcessIo>) {
        *self.io.lock().expect("io lock") = Some(io);
    }

    pub fn io(&self) -> Option<Arc<ProcessIo>> {
        self.io.lock().expect("io lock").clone()
    }
}
