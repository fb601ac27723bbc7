//! PID 1 reaps every process that dies in the guest, and delivers exit
//! statuses to whoever asked for them.
//!
//! Two kinds of processes matter: those vminitd spawns itself (crun), whose
//! exit is registered before spawn so it cannot be missed, and container
//! processes that crun leaves behind and that are reparented to PID 1. Their
//! pid is learned only after crun returns, so the exits of processes nobody
//! asked for are remembered for a while, and a later `watch` finds them.

use std::collections::{HashMap, VecDeque};
use std::process::Command;
use std::sync::{Arc, Mutex};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;
use tracing::{debug, warn};

/// How many unclaimed exits are remembered.
const UNCLAIMED: usize = 256;

#[derive(Default)]
struct State {
    waiters: HashMap<Pid, oneshot::Sender<WaitStatus>>,
    unclaimed: VecDeque<(Pid, WaitStatus)>,
}

#[derive(Clone, Default)]
pub struct Reaper {
    state: Arc<Mutex<State>>,
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
        let state = reaper.state.clone();
        tokio::spawn(async move {
            loop {
                reap_all(&state);
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        reaper
    }

    /// Spawns `cmd` and returns its pid and a receiver of its exit status.
    /// The lock is held across spawn so the exit cannot be reaped unclaimed.
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<(Pid, oneshot::Receiver<WaitStatus>)> {
        let mut state = self.state.lock().expect("reaper lock");
        let child = cmd.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        let (tx, rx) = oneshot::channel();
        state.waiters.insert(pid, tx);
        Ok((pid, rx))
    }

    /// The exit status of `pid`, a process vminitd did not spawn itself but
    /// that will be (or already was) reaped here.
    pub fn watch(&self, pid: Pid) -> oneshot::Receiver<WaitStatus> {
        let mut state = self.state.lock().expect("reaper lock");
        let (tx, rx) = oneshot::channel();
        if let Some(i) = state.unclaimed.iter().position(|(p, _)| *p == pid) {
            let (_, status) = state.unclaimed.remove(i).expect("index in range");
            let _ = tx.send(status);
        } else {
            state.waiters.insert(pid, tx);
        }
        rx
    }
}

fn reap_all(state: &Mutex<State>) {
    loop {
        let mut state = state.lock().expect("reaper lock");
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => {
                let Some(pid) = status.pid() else { continue };
                match state.waiters.remove(&pid) {
                    Some(tx) => {
                        let _ = tx.send(status);
                    }
                    None => {
                        debug!("reaped {pid}: {status:?}");
                        if state.unclaimed.len() == UNCLAIMED {
                            state.unclaimed.pop_front();
                        }
                        state.unclaimed.push_back((pid, status));
                    }
                }
            }
        }
    }
}

/// The container convention for an exit: the code, or 128 + the signal.
pub fn exit_status(status: WaitStatus) -> u32 {
    match status {
        WaitStatus::Exited(_, code) => code as u32,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as u32,
        _ => 255,
    }
}
