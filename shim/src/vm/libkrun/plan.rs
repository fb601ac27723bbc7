//! What the libkrun VMM process does, as data and as a call sequence.
//!
//! The shim writes a `KrunPlan` (JSON) and starts `voidbox-krun`, which
//! replays it through [`configure`] against the real library, then calls
//! `krun_start_enter`. Keeping the sequence here, behind [`KrunApi`], lets
//! unit tests check every call and argument without hardware KVM.

use std::ffi::CString;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `krun_set_kernel` format: an ELF vmlinux.
pub const KERNEL_FORMAT_ELF: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KrunPlan {
    pub vcpus: u8,
    pub memory_mib: u32,
    pub kernel: PathBuf,
    pub initramfs: Option<PathBuf>,
    /// The erofs root, attached read-only as the first virtio-blk disk.
    pub root_disk: Option<PathBuf>,
    pub cmdline: String,
    /// Guest connections to host port P arrive at the socket.
    pub vsock_ports: Vec<(u32, PathBuf)>,
    /// virtio-fs (tag, host directory).
    pub shares: Vec<(String, PathBuf)>,
    /// A NIC on a tap of the pod's network namespace (the process runs in it).
    #[serde(default)]
    pub net: Option<KrunNet>,
    pub console: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KrunNet {
    pub tap: String,
    pub mac: [u8; 6],
}

/// The libkrun calls the VMM makes, as libkrun defines them (0 or a
/// negative errno).
pub trait KrunApi {
    fn create_ctx(&mut self) -> i32;
    fn set_vm_config(&mut self, ctx: u32, vcpus: u8, memory_mib: u32) -> i32;
    fn set_kernel(
        &mut self,
        ctx: u32,
        kernel: &CString,
        format: u32,
        initramfs: Option<&CString>,
        cmdline: &CString,
    ) -> i32;
    fn add_disk(&mut self, ctx: u32, block_id: &CString, path: &CString, read_only: bool) -> i32;
    fn disable_implicit_vsock(&mut self, ctx: u32) -> i32;
    fn add_vsock(&mut self, ctx: u32, tsi_features: u32) -> i32;
    fn add_vsock_port2(&mut self, ctx: u32, port: u32, path: &CString, listen: bool) -> i32;
    fn add_virtiofs(&mut self, ctx: u32, tag: &CString, path: &CString) -> i32;
    fn add_net_tap(&mut self, ctx: u32, tap: &CString, mac: &[u8; 6]) -> i32;
    fn set_console_output(&mut self, ctx: u32, path: &CString) -> i32;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KrunError {
    #[error("{call} failed: {}", std::io::Error::from_raw_os_error(-errno))]
    Call { call: &'static str, errno: i32 },
    #[error("{0} contains a NUL byte")]
    Nul(String),
}

fn c(s: impl AsRef<std::ffi::OsStr>) -> Result<CString, KrunError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = s.as_ref().as_bytes();
    CString::new(bytes).map_err(|_| KrunError::Nul(String::from_utf8_lossy(bytes).into_owned()))
}

fn check(call: &'static str, ret: i32) -> Result<i32, KrunError> {
    if ret < 0 {
        Err(KrunError::Call { call, errno: ret })
    } else {
        Ok(ret)
    }
}

/// A configured context, ready for `krun_start_enter`. (The orderly
/// shutdown is vminitd's `System.Shutdown`, as under QEMU: libkrun 1.19 has
/// `krun_get_shutdown_eventfd` on macOS/aarch64 only.)
pub struct Configured {
    pub ctx: u32,
}

/// Makes every call the plan needs, in order; stops at the first failure.
pub fn configure(api: &mut impl KrunApi, plan: &KrunPlan) -> Result<Configured, KrunError> {
    let ctx = check("krun_create_ctx", api.create_ctx())? as u32;
    check(
        "krun_set_vm_config",
        api.set_vm_config(ctx, plan.vcpus, plan.memory_mib),
    )?;
    let initramfs = plan.initramfs.as_ref().map(c).transpose()?;
    check(
        "krun_set_kernel",
        api.set_kernel(
            ctx,
            &c(&plan.kernel)?,
            KERNEL_FORMAT_ELF,
            initramfs.as_ref(),
            &c(&plan.cmdline)?,
        ),
    )?;
    if let Some(disk) = &plan.root_disk {
        check("krun_add_disk", api.add_disk(ctx, &c("root")?, &c(disk)?, true))?;
    }
    // A plain vsock device: no TSI (it needs libkrun's own kernel patches).
    check("krun_disable_implicit_vsock", api.disable_implicit_vsock(ctx))?;
    check("krun_add_vsock", api.add_vsock(ctx, 0))?;
    for (port, path) in &plan.vsock_ports {
        // listen=false: the guest connects out, to a socket the host listens on.
        check(
            "krun_add_vsock_port2",
            api.add_vsock_port2(ctx, *port, &c(path)?, false),
        )?;
    }
    for (tag, path) in &plan.shares {
        check("krun_add_virtiofs", api.add_virtiofs(ctx, &c(tag)?, &c(path)?))?;
    }
    if let Some(net) = &plan.net {
        check("krun_add_net_tap", api.add_net_tap(ctx, &c(&net.tap)?, &net.mac))?;
    }
    check(
        "krun_set_console_output",
        api.set_console_output(ctx, &c(&plan.console)?),
    )?;
    Ok(Configured { ctx })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every call with its arguments.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        fail: Option<&'static str>,
    }

    impl Recorder {
        fn ret(&mut self, name: &'static str, call: String) -> i32 {
            self.calls.push(call);
            if self.fail == Some(name) {
                -libc::EINVAL
            } else {
                0
            }
        }
    }

    fn s(c: &CString) -> String {
        c.to_string_lossy().into_owned()
    }

    impl KrunApi for Recorder {
        fn create_ctx(&mut self) -> i32 {
            self.calls.push("create_ctx".into());
            7
        }
        fn set_vm_config(&mut self, ctx: u32, vcpus: u8, mem: u32) -> i32 {
            self.ret("set_vm_config", format!("set_vm_config({ctx}, {vcpus}, {mem})"))
        }
        fn set_kernel(&mut self, ctx: u32, k: &CString, f: u32, i: Option<&CString>, cmd: &CString) -> i32 {
            let i = i.map(s).unwrap_or_else(|| "NULL".into());
            self.ret(
                "set_kernel",
                format!("set_kernel({ctx}, {}, {f}, {i}, {})", s(k), s(cmd)),
            )
        }
        fn add_disk(&mut self, ctx: u32, id: &CString, p: &CString, ro: bool) -> i32 {
            self.ret("add_disk", format!("add_disk({ctx}, {}, {}, {ro})", s(id), s(p)))
        }
        fn disable_implicit_vsock(&mut self, ctx: u32) -> i32 {
            self.ret("disable_implicit_vsock", format!("disable_implicit_vsock({ctx})"))
        }
        fn add_vsock(&mut self, ctx: u32, tsi: u32) -> i32 {
            self.ret("add_vsock", format!("add_vsock({ctx}, {tsi})"))
        }
        fn add_vsock_port2(&mut self, ctx: u32, port: u32, p: &CString, listen: bool) -> i32 {
            self.ret(
                "add_vsock_port2",
                format!("add_vsock_port2({ctx}, {port}, {}, {listen})", s(p)),
            )
        }
        fn add_virtiofs(&mut self, ctx: u32, tag: &CString, p: &CString) -> i32 {
            self.ret("add_virtiofs", format!("add_virtiofs({ctx}, {}, {})", s(tag), s(p)))
        }
        fn add_net_tap(&mut self, ctx: u32, tap: &CString, mac: &[u8; 6]) -> i32 {
            self.ret("add_net_tap", format!("add_net_tap({ctx}, {}, {mac:02x?})", s(tap)))
        }
        fn set_console_output(&mut self, ctx: u32, p: &CString) -> i32 {
            self.ret("set_console_output", format!("set_console_output({ctx}, {})", s(p)))
        }
    }

    fn plan() -> KrunPlan {
        KrunPlan {
            vcpus: 2,
            memory_mib: 512,
            kernel: "/k/vmlinux".into(),
            initramfs: None,
            root_disk: Some("/k/guest.erofs".into()),
            cmdline: "console=hvc0 reboot=k".into(),
            vsock_ports: vec![(1024, "/s/vsock_1024".into()), (1025, "/s/vsock_1025".into())],
            shares: vec![("rootfs".into(), "/b/rootfs".into())],
            net: Some(KrunNet {
                tap: "vbtap0".into(),
                mac: [2, 0x11, 0x22, 0x33, 0x44, 0x55],
            }),
            console: "/s/console.log".into(),
        }
    }

    #[test]
    fn every_call_with_its_arguments_in_order() {
        let mut r = Recorder::default();
        let done = configure(&mut r, &plan()).unwrap();
        assert_eq!(done.ctx, 7);
        assert_eq!(
            r.calls,
            [
                "create_ctx",
                "set_vm_config(7, 2, 512)",
                "set_kernel(7, /k/vmlinux, 1, NULL, console=hvc0 reboot=k)",
                "add_disk(7, root, /k/guest.erofs, true)",
                "disable_implicit_vsock(7)",
                "add_vsock(7, 0)",
                "add_vsock_port2(7, 1024, /s/vsock_1024, false)",
                "add_vsock_port2(7, 1025, /s/vsock_1025, false)",
                "add_virtiofs(7, rootfs, /b/rootfs)",
                "add_net_tap(7, vbtap0, [02, 11, 22, 33, 44, 55])",
                "set_console_output(7, /s/console.log)",
            ]
        );
    }

    #[test]
    fn a_failing_call_stops_the_sequence_and_is_named() {
        let mut r = Recorder {
            fail: Some("add_virtiofs"),
            ..Default::default()
        };
        let err = configure(&mut r, &plan()).err().unwrap();
        assert_eq!(
            err,
            KrunError::Call {
                call: "krun_add_virtiofs",
                errno: -libc::EINVAL
            }
        );
        assert!(
            err.to_string()
                .starts_with("krun_add_virtiofs failed: Invalid argument"),
            "{err}"
        );
        assert!(!r.calls.iter().any(|c| c.starts_with("set_console_output")));
    }

    #[test]
    fn plans_round_trip_through_json() {
        let p = plan();
        assert_eq!(
            serde_json::from_str::<KrunPlan>(&serde_json::to_string(&p).unwrap()).unwrap(),
            p
        );
    }
}
