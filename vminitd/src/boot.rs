//! Boot milestones on the guest's clocks.
//!
//! CLOCK_BOOTTIME starts at zero when the kernel starts, so an offset on it is
//! "time since kernel start". CLOCK_REALTIME minus CLOCK_BOOTTIME is the wall
//! clock time at which the kernel started.

use std::sync::atomic::{AtomicU64, Ordering};

use nix::time::{clock_gettime, ClockId};

fn nanos(clock: ClockId) -> i128 {
    // clock_gettime cannot fail for these always-present clocks.
    let ts = clock_gettime(clock).expect("clock_gettime");
    ts.tv_sec() as i128 * 1_000_000_000 + ts.tv_nsec() as i128
}

/// CLOCK_BOOTTIME now, in nanoseconds since the kernel started.
pub fn since_kernel_start_ns() -> u64 {
    nanos(ClockId::CLOCK_BOOTTIME) as u64
}

/// The guest wall clock (Unix nanoseconds) at which the kernel started.
pub fn kernel_start_unix_ns() -> i64 {
    (nanos(ClockId::CLOCK_REALTIME) - nanos(ClockId::CLOCK_BOOTTIME)) as i64
}

/// The boot milestones vminitd reports in System.Info.
pub struct BootClock {
    init_start_ns: u64,
    ready_ns: AtomicU64,
}

impl BootClock {
    pub fn at_init_start() -> Self {
        BootClock {
            init_start_ns: since_kernel_start_ns(),
            ready_ns: AtomicU64::new(0),
        }
    }

    pub fn init_start_ns(&self) -> u64 {
        self.init_start_ns
    }

    /// Records the first moment vminitd could serve the host; later calls keep it.
    pub fn mark_ready(&self) {
        let _ = self
            .ready_ns
            .compare_exchange(0, since_kernel_start_ns(), Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn ready_ns(&self) -> u64 {
        self.ready_ns.load(Ordering::SeqCst)
    }
}
