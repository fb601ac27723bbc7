//! A hostile guest: booted instead of vminitd (`init=/hostile-init`) in the
//! test image only, it does what a compromised guest could, chosen by
//! `voidbox.hostile=MODE` on the kernel command line:
//! - `garbage`: answers the host's first RPC with a TTRPC frame header
//!   claiming a 4 GiB message, then junk;
//! - `silent`: takes the host's RPCs and never answers;
//! - `flood`: opens hundreds of stdio connections with unknown stream ids and
//!   floods them, while never answering an RPC;
//! - `mute`: never dials the host, so the host's wait for it runs out;
//! - `exit`: powers the VM off in the middle of the host's first RPC;
//! - `lies`: boots like vminitd, then lies in well-formed messages
//!   (`lies.rs`).

mod lies;

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::time::Duration;

const HOST_CID: u32 = 2;
const TTRPC_PORT: u32 = 1024;
const STDIO_PORT: u32 = 1025;

fn log(msg: &str) {
    let _ = writeln!(std::io::stderr(), "hostile-init: {msg}");
}

/// A vsock stream to the host's `port`, if the host takes it.
fn dial(port: u32) -> Option<std::fs::File> {
    // SAFETY: plain socket(2); the descriptor is owned by the File below.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: an all-zero sockaddr_vm is valid; the fields are set below.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_cid = HOST_CID;
    addr.svm_port = port;
    // SAFETY: addr is a sockaddr_vm of the length passed, alive for the call.
    let r = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_vm).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    };
    // SAFETY: fd is ours and open; the File closes it.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    (r == 0).then_some(file)
}

/// The host's TTRPC connection: it accepts the first one as the guest's.
fn dial_ttrpc() -> std::fs::File {
    loop {
        if let Some(f) = dial(TTRPC_PORT) {
            return f;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mode() -> String {
    // SAFETY: mount(2) with static C strings; /proc exists in the image.
    unsafe {
        libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            0,
            std::ptr::null(),
        );
    }
    std::fs::read_to_string("/proc/cmdline")
        .unwrap_or_default()
        .split_whitespace()
        .find_map(|a| a.strip_prefix("voidbox.hostile="))
        .unwrap_or("silent")
        .to_string()
}

/// Ends the VM as vminitd does: a reset, which ends the VMM (`-no-reboot`;
/// the microvm machine has no ACPI to power off with).
fn power_off() -> ! {
    // SAFETY: reboot takes no pointers and does not return on success.
    unsafe {
        libc::reboot(libc::RB_AUTOBOOT);
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn main() {
    let mode = mode();
    log(&format!("mode {mode}"));
    match mode.as_str() {
        "garbage" => {
            let mut host = dial_ttrpc();
            let mut request = [0u8; 10];
            let _ = host.read(&mut request);
            // A response header for stream 1 whose length is 4 GiB - 1.
            let mut frame = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 2, 0];
            frame.extend(std::iter::repeat_n(0xa5u8, 64 << 10));
            let _ = host.write_all(&frame);
            forever()
        }
        "flood" => {
            let _host = dial_ttrpc();
            let junk = vec![0x5au8; 64 << 10];
            let mut held = Vec::new();
            for i in 0..500u64 {
                let Some(mut s) = dial(STDIO_PORT) else { continue };
                // Stream ids the host never handed out, and then data.
                let _ = s.write_all(&(u64::MAX - i).to_le_bytes());
                let _ = s.write_all(&junk);
                held.push(s);
            }
            log(&format!("{} stdio connections held open", held.len()));
            forever()
        }
        "lies" => lies::run(),
        "mute" => forever(),
        "exit" => {
            let mut host = dial_ttrpc();
            let mut request = [0u8; 10];
            let _ = host.read(&mut request);
            power_off()
        }
        _ => {
            let _host = dial_ttrpc();
            forever()
        }
    }
}
