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
        let v = self.sorted();
        match v.len() {
            0 => Duration::ZERO,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2,
        }
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
}
