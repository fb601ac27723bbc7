//! Micro-VMs: a backend trait that QEMU and libkrun both fit, and the
//! machinery every backend shares (processes, sockets, console, exits).

mod config;
pub mod confine;
mod console;
mod error;
mod exit;
pub mod kvm;
pub mod libkrun;
mod machine;
mod monitor;
mod process;
pub mod qemu;
pub mod select;
mod tsc;

pub use config::{GuestRoot, Share, VmConfig, VmNetwork, MAX_UNIX_PATH, NO_UP_PATCHING};
pub use confine::{Confinement, RunsAs};
pub use error::VmError;
pub use exit::VmExit;
pub use machine::MicroVm;
pub use monitor::{MonitorError, Release};
pub use process::ProcessSet;

use std::path::PathBuf;

use async_trait::async_trait;

use crate::assets::Tool;

/// A way of running a VM. A backend only starts processes; [`MicroVm`] owns
/// the sockets, the state directory and the lifetime of what was started.
///
/// The contract each backend honours:
/// - a guest connection to host vsock port P arrives at `config.vsock_path(P)`,
///   a unix socket the caller has bound before `spawn`;
/// - each [`Share`] is visible to the guest as virtio-fs with its tag;
/// - the guest console goes to `config.console_log()`;
/// - a guest reset (vminitd's power-off, or a panic) ends the VMM process;
/// - every process is added to `procs`, whose first entry is the VMM, running
///   as its [`Confinement`] says.
#[async_trait]
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;

    /// The VMM's program: where it is looked for, and which variable
    /// overrides it.
    fn vmm(&self) -> &'static Tool;

    /// Checks that this host can run the backend, with an error naming the fix.
    fn preflight(&self) -> Result<(), VmError>;

    /// The kernel command line this backend boots `config` with.
    fn cmdline(&self, config: &VmConfig) -> String;

    /// The processes it runs for `config`, the VMM first, then each helper,
    /// and what each is held to: whose privileges, which seccomp state.
    /// What tests and tools expect of a running VM, whichever the backend.
    fn confinement(&self, config: &VmConfig) -> Vec<Confinement>;

    /// The programs it runs for `config`, as their command lines name them,
    /// in [`Backend::confinement`]'s order.
    fn processes(&self, config: &VmConfig) -> Vec<&'static str> {
        self.confinement(config).iter().map(|c| c.program).collect()
    }

    /// The readahead the guest kernel gives the root disk, in KiB: twice the
    /// optimal I/O size the backend's disk reports, and the kernel's 128 KiB
    /// when it reports none.
    fn root_readahead_kib(&self) -> u32 {
        128
    }

    /// The QMP socket the VMM serves for `config` when it has a translation
    /// cache to give back (QEMU under TCG, vm/monitor.rs), else None.
    fn monitor(&self, _config: &VmConfig) -> Option<PathBuf> {
        None
    }

    /// Starts the VMM (and any helpers) for a validated `config`.
    async fn spawn(&self, config: &VmConfig, procs: &mut ProcessSet) -> Result<(), VmError>;
}
