//! Recording and reporting: per-operation HdrHistograms, errors by kind,
//! and the report structures written as JSON.
//!
//! Every load task records into its own [`Recorder`] (no lock on the hot
//! path); the run merges them at the end. Latencies are recorded in
//! microseconds from the request's *intended* send time (open loop), so a
//! server that stalls is charged for every request that queued behind the
//! stall, not just the one that was in flight (no coordinated omission).
//! Histograms keep three significant digits from 1 µs to an hour.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::workload::Op;

/// Why a request did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The server answered with a non-2xx status.
    Status(u16),
    /// No full response within the timeout.
    Timeout,
    /// The connection could not be opened.
    Connect,
    /// The connection failed mid-request.
    Io,
    /// Still queued when the run's drain deadline passed (the server fell
    /// too far behind).
    NotSent,
}

impl ErrorKind {
    pub fn label(&self) -> String {
        match self {
            ErrorKind::Status(code) => format!("status {code}"),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Connect => "connect".into(),
            ErrorKind::Io => "io".into(),
            ErrorKind::NotSent => "not sent".into(),
        }
    }
}

fn histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!())
}

/// One operation's tally.
#[derive(Clone)]
pub struct OpStats {
    pub latency_us: Histogram<u64>,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub bytes: u64,
}

impl Default for OpStats {
    fn default() -> Self {
        Self {
            latency_us: histogram(),
            errors: BTreeMap::new(),
            bytes: 0,
        }
    }
}

/// A load task's (or a whole run's) tally.
#[derive(Clone, Default)]
pub struct Recorder {
    pub ops: BTreeMap<Op, OpStats>,
    /// Every operation's latencies by the second of the phase their
    /// requests were meant to be sent in: a p99 over a whole phase hides
    /// whether it was one slow second or a steady slowness.
    pub seconds: Vec<Histogram<u64>>,
}

impl Recorder {
    /// Records a success whose request was meant to be sent `at` into the
    /// phase.
    pub fn ok(&mut self, op: Op, at: Duration, latency: Duration, bytes: usize) {
        let us = latency.as_micros().max(1) as u64;
        let s = self.ops.entry(op).or_default();
        s.latency_us.saturating_record(us);
        s.bytes += bytes as u64;
        let second = at.as_secs() as usize;
        if self.seconds.len() <= second {
            self.seconds.resize_with(second + 1, histogram);
        }
        self.seconds[second].saturating_record(us);
    }

    pub fn error(&mut self, op: Op, kind: ErrorKind) {
        *self
            .ops
            .entry(op)
            .or_default()
            .errors
            .entry(kind)
            .or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        for (op, s) in other.ops {
            let mine = self.ops.entry(op).or_default();
            // Same bounds on both sides: adding cannot fail.
            let _ = mine.latency_us.add(&s.latency_us);
            for (k, n) in s.errors {
                *mine.errors.entry(k).or_default() += n;
            }
            mine.bytes += s.bytes;
        }
        if self.seconds.len() < other.seconds.len() {
            self.seconds.resize_with(other.seconds.len(), histogram);
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            let _ = mine.add(theirs);
        }
    }

    /// Each second's successes and latency percentiles, in order.
    pub fn per_second(&self) -> Vec<SecondReport> {
        self.seconds
            .iter()
            .enumerate()
            .map(|(second, h)| SecondReport {
                second: second as u64,
                ok: h.len(),
                latency_ms: Percentiles::of_us(h),
            })
            .collect()
    }

    /// Per-operation reports (and a total) over `seconds` of measuring.
    pub fn summarize(&self, seconds: f64) -> (Vec<OpReport>, OpReport) {
        let mut total = OpStats::default();
        let mut ops = Vec::new();
        for (op, s) in &self.ops {
            ops.push(OpReport::of(op.name(), s, seconds));
            let _ = total.latency_us.add(&s.latency_us);
            for (k, n) in &s.errors {
                *total.errors.entry(k.clone()).or_default() += n;
            }
            total.bytes += s.bytes;
        }
        (ops, OpReport::of("total", &total, seconds))
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of_us(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// One second of a phase, every operation together (by intended send
/// time).
#[derive(Clone, Debug, Serialize)]
pub struct SecondReport {
    pub second: u64,
    pub ok: u64,
    pub latency_ms: Percentiles,
}

/// The slowest second of a phase by p99, and the median of the seconds'
/// p99s: a phase failed by one slow second shows a worst second far above
/// the median.
pub fn worst_second(seconds: &[SecondReport]) -> Option<(&SecondReport, f64)> {
    let worst = seconds
        .iter()
        .filter(|s| s.ok > 0)
        .max_by(|a, b| a.latency_ms.p99.total_cmp(&b.latency_ms.p99))?;
    let mut p99s: Vec<f64> = seconds
        .iter()
        .filter(|s| s.ok > 0)
        .map(|s| s.latency_ms.p99)
        .collect();
    p99s.sort_by(f64::total_cmp);
    Some((worst, p99s[p99s.len() / 2]))
}

/// One operation over one measured phase.
#[derive(Clone, Debug, Serialize)]
pub struct OpReport {
    pub op: String,
    /// Requests answered with a 2xx.
    pub ok: u64,
    /// Requests that failed, all kinds.
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    /// Successful requests per second of the measured phase.
    pub achieved_rps: f64,
    /// Mean response body size of successful requests.
    pub mean_body_bytes: u64,
    /// From the intended send time (open loop) or the send (closed loop).
    pub latency_ms: Percentiles,
}

impl OpReport {
    fn of(name: &str, s: &OpStats, seconds: f64) -> Self {
        let ok = s.latency_us.len();
        let errors = s.errors.values().sum();
        Self {
            op: name.to_owned(),
            ok,
            errors,
            error_kinds: s.errors.iter().map(|(k, n)| (k.label(), *n)).collect(),
            achieved_rps: if seconds > 0.0 {
                ok as f64 / seconds
            } else {
                0.0
            },
            mean_body_bytes: s.bytes.checked_div(ok).unwrap_or(0),
            latency_ms: Percentiles::of_us(&s.latency_us),
        }
    }

    pub fn error_rate(&self) -> f64 {
        let all = self.ok + self.errors;
        if all == 0 {
            0.0
        } else {
            self.errors as f64 / all as f64
        }
    }
}

/// Where and on what a run happened (every report carries it).
#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    pub date_utc: String,
    pub cores: usize,
    pub cpu: Option<String>,
    pub memory_bytes: Option<u64>,
    pub os: String,
    pub bench_version: String,
    /// The bench's own build ("release" or "debug").
    pub bench_build: String,
}

impl Environment {
    pub fn here() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024);
        let date_utc = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Self {
            date_utc,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            memory_bytes,
            os: std::env::consts::OS.to_owned(),
            bench_version: env!("CARGO_PKG_VERSION").to_owned(),
            bench_build: if cfg!(debug_assertions) {
                "debug".into()
            } else {
                "release".into()
            },
        }
    }
}

pub fn print_ops(ops: &[OpReport], total: &OpReport) {
    eprintln!(
        "  {:<14} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "op", "ok", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for r in ops.iter().chain(std::iter::once(total)) {
        let l = &r.latency_ms;
        eprintln!(
            "  {:<14} {:>9} {:>7} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            r.op, r.ok, r.errors, r.achieved_rps, l.p50, l.p90, l.p99, l.p999, l.max
        );
        for (kind, n) in &r.error_kinds {
            eprintln!("  {:<14}   {n} x {kind}", "");
        }
    }
}

/// One line on how the seconds of a phase compare.
pub fn print_seconds(seconds: &[SecondReport]) {
    if let Some((worst, median)) = worst_second(seconds) {
        eprintln!(
            "  by second: median p99 {median:.2} ms; slowest second {} with p99 {:.2} ms, max {:.2} ms",
            worst.second, worst.latency_ms.p99, worst.latency_ms.max
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_kept_apart_and_merged() {
        let ms = Duration::from_millis;
        let mut a = Recorder::default();
        a.ok(Op::Home, ms(100), ms(1), 10);
        a.ok(Op::Home, ms(2_500), ms(40), 10);
        let mut b = Recorder::default();
        b.ok(Op::Post, ms(900), ms(2), 10);
        b.ok(Op::Home, ms(2_100), ms(3), 10);
        a.merge(b);
        let seconds = a.per_second();
        assert_eq!(
            seconds.iter().map(|s| s.ok).collect::<Vec<_>>(),
            vec![2, 0, 2]
        );
        assert!((seconds[0].latency_ms.max - 2.0).abs() < 0.01);
        let (worst, median) = worst_second(&seconds).expect("two seconds with answers");
        assert_eq!(worst.second, 2);
        assert!((worst.latency_ms.max - 40.0).abs() < 0.1);
        // The median of the seconds that had answers, not of the empty one.
        assert!(median >= seconds[0].latency_ms.p99);
        assert!(worst_second(&Recorder::default().per_second()).is_none());
    }
}
