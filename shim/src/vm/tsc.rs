//! The host's TSC frequency, for the guest kernel.
//!
//! A guest kernel calibrates its TSC against the PIT at boot; under emulation
//! on a busy host that calibration fails, the TSC is declared unstable, and
//! the guest keeps time with jiffies: 4 ms steps that fall behind the host's
//! clock as ticks are lost. Under TCG the guest's TSC is the host's (QEMU
//! reads the host counter), so the host's rate is the guest's: passing it
//! (`tsc_early_khz=`) skips the calibration. voidbox's kernel takes it for
//! the CPU's rate too, so it never counts PIT ticks (each port read traps
//! to QEMU; guest/kernel-tsc-early-khz-no-pit.patch).

use std::path::Path;

/// Host-wide (the rate is the machine's), and emptied by a reboot.
pub const CACHE: &str = "/run/voidbox/host-tsc-khz";
use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

fn raw_ns() -> i128 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC_RAW).expect("CLOCK_MONOTONIC_RAW");
    t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86_64; it reads a counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// One (time, counter) pair, the counter read between two clock reads.
fn sample() -> (i128, u64) {
    let a = raw_ns();
    let c = rdtsc();
    let b = raw_ns();
    ((a + b) / 2, c)
}

fn invariant_tsc() -> bool {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = cpuinfo.lines().find(|l| l.starts_with("flags")).unwrap_or_default();
    flags.split_whitespace().any(|f| f == "constant_tsc") && flags.split_whitespace().any(|f| f == "nonstop_tsc")
}

/// Measures the TSC against CLOCK_MONOTONIC_RAW over 20 ms (a few ppm).
fn measure() -> Option<u64> {
    if !invariant_tsc() {
        return None;
    }
    let (t0, c0) = sample();
    std::thread::sleep(Duration::from_millis(20));
    let (t1, c1) = sample();
    let khz = (c1.wrapping_sub(c0) as i128 * 1_000_000 / (t1 - t0)) as u64;
    (100_000..20_000_000).contains(&khz).then_some(khz)
}

/// The host's TSC rate in kHz, measured once per host boot and kept in
/// `cache` (under /run, which a reboot empties). None without an invariant TSC.
pub fn host_khz(cache: &Path) -> Option<u64> {
    if let Some(khz) = std::fs::read_to_string(cache).ok().and_then(|s| s.trim().parse().ok()) {
        return Some(khz);
    }
    let khz = measure()?;
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = cache.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, khz.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, cache);
    }
    Some(khz)
}

#[cfg(test)]
mod tests {
    #[test]
    fn measures_something_plausible_and_caches_it() {
        let cache = std::env::temp_dir().join(format!("voidbox-tsc-{}", std::process::id()));
        let Some(khz) = super::host_khz(&cache) else { return };
        assert!((100_000..20_000_000).contains(&khz), "{khz}");
        assert_eq!(std::fs::read_to_string(&cache).unwrap(), khz.to_string());
        assert_eq!(super::host_khz(&cache), Some(khz));
        std::fs::remove_file(cache).unwrap();
    }
}
