//! The server process as Linux sees it: resident memory (now and at its
//! peak) and CPU time, from `/proc/<pid>/status` and `/proc/<pid>/stat`.
//!
//! The media and streaming measurements report memory per concurrent upload
//! or per open stream, and uploads per CPU-second, so they read the server's
//! own counters rather than guess from the client side. `--server-pid`
//! names the process (the generator usually runs beside it); without it
//! those figures are left out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ProcSample {
    /// Resident set size now (`VmRSS`).
    pub rss_bytes: u64,
    /// Peak resident set size since the process started (`VmHWM`).
    pub hwm_bytes: u64,
    /// User plus system CPU time of every thread so far.
    pub cpu_seconds: f64,
    /// Threads now.
    pub threads: u64,
}

/// Linux's `USER_HZ`, the unit of `/proc/<pid>/stat`'s times (100 on
/// every architecture Linux exposes it on).
const TICKS_PER_SECOND: f64 = 100.0;

fn kib_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads the process now; `None` if it is gone (or this is not Linux).
pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start past the last ')'; utime and stime are fields
    // 14 and 15 of the whole line, so 12 and 13 after the name.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(ProcSample {
        rss_bytes: kib_field(&status, "VmRSS:")? * 1024,
        hwm_bytes: kib_field(&status, "VmHWM:")? * 1024,
        cpu_seconds: (ticks(11)? + ticks(12)?) as f64 / TICKS_PER_SECOND,
        threads: kib_field(&status, "Threads:").unwrap_or(0),
    })
}

/// Samples a process's resident memory every `every` until stopped, keeping
/// the highest reading: the peak of one phase, where `VmHWM` is the peak of
/// the process's whole life.
pub struct RssWatch {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    pub fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(0));
        let (s, m) = (stop.clone(), max.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Some(now) = sample(pid) {
                    m.fetch_max(now.rss_bytes, Ordering::Relaxed);
                }
                tokio::time::sleep(every).await;
            }
        });
        Self { stop, max, task }
    }

    /// Stops sampling; the highest `VmRSS` seen.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.max.load(Ordering::Relaxed)
    }
}

/// Bytes as MiB, for printing.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let Some(me) = sample(std::process::id()) else {
            return; // not Linux
        };
        assert!(me.rss_bytes > 0 && me.hwm_bytes >= me.rss_bytes);
        assert!(me.threads >= 1);
        assert!(sample(u32::MAX).is_none());
    }
}
