//! Boot milestones on the guest's clocks.
//!
//! CLOCK_BOOTTIME starts at zero when the kernel starts and is never set, so
//! milestones are kept on it; they become wall-clock times only when they are
//! reported, after the host has set the guest's wall clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

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

/// CLOCK_REALTIME now, in Unix nanoseconds.
pub fn realtime_ns() -> i64 {
    nanos(ClockId::CLOCK_REALTIME) as i64
}

/// The guest wall clock (Unix nanoseconds) at which the kernel started.
pub fn kernel_start_unix_ns() -> i64 {
    (nanos(ClockId::CLOCK_REALTIME) - nanos(ClockId::CLOCK_BOOTTIME)) as i64
}

/// A CLOCK_BOOTTIME offset as wall-clock time, by today's wall clock.
pub fn wall_time(boot_ns: u64) -> SystemTime {
    let since = since_kernel_start_ns().saturating_sub(boot_ns);
    SystemTime::now() - Duration::from_nanos(since)
}

/// The boot milestones vminitd reports in System.Info and as spans.
pub struct BootClock {
    init_start_ns: u64,
    serving_ns: AtomicU64,
    ready_ns: AtomicU64,
    steps: Mutex<Vec<(&'static str, u64, u64)>>,
}

impl BootClock {
    pub fn at_init_start() -> Self {
        BootClock {
            init_start_ns: since_kernel_start_ns(),
            serving_ns: AtomicU64::new(0),
            ready_ns: AtomicU64::new(0),
            steps: Mutex::new(Vec::new()),
        }
    }

    pub fn init_start_ns(&self) -> u64 {
        self.init_start_ns
    }

    /// Runs one setup step and records when it ran.
    pub fn step<T>(&self, name: &'static str, f: impl FnOnce() -> T) -> T {
        let start = since_kernel_start_ns();
        let out = f();
        self.step_since(name, start);
        out
    }

    /// Records a step that began at `start` (CLOCK_BOOTTIME) and ends now:
    /// for one that awaits.
    pub fn step_since(&self, name: &'static str, start: u64) {
        self.steps
            .lock()
            .expect("steps lock")
            .push((name, start, since_kernel_start_ns()));
    }

    pub fn steps(&self) -> Vec<(&'static str, u64, u64)> {
        self.steps.lock().expect("steps lock").clone()
    }

    /// vminitd is set up and dials the host from now on.
    pub fn mark_serving(&self) {
        self.serving_ns.store(since_kernel_start_ns(), Ordering::SeqCst);
    }

    pub fn serving_ns(&self) -> u64 {
        self.serving_ns.load(Ordering::SeqCst)
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
