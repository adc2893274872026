//! The smoke run CI keeps green: seed 200 users through the store into a
//! temporary data directory, start the real server on it in-process (the
//! same `App::build` `starling serve` uses), seed a few more through the
//! API, run every workload for a fraction of a second at a low rate, and a
//! tiny sweep. It checks the tool end to end (reports sane, no errors,
//! counters derived by the bulk load agree with the graph), not the
//! server's speed: a few seconds in a debug build.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use starling::{App, Config, Role};
use starling_bench::cli::{RunArgs, SeedArgs, SweepArgs, TargetArgs, Workload};
use starling_bench::media::MediaArgs;
use starling_bench::stream::StreamArgs;
use starling_bench::{media, run, stream, sweep, users};
use starling_domain::SystemClock;
use tokio::sync::oneshot;

fn seed_args(dir: &Path, users: u32) -> SeedArgs {
    SeedArgs {
        users,
        avg_follows: 12.0,
        max_follows: 100,
        zipf_exponent: 0.78,
        posts_per_user: 3.0,
        seed: 7,
        username_prefix: "u".into(),
        data_dir: dir.to_path_buf(),
        config: None,
        users_file: None,
        target: None,
        concurrency: 4,
        public_url: None,
        // Low, so the most followed account is large and the merge-at-read
        // path is exercised.
        large_account_threshold: Some(60),
        batch: 64,
        keep_indexes: false,
        password: "bench-password".into(),
        json: None,
        quiet: true,
    }
}

fn target_args(base: &str, dir: &Path) -> TargetArgs {
    TargetArgs {
        target: base.to_owned(),
        users_file: None,
        data_dir: dir.to_path_buf(),
        active_users: 0,
        prime: false,
        connections: 4,
        timeout: Duration::from_secs(5),
        ceiling_bytes: None,
        seed: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_run_and_sweep_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();

    // Seed through the store, with the server stopped.
    let seeded = starling_bench::seed(&seed_args(data, 200)).await.unwrap();
    assert_eq!(seeded.users, 200);
    assert!(seeded.follows > 1_000, "{} follows", seeded.follows);
    assert_eq!(seeded.statuses, 600);
    assert!(seeded.large_accounts >= 1);
    let seeded_users = users::read(&data.join("bench-users.tsv")).unwrap();
    assert_eq!(seeded_users.len(), 200);

    // The ceiling probe is off unless asked for.
    assert!(!Config::default().bench_probe);

    // The real server on that data directory.
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.to_path_buf(),
        bench_probe: true,
        large_account_threshold: 60,
        ..Config::default()
    };
    config.rate_limits.enabled = false;
    let app = App::build(&config, Arc::new(SystemClock), Role::Serve)
        .await
        .unwrap();
    let base = app.public_url();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    // The bulk load's derived counters agree with the graph it loaded.
    let http = reqwest::Client::new();
    let most = seeded_users.iter().max_by_key(|u| u.followers).unwrap();
    let account: serde_json::Value = http
        .get(format!("{base}/api/v1/accounts/{}", most.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["followers_count"], u64::from(most.followers));
    assert_eq!(account["following_count"], u64::from(most.following));

    // Seeding through the API works too (a few users: each costs a hash).
    let mut api_seed = seed_args(data, 4);
    api_seed.target = Some(base.clone());
    api_seed.username_prefix = "api".into();
    api_seed.avg_follows = 2.0;
    api_seed.posts_per_user = 1.0;
    api_seed.users_file = Some(data.join("api-users.tsv"));
    let via_api = starling_bench::seed(&api_seed).await.unwrap();
    assert_eq!(via_api.users, 4);
    assert_eq!(via_api.statuses, 4);
    assert_eq!(users::read(&data.join("api-users.tsv")).unwrap().len(), 4);

    // Every workload, briefly.
    for workload in [
        Workload::Mix,
        Workload::Home,
        Workload::Account,
        Workload::Post,
        Workload::Follow,
        Workload::Favourite,
        Workload::Notifications,
        Workload::Ceiling,
    ] {
        let mix = workload == Workload::Mix;
        let args = RunArgs {
            target: target_args(&base, data),
            workload,
            rate: 60.0,
            duration: Duration::from_millis(600),
            warmup: Duration::ZERO,
            lag_probes: usize::from(mix),
            lag_sample: 3,
            lag_poll: Duration::from_millis(10),
            lag_timeout: Duration::from_secs(5),
            ceiling_duration: if mix {
                Duration::from_millis(300)
            } else {
                Duration::ZERO
            },
            json: None,
        };
        let report = run::run(&args).await.unwrap();
        let t = &report.total;
        assert_eq!(t.errors, 0, "{workload:?}: {:?}", t.error_kinds);
        assert!(t.ok >= 30, "{workload:?}: only {} requests answered", t.ok);
        assert!(report.offered >= 30, "{workload:?}");
        let l = &t.latency_ms;
        assert!(
            l.p50 > 0.0 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max,
            "{workload:?}: {l:?}"
        );
        if mix {
            let names: Vec<&str> = report.ops.iter().map(|o| o.op.as_str()).collect();
            assert_eq!(names, ["home", "account", "post"]);
            let ceiling = report.ceiling.as_ref().expect("ceiling measured");
            assert!(ceiling.capacity_rps > 0.0 && ceiling.body_bytes > 100);
            assert!(report.fraction_of_ceiling.unwrap() > 0.0);
            let lag = report.fanout_lag.as_ref().expect("lag measured");
            for author in [&lag.ordinary, &lag.largest] {
                let a = author.as_ref().expect("an author probed");
                assert!(a.failures.is_empty(), "{:?}", a.failures);
                assert!(a.polled >= 1 && a.lost == 0, "{a:?}");
                assert!(a.lag_ms.max > 0.0);
            }
            starling_bench::write_json(&data.join("run.json"), &report).unwrap();
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(data.join("run.json")).unwrap())
                    .unwrap();
            assert!(json["total"]["latency_ms"]["p999"].is_number());
        }
    }

    // A tiny sweep, with charts.
    let charts = data.join("charts");
    let tiny = SweepArgs {
        target: target_args(&base, data),
        workload: Workload::Home,
        p99_ms: 1_000.0,
        start_rate: 40.0,
        factor: 2.0,
        max_rate: 80.0,
        refine: 0,
        step_duration: Duration::from_millis(300),
        retries: 0,
        warmup: Duration::ZERO,
        max_error_rate: 0.0,
        min_achieved: 0.5,
        ceiling: true,
        json: None,
        charts: Some(charts.clone()),
    };
    let sweep = sweep::sweep(&tiny).await.unwrap();
    assert_eq!(sweep.result.steps.len(), 2);
    assert!(
        sweep.result.steps[0].per_second.iter().any(|s| s.ok > 0),
        "each step reports its seconds"
    );
    assert!(sweep.result.highest_sustainable_rps >= 40.0);
    assert!(sweep.fraction_of_ceiling.is_some());
    for chart in [
        "sweep-home-home.svg",
        "sweep-ceiling-ceiling.svg",
        "sweep-throughput.svg",
    ] {
        let svg = std::fs::read_to_string(charts.join(chart)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("p99") || chart == "sweep-throughput.svg",
            "{chart}"
        );
    }

    // A bound no request meets: the step runs once more, then fails,
    // with both reasons kept.
    let impossible = sweep::sweep(&SweepArgs {
        p99_ms: 0.000_1,
        step_duration: Duration::from_millis(200),
        retries: 1,
        ceiling: false,
        charts: None,
        ..tiny
    })
    .await
    .unwrap();
    assert_eq!(impossible.result.steps.len(), 1);
    let step = &impossible.result.steps[0];
    assert!(!step.passed && step.reason.as_deref().is_some_and(|r| r.contains("p99")));
    assert_eq!(step.failed_runs.len(), 1, "{:?}", step.failed_runs);
    assert_eq!(impossible.result.highest_sustainable_rps, 0.0);

    // Uploads until their URLs are ready, and the preview served against
    // the ceiling probe (a small image: processed on the request path).
    let pid = std::process::id();
    let uploads = media::media(&MediaArgs {
        target: base.clone(),
        users_file: None,
        data_dir: data.to_path_buf(),
        image_bytes: 150_000,
        save_image: None,
        concurrency: 2,
        uploads: 4,
        warmup: 1,
        rate: 0.0,
        poll: Duration::from_millis(20),
        timeout: Duration::from_secs(30),
        server_pid: Some(pid),
        serve_duration: Duration::from_millis(200),
        serve_file: media::ServeFile::Preview,
        serve_connections: 2,
        json: None,
    })
    .await
    .unwrap();
    assert_eq!(
        (uploads.ok, uploads.errors),
        (4, 0),
        "{:?}",
        uploads.error_kinds
    );
    assert_eq!(uploads.answered_ready, 4);
    assert!(uploads.ready_ms.p50 > 0.0 && uploads.server.is_some());
    let preview = uploads.served.as_ref().expect("the preview was served");
    assert!(preview.ok > 0 && preview.errors == 0 && preview.mean_body_bytes > 1_000);
    assert!(uploads.ceiling.is_some() && uploads.served_fraction_of_ceiling.is_some());

    // A few followers' streams hear each post of their author.
    let streamed = stream::stream(&StreamArgs {
        target: base.clone(),
        users_file: None,
        data_dir: data.to_path_buf(),
        streams: 5,
        author: None,
        posts: 2,
        interval: Duration::from_millis(10),
        timeout: Duration::from_secs(10),
        settle: Duration::from_millis(50),
        open_concurrency: 5,
        server_pid: Some(pid),
        json: None,
    })
    .await
    .unwrap();
    assert_eq!(streamed.streams, 5);
    assert_eq!((streamed.delivered, streamed.missed), (10, 0));
    assert!(streamed.author_followers.is_some_and(|n| n >= 5));
    assert!(streamed.delivery_ms.p50 > 0.0 && streamed.memory.is_some());

    let _ = stop.send(());
    let _ = server.await;
}
