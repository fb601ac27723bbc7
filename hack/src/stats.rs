//! Small statistics for benchmarks: medians of samples taken in one run.

use std::time::Duration;

/// Samples of one measured quantity.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort();
        v
    }

    /// The median; the mean of the middle two for an even count.
    pub fn median(&self) -> Duration {
        middle(&self.sorted(), |a, b| (a + b) / 2).unwrap_or_default()
    }

    /// The sample `num`/`den` of the way up the sorted series.
    pub fn quantile(&self, num: usize, den: usize) -> Duration {
        let v = self.sorted();
        v.get(v.len().saturating_sub(1) * num / den)
            .copied()
            .unwrap_or_default()
    }

    pub fn min(&self) -> Duration {
        self.sorted().first().copied().unwrap_or_default()
    }

    pub fn max(&self) -> Duration {
        self.sorted().last().copied().unwrap_or_default()
    }

    /// "median (min–max)" in milliseconds.
    pub fn summary(&self) -> String {
        format!(
            "{:7.1} ms  ({:.1}–{:.1}, n={})",
            ms(self.median()),
            ms(self.min()),
            ms(self.max()),
            self.len()
        )
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// median(a) / median(b).
pub fn ratio(a: &Samples, b: &Samples) -> f64 {
    a.median().as_secs_f64() / b.median().as_secs_f64()
}

/// The median of `a[i] / b[i]` over samples taken in the same round, and in
/// how many rounds `a` was the shorter: a drift in the machine's speed from
/// round to round cancels out of each pair, not out of two medians.
pub fn paired(a: &Samples, b: &Samples) -> (f64, usize) {
    let ratios = round_ratios(a, b);
    let shorter = ratios.iter().filter(|r| **r < 1.0).count();
    let mut sorted = ratios;
    sorted.sort_by(f64::total_cmp);
    let median = middle(&sorted, |a, b| (a + b) / 2.0).unwrap_or(f64::NAN);
    (median, shorter)
}

/// A 90% interval for [`paired`]'s median: its 5th and 95th percentiles
/// over 2,000 resamplings of the rounds, with replacement (a bootstrap).
/// One TCG start varies by ±5–10%, so a median of 11 or 31 rounds is good
/// to a few percent only; a goal inside the interval is one the run cannot
/// settle either way.
pub fn paired_interval(a: &Samples, b: &Samples) -> (f64, f64) {
    const RESAMPLES: usize = 2000;
    let ratios = round_ratios(a, b);
    if ratios.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    // SplitMix64, fixed seed: the same samples give the same interval.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let n = ratios.len();
    let mut medians: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let mut draw: Vec<f64> = (0..n).map(|_| ratios[(next() % n as u64) as usize]).collect();
            draw.sort_by(f64::total_cmp);
            middle(&draw, |a, b| (a + b) / 2.0).unwrap_or(f64::NAN)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    (medians[RESAMPLES / 20], medians[RESAMPLES - 1 - RESAMPLES / 20])
}

/// `a[i] / b[i]` for each round both have a sample of.
fn round_ratios(a: &Samples, b: &Samples) -> Vec<f64> {
    a.0.iter()
        .zip(&b.0)
        .map(|(x, y)| x.as_secs_f64() / y.as_secs_f64())
        .collect()
}

/// The middle of a sorted series; `mean` of the middle two for an even count.
fn middle<T: Copy>(sorted: &[T], mean: impl Fn(T, T) -> T) -> Option<T> {
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some(mean(sorted[n / 2 - 1], sorted[n / 2])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        let mut s = Samples::default();
        for ms in [5, 1, 3] {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.median(), Duration::from_millis(3));
        s.push(Duration::from_millis(9));
        assert_eq!(s.median(), Duration::from_millis(4));
        assert_eq!(s.min(), Duration::from_millis(1));
        assert_eq!(s.max(), Duration::from_millis(9));
        assert_eq!(s.quantile(1, 4), Duration::from_millis(1));
        assert_eq!(s.quantile(3, 4), Duration::from_millis(5));
    }

    #[test]
    fn paired_ratios_follow_the_rounds_not_the_medians() {
        let (mut a, mut b) = (Samples::default(), Samples::default());
        // The machine slows down round by round; a is 10% shorter each time.
        for (x, y) in [(90, 100), (180, 200), (270, 300)] {
            a.push(Duration::from_millis(x));
            b.push(Duration::from_millis(y));
        }
        let (median, shorter) = paired(&a, &b);
        assert!((median - 0.9).abs() < 1e-9, "{median}");
        assert_eq!(shorter, 3);
        // A round far off the others moves the pairs' median little.
        b.push(Duration::from_millis(50));
        a.push(Duration::from_millis(100));
        assert_eq!(paired(&a, &b), (0.9, 3));
    }

    #[test]
    fn the_interval_holds_the_median_and_narrows_with_agreeing_rounds() {
        let (mut a, mut b) = (Samples::default(), Samples::default());
        for i in 0..31 {
            a.push(Duration::from_millis(100));
            b.push(Duration::from_millis(100 + i % 3));
        }
        let (median, _) = paired(&a, &b);
        let (lo, hi) = paired_interval(&a, &b);
        assert!(lo <= median && median <= hi, "{lo} {median} {hi}");
        assert!(hi - lo < 0.03, "{lo} {hi}");
        let (mut c, mut d) = (Samples::default(), Samples::default());
        for _ in 0..11 {
            c.push(Duration::from_millis(90));
            d.push(Duration::from_millis(100));
        }
        let (lo, hi) = paired_interval(&c, &d);
        assert!(
            (lo - 0.9).abs() < 1e-9 && (hi - 0.9).abs() < 1e-9,
            "identical rounds: no spread"
        );
    }
}
