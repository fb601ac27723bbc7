//! Which offset a guest timestamp is rebased by, from the samples taken so
//! far. An emulated clock may run at a rate of its own, so the offset is a
//! function of time, known only at the samples:
//! - between two samples, it is interpolated (linearly, in guest time);
//! - after the newest, it is extrapolated at the rate the newest sample and
//!   one at least [`MIN_BASELINE_NS`] older show, when that drift is larger
//!   than the two measurements' uncertainties (else it is noise, and the
//!   newest offset stands). Spans are rebased as they arrive, so most fall
//!   here, after the newest sample;
//! - before the first (the guest's boot), the first sample's offset stands.
//!
//! Samples come from the guest, which may lie: the arithmetic is wide
//! (i128, and f64 for the ratio), and a result that does not fit is None.

use super::Sample;

/// The shortest span of time a drift rate is taken over: shorter, and the
/// samples' uncertainty would dominate it (a sample taken at teardown, just
/// after a resync, is skipped for the one before).
pub const MIN_BASELINE_NS: i64 = 5_000_000_000;

/// The guest's clock at a sample.
fn guest_at(s: &Sample) -> i128 {
    i128::from(s.host_ns) + i128::from(s.offset_ns)
}

/// The offset at guest time `g` on the line through samples `a` and `b`
/// (which must differ in guest time).
fn on_line(a: &Sample, b: &Sample, g: i128) -> Option<i64> {
    let (ga, gb) = (guest_at(a), guest_at(b));
    let rise = (i128::from(b.offset_ns) - i128::from(a.offset_ns)) as f64;
    let frac = (g - ga) as f64 / (gb - ga) as f64;
    // `as` saturates (and NaN is 0): an absurd slope gives an absurd offset,
    // which the window check then drops.
    let offset = i128::from(a.offset_ns) + (rise * frac).round() as i128;
    i64::try_from(offset).ok()
}

/// Whether the offset moved between `a` and `b` by more than the two
/// measurements could be wrong by.
fn drifted(a: &Sample, b: &Sample) -> bool {
    let moved = (i128::from(b.offset_ns) - i128::from(a.offset_ns)).unsigned_abs();
    moved > (i128::from(a.uncertainty_ns.max(0)) + i128::from(b.uncertainty_ns.max(0))) as u128
}

/// The offset (guest minus host, ns) at guest time `guest_ns`, from
/// `samples` in the order they were taken; None without samples or when
/// it does not fit.
pub fn offset_at(samples: &[Sample], guest_ns: i64) -> Option<i64> {
    let newest = samples.last()?;
    let g = i128::from(guest_ns);
    // Newest pairs first: recent spans are the common case.
    for pair in samples.windows(2).rev() {
        let (a, b) = (&pair[0], &pair[1]);
        if guest_at(a) <= g && g <= guest_at(b) && guest_at(a) < guest_at(b) {
            return on_line(a, b, g);
        }
    }
    if g > guest_at(newest) {
        let base = samples
            .iter()
            .rev()
            .skip(1)
            .find(|s| newest.host_ns.saturating_sub(s.host_ns) >= MIN_BASELINE_NS);
        return match base {
            Some(b) if drifted(b, newest) && guest_at(b) < guest_at(newest) => on_line(b, newest, g),
            _ => Some(newest.offset_ns),
        };
    }
    // Before every sample (or samples out of order, from a lying guest):
    // the nearest one's offset.
    samples
        .iter()
        .min_by_key(|s| (guest_at(s) - g).unsigned_abs())
        .map(|s| s.offset_ns)
}
