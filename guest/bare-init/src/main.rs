//! The bare kernel's /init for `make bench`: it prints how long the kernel
//! took to reach userspace, on the kernel's clock, then resets the machine
//! (which ends the VMM, as vminitd's power-off does).

use std::io::Write;

fn main() {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "VOIDBOX-BARE-INIT uptime_ns={ns}");
    let _ = out.flush();
    // SAFETY: sync and reboot take no pointers; reboot does not return on success.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_AUTOBOOT);
    }
}
