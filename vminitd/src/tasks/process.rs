//! One process of a container (its init, or an exec) and its lifecycle.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use nix::unistd::Pid;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use voidbox_api::task::Stdio as StdioIds;

use crate::reaper::{exit_status, Reaper};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    Created,
    Running,
    Exited { status: u32, at_unix_nano: i64 },
}

/// What Start needs to run an exec process.
pub struct PendingExec {
    pub process: Vec<u8>,
    pub stdio: StdioIds,
}

pub struct Process {
    pub exec_id: String,
    pid: AtomicU32,
    state: watch::Sender<ProcState>,
    /// The pty master, kept for ResizePty.
    pub pty: Mutex<Option<OwnedFd>>,
    pub pending: Mutex<Option<PendingExec>>,
    /// Stdio relays: they end by themselves at EOF.
    pub relays: Mutex<Vec<JoinHandle<()>>>,
}

fn now_unix_nano() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl Process {
    pub fn new(exec_id: &str, pending: Option<PendingExec>) -> Arc<Self> {
        Arc::new(Process {
            exec_id: exec_id.to_string(),
            pid: AtomicU32::new(0),
            state: watch::channel(ProcState::Created).0,
            pty: Mutex::new(None),
            pending: Mutex::new(pending),
            relays: Mutex::new(Vec::new()),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    pub fn state(&self) -> ProcState {
        *self.state.borrow()
    }

    /// Records the process's pid and delivers its exit to the state when the
    /// reaper sees it.
    pub fn track(self: &Arc<Self>, pid: u32, reaper: &Reaper) {
        self.pid.store(pid, Ordering::SeqCst);
        let exited = reaper.watch(Pid::from_raw(pid as i32));
        let me = self.clone();
        tokio::spawn(async move {
            let status = match exited.await {
                Ok(status) => exit_status(status),
                Err(_) => 255,
            };
            me.state.send_replace(ProcState::Exited {
                status,
                at_unix_nano: now_unix_nano(),
            });
        });
    }

    pub fn set_running(&self) {
        self.state.send_if_modified(|s| {
            let created = *s == ProcState::Created;
            if created {
                *s = ProcState::Running;
            }
            created
        });
    }

    /// Waits for the exit: (status, time).
    pub async fn wait(&self) -> (u32, i64) {
        let mut rx = self.state.subscribe();
        let state = rx
            .wait_for(|s| matches!(s, ProcState::Exited { .. }))
            .await
            .map(|s| *s)
            .unwrap_or(ProcState::Exited {
                status: 255,
                at_unix_nano: 0,
            });
        match state {
            ProcState::Exited { status, at_unix_nano } => (status, at_unix_nano),
            _ => unreachable!("waited for an exit"),
        }
    }

    pub fn exit(&self) -> Option<(u32, i64)> {
        match self.state() {
            ProcState::Exited { status, at_unix_nano } => Some((status, at_unix_nano)),
            _ => None,
        }
    }
}
