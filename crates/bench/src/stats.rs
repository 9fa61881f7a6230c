//! Latency statistics and the etcd-benchmark style report.
//!
//! Every successful request's latency is kept (nanoseconds, 8 bytes each: a 1M-request run
//! holds 8 MB), so the percentiles are exact, not estimated. The text layout follows etcd's
//! `tools/benchmark` report (Summary, Response time histogram, Latency distribution, Error
//! distribution); [`Stats::to_json`] gives the machine-readable form.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

/// The percentiles etcd's benchmark prints, in tenths of a percent (99.9 % = 999).
pub const PERCENTILES_TENTHS: [u32; 8] = [100, 250, 500, 750, 900, 950, 990, 999];

/// The result of one timed phase: every latency, the errors and the wall time.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Latencies of the successful requests in nanoseconds, sorted ascending.
    lats: Vec<u64>,
    /// Failed requests, by error text.
    pub errors: BTreeMap<String, u64>,
    /// Wall time of the whole phase.
    pub elapsed: Duration,
    /// The phase stopped at its deadline before issuing every request.
    pub timed_out: bool,
}

impl Stats {
    /// Builds the statistics; `lats` need not be sorted.
    pub fn new(mut lats: Vec<u64>, errors: BTreeMap<String, u64>, elapsed: Duration) -> Self {
        lats.sort_unstable();
        Stats {
            lats,
            errors,
            elapsed,
            timed_out: false,
        }
    }

    /// Successful requests.
    pub fn ok(&self) -> u64 {
        self.lats.len() as u64
    }

    /// Failed requests.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Sorted latencies (ns).
    pub fn latencies(&self) -> &[u64] {
        &self.lats
    }

    /// Successful requests per second of wall time (what etcd's benchmark prints).
    pub fn rps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.ok() as f64 / s } else { 0.0 }
    }

    pub fn min_ns(&self) -> u64 {
        self.lats.first().copied().unwrap_or(0)
    }

    pub fn max_ns(&self) -> u64 {
        self.lats.last().copied().unwrap_or(0)
    }

    pub fn mean_ns(&self) -> f64 {
        if self.lats.is_empty() {
            return 0.0;
        }
        self.lats.iter().map(|&l| l as f64).sum::<f64>() / self.lats.len() as f64
    }

    /// Population standard deviation, as etcd's report computes it.
    pub fn stddev_ns(&self) -> f64 {
        if self.lats.is_empty() {
            return 0.0;
        }
        let m = self.mean_ns();
        let var = self
            .lats
            .iter()
            .map(|&l| {
                let d = l as f64 - m;
                d * d
            })
            .sum::<f64>()
            / self.lats.len() as f64;
        var.sqrt()
    }

    /// Nearest-rank percentile, `p` in tenths of a percent (see [`percentile`]).
    pub fn percentile_ns(&self, p_tenths: u32) -> u64 {
        percentile(&self.lats, p_tenths)
    }

    /// The machine-readable summary (`latency_ms` holds avg, stddev, min, max and the
    /// percentiles as `p10` … `p99`, `p999`).
    pub fn to_json(&self) -> Value {
        let ms = |ns: f64| ns / 1e6;
        let mut lat = serde_json::Map::new();
        lat.insert("avg".into(), json!(ms(self.mean_ns())));
        lat.insert("stddev".into(), json!(ms(self.stddev_ns())));
        lat.insert("min".into(), json!(ms(self.min_ns() as f64)));
        lat.insert("max".into(), json!(ms(self.max_ns() as f64)));
        for p in PERCENTILES_TENTHS {
            lat.insert(percentile_key(p), json!(ms(self.percentile_ns(p) as f64)));
        }
        json!({
            "total": self.ok() + self.error_count(),
            "ok": self.ok(),
            "errors": self.error_count(),
            "error_distribution": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "requests_per_second": self.rps(),
            "timed_out": self.timed_out,
            "latency_ms": Value::Object(lat),
        })
    }

    /// etcd's text report: Summary, histogram, distribution and errors.
    pub fn render(&self) -> String {
        let secs = |ns: f64| ns / 1e9;
        let mut s = String::new();
        let _ = writeln!(s, "\nSummary:");
        let _ = writeln!(s, "  Total:\t{:.4} secs.", self.elapsed.as_secs_f64());
        let _ = writeln!(s, "  Slowest:\t{:.4} secs.", secs(self.max_ns() as f64));
        let _ = writeln!(s, "  Fastest:\t{:.4} secs.", secs(self.min_ns() as f64));
        let _ = writeln!(s, "  Average:\t{:.4} secs.", secs(self.mean_ns()));
        let _ = writeln!(s, "  Stddev:\t{:.4} secs.", secs(self.stddev_ns()));
        let _ = writeln!(s, "  Requests/sec:\t{:.4}", self.rps());
        if self.timed_out {
            let _ = writeln!(s, "  (stopped at the deadline before all requests were sent)");
        }
        if !self.lats.is_empty() {
            let _ = writeln!(s, "\nResponse time histogram:");
            let h = histogram(&self.lats, 10);
            let max = h.iter().map(|b| b.1).max().unwrap_or(0);
            for (bound, count) in &h {
                let bar = (*count * 40).checked_div(max).unwrap_or(0) as usize;
                let _ = writeln!(
                    s,
                    "  {:.4} [{}]\t|{}",
                    secs(*bound as f64),
                    count,
                    "∎".repeat(bar)
                );
            }
            let _ = writeln!(s, "\nLatency distribution:");
            for p in PERCENTILES_TENTHS {
                let _ = writeln!(
                    s,
                    "  {}% in {:.4} secs.",
                    percent_label(p),
                    secs(self.percentile_ns(p) as f64)
                );
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "\nError distribution:");
            for (e, n) in &self.errors {
                let _ = writeln!(s, "  [{n}]\t{e}");
            }
        }
        s
    }
}

/// `999` -> `"p999"`, `990` -> `"p99"`, `100` -> `"p10"`, `250` -> `"p25"`.
pub fn percentile_key(p_tenths: u32) -> String {
    if p_tenths.is_multiple_of(10) {
        format!("p{}", p_tenths / 10)
    } else {
        format!("p{p_tenths}")
    }
}

/// `999` -> `"99.9"`, `500` -> `"50"`.
pub fn percent_label(p_tenths: u32) -> String {
    if p_tenths.is_multiple_of(10) {
        format!("{}", p_tenths / 10)
    } else {
        format!("{}.{}", p_tenths / 10, p_tenths % 10)
    }
}

/// Nearest-rank percentile of `sorted` (ascending): the smallest value such that at least
/// `p` of the values are ≤ it. `p_tenths` is in tenths of a percent (0..=1000), so 99.9 %
/// is exact integer arithmetic. Returns 0 for an empty slice.
pub fn percentile(sorted: &[u64], p_tenths: u32) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len() as u128;
    let rank = (u128::from(p_tenths.min(1000)) * n).div_ceil(1000);
    let idx = rank.max(1) - 1;
    sorted[idx as usize]
}

/// etcd's response-time histogram: `buckets` equal-width buckets from the fastest to the
/// slowest latency plus one bucket at the slowest; each latency is counted in the first
/// bucket whose upper bound is ≥ it. Returns `(upper bound ns, count)`; `sorted` must be
/// ascending.
pub fn histogram(sorted: &[u64], buckets: usize) -> Vec<(u64, u64)> {
    if sorted.is_empty() || buckets == 0 {
        return Vec::new();
    }
    let lo = sorted[0];
    let hi = sorted[sorted.len() - 1];
    let width = (hi - lo) as f64 / buckets as f64;
    let mut bounds: Vec<u64> = (0..buckets).map(|i| lo + (width * i as f64) as u64).collect();
    bounds.push(hi);
    let mut out: Vec<(u64, u64)> = bounds.iter().map(|&b| (b, 0)).collect();
    let mut bi = 0;
    for &l in sorted {
        while l > out[bi].0 && bi < out.len() - 1 {
            bi += 1;
        }
        out[bi].1 += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 500), 50);
        assert_eq!(percentile(&v, 900), 90);
        assert_eq!(percentile(&v, 990), 99);
        assert_eq!(percentile(&v, 999), 100);
        assert_eq!(percentile(&v, 1000), 100);
        assert_eq!(percentile(&v, 0), 1);
        assert_eq!(percentile(&v, 100), 10);
        assert_eq!(percentile(&v, 250), 25);
    }

    #[test]
    fn percentile_of_1000_and_odd_sizes() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 999), 999);
        assert_eq!(percentile(&v, 990), 990);
        let one = [7u64];
        for p in PERCENTILES_TENTHS {
            assert_eq!(percentile(&one, p), 7);
        }
        let three = [1u64, 2, 3];
        assert_eq!(percentile(&three, 500), 2);
        assert_eq!(percentile(&three, 100), 1);
        assert_eq!(percentile(&three, 999), 3);
        assert_eq!(percentile(&[], 500), 0);
    }

    #[test]
    fn histogram_counts_every_latency_once() {
        let v: Vec<u64> = (0..=100).collect();
        let h = histogram(&v, 10);
        assert_eq!(h.len(), 11);
        assert_eq!(h.iter().map(|b| b.1).sum::<u64>(), 101);
        // bounds 0,10,20,...,90 then 100: 0 -> [0], (0,10] -> 10 values ...
        assert_eq!(h[0], (0, 1));
        assert_eq!(h[1], (10, 10));
        assert_eq!(h[10], (100, 10));
    }

    #[test]
    fn histogram_of_equal_values() {
        let h = histogram(&[5, 5, 5], 10);
        assert_eq!(h.iter().map(|b| b.1).sum::<u64>(), 3);
        assert_eq!(h[0], (5, 3));
        assert!(histogram(&[], 10).is_empty());
    }

    #[test]
    fn summary_numbers() {
        let s = Stats::new(
            vec![3_000_000, 1_000_000, 2_000_000],
            BTreeMap::new(),
            Duration::from_secs(2),
        );
        assert_eq!(s.ok(), 3);
        assert_eq!(s.min_ns(), 1_000_000);
        assert_eq!(s.max_ns(), 3_000_000);
        assert!((s.mean_ns() - 2_000_000.0).abs() < 1e-6);
        // population stddev of {1,2,3} ms = sqrt(2/3) ms
        assert!((s.stddev_ns() - (2.0f64 / 3.0).sqrt() * 1e6).abs() < 1e-3);
        assert!((s.rps() - 1.5).abs() < 1e-9);
        let j = s.to_json();
        assert_eq!(j["total"], 3);
        assert_eq!(j["errors"], 0);
        assert_eq!(j["latency_ms"]["p50"], 2.0);
        assert_eq!(j["latency_ms"]["p999"], 3.0);
        assert_eq!(j["latency_ms"]["avg"], 2.0);
        let text = s.render();
        assert!(text.contains("Requests/sec:\t1.5000"));
        assert!(text.contains("99.9% in 0.0030 secs."));
    }

    #[test]
    fn errors_are_counted_and_listed() {
        let mut e = BTreeMap::new();
        e.insert("Unavailable: x".to_string(), 4);
        let s = Stats::new(vec![1], e, Duration::from_secs(1));
        assert_eq!(s.error_count(), 4);
        assert_eq!(s.to_json()["total"], 5);
        assert!(s.render().contains("[4]\tUnavailable: x"));
    }

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_key(999), "p999");
        assert_eq!(percentile_key(990), "p99");
        assert_eq!(percentile_key(250), "p25");
        assert_eq!(percent_label(999), "99.9");
        assert_eq!(percent_label(100), "10");
    }
}
