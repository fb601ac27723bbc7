//! PID 1 reaps every process that dies in the guest. Processes vminitd starts
//! itself are registered, so their exit status reaches whoever waits for them;
//! orphans reparented to PID 1 are reaped and logged.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;
use tracing::{debug, warn};

#[derive(Clone, Default)]
pub struct Reaper {
    waiters: Arc<Mutex<HashMap<Pid, oneshot::Sender<WaitStatus>>>>,
}

impl Reaper {
    /// Starts reaping on SIGCHLD. Must run inside the tokio runtime.
    pub fn start() -> Self {
        let reaper = Reaper::default();
        let mut sigchld = match signal(SignalKind::child()) {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot watch SIGCHLD, orphans will not be reaped: {e}");
                return reaper;
            }
        };
        let waiters = reaper.waiters.clone();
        tokio::spawn(async move {
            loop {
                reap_all(&waiters);
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        reaper
    }

    /// Spawns `cmd` and returns its pid and a receiver of its exit status.
    /// The lock is held across spawn so the exit cannot be reaped unclaimed.
    #[allow(dead_code)] // the container driver is its user
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<(Pid, oneshot::Receiver<WaitStatus>)> {
        let mut waiters = self.waiters.lock().expect("reaper lock");
        let child = cmd.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        let (tx, rx) = oneshot::channel();
        waiters.insert(pid, tx);
        Ok((pid, rx))
    }
}

fn reap_all(waiters: &Mutex<HashMap<Pid, oneshot::Sender<WaitStatus>>>) {
    loop {
        let mut waiters = waiters.lock().expect("reaper lock");
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => {
                let Some(pid) = status.pid() else { continue };
                match waiters.remove(&pid) {
                    Some(tx) => {
                        let _ = tx.send(status);
                    }
                    None => debug!("reaped orphan {pid}: {status:?}"),
                }
            }
        }
    }
}
