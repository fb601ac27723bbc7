//! The QEMU backend: `qemu-system-x86_64 -M microvm`, with vsock through
//! vhost-device-vsock and shares through virtiofsd (both vhost-user).
//!
//! It runs anywhere: with `-accel kvm` where hardware KVM works, otherwise
//! under TCG (software emulation).
//!
//! Confinement (docs/security.md): QEMU runs as the VMM user under its own
//! seccomp filter (`-sandbox`), with a pod's tap handed to it open;
//! vhost-device-vsock runs as the VMM user; virtiofsd keeps root for its
//! namespace sandbox, drops capabilities and installs its seccomp filter.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use async_trait::async_trait;
use tracing::info;

use super::confine::own_socket;
use super::{kvm, Backend, Confinement, GuestRoot, ProcessSet, RunsAs, VmConfig, VmError};
use crate::assets::{Tool, LIBEXEC_DIR};

const HELPER_SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// QEMU's seccomp filter with every optional class denied: obsolete system
/// calls, set*uid/gid, fork and exec, and scheduler and affinity changes.
/// QEMU 7.2's `-runas` calls setgid after the filter is in place, which
/// `elevateprivileges=deny` kills it for: the privileges are dropped before
/// exec instead (vm/confine.rs).
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// Kernel arguments of every QEMU guest. reboot=t: vminitd's power-off resets
/// the machine with a triple fault, and -no-reboot turns the reset into
/// QEMU's exit; panic=-1 does the same for a panic.
pub const BASE_CMDLINE: &str = "console=ttyS0 reboot=t panic=-1 quiet 8250.nr_uarts=1";

/// QEMU's QMP socket in the state directory.
const QMP_SOCKET: &str = "qmp.sock";

/// voidbox's build (hack/build-qemu.sh, which `make install` puts in the
/// libexec directory) where installed, else the system's.
pub const QEMU: Tool = Tool {
    name: "qemu-system-x86_64",
    env: "VOIDBOX_QEMU",
    dirs: &[LIBEXEC_DIR],
    fix: "run `make install`, or install QEMU (apt-get install qemu-system-x86), or set VOIDBOX_QEMU",
};

pub const VHOST_VSOCK: Tool = Tool {
    name: "vhost-device-vsock",
    env: "VOIDBOX_VHOST_VSOCK",
    dirs: &[LIBEXEC_DIR],
    fix: "run `make deps` (cargo install vhost-device-vsock) and `make install`, or set VOIDBOX_VHOST_VSOCK",
};

pub const VIRTIOFSD: Tool = Tool {
    name: "virtiofsd",
    env: "VOIDBOX_VIRTIOFSD",
    dirs: &["/usr/libexec", "/usr/lib/qemu"],
    fix: "install virtiofsd (apt-get install qemu-system-common on Debian 12) or set VOIDBOX_VIRTIOFSD",
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

pub struct Qemu {
    accel: Accel,
}

impl Qemu {
    /// KVM where hardware KVM works, TCG elsewhere.
    pub fn new() -> Self {
        Self::choosing(None)
    }

    /// `accel` if given (the configuration's `VOIDBOX_ACCEL`), else as `new`.
    pub fn choosing(accel: Option<Accel>) -> Self {
        let accel = match accel {
            Some(a) => a,
            None => match kvm::hardware_kvm() {
                Ok(()) => Accel::Kvm,
                Err(why) => {
                    info!("qemu: using TCG: {why}");
                    Accel::Tcg
                }
            },
        };
        Qemu { accel }
    }

    pub fn accel(&self) -> Accel {
        self.accel
    }
}

impl Default for Qemu {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Backend for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn vmm(&self) -> &'static Tool {
        &QEMU
    }

    fn preflight(&self) -> Result<(), VmError> {
        QEMU.locate()?;
        VHOST_VSOCK.locate()?;
        VIRTIOFSD.locate()?;
        if self.accel == Accel::Kvm {
            kvm::hardware_kvm().map_err(VmError::NoKvm)?;
        }
        Ok(())
    }

    fn root_readahead_kib(&self) -> u32 {
        (2 * ROOT_OPT_IO_BYTES / 1024).max(128)
    }

    fn cmdline(&self, config: &VmConfig) -> String {
        format!(
            "{BASE_CMDLINE}{} voidbox.backend=qemu {}",
            accel_cmdline(self.accel),
            config.common_cmdline()
        )
    }

    fn confinement(&self, config: &VmConfig) -> Vec<Confinement> {
        let mut procs = vec![
            Confinement {
                program: QEMU.name,
                runs_as: RunsAs::VmmUser,
                seccomp: true,
                reduced_caps: true,
            },
            // vhost-device-vsock has no seccomp filter of its own.
            Confinement {
                program: VHOST_VSOCK.name,
                runs_as: RunsAs::VmmUser,
                seccomp: false,
                reduced_caps: true,
            },
        ];
        // virtiofsd needs root to build its sandbox (namespaces,
        // pivot_root into the share) and to serve files of every owner; it
        // then keeps only the capabilities file serving needs, under seccomp.
        procs.extend(config.shares.iter().map(|_| Confinement {
            program: VIRTIOFSD.name,
            runs_as: RunsAs::Root,
            seccomp: true,
            reduced_caps: true,
        }));
        procs
    }

    fn monitor(&self, config: &VmConfig) -> Option<PathBuf> {
        (self.accel == Accel::Tcg)
            .then(|| config.socket_path(QMP_SOCKET).ok())
            .flatten()
    }

    async fn spawn(&self, config: &VmConfig, procs: &mut ProcessSet) -> Result<(), VmError> {
        let vhost_socket = config.socket_path("vhost-vsock.sock")?;
        let uds_path = config.socket_path("vsock")?;
        let mut vsock = Command::new(VHOST_VSOCK.locate()?);
        vsock
            .arg("--guest-cid=3")
            .arg(format!("--socket={}", vhost_socket.display()))
            .arg(format!("--uds-path={}", uds_path.display()));
        let vsock_index = procs.spawn_helper("vhost-device-vsock", vsock, RunsAs::VmmUser)?;

        let virtiofsd = VIRTIOFSD.locate()?;
        let mut fs_sockets = Vec::new();
        for (i, share) in config.shares.iter().enumerate() {
            let socket = config.socket_path(&format!("fs{i}.sock"))?;
            let mut fs = Command::new(&virtiofsd);
            fs.arg(format!("--socket-path={}", socket.display()))
                .arg("-o")
                .arg(format!("source={}", share.host_path.display()))
                .arg("-o")
                .arg("cache=auto")
                // Each container's root and volumes are mounts under the
                // share: the guest sees them as mounts of their own (with
                // their own inode numbers) rather than one filesystem.
                .arg("-o")
                .arg("announce_submounts")
                // Its default, pinned: mount, pid and net namespaces, with
                // pivot_root into the share, so it sees nothing else.
                // Its seccomp filter is always on.
                .arg("-o")
                .arg("sandbox=namespace");
            let index = procs.spawn_helper(&format!("virtiofsd-{i}"), fs, RunsAs::Root)?;
            fs_sockets.push((index, socket, share.tag.clone()));
        }

        // QEMU connects to vhost-user sockets at startup: they must exist first.
        procs
            .wait_for_socket(vsock_index, &vhost_socket, HELPER_SOCKET_TIMEOUT)
            .await?;
        own_socket(&vhost_socket, procs.vmm_user())?;
        for (index, socket, _) in &fs_sockets {
            procs.wait_for_socket(*index, socket, HELPER_SOCKET_TIMEOUT).await?;
            // virtiofsd made it as root; QEMU connects as the VMM user.
            own_socket(socket, procs.vmm_user())?;
        }

        let fs: Vec<(PathBuf, String)> = fs_sockets.into_iter().map(|(_, s, t)| (s, t)).collect();
        let mut qemu = Command::new(QEMU.locate()?);
        // The child opens the pod's tap in its namespace, as root, before
        // the drop; the slot keeps the descriptor's number until the spawn.
        let tap = match &config.network {
            Some(net) => Some(crate::net::tapfd::open_in_child(&mut qemu, &net.netns, &net.tap)?),
            None => None,
        };
        let tap_fd = tap.as_ref().map(|t| t.fd());
        qemu.args(qemu_args(
            config,
            self.accel,
            &self.cmdline(config),
            &vhost_socket,
            &fs,
            tap_fd,
            self.monitor(config).as_deref(),
        ));
        procs.spawn_vmm("qemu", qemu, RunsAs::VmmUser)?;
        drop(tap);
        Ok(())
    }
}

/// Kernel parameters for the accelerator, each with a leading space. Under
/// TCG:
/// - the guest's TSC is the host's: the kernel gets its rate rather than
///   let a busy host spoil the calibration (see vm/tsc.rs);
/// - the local APIC timer is left alone: TCG's fails the kernel's
///   verification after about 200 ms of calibrating it, and the kernel then
///   ticks on the PIT anyway (docs/performance-start.md);
/// - no_timer_check: the kernel's check that the PIT's interrupt arrives
///   waits for 4 ticks against a TSC deadline (about 60 ms of host time),
///   which an emulated CPU on a busy host can miss; the kernel then panics
///   ("IO-APIC + timer doesn't work!", seen once in `make test`). A KVM
///   guest skips the check by itself (arch/x86/kernel/kvm.c).
pub fn accel_cmdline(accel: Accel) -> String {
    if accel != Accel::Tcg {
        return String::new();
    }
    let tsc = super::tsc::host_khz(std::path::Path::new(super::tsc::CACHE))
        .map(|khz| format!(" tsc_early_khz={khz} tsc=reliable"))
        .unwrap_or_default();
    format!("{tsc} noapictimer no_timer_check")
}

/// The machine every voidbox VM runs on: microvm, CPUs, memory, the kernel.
/// `make bench` boots the bare kernel on exactly this machine.
pub fn machine_args(
    accel: Accel,
    tcg_cache_mib: Option<u32>,
    vcpus: u32,
    memory_mib: u32,
    kernel: &Path,
    cmdline: &str,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-M",
        "microvm,x-option-roms=off,rtc=on,acpi=off,memory-backend=mem",
        // microvm's virtio-mmio is legacy by default; vhost-user backends
        // (virtiofsd's libvhost-user) accept only modern (virtio 1.0) devices.
        "-global",
        "virtio-mmio.force-legacy=false",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (accel, cpu) = match (accel, tcg_cache_mib) {
        (Accel::Kvm, _) => ("kvm".to_string(), "host"),
        (Accel::Tcg, None) => ("tcg".to_string(), "max"),
        // QEMU reserves 1 GiB for translated code by default; what a VM
        // touches of it is host memory (docs/performance.md).
        (Accel::Tcg, Some(mib)) => (format!("tcg,tb-size={mib}"), "max"),
    };
    a.extend(["-accel".into(), accel, "-cpu".into(), cpu.into()]);
    a.extend(["-sandbox".into(), SANDBOX.into()]);
    a.extend(["-smp".into(), vcpus.to_string(), "-m".into(), format!("{memory_mib}M")]);
    // vhost-user devices need guest memory the helpers can map.
    a.extend([
        "-object".into(),
        format!("memory-backend-memfd,id=mem,size={memory_mib}M,share=on"),
    ]);
    a.extend([
        "-kernel".into(),
        kernel.display().to_string(),
        "-append".into(),
        cmdline.into(),
    ]);
    a
}

/// The optimal I/O size the root disk reports. The guest reads ahead twice
/// that, so the first page fault in vminitd or crun reads the whole binary
/// in a few large requests instead of one 128 KiB request per fault: each
/// request costs the emulated guest far more than its bytes do
/// (docs/performance-start.md).
pub const ROOT_OPT_IO_BYTES: u32 = 4 << 20;

/// The QEMU command line for `config`.
pub fn qemu_args(
    config: &VmConfig,
    accel: Accel,
    cmdline: &str,
    vhost_vsock: &Path,
    fs: &[(PathBuf, String)],
    tap_fd: Option<RawFd>,
    monitor: Option<&Path>,
) -> Vec<String> {
    let mut a = machine_args(
        accel,
        config.tcg_cache_mib,
        config.vcpus,
        config.memory_mib,
        &config.kernel,
        cmdline,
    );
    match &config.root {
        GuestRoot::Initramfs(path) => a.extend(["-initrd".into(), path.display().to_string()]),
        GuestRoot::Erofs(path) => a.extend([
            "-drive".into(),
            format!("id=root,file={},format=raw,if=none,readonly=on", path.display()),
            "-device".into(),
            format!("virtio-blk-device,drive=root,opt_io_size={ROOT_OPT_IO_BYTES}"),
        ]),
    }
    // Entropy from the host for the guest's CRNG and hwrng.
    a.extend([
        "-object".into(),
        "rng-random,id=rng,filename=/dev/urandom".into(),
        "-device".into(),
        "virtio-rng-device,rng=rng".into(),
    ]);
    // Free page reporting: what the guest frees goes back to the host (the
    // memfd's pages are punched out), so an idle VM costs what it uses, not
    // what it once touched. libkrun's balloon reports free pages too.
    a.extend(["-device".into(), "virtio-balloon-device,free-page-reporting=on".into()]);
    a.extend([
        "-chardev".into(),
        format!("socket,id=vsock,path={}", vhost_vsock.display()),
        "-device".into(),
        "vhost-user-vsock-device,chardev=vsock".into(),
    ]);
    for (i, (socket, tag)) in fs.iter().enumerate() {
        a.extend([
            "-chardev".into(),
            format!("socket,id=fs{i},path={}", socket.display()),
            "-device".into(),
            format!("vhost-user-fs-device,chardev=fs{i},tag={tag}"),
        ]);
    }
    if let (Some(net), Some(fd)) = (&config.network, tap_fd) {
        a.extend([
            "-netdev".into(),
            format!("tap,id=net0,fd={fd}"),
            "-device".into(),
            format!("virtio-net-device,netdev=net0,mac={}", net.mac),
        ]);
    }
    // Under TCG: the shim asks over it for the translation cache back once
    // the VM goes quiet (sandbox/release.rs, vm/monitor.rs).
    if let Some(path) = monitor {
        a.extend(["-qmp".into(), format!("unix:{},server=on,wait=off", path.display())]);
    }
    a.extend([
        "-chardev".into(),
        format!("file,id=console,path={}", config.console_log().display()),
        "-serial".into(),
        "chardev:console".into(),
    ]);
    a
}

#[cfg(test)]
#[path = "qemu_tests.rs"]
mod tests;
