//! The guest's clock against the host's, NTP-style: the host reads its clock
//! (t0), the guest's (g), and its own again (t1); the guest's offset is
//! g - (t0 + t1) / 2, good to ±(t1 - t0) / 2. Of several exchanges the one
//! with the shortest round trip wins. At boot the host first sets the guest's
//! wall clock, then measures what remains; it measures again while the
//! container runs, since an emulated clock drifts. Guest timestamps are
//! rebased by the sample nearest in time.

use std::sync::Mutex;
use std::time::SystemTime;

use voidbox_api::system::SetTimeRequest;

use crate::guest::{GuestClient, GuestError};

const ROUNDS: usize = 8;

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

#[derive(Default)]
pub struct Clock {
    samples: Mutex<Vec<Sample>>,
}

async fn measure(guest: &GuestClient, rounds: usize) -> Result<Sample, GuestError> {
    let mut best: Option<Sample> = None;
    for _ in 0..rounds {
        let t0 = now_ns();
        let g = guest.clock().await?.realtime_unix_nano;
        let t1 = now_ns();
        let sample = Sample {
            host_ns: t0 + (t1 - t0) / 2,
            offset_ns: g - (t0 + (t1 - t0) / 2),
            uncertainty_ns: (t1 - t0) / 2,
        };
        if best.is_none_or(|b| sample.uncertainty_ns < b.uncertainty_ns) {
            best = Some(sample);
        }
    }
    Ok(best.expect("at least one round"))
}

impl Clock {
    /// Sets the guest's wall clock from the host's, then measures what
    /// offset remains. Returns (offset before, offset after).
    pub async fn sync_at_boot(&self, guest: &GuestClient) -> Result<(Sample, Sample), GuestError> {
        let before = measure(guest, 3).await?;
        let req = SetTimeRequest {
            // The request reaches the guest about half a round trip later.
            realtime_unix_nano: now_ns() + before.uncertainty_ns,
            ..Default::default()
        };
        guest.set_time(&req).await?;
        let after = self.remeasure(guest).await?;
        Ok((before, after))
    }

    /// Measures the offset again and keeps the sample.
    pub async fn remeasure(&self, guest: &GuestClient) -> Result<Sample, GuestError> {
        let sample = measure(guest, ROUNDS).await?;
        self.samples.lock().expect("clock lock").push(sample);
        Ok(sample)
    }

    /// A guest timestamp on the host's clock, by the sample nearest in time.
    pub fn rebase(&self, guest_ns: i64) -> i64 {
        let samples = self.samples.lock().expect("clock lock");
        let nearest = samples
            .iter()
            .min_by_key(|s| (guest_ns - s.offset_ns - s.host_ns).unsigned_abs());
        match nearest {
            Some(s) => guest_ns - s.offset_ns,
            None => guest_ns,
        }
    }

    pub fn latest(&self) -> Option<Sample> {
        self.samples.lock().expect("clock lock").last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebases_by_the_nearest_sample() {
        let clock = Clock::default();
        assert_eq!(clock.rebase(5), 5, "no sample, no change");
        clock.samples.lock().unwrap().extend([
            Sample {
                host_ns: 1_000_000,
                offset_ns: 500,
                uncertainty_ns: 10,
            },
            Sample {
                host_ns: 9_000_000,
                offset_ns: 800,
                uncertainty_ns: 10,
            },
        ]);
        assert_eq!(clock.rebase(1_000_500), 1_000_000);
        assert_eq!(clock.rebase(8_000_800), 8_000_000);
    }
}
