//! The libkrun backend: libkrun's VMM in a process of its own
//! (`voidbox-krun`), since `krun_start_enter` takes over its thread and
//! ends the process when the guest stops. libkrun needs hardware KVM.
//!
//! The guest is the same as under QEMU: the project's ELF kernel
//! (`krun_set_kernel`), the erofs root as a read-only virtio-blk disk, vsock
//! ports mapped to the same unix sockets, virtio-fs built in. The guest
//! learns its backend from `voidbox.backend=libkrun` on the command line.

pub mod plan;

use std::process::Command;

use async_trait::async_trait;

use super::{kvm, Backend, Confinement, GuestRoot, ProcessSet, RunsAs, VmConfig, VmError};
use crate::assets::{Tool, LIBEXEC_DIR};
use plan::KrunPlan;

pub const VOIDBOX_KRUN: Tool = Tool {
    name: "voidbox-krun",
    env: "VOIDBOX_KRUN",
    dirs: &[LIBEXEC_DIR],
    fix: "build it with `cargo build -p voidbox-krun` and `make install`, or set VOIDBOX_KRUN",
};

/// libkrun's console is virtio-console; `reboot=k` makes vminitd's reset
/// end the VMM through libkrun's i8042 emulation.
pub const BASE_CMDLINE: &str = "console=hvc0 reboot=k panic=-1 quiet";

#[derive(Default)]
pub struct Libkrun;

impl Libkrun {
    pub fn plan(&self, config: &VmConfig) -> Result<KrunPlan, VmError> {
        let (initramfs, root_disk) = match &config.root {
            GuestRoot::Initramfs(p) => (Some(p.clone()), None),
            GuestRoot::Erofs(p) => (None, Some(p.clone())),
        };
        Ok(KrunPlan {
            vcpus: u8::try_from(config.vcpus)
                .map_err(|_| VmError::Invalid(format!("{} vCPUs: libkrun takes at most 255", config.vcpus)))?,
            memory_mib: config.memory_mib,
            kernel: config.kernel.clone(),
            initramfs,
            root_disk,
            cmdline: self.cmdline(config),
            vsock_ports: config.vsock_ports.iter().map(|&p| (p, config.vsock_path(p))).collect(),
            shares: config
                .shares
                .iter()
                .map(|s| (s.tag.clone(), s.host_path.clone()))
                .collect(),
            net: config.network.as_ref().map(|n| plan::KrunNet {
                tap: n.tap.clone(),
                mac: parse_mac(&n.mac),
            }),
            console: config.console_log(),
        })
    }
}

/// `02:11:22:33:44:55` as bytes (the config's MAC came from a parsed one).
fn parse_mac(mac: &str) -> [u8; 6] {
    mac.parse::<crate::net::MacAddr>().map(|m| m.0).unwrap_or_default()
}

#[async_trait]
impl Backend for Libkrun {
    fn name(&self) -> &'static str {
        "libkrun"
    }

    fn vmm(&self) -> &'static Tool {
        &VOIDBOX_KRUN
    }

    fn preflight(&self) -> Result<(), VmError> {
        kvm::hardware_kvm().map_err(|why| VmError::NoKvm(format!("the libkrun backend needs hardware KVM: {why}")))?;
        VOIDBOX_KRUN.locate()?;
        Ok(())
    }

    fn cmdline(&self, config: &VmConfig) -> String {
        format!("{BASE_CMDLINE} voidbox.backend=libkrun {}", config.common_cmdline())
    }

    fn confinement(&self, _config: &VmConfig) -> Vec<Confinement> {
        // Devices, virtio-fs included, run inside the VMM's own process.
        // Its virtio-fs serves files of every owner and opens the pod's tap
        // by name, so the process keeps root; libkrun has no seccomp filter
        // of its own (docs/security.md).
        vec![Confinement {
            program: VOIDBOX_KRUN.name,
            runs_as: RunsAs::Root,
            seccomp: false,
            reduced_caps: false,
        }]
    }

    async fn spawn(&self, config: &VmConfig, procs: &mut ProcessSet) -> Result<(), VmError> {
        let plan = self.plan(config)?;
        let path = config.state_dir.join("krun.json");
        let json = serde_json::to_vec_pretty(&plan).map_err(|e| VmError::Invalid(e.to_string()))?;
        std::fs::write(&path, json).map_err(|e| VmError::io("write", &path, e))?;
        let mut vmm = Command::new(VOIDBOX_KRUN.locate()?);
        vmm.arg(&path);
        if let Some(net) = &config.network {
            // libkrun opens the pod's tap by name: only inside its namespace.
            crate::net::netns::enter_in_child(&mut vmm, &net.netns)?;
        }
        procs.spawn_vmm("libkrun", vmm, RunsAs::Root)?;
        Ok(())
    }
}
