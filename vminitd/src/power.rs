//! Powering the guest off.
//!
//! vminitd restarts the machine rather than halting it: the host starts the
//! VMM so that a guest reset ends it (`-no-reboot` for QEMU, a reset for
//! libkrun), and the kernel command line picks the reset method.

use std::time::Duration;

use nix::mount::{umount2, MntFlags};
use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{sync, Pid};
use tracing::{info, warn};

/// How long replies in flight get to reach the host before the server closes.
pub const RPC_DRAIN: Duration = Duration::from_millis(200);
/// How long processes get between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Terminates every process, unmounts, and resets the machine.
pub async fn poweroff() -> ! {
    info!("powering off");
    signal_all(Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + TERM_GRACE;
    while user_processes_left() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if user_processes_left() {
        warn!("processes left after {TERM_GRACE:?}; killing them");
        signal_all(Signal::SIGKILL);
    }
    unmount_all();
    halt_now()
}

/// Ends the VM at once: used on fatal errors and as the last step of poweroff.
pub fn halt_now() -> ! {
    sync();
    let err = reboot(RebootMode::RB_AUTOBOOT);
    // reboot only returns on failure; PID 1 exiting panics the kernel, which
    // (with panic=-1) also ends the VM.
    eprintln!("vminitd: reboot failed: {err:?}");
    std::process::exit(1)
}

fn signal_all(sig: Signal) {
    // kill(-1) reaches every process but PID 1 itself.
    let _ = kill(Pid::from_raw(-1), sig);
}

/// User processes are those not started by kthreadd (PID 2).
fn user_processes_left() -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid > 2)
        .any(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the parenthesised command: state, ppid, ...
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            matches!(ppid, Some(p) if p != 2) && !stat.is_empty()
        })
}

/// Unmounts everything but the root, innermost first.
fn unmount_all() {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|t| *t != "/")
        .collect();
    sync();
    for target in targets.iter().rev() {
        if umount2(*target, MntFlags::empty()).is_err() {
            let _ = umount2(*target, MntFlags::MNT_DETACH);
        }
    }
}
