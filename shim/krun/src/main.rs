//! voidbox-krun: the VMM process of the libkrun backend.
//!
//!   voidbox-krun PLAN.json            configure libkrun and run the VM
//!   voidbox-krun --check PLAN.json    configure only: every call up to
//!                                     krun_start_enter, then exit 0
//!
//! The shim starts it with PR_SET_PDEATHSIG, so it dies with the shim. The
//! orderly shutdown is vminitd's, over TTRPC, as under QEMU: the guest's
//! reset ends this process.

use std::ffi::CString;
use std::ptr;

use voidbox_shim::vm::libkrun::plan::{configure, KrunApi, KrunPlan};

/// The real library.
struct Libkrun;

fn opt(c: Option<&CString>) -> *const libc::c_char {
    c.map_or(ptr::null(), |c| c.as_ptr())
}

// SAFETY (every unsafe call below): libkrun reads the C strings during the
// call only, and each CString outlives the call.
impl KrunApi for Libkrun {
    fn create_ctx(&mut self) -> i32 {
        krun::krun_create_ctx()
    }
    fn set_vm_config(&mut self, ctx: u32, vcpus: u8, memory_mib: u32) -> i32 {
        krun::krun_set_vm_config(ctx, vcpus, memory_mib)
    }
    fn set_kernel(
        &mut self,
        ctx: u32,
        kernel: &CString,
        format: u32,
        initramfs: Option<&CString>,
        cmdline: &CString,
    ) -> i32 {
        unsafe { krun::krun_set_kernel(ctx, kernel.as_ptr(), format, opt(initramfs), cmdline.as_ptr()) }
    }
    fn add_disk(&mut self, ctx: u32, block_id: &CString, path: &CString, read_only: bool) -> i32 {
        unsafe { krun::krun_add_disk(ctx, block_id.as_ptr(), path.as_ptr(), read_only) }
    }
    fn disable_implicit_vsock(&mut self, ctx: u32) -> i32 {
        krun::krun_disable_implicit_vsock(ctx)
    }
    fn add_vsock(&mut self, ctx: u32, tsi_features: u32) -> i32 {
        krun::krun_add_vsock(ctx, tsi_features)
    }
    fn add_vsock_port2(&mut self, ctx: u32, port: u32, path: &CString, listen: bool) -> i32 {
        unsafe { krun::krun_add_vsock_port2(ctx, port, path.as_ptr(), listen) }
    }
    fn add_virtiofs(&mut self, ctx: u32, tag: &CString, path: &CString) -> i32 {
        unsafe { krun::krun_add_virtiofs(ctx, tag.as_ptr(), path.as_ptr()) }
    }
    fn add_net_tap(&mut self, ctx: u32, tap: &CString, mac: &[u8; 6]) -> i32 {
        // No offload features, no DHCP: the guest takes the pod's address
        // from vminitd, and a plain tap needs no vnet header agreement.
        unsafe { krun::krun_add_net_tap(ctx, tap.as_ptr(), mac.as_ptr(), 0, 0) }
    }
    fn set_console_output(&mut self, ctx: u32, path: &CString) -> i32 {
        unsafe { krun::krun_set_console_output(ctx, path.as_ptr()) }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("voidbox-krun: {msg}");
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (check, path) = match args.as_slice() {
        [flag, path] if flag == "--check" => (true, path),
        [path] => (false, path),
        _ => fail("usage: voidbox-krun [--check] PLAN.json"),
    };
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| fail(&format!("read {path}: {e}")));
    let plan: KrunPlan = serde_json::from_str(&text).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    let configured = configure(&mut Libkrun, &plan).unwrap_or_else(|e| fail(&e.to_string()));
    if check {
        println!("voidbox-krun: configured; every libkrun call succeeded (stopped before krun_start_enter)");
        return;
    }
    // Returns only if the VM could not start; the process ends with the VM.
    let ret = krun::krun_start_enter(configured.ctx);
    fail(&format!(
        "krun_start_enter failed: {}",
        std::io::Error::from_raw_os_error(-ret)
    ))
}
