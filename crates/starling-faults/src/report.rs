//! What each scenario prints: the requests its load sent and how they
//! ended, what was checked for delivery, what was lost; and the summary.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::api::{Method, Reply};
use crate::load::{Done, Sample};

/// How a scenario's load went.
#[derive(Clone, Debug, Default)]
pub struct LoadFigures {
    pub sent: u64,
    pub ok: u64,
    /// Failures the scenario does not excuse, by "METHOD status".
    pub failed: BTreeMap<String, u64>,
    /// Failures it does (a POST in flight on a process that was killed), by
    /// "METHOD status".
    pub excused: BTreeMap<String, u64>,
    /// Per method: sent, failed (excused or not).
    pub by_method: BTreeMap<Method, (u64, u64)>,
    pub seconds: f64,
    pub skipped: u64,
    pub unfinished: u64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
    /// The first failure of each kind: when (from the load's start), how
    /// long it took, what came back.
    pub examples: BTreeMap<String, String>,
}

impl LoadFigures {
    /// Counts `done`; a failure `excuse` accepts is counted apart.
    pub fn of(done: &Done, excuse: impl Fn(&Sample) -> bool) -> Self {
        let mut f = LoadFigures {
            seconds: done.seconds,
            skipped: done.skipped,
            unfinished: done.unfinished,
            ..Default::default()
        };
        let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000, 3).ok();
        for s in &done.samples {
            f.sent += 1;
            let per = f.by_method.entry(s.method).or_default();
            per.0 += 1;
            if let Some(h) = latency.as_mut() {
                let ms = s.ended.duration_since(s.started).as_millis();
                let _ = h.record(u64::try_from(ms).unwrap_or(u64::MAX).max(1));
            }
            if s.reply.ok() {
                f.ok += 1;
                continue;
            }
            per.1 += 1;
            let excused = excuse(s);
            let key = format!("{} {}", s.method.name(), s.reply.label());
            let example = format!("{key}{}", if excused { " (allowed)" } else { "" });
            f.examples.entry(example).or_insert_with(|| {
                let detail = match &s.reply {
                    Reply::Status(_, body) => body.chars().take(160).collect::<String>(),
                    Reply::Transport(e) => e.clone(),
                };
                format!(
                    "sent at +{:.2} s, failed at +{:.2} s: {}",
                    s.started.duration_since(done.started).as_secs_f64(),
                    s.ended.duration_since(done.started).as_secs_f64(),
                    detail.replace('\n', " ")
                )
            });
            let into = if excused {
                &mut f.excused
            } else {
                &mut f.failed
            };
            *into.entry(key).or_default() += 1;
        }
        f.sent += done.unfinished;
        if done.unfinished > 0 {
            *f.failed.entry("unanswered".to_owned()).or_default() += done.unfinished;
        }
        if let Some(h) = latency {
            f.p50_ms = h.value_at_quantile(0.5);
            f.p99_ms = h.value_at_quantile(0.99);
            f.max_ms = h.max();
        }
        f
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    pub fn excused_total(&self) -> u64 {
        self.excused.values().sum()
    }
}

/// Everything a scenario reports.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub name: &'static str,
    pub what: &'static str,
    pub seconds: f64,
    pub load: LoadFigures,
    /// Posts acknowledged by the server whose delivery was checked.
    pub posts: u64,
    /// (follower, post) pairs checked in home timelines, and missing.
    pub deliveries: u64,
    pub deliveries_missing: u64,
    /// (follower, post) pairs checked in notifications, and missing.
    pub notifications: u64,
    pub notifications_missing: u64,
    /// Events the bus's consumers gave up on (the dead-letter stream grew).
    pub dead_letters: u64,
    /// Deliveries of events beyond their first (a dead worker's events).
    pub redeliveries: u64,
    pub notes: Vec<String>,
    /// Why the scenario failed (empty: it passed).
    pub problems: Vec<String>,
}

impl Figures {
    pub fn new(name: &'static str, what: &'static str) -> Self {
        Self {
            name,
            what,
            ..Default::default()
        }
    }

    pub fn lost(&self) -> u64 {
        self.deliveries_missing + self.notifications_missing + self.dead_letters
    }

    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub fn problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// The standard checks: no failure the scenario does not excuse, nothing
    /// lost, no request left unanswered.
    pub fn check_common(&mut self) {
        if self.load.failed_total() > 0 {
            self.problem(format!(
                "{} requests failed: {}",
                self.load.failed_total(),
                breakdown(&self.load.failed)
            ));
        }
        if self.deliveries_missing > 0 {
            self.problem(format!(
                "{} of {} deliveries missing from home timelines",
                self.deliveries_missing, self.deliveries
            ));
        }
        if self.notifications_missing > 0 {
            self.problem(format!(
                "{} of {} notifications missing",
                self.notifications_missing, self.notifications
            ));
        }
        if self.dead_letters > 0 {
            self.problem(format!(
                "{} events dead-lettered (a consumer gave up on them)",
                self.dead_letters
            ));
        }
    }

    pub fn print(&self) {
        let l = &self.load;
        println!("== {}: {}", self.name, self.what);
        let rate = if l.seconds > 0.0 {
            l.sent as f64 / l.seconds
        } else {
            0.0
        };
        println!(
            "   requests: {} sent in {:.1} s ({:.0}/s), {} answered 2xx, {} failed, {} failed as allowed",
            l.sent,
            l.seconds,
            rate,
            l.ok,
            l.failed_total(),
            l.excused_total()
        );
        let per: Vec<String> = l
            .by_method
            .iter()
            .map(|(m, (sent, failed))| format!("{} {sent} sent, {failed} failed", m.name()))
            .collect();
        println!("     by method: {}", per.join("; "));
        if !l.failed.is_empty() {
            println!("     failed: {}", breakdown(&l.failed));
        }
        if !l.excused.is_empty() {
            println!("     failed as allowed: {}", breakdown(&l.excused));
        }
        for (kind, example) in &l.examples {
            println!("     first {kind}: {example}");
        }
        if l.unfinished > 0 {
            println!(
                "     {} requests still unanswered when the load stopped",
                l.unfinished
            );
        }
        if l.skipped > 0 {
            println!(
                "     {} ticks skipped (the client had {} requests in flight)",
                l.skipped,
                crate::load::MAX_IN_FLIGHT
            );
        }
        println!(
            "   latency: p50 {} ms, p99 {} ms, max {} ms",
            l.p50_ms, l.p99_ms, l.max_ms
        );
        println!(
            "   events: {} posts checked, {} home deliveries checked ({} missing), {} notifications checked ({} missing), {} dead-lettered, {} redelivered",
            self.posts,
            self.deliveries,
            self.deliveries_missing,
            self.notifications,
            self.notifications_missing,
            self.dead_letters,
            self.redeliveries
        );
        println!("   events lost: {}", self.lost());
        for n in &self.notes {
            println!("   note: {n}");
        }
        for p in &self.problems {
            println!("   PROBLEM: {p}");
        }
        println!(
            "   {} in {:.1} s",
            if self.passed() { "PASS" } else { "FAIL" },
            self.seconds
        );
        println!();
    }
}

fn breakdown(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table at the end.
pub fn summary(all: &[Figures], total_seconds: f64) {
    println!("== summary");
    println!(
        "   {:<15} {:>6} {:>7} {:>6} {:>7} {:>8} {:>6} {:>8} {:>5}",
        "scenario", "result", "time s", "sent", "failed", "allowed", "posts", "checked", "lost"
    );
    for f in all {
        println!(
            "   {:<15} {:>6} {:>7.1} {:>6} {:>7} {:>8} {:>6} {:>8} {:>5}",
            f.name,
            if f.passed() { "PASS" } else { "FAIL" },
            f.seconds,
            f.load.sent,
            f.load.failed_total(),
            f.load.excused_total(),
            f.posts,
            f.deliveries + f.notifications,
            f.lost()
        );
    }
    let failed = all.iter().filter(|f| !f.passed()).count();
    println!(
        "   {} scenarios, {} passed, {} failed, {:.0} s in all",
        all.len(),
        all.len() - failed,
        failed,
        total_seconds
    );
}
