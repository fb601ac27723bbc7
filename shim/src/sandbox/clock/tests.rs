//! The clock's arithmetic: rebasing, its window, the samples it keeps.

use super::rebase::MIN_BASELINE_NS;
use super::*;

#[test]
fn rebases_by_the_samples_offset() {
    let clock = Clock::default();
    assert_eq!(clock.rebase(5), Some(5), "no sample, no change");
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
    assert_eq!(clock.rebase(1_000_500), Some(1_000_000), "at a sample: its offset");
    assert_eq!(clock.rebase(9_000_800), Some(9_000_000));
    assert_eq!(clock.rebase(500_500), Some(500_000), "before the first: the first's");
    // Halfway (in guest time) between the two: halfway between the offsets.
    assert_eq!(clock.rebase(5_000_650), Some(5_000_000));
}

const SEC: i64 = 1_000_000_000;

#[test]
fn an_overflowing_rebase_is_dropped() {
    let clock = Clock::default();
    clock.samples.lock().unwrap().push(Sample {
        host_ns: 0,
        offset_ns: 1,
        uncertainty_ns: 0,
    });
    assert_eq!(clock.rebase_at(i64::MIN, 0), None);
    clock.samples.lock().unwrap()[0].offset_ns = i64::MIN;
    assert_eq!(clock.rebase_at(0, i64::MAX), None);
}

#[test]
fn timestamps_outside_the_vms_life_are_dropped() {
    let clock = Clock::new(100 * SEC);
    let now = 200 * SEC;
    assert_eq!(clock.rebase_at(150 * SEC, now), Some(150 * SEC));
    assert_eq!(clock.rebase_at(96 * SEC, now), Some(96 * SEC), "within the slack");
    assert_eq!(clock.rebase_at(94 * SEC, now), None, "before the VM");
    assert_eq!(clock.rebase_at(204 * SEC, now), Some(204 * SEC), "within the slack");
    assert_eq!(clock.rebase_at(206 * SEC, now), None, "in the future");
    assert_eq!(clock.rebase_at(-1, now), None);
    // Unknown start: only the future is out.
    assert_eq!(Clock::default().rebase_at(-1, now), Some(-1));
    assert_eq!(Clock::default().rebase_at(206 * SEC, now), None);
}

#[test]
fn an_absurd_guest_clock_makes_a_sample_not_a_panic() {
    let s = sample(10, i64::MIN, 20);
    assert_eq!(s.offset_ns, i64::MIN);
    let s = sample(i64::MAX - 1, i64::MAX, i64::MIN);
    assert!(s.uncertainty_ns <= 0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn rebasing_never_panics_and_stays_in_the_window(
        exchanges in proptest::collection::vec(
            (proptest::num::i64::ANY, proptest::num::i64::ANY, proptest::num::i64::ANY), 0..6),
        started in proptest::option::of(proptest::num::i64::ANY),
        now in proptest::num::i64::ANY,
        stamps in proptest::collection::vec(proptest::num::i64::ANY, 1..16),
    ) {
        let clock = match started {
            Some(t) => Clock::new(t),
            None => Clock::default(),
        };
        clock.samples.lock().unwrap().extend(exchanges.iter().map(|&(t0, g, t1)| sample(t0, g, t1)));
        for g in stamps {
            if let Some(h) = clock.rebase_at(g, now) {
                proptest::prop_assert!(h <= now.saturating_add(WINDOW_SLACK_NS));
                if let Some(t) = started {
                    proptest::prop_assert!(h >= t.saturating_sub(WINDOW_SLACK_NS));
                }
            }
        }
    }
}

#[test]
fn keeps_the_boot_sample_and_the_newest_only() {
    let clock = Clock::default();
    for i in 0..(MAX_SAMPLES as i64 + 100) {
        clock.keep(Sample {
            host_ns: i,
            offset_ns: 0,
            uncertainty_ns: 1,
        });
    }
    let samples = clock.samples.lock().unwrap();
    assert_eq!(samples.len(), MAX_SAMPLES);
    assert_eq!(samples[0].host_ns, 0, "the boot's");
    assert_eq!(samples.last().unwrap().host_ns, MAX_SAMPLES as i64 + 99, "the newest");
}

#[test]
fn a_sample_is_fresh_for_teardown_only_while_young() {
    let clock = Clock::default();
    assert!(
        !clock.sampled_within(std::time::Duration::from_secs(1)),
        "no sample yet"
    );
    let sample = |age_ns: i64| Sample {
        host_ns: now_ns() - age_ns,
        offset_ns: 0,
        uncertainty_ns: 1,
    };
    clock.keep(sample(5 * SEC));
    assert!(!clock.sampled_within(std::time::Duration::from_secs(1)), "5 s old");
    clock.keep(sample(SEC / 10));
    assert!(clock.sampled_within(std::time::Duration::from_secs(1)), "0.1 s old");
}

/// A guest clock at `rate` × the host's (1.1 is 10 % fast), `skew` ahead at
/// host time 0; samples of it at `at` (host ns), measured exactly.
fn drifting(rate: f64, skew: i64, at: &[i64]) -> (Clock, impl Fn(i64) -> i64) {
    let guest = move |h: i64| skew + (h as f64 * rate).round() as i64;
    let clock = Clock::default();
    clock.samples.lock().unwrap().extend(at.iter().map(|&h| Sample {
        host_ns: h,
        offset_ns: guest(h) - h,
        uncertainty_ns: 300_000,
    }));
    (clock, guest)
}

const FAR: i64 = i64::MAX / 2;

#[test]
fn a_fast_clock_is_rebased_between_and_after_samples() {
    // 10 % fast, 3 s ahead; sampled at boot, then every 10 s.
    let (clock, guest) = drifting(1.1, 3 * SEC, &[SEC, 11 * SEC, 21 * SEC]);
    for h in [
        SEC,
        2 * SEC,
        10 * SEC + 999_999_999,
        15 * SEC,
        21 * SEC,
        25 * SEC,
        31 * SEC,
    ] {
        let got = clock.rebase_at(guest(h), FAR).unwrap();
        assert!((got - h).abs() <= 2, "host {h}: rebased to {got}");
    }
    // Before the first sample, its offset stands: the error is the drift
    // since, 10 % of 0.5 s.
    let early = clock.rebase_at(guest(SEC / 2), FAR).unwrap();
    assert_eq!(SEC / 2 - early, SEC / 20);
}

#[test]
fn the_nearest_sample_alone_would_miss_the_drift() {
    // What rebasing by the nearest sample gave: 10 % of the distance to it.
    let (clock, guest) = drifting(1.1, -3 * SEC, &[SEC, 11 * SEC]);
    let h = 16 * SEC;
    let nearest = guest(h) - clock.samples.lock().unwrap()[1].offset_ns;
    assert_eq!(nearest - h, SEC / 2);
    assert!((clock.rebase_at(guest(h), FAR).unwrap() - h).abs() <= 2);
}

#[test]
fn drift_within_the_uncertainty_is_not_extrapolated() {
    let clock = Clock::default();
    clock.samples.lock().unwrap().extend([
        Sample {
            host_ns: SEC,
            offset_ns: 1_000,
            uncertainty_ns: 300_000,
        },
        Sample {
            host_ns: 11 * SEC,
            offset_ns: 400_000,
            uncertainty_ns: 300_000,
        },
    ]);
    // 0.4 ms in 10 s is noise at ±0.3 ms each: the newest offset stands.
    let g = 100 * SEC;
    assert_eq!(clock.rebase_at(g, FAR), Some(g - 400_000));
}

#[test]
fn the_drift_rate_is_taken_over_a_long_enough_baseline() {
    // A teardown sample 0.1 s after a resync: the rate comes from the one
    // 10 s before, not from 0.1 s of noisy exchanges.
    let (clock, guest) = drifting(1.1, 0, &[SEC, 11 * SEC, 21 * SEC]);
    let mut last = clock.latest().unwrap();
    last.host_ns += MIN_BASELINE_NS / 50;
    last.offset_ns = guest(last.host_ns) - last.host_ns + 250_000;
    clock.keep(last);
    let h = 30 * SEC;
    let got = clock.rebase_at(guest(h), FAR).unwrap();
    // The newest sample's own error (0.25 ms) and its part of the
    // 10 s baseline, not 0.25 ms over 0.1 s (25 ms after 9.9 s).
    assert!((got - h).abs() < 600_000, "off by {} ns", got - h);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Any steady rate within the kernel's ±10 % tick range and any skew:
    /// a timestamp between the first sample and the newest lands on its host
    /// time (to the ns, but for rounding); so does one after the newest, when the drift is measurable
    /// (here ≥ 0.1 %: 5 ms over the shortest baseline, against ±0.6 ms).
    #[test]
    fn a_steady_drift_is_rebased_exactly(
        ppm in -100_000i64..=100_000,
        skew in -3_600 * SEC..=3_600 * SEC,
        gaps in proptest::collection::vec(MIN_BASELINE_NS..=60 * SEC, 1..6),
        at in 0.0f64..2.0,
    ) {
        proptest::prop_assume!(at <= 1.0 || ppm.abs() >= 1_000);
        let mut times = vec![SEC];
        for g in &gaps {
            times.push(times.last().unwrap() + g);
        }
        let (clock, guest) = drifting(1.0 + ppm as f64 / 1e6, skew, &times);
        let span = times.last().unwrap() - times[0];
        let h = times[0] + (span as f64 * at) as i64;
        let got = clock.rebase_at(guest(h), FAR).unwrap();
        // Exact but for the samples' rounding to the ns, which extrapolating
        // far past a short baseline multiplies: well under a µs.
        proptest::prop_assert!((got - h).abs() <= 1_000, "host {} rebased to {}", h, got);
    }
}
