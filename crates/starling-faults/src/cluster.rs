//! The cluster under test: its fault commands (`scripts/cluster kill|stop|
//! start|...`), NATS' monitoring endpoint (what the event bus holds), and
//! the api processes' `/metrics`.
//!
//! Ports follow `scripts/cluster`'s layout from its base port: the load
//! balancer on BASE, the api processes on BASE+10.., NATS' monitoring on
//! BASE+41.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

/// How long one `scripts/cluster` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// The api processes `scripts/cluster` starts.
const API_PROCESSES: u16 = 3;

pub struct Cluster {
    script: PathBuf,
    http: reqwest::Client,
    api_urls: Vec<String>,
    nats_monitor: String,
}

/// What one consumer group of the event stream has done so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Group {
    /// Events in the stream the group has not been given yet.
    pub pending: u64,
    /// Events given to a worker and not acknowledged yet.
    pub ack_pending: u64,
    /// Deliveries so far, redeliveries included.
    pub deliveries: u64,
    /// The last stream sequence delivered (each event's first delivery
    /// moves it on once).
    pub delivered_seq: u64,
    /// Every event up to this stream sequence is acknowledged.
    pub ack_floor: u64,
}

/// The event bus as NATS sees it.
#[derive(Clone, Debug, Default)]
pub struct Bus {
    /// Sequence of the last event stored in the event stream.
    pub last_seq: u64,
    /// Events in the dead-letter stream.
    pub dead_letters: u64,
    pub groups: Vec<(String, Group)>,
}

impl Bus {
    /// Whether every group has been given and has acknowledged everything.
    pub fn idle(&self) -> bool {
        self.groups
            .iter()
            .all(|(_, g)| g.pending == 0 && g.ack_pending == 0)
    }

    pub fn group(&self, name: &str) -> Group {
        self.groups
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, g)| *g)
            .unwrap_or_default()
    }

    /// Deliveries of events beyond their first, in every group, since
    /// `before` (events a worker died holding, or gave back).
    pub fn redeliveries_since(&self, before: &Bus) -> u64 {
        self.groups
            .iter()
            .map(|(name, now)| {
                let then = before.group(name);
                let deliveries = now.deliveries.saturating_sub(then.deliveries);
                let first = now.delivered_seq.saturating_sub(then.delivered_seq);
                deliveries.saturating_sub(first)
            })
            .sum()
    }
}

impl Cluster {
    pub fn new(script: PathBuf, base_port: u16) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            script,
            http,
            api_urls: (0..API_PROCESSES)
                .map(|i| format!("http://127.0.0.1:{}", base_port + 10 + i))
                .collect(),
            nats_monitor: format!("http://127.0.0.1:{}", base_port + 41),
        })
    }

    /// Runs `scripts/cluster <args>`; its log lines go to our stderr.
    pub async fn command(&self, args: &[&str]) -> anyhow::Result<()> {
        self.output(args).await.map(|_| ())
    }

    async fn output(&self, args: &[&str]) -> anyhow::Result<String> {
        let child = tokio::process::Command::new(&self.script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("running {}", self.script.display()))?;
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| format!("scripts/cluster {} did not finish", args.join(" ")))??;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() && args.first() != Some(&"status") {
            bail!("scripts/cluster {} failed ({})", args.join(" "), out.status);
        }
        Ok(stdout)
    }

    /// The pid of a process `scripts/cluster status` lists as running.
    pub async fn pid(&self, name: &str) -> anyhow::Result<Option<u32>> {
        let status = self.output(&["status"]).await?;
        let prefix = format!("{name}: running (pid ");
        Ok(status.lines().find_map(|l| {
            l.strip_prefix(&prefix)
                .and_then(|rest| rest.trim_end_matches(')').parse().ok())
        }))
    }

    /// The event streams and consumer groups, from NATS' `/jsz`.
    pub async fn bus(&self) -> anyhow::Result<Bus> {
        let v: Value = self
            .http
            .get(format!(
                "{}/jsz?streams=true&consumers=true",
                self.nats_monitor
            ))
            .send()
            .await
            .context("asking NATS' monitoring endpoint")?
            .json()
            .await
            .context("NATS' /jsz is not JSON")?;
        let mut bus = Bus::default();
        let accounts = v["account_details"].as_array().cloned().unwrap_or_default();
        for stream in accounts
            .iter()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
        {
            let name = stream["name"].as_str().unwrap_or_default();
            if name.ends_with("_DEAD") {
                bus.dead_letters += num(&stream["state"]["messages"]);
                continue;
            }
            bus.last_seq = num(&stream["state"]["last_seq"]);
            for c in stream["consumer_detail"].as_array().into_iter().flatten() {
                bus.groups.push((
                    c["name"].as_str().unwrap_or_default().to_owned(),
                    Group {
                        pending: num(&c["num_pending"]),
                        ack_pending: num(&c["num_ack_pending"]),
                        deliveries: num(&c["delivered"]["consumer_seq"]),
                        delivered_seq: num(&c["delivered"]["stream_seq"]),
                        ack_floor: num(&c["ack_floor"]["stream_seq"]),
                    },
                ));
            }
        }
        if bus.groups.is_empty() {
            bail!("NATS knows no consumer group yet");
        }
        Ok(bus)
    }

    /// Waits until every group has handled everything in the stream and the
    /// stream stopped growing for `settle` (the relays have nothing more to
    /// publish). The last snapshot, or an error at `deadline`.
    pub async fn bus_idle(
        &self,
        settle: Duration,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<Bus> {
        let mut since: Option<(tokio::time::Instant, u64)> = None;
        loop {
            match self.bus().await {
                Ok(bus) if bus.idle() => {
                    let now = tokio::time::Instant::now();
                    match since {
                        Some((t, seq)) if seq == bus.last_seq => {
                            if now - t >= settle {
                                return Ok(bus);
                            }
                        }
                        _ => since = Some((now, bus.last_seq)),
                    }
                }
                Ok(_) | Err(_) => since = None,
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("the event bus did not become idle in time");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A counter summed over the api processes that answer (a process
    /// started again counts from zero).
    pub async fn api_counter(&self, name: &str) -> f64 {
        let mut total = 0.0;
        for url in &self.api_urls {
            let Ok(resp) = self.http.get(format!("{url}/metrics")).send().await else {
                continue;
            };
            let Ok(text) = resp.text().await else {
                continue;
            };
            total += text
                .lines()
                .filter(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
        }
        total
    }
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}
