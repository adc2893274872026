//! `starling-bench sweep`: the highest rate a server sustains within a p99
//! bound.
//!
//! Rates go up geometrically (`--start-rate`, times `--factor`) until a step
//! fails: any operation's p99 above `--p99-ms`, more than
//! `--max-error-rate` of requests failing, or less than `--min-achieved` of
//! the offered rate completed. Then `--refine` bisection steps between the
//! last passing and the first failing rate narrow it down. With
//! `--retries N` a failing step is run again, up to N times, and passes if
//! one run does (the report keeps why the others failed). Every step is a
//! fresh open-loop phase with its own warm-up, so a step is not charged for
//! the backlog of the one before.
//!
//! With `--ceiling` (the default, when the server has the probe) the
//! ceiling probe is swept the same way (from the workload's highest
//! sustainable rate up), and the result is stated as a
//! fraction of its highest sustainable rate. Charts: latency percentiles
//! against offered rate, one SVG per operation (and the ceiling), and
//! achieved against offered rate.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::chart;
use crate::cli::{SweepArgs, Workload};
use crate::engine::{Engine, Phase};
use crate::report::{worst_second, Environment, OpReport, SecondReport};
use crate::run::prepare;
use crate::workload::Mix;

/// One rate tried.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub offered_rps: f64,
    pub achieved_rps: f64,
    pub passed: bool,
    /// Why it failed, if it did.
    pub reason: Option<String>,
    pub ops: Vec<OpReport>,
    pub total: OpReport,
    /// Every operation together, second by second of the step.
    pub per_second: Vec<SecondReport>,
    /// Why earlier runs of this step failed (`--retries`); this report is
    /// of its last run.
    pub failed_runs: Vec<String>,
}

/// A workload's sweep.
#[derive(Clone, Debug, Serialize)]
pub struct Curve {
    pub workload: Workload,
    pub steps: Vec<Step>,
    /// The highest offered rate that passed (0 if none did).
    pub highest_sustainable_rps: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    pub environment: Environment,
    pub target: String,
    pub users: usize,
    pub connections: usize,
    pub p99_bound_ms: f64,
    pub step_duration_s: f64,
    pub result: Curve,
    pub ceiling: Option<Curve>,
    /// The workload's highest sustainable rate over the ceiling's.
    pub fraction_of_ceiling: Option<f64>,
}

impl SweepReport {
    pub fn print(&self) {
        for curve in std::iter::once(&self.result).chain(self.ceiling.iter()) {
            eprintln!(
                "{:?} sweep (p99 bound {} ms):",
                curve.workload, self.p99_bound_ms
            );
            for s in &curve.steps {
                eprintln!(
                    "  offered {:>9.0} achieved {:>9.0} p50 {:>8.2} p99 {:>8.2} p99.9 {:>8.2} ms  {}",
                    s.offered_rps,
                    s.achieved_rps,
                    s.total.latency_ms.p50,
                    s.total.latency_ms.p99,
                    s.total.latency_ms.p999,
                    match &s.reason {
                        None => "pass".to_owned(),
                        Some(r) => format!("FAIL: {r}"),
                    }
                );
            }
            eprintln!(
                "  highest sustainable rate: {:.0} req/s",
                curve.highest_sustainable_rps
            );
        }
        if let Some(f) = self.fraction_of_ceiling {
            eprintln!("  = {:.1}% of the ceiling probe's", f * 100.0);
        }
    }
}

fn judge(args: &SweepArgs, offered: f64, ops: &[OpReport], total: &OpReport) -> Option<String> {
    if let Some(slow) = ops.iter().find(|o| o.latency_ms.p99 > args.p99_ms) {
        return Some(format!(
            "{} p99 {:.1} ms > {} ms",
            slow.op, slow.latency_ms.p99, args.p99_ms
        ));
    }
    if total.error_rate() > args.max_error_rate {
        return Some(format!("{:.2}% errors", total.error_rate() * 100.0));
    }
    if total.achieved_rps < offered * args.min_achieved {
        return Some(format!(
            "achieved {:.0} of {offered:.0} req/s",
            total.achieved_rps
        ));
    }
    None
}

/// Runs a step, and again while it fails, up to `--retries` more times.
async fn step(engine: &Engine, args: &SweepArgs, mix: &Mix, rate: f64, salt: u64) -> Step {
    let mut failed_runs = Vec::new();
    let mut run = 0u64;
    loop {
        let mut s = step_once(engine, args, mix, rate, salt ^ (run << 48)).await;
        if s.passed || run >= args.retries as u64 {
            s.failed_runs = failed_runs;
            return s;
        }
        let reason = s.reason.unwrap_or_default();
        eprintln!("  {rate:.0} req/s failed ({reason}); running the step again");
        failed_runs.push(reason);
        run += 1;
    }
}

async fn step_once(engine: &Engine, args: &SweepArgs, mix: &Mix, rate: f64, salt: u64) -> Step {
    if !args.warmup.is_zero() {
        engine
            .run(
                &Phase {
                    mix: mix.clone(),
                    rate,
                    duration: args.warmup,
                },
                salt ^ 0xAAAA,
            )
            .await;
    }
    let measured = engine
        .run(
            &Phase {
                mix: mix.clone(),
                rate,
                duration: args.step_duration,
            },
            salt,
        )
        .await;
    let (ops, total) = measured.recorder.summarize(measured.seconds);
    let reason = judge(args, rate, &ops, &total);
    Step {
        offered_rps: rate,
        achieved_rps: total.achieved_rps,
        passed: reason.is_none(),
        reason,
        ops,
        total,
        per_second: measured.recorder.per_second(),
        failed_runs: Vec::new(),
    }
}

fn progress(workload: Workload, s: &Step) {
    let seconds = worst_second(&s.per_second)
        .map(|(worst, median)| {
            format!(
                " (seconds' p99: median {median:.2}, slowest {:.2})",
                worst.latency_ms.p99
            )
        })
        .unwrap_or_default();
    eprintln!(
        "  {:?} at {:.0} req/s: p99 {:.2} ms{seconds}, achieved {:.0}{}",
        workload,
        s.offered_rps,
        s.total.latency_ms.p99,
        s.achieved_rps,
        s.reason
            .as_ref()
            .map(|r| format!(" (fail: {r})"))
            .unwrap_or_default()
    );
}

/// Sweeps `workload` from `start` requests per second.
async fn curve(engine: &Engine, args: &SweepArgs, workload: Workload, start: f64) -> Curve {
    let mix = Mix::of(workload);
    let mut steps = Vec::new();
    let mut best = 0.0f64;
    let mut failed: Option<f64> = None;
    let mut rate = start.max(1.0);
    let mut salt = 100u64;
    while rate <= args.max_rate {
        salt += 1;
        let s = step(engine, args, &mix, rate, salt).await;
        progress(workload, &s);
        let passed = s.passed;
        steps.push(s);
        if !passed {
            failed = Some(rate);
            break;
        }
        best = rate;
        rate *= args.factor.max(1.01);
    }
    if let Some(mut high) = failed {
        let mut low = best;
        for _ in 0..args.refine {
            let mid = if low > 0.0 {
                (low + high) / 2.0
            } else {
                high / 2.0
            };
            salt += 1;
            let s = step(engine, args, &mix, mid, salt).await;
            progress(workload, &s);
            let passed = s.passed;
            steps.push(s);
            if passed {
                low = mid;
                best = best.max(mid);
            } else {
                high = mid;
            }
        }
    }
    steps.sort_by(|a, b| a.offered_rps.total_cmp(&b.offered_rps));
    Curve {
        workload,
        steps,
        highest_sustainable_rps: best,
    }
}

pub async fn sweep(args: &SweepArgs) -> anyhow::Result<SweepReport> {
    let prepared = prepare(&args.target, args.workload).await?;
    let engine = &prepared.engine;
    let result = curve(engine, args, args.workload, args.start_rate).await;
    let ceiling = if args.ceiling && prepared.has_ceiling && args.workload != Workload::Ceiling {
        // The ceiling sustains at least what the workload did: start there.
        let start = args.start_rate.max(result.highest_sustainable_rps);
        Some(curve(engine, args, Workload::Ceiling, start).await)
    } else {
        None
    };
    let fraction_of_ceiling = ceiling
        .as_ref()
        .filter(|c| c.highest_sustainable_rps > 0.0)
        .map(|c| result.highest_sustainable_rps / c.highest_sustainable_rps);
    let report = SweepReport {
        environment: Environment::here(),
        target: args.target.target.clone(),
        users: engine.population.users().len(),
        connections: engine.connections,
        p99_bound_ms: args.p99_ms,
        step_duration_s: args.step_duration.as_secs_f64(),
        result,
        ceiling,
        fraction_of_ceiling,
    };
    if let Some(dir) = &args.charts {
        write_charts(dir, &report)?;
    }
    Ok(report)
}

fn write_charts(dir: &Path, report: &SweepReport) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut curves = vec![&report.result];
    curves.extend(report.ceiling.iter());
    for curve in &curves {
        let name = format!("{:?}", curve.workload).to_lowercase();
        let mut ops: Vec<String> = curve
            .steps
            .iter()
            .flat_map(|s| s.ops.iter().map(|o| o.op.clone()))
            .collect();
        ops.sort();
        ops.dedup();
        for op in ops {
            let points: Vec<(f64, &OpReport)> = curve
                .steps
                .iter()
                .filter_map(|s| {
                    s.ops
                        .iter()
                        .find(|o| o.op == op)
                        .map(|o| (s.offered_rps, o))
                })
                .collect();
            let path = dir.join(format!("sweep-{name}-{op}.svg"));
            chart::latency(
                &path,
                &format!("{op} ({name} workload): latency against offered rate"),
                &points,
                report.p99_bound_ms,
            )?;
        }
    }
    chart::throughput(&dir.join("sweep-throughput.svg"), &curves)?;
    Ok(())
}
