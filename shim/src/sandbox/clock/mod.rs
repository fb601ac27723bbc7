//! The guest's clock against the host's, NTP-style: the host reads its clock
//! (t0), the guest's (g), and its own again (t1); the guest's offset is
//! g - (t0 + t1) / 2, good to ±(t1 - t0) / 2. Of several exchanges the one
//! with the shortest round trip wins. At boot the host first sets the guest's
//! wall clock, then measures what remains; it measures again while the
//! container runs, since an emulated clock drifts. Guest timestamps are
//! rebased by the offset the samples give at their time (see [`rebase`]:
//! interpolated between samples, extrapolated past the newest).
//!
//! Every number here but the host's own clock comes from the guest, which is
//! untrusted: the arithmetic is checked or saturating, and a rebased
//! timestamp must fall within the VM's life (see [`Clock::rebase`]).

use std::sync::Mutex;
use std::time::SystemTime;

use voidbox_api::system::SetTimeRequest;

use crate::guest::{GuestClient, GuestError};

pub mod rebase;

/// Exchanges per sample at most.
const ROUNDS: usize = 8;
/// After the boot's set, exchanges stop at a sample this good: each is a
/// round trip on a start's path, and the set's answer, which carries the
/// guest's clock, is often good enough alone.
const GOOD_ENOUGH_NS: i64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Host time of the exchange (midpoint), Unix ns.
    pub host_ns: i64,
    /// Guest minus host, ns.
    pub offset_ns: i64,
    /// Half the round trip, ns.
    pub uncertainty_ns: i64,
}

pub fn now_ns() -> i64 {
    voidbox_api::otel::unix_nanos(SystemTime::now())
}

/// How far outside the VM's life a rebased guest timestamp may fall and
/// still be kept: room for the samples' uncertainty and the clock's drift
/// between them. The guest's first spans (its kernel's start) come after
/// the host began booting it, its last before the host reads them.
pub const WINDOW_SLACK_NS: i64 = 5_000_000_000;

/// How many samples a clock keeps: an hour's at the resync interval.
const MAX_SAMPLES: usize = 360;

/// The guest's clock against the host's, for one VM.
#[derive(Default)]
pub struct Clock {
    /// When the host began booting the VM, Unix ns: no guest timestamp is
    /// older. None (the default) when unknown: no lower bound then.
    started_ns: Option<i64>,
    samples: Mutex<Vec<Sample>>,
}

/// One exchange: host clock `t0`, guest clock `g`, host clock `t1`. `g` is
/// the guest's word, so nothing here may overflow: an absurd `g` gives an
/// absurd (saturated) offset, and rebasing by it lands out of the window.
fn sample(t0: i64, g: i64, t1: i64) -> Sample {
    let half = t1.saturating_sub(t0) / 2;
    let mid = t0.saturating_add(half);
    Sample {
        host_ns: mid,
        offset_ns: g.saturating_sub(mid),
        uncertainty_ns: half,
    }
}

/// The best of `best` and up to `rounds` more exchanges (the shortest round
/// trip), stopping early at one within `good_enough` of uncertainty.
async fn measure(
    guest: &GuestClient,
    rounds: usize,
    good_enough: Option<i64>,
    mut best: Option<Sample>,
) -> Result<Sample, GuestError> {
    for _ in 0..rounds {
        if best.zip(good_enough).is_some_and(|(b, g)| b.uncertainty_ns <= g) {
            break;
        }
        let t0 = now_ns();
        let g = guest.clock().await?.realtime_unix_nano;
        let t1 = now_ns();
        let sample = sample(t0, g, t1);
        if best.is_none_or(|b| sample.uncertainty_ns < b.uncertainty_ns) {
            best = Some(sample);
        }
    }
    Ok(best.expect("at least one round or sample"))
}

impl Clock {
    /// The clock of a VM the host began booting at `started_ns` (Unix ns).
    pub fn new(started_ns: i64) -> Self {
        Clock {
            started_ns: Some(started_ns),
            samples: Mutex::default(),
        }
    }

    /// Sets the guest's wall clock from the host's (unless `set_time` is
    /// false: the clock tests' deliberately wrong guest clock), then, if
    /// `measure`, measures what offset remains and keeps it: the set's own
    /// answer, and more exchanges until one is good enough. Only guest
    /// spans (rebased by it) and the clock metrics use that measure; a VM
    /// with neither is spared its exchanges. Returns (offset before, offset
    /// after if measured).
    pub async fn sync_at_boot(
        &self,
        guest: &GuestClient,
        set_time: bool,
        measure: bool,
    ) -> Result<(Sample, Option<Sample>), GuestError> {
        let before = self::measure(guest, 3, None, None).await?;
        let mut set = None;
        if set_time {
            let t0 = now_ns();
            let req = SetTimeRequest {
                // The request reaches the guest about half a round trip later.
                realtime_unix_nano: t0.saturating_add(before.uncertainty_ns),
                ..Default::default()
            };
            let g = guest.set_time(&req).await?;
            // A guest that does not say answers 0: no sample then.
            set = (g != 0).then(|| sample(t0, g, now_ns()));
        }
        let after = match measure {
            true => Some(self.remeasure_with(guest, ROUNDS, Some(GOOD_ENOUGH_NS), set).await?),
            false => None,
        };
        Ok((before, after))
    }

    /// Measures the offset again and keeps the sample.
    pub async fn remeasure(&self, guest: &GuestClient) -> Result<Sample, GuestError> {
        self.remeasure_with(guest, ROUNDS, None, None).await
    }

    /// A last, cheaper sample (teardown's): two exchanges, the better kept.
    pub async fn remeasure_once_more(&self, guest: &GuestClient) -> Result<Sample, GuestError> {
        self.remeasure_with(guest, 2, None, None).await
    }

    /// Whether the newest sample is younger than `age`. Over so short a
    /// time a clock drifts by far less than a sample's own uncertainty
    /// (and no drift rate is taken over less than [`rebase::MIN_BASELINE_NS`]),
    /// so another sample would change no rebased timestamp.
    pub fn sampled_within(&self, age: std::time::Duration) -> bool {
        let newest = self.samples.lock().expect("clock lock").last().map(|s| s.host_ns);
        newest.is_some_and(|ns| now_ns().saturating_sub(ns) < age.as_nanos() as i64)
    }

    async fn remeasure_with(
        &self,
        guest: &GuestClient,
        rounds: usize,
        good_enough: Option<i64>,
        best: Option<Sample>,
    ) -> Result<Sample, GuestError> {
        let sample = measure(guest, rounds, good_enough, best).await?;
        self.keep(sample);
        Ok(sample)
    }

    /// Keeps `sample`, and at most `MAX_SAMPLES`: the boot's (the first) and
    /// the newest. Spans arrive within seconds of their end, so the samples
    /// that rebase them are recent; a VM that runs for days must not keep
    /// one every 10 s forever.
    fn keep(&self, sample: Sample) {
        let mut samples = self.samples.lock().expect("clock lock");
        if samples.len() >= MAX_SAMPLES {
            samples.remove(1);
        }
        samples.push(sample);
    }

    /// A guest timestamp on the host's clock, by the offset the samples
    /// give at its time ([`rebase::offset_at`]); None when it cannot be
    /// rebased (it overflows) or lands outside the VM's life: before it was
    /// started, or after now, by more than [`WINDOW_SLACK_NS`]. Such a
    /// timestamp is dropped, not clamped: a span at a made-up time would
    /// mislead more than a missing one. The caller drops what carries it and
    /// counts it (`voidbox.guest.rejected`, reason `timestamp_out_of_window`).
    pub fn rebase(&self, guest_ns: i64) -> Option<i64> {
        self.rebase_at(guest_ns, now_ns())
    }

    fn rebase_at(&self, guest_ns: i64, now_ns: i64) -> Option<i64> {
        let offset = rebase::offset_at(&self.samples.lock().expect("clock lock"), guest_ns);
        let host_ns = match offset {
            Some(o) => guest_ns.checked_sub(o)?,
            // No sample yet: the guest's clock as it is.
            None => guest_ns,
        };
        self.in_window(host_ns, now_ns).then_some(host_ns)
    }

    /// Whether a host timestamp falls within the VM's life, with slack.
    fn in_window(&self, host_ns: i64, now_ns: i64) -> bool {
        let after_start = self
            .started_ns
            .is_none_or(|start| host_ns >= start.saturating_sub(WINDOW_SLACK_NS));
        after_start && host_ns <= now_ns.saturating_add(WINDOW_SLACK_NS)
    }

    pub fn latest(&self) -> Option<Sample> {
        self.samples.lock().expect("clock lock").last().copied()
    }
}

#[cfg(test)]
mod tests;
