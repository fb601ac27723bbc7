//! The processes of one VM: the VMM and its helpers, tied to our lifetime.
//!
//! Each child gets PR_SET_PDEATHSIG(SIGKILL), so it dies with the process
//! (strictly: the thread) that spawned it, and `kill_on_drop`, so dropping
//! the set kills whatever still runs. Children are spawned from tokio worker
//! threads, which live as long as the runtime. Each creates its files 0600
//! (umask 077), and those the backend says need no root run as the VMM user.
//! Each leads a process group of its own, and is killed with its group: a
//! wrapper that runs the real program as its child (`strace -f`, `perf
//! record`, a script without `exec`) takes that child along.

use std::fs::File;
use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures::future::select_all;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::Child;

use super::confine::{RunsAs, VmmUser};
use super::console::tail;
use super::VmError;

struct Managed {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Managed {
    /// SIGKILLs the process and its group. Only while it is unreaped: its
    /// pid, and so its group's id, cannot have been reused then.
    fn kill(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let _ = self.child.start_kill();
    }
}

/// The VMM (index 0 once spawned) and the helpers it needs.
pub struct ProcessSet {
    log_dir: PathBuf,
    /// Who `RunsAs::VmmUser` processes become; `None` when the shim is not root.
    user: Option<VmmUser>,
    vmm: Option<Managed>,
    helpers: Vec<Managed>,
}

/// Which process ended first, and how.
pub enum FirstExit {
    Vmm(ExitStatus),
    Helper {
        name: String,
        status: ExitStatus,
        log: String,
    },
}

impl ProcessSet {
    pub fn new(log_dir: &Path, user: Option<VmmUser>) -> Self {
        ProcessSet {
            log_dir: log_dir.to_path_buf(),
            user,
            vmm: None,
            helpers: Vec::new(),
        }
    }

    fn spawn(&self, name: &str, mut cmd: std::process::Command, runs_as: RunsAs) -> Result<Managed, VmError> {
        let log = self.log_dir.join(format!("{name}.log"));
        let out = File::create(&log).map_err(|e| VmError::io("create log", &log, e))?;
        let err = out.try_clone().map_err(|e| VmError::io("create log", &log, e))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        if let (RunsAs::VmmUser, Some(user)) = (runs_as, &self.user) {
            user.drop_in_child(&mut cmd);
        }
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe calls (umask, prctl, getppid, _exit). It runs
        // after any privilege drop: a credential change clears PDEATHSIG.
        unsafe {
            cmd.pre_exec(move || {
                // Sockets and logs the process creates are its own alone.
                libc::umask(0o077);
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        cmd.process_group(0);
        let child = tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| VmError::Spawn {
                process: name.to_string(),
                source,
            })?;
        Ok(Managed {
            name: name.to_string(),
            child,
            log,
        })
    }

    /// Spawns a helper the VMM depends on; returns its index.
    pub fn spawn_helper(&mut self, name: &str, cmd: std::process::Command, runs_as: RunsAs) -> Result<usize, VmError> {
        let managed = self.spawn(name, cmd, runs_as)?;
        self.helpers.push(managed);
        Ok(self.helpers.len() - 1)
    }

    /// Spawns the VMM itself; returns its pid.
    pub fn spawn_vmm(&mut self, name: &str, cmd: std::process::Command, runs_as: RunsAs) -> Result<u32, VmError> {
        let managed = self.spawn(name, cmd, runs_as)?;
        let pid = managed.child.id().unwrap_or(0);
        self.vmm = Some(managed);
        Ok(pid)
    }

    /// Who `RunsAs::VmmUser` processes run as, if the shim drops to anyone.
    pub fn vmm_user(&self) -> Option<&VmmUser> {
        self.user.as_ref()
    }

    pub fn vmm_pid(&self) -> Option<u32> {
        self.vmm.as_ref().and_then(|m| m.child.id())
    }

    /// Waits until helper `index` listens on `socket`, failing early if it
    /// exits. The file appears at bind(), before listen(): a VMM connecting
    /// in between is refused, so the listening state itself is checked.
    pub async fn wait_for_socket(&mut self, index: usize, socket: &Path, timeout: Duration) -> Result<(), VmError> {
        let start = Instant::now();
        let helper = &mut self.helpers[index];
        loop {
            if socket.exists() && listening(socket) {
                return Ok(());
            }
            if let Ok(Some(status)) = helper.child.try_wait() {
                return Err(VmError::HelperDied {
                    process: helper.name.clone(),
                    status: status.to_string(),
                    log: tail(&helper.log, 10),
                });
            }
            if start.elapsed() > timeout {
                return Err(VmError::HelperTimeout {
                    process: helper.name.clone(),
                    socket: socket.to_path_buf(),
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Resolves when the VMM or any helper exits.
    pub async fn first_exit(&mut self) -> FirstExit {
        type Wait<'a> = Pin<Box<dyn Future<Output = (Option<usize>, std::io::Result<ExitStatus>)> + Send + 'a>>;
        let ProcessSet { vmm, helpers, .. } = self;
        let mut waits: Vec<Wait<'_>> = Vec::new();
        if let Some(vmm) = vmm.as_mut() {
            waits.push(Box::pin(async move { (None, vmm.child.wait().await) }));
        }
        for (i, h) in helpers.iter_mut().enumerate() {
            waits.push(Box::pin(async move { (Some(i), h.child.wait().await) }));
        }
        if waits.is_empty() {
            return std::future::pending().await;
        }
        let ((which, status), _, _) = select_all(waits).await;
        // A failed wait means the child is gone; report it as killed.
        let status = status.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(libc::SIGKILL));
        match which {
            None => FirstExit::Vmm(status),
            Some(i) => FirstExit::Helper {
                name: self.helpers[i].name.clone(),
                status,
                log: tail(&self.helpers[i].log, 10),
            },
        }
    }

    /// Waits for the VMM to exit.
    pub async fn wait_vmm(&mut self) -> ExitStatus {
        let vmm = self.vmm.as_mut().expect("wait_vmm before spawn_vmm");
        vmm.child
            .wait()
            .await
            .unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(libc::SIGKILL))
    }

    /// SIGKILLs the VMM and waits for it.
    pub async fn kill_vmm(&mut self) -> ExitStatus {
        let vmm = self.vmm.as_mut().expect("kill_vmm before spawn_vmm");
        vmm.kill();
        vmm.child
            .wait()
            .await
            .unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(libc::SIGKILL))
    }

    /// The tail of the VMM's own output (QEMU's errors, for instance).
    pub fn vmm_log(&self) -> String {
        self.vmm.as_ref().map(|m| tail(&m.log, 10)).unwrap_or_default()
    }

    /// Kills and reaps every process still running.
    pub async fn kill_all(&mut self) {
        for m in self.vmm.iter_mut().chain(self.helpers.iter_mut()) {
            m.kill();
        }
        for m in self.vmm.iter_mut().chain(self.helpers.iter_mut()) {
            let _ = m.child.wait().await;
        }
    }
}

/// `__SO_ACCEPTCON` in /proc/net/unix's Flags column: a listening socket.
const ACCEPTCON: u32 = 1 << 16;

/// Whether a unix socket bound at `path` is listening. Probing with
/// connect() would not do: a vhost-user backend takes its first connection
/// as its frontend.
fn listening(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    is_listening(&table, &path.to_string_lossy())
}

fn is_listening(table: &str, path: &str) -> bool {
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() >= 8
            && fields[7..].join(" ") == path
            && u32::from_str_radix(fields[3], 16).is_ok_and(|flags| flags & ACCEPTCON != 0)
    })
}

#[cfg(test)]
mod listening_tests {
    use super::*;

    #[test]
    fn a_bound_socket_is_not_listening_until_listen() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
                     0000000000000000: 00000002 00000000 00000000 0001 01 101 /run/a.sock\n\
                     0000000000000000: 00000002 00000000 00010000 0001 01 102 /run/b.sock\n";
        assert!(!is_listening(table, "/run/a.sock"));
        assert!(is_listening(table, "/run/b.sock"));
        assert!(!is_listening(table, "/run/c.sock"));
    }

    #[test]
    fn sees_a_real_listener() {
        let dir = std::env::temp_dir().join(format!("voidbox-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(listening(&path));
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
