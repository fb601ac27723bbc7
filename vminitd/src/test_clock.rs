//! A test-only wrong clock (built only with the `debug-rpcs` feature, the
//! test image's): the clock tests start a guest whose wall clock is off by a
//! known amount and runs fast, so that only a correct rebase of its spans
//! onto the host clock can pass them. The shim, under the same words, leaves
//! the clock as it is (no System.SetTime).
//!
//! - `voidbox.test.clock_offset_ms=N`: moves the wall clock by N ms (either
//!   sign) before anything reads it;
//! - `voidbox.test.clock_tick=T`: the kernel's tick length in µs
//!   (adjtimex `ADJ_TICK`): 10000 is nominal at USER_HZ 100, 11000 (the
//!   kernel's largest) runs the clock 10 % fast.

use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, clock_settime, ClockId};

use crate::cmdline::Cmdline;

/// What the kernel accepts for the tick (±10 % of 10000 µs at USER_HZ 100).
const TICK_RANGE: std::ops::RangeInclusive<i64> = 9000..=11000;

/// Applies the command line's clock words; says on the console what it did
/// or why it could not. Runs before any timestamp is taken.
pub fn apply(cmdline: &Cmdline) {
    if let Some(v) = cmdline.get("voidbox.test.clock_offset_ms") {
        match v.parse::<i64>() {
            Ok(ms) => match shift(ms) {
                Ok(()) => eprintln!("vminitd: test clock: wall clock moved by {ms} ms"),
                Err(e) => eprintln!("vminitd: test clock: cannot move the wall clock: {e}"),
            },
            Err(_) => eprintln!("vminitd: test clock: clock_offset_ms={v:?} is not a whole number"),
        }
    }
    if let Some(v) = cmdline.get("voidbox.test.clock_tick") {
        match v.parse::<i64>() {
            Ok(t) if TICK_RANGE.contains(&t) => match set_tick(t) {
                Ok(()) => eprintln!("vminitd: test clock: tick {t} µs"),
                Err(e) => eprintln!("vminitd: test clock: adjtimex: {e}"),
            },
            _ => eprintln!("vminitd: test clock: clock_tick={v:?} is outside {TICK_RANGE:?}"),
        }
    }
}

fn shift(ms: i64) -> nix::Result<()> {
    let now = clock_gettime(ClockId::CLOCK_REALTIME)?;
    let ns = (now.tv_sec() as i128 * 1_000_000_000 + now.tv_nsec() as i128 + ms as i128 * 1_000_000).max(0);
    let to = TimeSpec::new((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64);
    clock_settime(ClockId::CLOCK_REALTIME, to)
}

fn set_tick(tick: i64) -> nix::Result<()> {
    // SAFETY: adjtimex reads and writes only the struct it is given, which
    // is zeroed (a valid timex) and lives across the call.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = libc::ADJ_TICK;
    tx.tick = tick as libc::c_long;
    // SAFETY: see above.
    if unsafe { libc::adjtimex(&mut tx) } < 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}
