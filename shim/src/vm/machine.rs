//! A running micro-VM, whatever its backend: the state directory, the vsock
//! listeners, the processes and how the VM ended.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::{info, warn};

use super::confine::{own_dir, own_socket, VmmUser};
use super::console::{tail, Follower};
use super::exit::VmExit;
use super::monitor::{self, MonitorError, Release};
use super::process::{FirstExit, ProcessSet};
use super::{Backend, VmConfig, VmError};

const CONSOLE_LINES: usize = 30;
const HELPER_EXIT_GRACE: Duration = Duration::from_millis(500);
/// How often the guest console is read into the shim's log.
const CONSOLE_POLL: Duration = Duration::from_millis(200);

pub struct MicroVm {
    config: VmConfig,
    backend: &'static str,
    listeners: HashMap<u32, UnixListener>,
    exit: watch::Receiver<Option<VmExit>>,
    kill: watch::Sender<bool>,
    shutdown_requested: Arc<AtomicBool>,
    vmm_pid: u32,
    spawned_at: Instant,
    /// The VMM's QMP socket, where it has a translation cache to give back.
    monitor: Option<PathBuf>,
}

/// Removes the state directory when the VM's monitor ends, however it ends.
struct StateDir(PathBuf);

impl Drop for StateDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!("removing {}: {e}", self.0.display());
            }
        }
    }
}

impl MicroVm {
    /// Validates `config`, then starts the VM. Returns once the VMM runs;
    /// `GuestClient::connect` waits for the guest.
    pub async fn start(backend: &dyn Backend, config: VmConfig) -> Result<MicroVm, VmError> {
        backend.preflight()?;
        config.validate()?;
        let user = VmmUser::resolve()?;

        // A state directory left by a VM that died with its host process holds
        // only stale sockets and logs.
        let _ = std::fs::remove_dir_all(&config.state_dir);
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| VmError::io("create state directory", &config.state_dir, e))?;
        let state_dir = StateDir(config.state_dir.clone());
        own_dir(&config.state_dir, user.as_ref())?;

        let mut listeners = HashMap::new();
        for &port in &config.vsock_ports {
            let path = config.vsock_path(port);
            let listener = UnixListener::bind(&path).map_err(|e| VmError::io("bind vsock socket", &path, e))?;
            // The VMM (or its vsock helper) connects here for the guest.
            own_socket(&path, user.as_ref())?;
            listeners.insert(port, listener);
        }

        let spawned_at = Instant::now();
        let mut procs = ProcessSet::new(&config.state_dir, user);
        if let Err(e) = backend.spawn(&config, &mut procs).await {
            procs.kill_all().await;
            return Err(e);
        }
        let vmm_pid = procs.vmm_pid().unwrap_or(0);
        info!(vm = %config.id, backend = backend.name(), vmm_pid, "VM started");

        let (exit_tx, exit) = watch::channel(None);
        let (kill, kill_rx) = watch::channel(false);
        let shutdown_requested = Arc::new(AtomicBool::new(false));
        tokio::spawn(monitor(
            procs,
            state_dir,
            config.console_log(),
            config.id.clone(),
            kill_rx,
            shutdown_requested.clone(),
            exit_tx,
        ));

        Ok(MicroVm {
            monitor: backend.monitor(&config),
            config,
            backend: backend.name(),
            listeners,
            exit,
            kill,
            shutdown_requested,
            vmm_pid,
            spawned_at,
        })
    }

    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    pub fn backend(&self) -> &'static str {
        self.backend
    }

    pub fn vmm_pid(&self) -> u32 {
        self.vmm_pid
    }

    /// Whether the VMM translates code and can be asked to give the cache
    /// back (QEMU under TCG).
    pub fn has_translation_cache(&self) -> bool {
        self.monitor.is_some()
    }

    /// Asks the VMM to drop its translated code and give the memory back
    /// (QEMU under TCG); None where there is none to give back.
    pub async fn release_translations(&self) -> Option<Result<Release, MonitorError>> {
        let path = self.monitor.as_ref()?;
        Some(monitor::release_translations(path).await)
    }

    /// The CPU time the VMM process has used, all its threads; None once it
    /// is gone.
    pub fn vmm_cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.vmm_pid)).ok()?;
        // After the parenthesised command: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
        Some(Duration::from_secs_f64(ticks as f64 / per_sec as f64))
    }

    /// When the VMM process was spawned.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// The next guest connection to host port `port`, or how the VM ended first.
    pub async fn accept(&self, port: u32) -> Result<UnixStream, VmError> {
        let listener = self
            .listeners
            .get(&port)
            .ok_or_else(|| VmError::Invalid(format!("vsock port {port} is not in the VM's port list")))?;
        tokio::select! {
            accepted = listener.accept() => accepted
                .map(|(stream, _)| stream)
                .map_err(|e| VmError::io("accept on", self.config.vsock_path(port), e)),
            exit = self.wait() => Err(VmError::EndedBeforeReady { exit }),
        }
    }

    /// Waits, within the configured ready timeout, for the guest's first
    /// connection to host port `port` (vminitd dialing in).
    pub async fn accept_ready(&self, port: u32) -> Result<UnixStream, VmError> {
        let timeout = self.config.ready_timeout;
        match tokio::time::timeout(timeout, self.accept(port)).await {
            Ok(stream) => stream,
            Err(_) => Err(VmError::ReadyTimeout {
                timeout,
                console: tail(&self.config.console_log(), CONSOLE_LINES),
            }),
        }
    }

    /// The host is about to ask the guest to power off: its exit is then a
    /// shutdown, not a guest reset.
    pub fn expect_shutdown(&self) {
        self.shutdown_requested.store(true, Ordering::SeqCst);
    }

    /// Waits up to `grace` for the VM to end; kills it after that.
    pub async fn wait_or_kill(&self, grace: Duration) -> VmExit {
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                warn!(vm = %self.config.id, "guest did not power off within {grace:?}; killing the VMM");
                self.kill().await
            }
        }
    }

    /// Kills the VMM and its helpers now.
    pub async fn kill(&self) -> VmExit {
        let _ = self.kill.send(true);
        self.wait().await
    }

    /// Resolves when the VM has ended and everything it started is gone.
    pub async fn wait(&self) -> VmExit {
        let mut exit = self.exit.clone();
        let result = exit.wait_for(Option::is_some).await.map(|v| v.clone());
        match result {
            Ok(v) => v.expect("checked by wait_for"),
            // The monitor ended without reporting: its runtime is shutting down.
            Err(_) => VmExit::Killed { signal: libc::SIGKILL },
        }
    }

    /// How the VM ended, if it has.
    pub fn try_exit(&self) -> Option<VmExit> {
        self.exit.borrow().clone()
    }
}

impl Drop for MicroVm {
    fn drop(&mut self) {
        // The monitor kills whatever still runs and removes the state directory.
        let _ = self.kill.send(true);
    }
}

/// Owns the VM's processes until they are all gone, then reports the exit.
async fn monitor(
    mut procs: ProcessSet,
    state_dir: StateDir,
    console_log: PathBuf,
    id: String,
    mut kill: watch::Receiver<bool>,
    requested: Arc<AtomicBool>,
    exit_tx: watch::Sender<Option<VmExit>>,
) {
    // The guest console goes to the shim's log as it comes, line by line.
    let mut console = Follower::new(&console_log);
    let mut tick = tokio::time::interval(CONSOLE_POLL);
    let log_console = |console: &mut Follower, flush: bool| {
        for line in console.drain(flush) {
            info!(target: "voidbox::guest", "[vm:{id}] {line}");
        }
    };
    let killed = loop {
        tokio::select! {
            first = procs.first_exit() => break Some(first),
            _ = kill.wait_for(|k| *k) => break None,
            _ = tick.tick() => log_console(&mut console, false),
        }
    };
    let first = match killed {
        // vhost-user helpers quit when the VMM disconnects, so a helper exit
        // may just be the VMM ending: give the VMM a moment to be seen first.
        Some(FirstExit::Helper { name, status, log }) => {
            match tokio::time::timeout(HELPER_EXIT_GRACE, procs.wait_vmm()).await {
                Ok(vmm_status) => FirstExit::Vmm(vmm_status),
                Err(_) => FirstExit::Helper { name, status, log },
            }
        }
        Some(first) => first,
        None => FirstExit::Vmm(procs.kill_vmm().await),
    };
    let exit = match first {
        FirstExit::Vmm(status) => {
            let console = tail(&console_log, CONSOLE_LINES);
            VmExit::classify(status, requested.load(Ordering::SeqCst), &console, &procs.vmm_log())
        }
        FirstExit::Helper { name, status, log } => {
            warn!(vm = %id, "{name} exited ({status}); stopping the VM: {log}");
            VmExit::HelperFailed {
                process: name,
                status: status.to_string(),
                log,
            }
        }
    };
    procs.kill_all().await;
    log_console(&mut console, true);
    drop(state_dir);
    info!(vm = %id, "VM ended: {exit}");
    let _ = exit_tx.send(Some(exit));
}
