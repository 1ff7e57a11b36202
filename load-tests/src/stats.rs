//! Latency samples and their summary.

use std::time::Duration;

/// Samples of one measurement.
#[derive(Default)]
pub struct Stats {
    samples: Vec<Duration>,
    /// Wall time of the whole run (for throughput); defaults to the sum of samples.
    pub elapsed: Duration,
    pub errors: usize,
}

impl Stats {
    pub fn record(&mut self, d: Duration) {
        self.samples.push(d);
    }

    /// Successful samples.
    pub fn count(&self) -> usize {
        self.samples.len()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let mut s = self.samples.clone();
        s.sort();
        let idx = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
        s[idx.min(s.len() - 1)]
    }

    pub fn throughput(&self) -> f64 {
        let wall = if self.elapsed.is_zero() { self.samples.iter().sum() } else { self.elapsed };
        self.samples.len() as f64 / wall.as_secs_f64().max(1e-9)
    }

    pub fn merge(&mut self, other: Stats) {
        self.samples.extend(other.samples);
        self.errors += other.errors;
    }

    pub fn summary(&self) -> String {
        format!(
            "n={} errors={} p50={:.3} ms p99={:.3} ms max={:.3} ms throughput={:.0}/s",
            self.samples.len(),
            self.errors,
            self.percentile(50.0).as_secs_f64() * 1e3,
            self.percentile(99.0).as_secs_f64() * 1e3,
            self.percentile(100.0).as_secs_f64() * 1e3,
            self.throughput()
        )
    }
}
