//! The real binary: configuration errors, the admin command, migrations and
//! graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_starling");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn bad_settings_stop_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<&str>, Vec<(&str, &str)>, &str)> = vec![
        (
            vec!["serve", "--public-url", "not a url"],
            vec![],
            "public_url",
        ),
        (
            vec!["serve"],
            vec![("STARLING_LISTEN", "nowhere")],
            "listen",
        ),
        (
            vec!["serve"],
            vec![("STARLING_RATE_LIMITS__API_LIMIT", "lots")],
            "api_limit",
        ),
        (
            vec!["serve", "--config", "/does/not/exist.toml"],
            vec![],
            "does not exist",
        ),
    ];
    for (args, env, needle) in cases {
        let out = Command::new(BIN)
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} {env:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.to_lowercase().contains(needle),
            "{args:?} {env:?}: {stderr}"
        );
    }
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "max_body_bytes = \"huge\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["migrate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_body_bytes"));
}

#[test]
fn admin_creates_accounts_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let create = |username: &str, email: &str, password: &str| {
        run(&[
            "admin",
            "create-account",
            "--username",
            username,
            "--email",
            email,
            "--password",
            password,
        ])
    };
    let out = create("operator1", "op@example.com", "a strong password");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("@operator1"));
    let out = create("operator1", "op2@example.com", "a strong password");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Username has already been taken"));
    let out = create("op3", "op3@example.com", "tiny1");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Password is too short"), "{stderr}");
    // No password in any output.
    assert!(!stderr.contains("tiny1") && !String::from_utf8_lossy(&out.stdout).contains("tiny1"));
}

#[test]
fn serves_then_shuts_down_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .env("STARLING_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::blocking_get(&format!("http://127.0.0.1:{port}/readyz")) {
            if r == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "server never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        dir.path().join("starling.db").exists(),
        "database created in the data dir"
    );
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let lines: Vec<String> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON logs: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("shutdown requested")),
        "{lines:?}"
    );
}

mod reqwest {
    //! A tiny blocking GET (the test crate's reqwest is async-only).
    use std::io::{Read, Write};

    pub fn blocking_get(url: &str) -> std::io::Result<u16> {
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut s = std::net::TcpStream::connect(host)?;
        write!(
            s,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0))
    }
}
