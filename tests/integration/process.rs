//! The binary as a process: an embedded PostgreSQL left running by a killed Goliath is adopted
//! by the next start and stopped when that one stops.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start(dir: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_goliath"))
        .arg("serve")
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("POSTGRES_URL")
        .env_remove("JIRA_BASE_URL")
        .env("GOLIATH_DATA_DIR", dir)
        .env("GOLIATH_BIND", format!("127.0.0.1:{port}"))
        .env("GOLIATH_ADMIN_TOKEN", "process-test-token")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("goliath starts")
}

fn wait_ready(port: u16, child: &mut Child) {
    let agent = crate::helpers::agent();
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("goliath exited early: {status}");
        }
        if let Ok(resp) = agent.get(format!("http://127.0.0.1:{port}/readyz")).call() {
            if resp.status() == 200 {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("goliath was not ready within 90 s");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_cluster_left_by_a_killed_process_is_adopted_and_stopped_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("goliath-adopt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("postgres").join("postmaster.pid");

    let port = free_port();
    let mut first = start(&dir, port);
    wait_ready(port, &mut first);
    first.kill().unwrap(); // SIGKILL: no chance to stop its cluster
    first.wait().unwrap();
    assert!(
        pid_file.is_file(),
        "the killed process left its cluster running"
    );

    let port = free_port();
    let mut second = start(&dir, port);
    wait_ready(port, &mut second);
    unsafe {
        libc::kill(second.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 60 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    assert!(
        !pid_file.exists(),
        "the adopted cluster was stopped with the process"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_goliath"))
        .arg("check-config")
        .env("GOLIATH_LOG_FORMAT", "json")
        .env("GOLIATH_ADMIN_TOKNE", "typo")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let typo = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .unwrap_or("")
                .contains("GOLIATH_ADMIN_TOKNE")
        })
        .expect("the unknown variable is warned about");
    assert_eq!(typo["level"], "WARN");
    assert!(typo["timestamp"].is_string() && typo["target"].is_string());
}

fn jira_sim_requiring(token: &str) -> goliath::jira::JiraSimHandle {
    goliath::jira::JiraSim::start(goliath::jira::SimConfig {
        play_humans: false,
        auth: Some(goliath::jira::JiraAuth::Basic {
            email: "bot@example.com".into(),
            api_token: token.into(),
        }),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn jira_credentials_are_checked_at_start_and_by_readyz() {
    let db = crate::helpers::TestDb::new();
    let sim = jira_sim_requiring("the-right-token");
    let run = |token: &str, jira_url: &str, port: u16, metrics: Option<u16>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_goliath"));
        cmd.arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("GOLIATH_BIND", format!("127.0.0.1:{port}"))
            .env("JIRA_BASE_URL", jira_url)
            .env("JIRA_EMAIL", "bot@example.com")
            .env("JIRA_API_TOKEN", token)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            // Read only from a run that exits by itself (a server left running would fill it).
            .stderr(if metrics.is_none() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        if let Some(m) = metrics {
            cmd.env("GOLIATH_METRICS_BIND", format!("127.0.0.1:{m}"));
        }
        cmd.spawn().unwrap()
    };
    // Refused credentials: a clear start-up error, not a server that fails every job.
    let refused = run("a-wrong-token", &sim.base_url(), free_port(), None)
        .wait_with_output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("JIRA_API_TOKEN"), "{stderr}");
    assert!(!stderr.contains("a-wrong-token"), "{stderr}");

    // Unreachable Jira: it starts, and /readyz says so while staying ready (work queues).
    let port = free_port();
    let metrics_port = free_port();
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mut up = run("the-right-token", &closed, port, Some(metrics_port));
    wait_ready(port, &mut up);
    let metrics = crate::helpers::agent()
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("goliath_jobs"),
        "served on GOLIATH_METRICS_BIND without a token: {metrics}"
    );
    let ready: serde_json::Value = crate::helpers::agent()
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(ready["jira"]["state"], "unreachable", "{ready}");
    up.kill().unwrap();
    let _ = up.wait();
    sim.stop();
}

#[test]
fn readyz_is_not_ready_while_jira_refuses_the_credentials() {
    use crate::helpers::{config_with, AppOptions, TestApp, TestDb};
    let app = TestApp::start_with(
        TestDb::new(),
        config_with(|_| {}, &[]),
        AppOptions {
            sim: goliath::jira::SimConfig {
                play_humans: false,
                auth: Some(goliath::jira::JiraAuth::Basic {
                    email: "someone-else@example.com".into(),
                    api_token: "not-what-goliath-sends".into(),
                }),
                ..Default::default()
            },
            ..AppOptions::default()
        },
    );
    let ready = app.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("JIRA_API_TOKEN"), "{}", ready.body);
}

#[test]
fn demo_keep_running_prints_the_admin_page_and_serves_it_until_interrupted() {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_goliath"))
        .args([
            "demo",
            "--incidents",
            "60",
            "--block",
            "30",
            "--keep-running",
        ])
        .env_remove("DATABASE_URL")
        .env_remove("POSTGRES_URL")
        .env_remove("JIRA_BASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the demo starts");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut token, mut page) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("admin API, token ").nth(1) {
            token = Some(rest.trim_end_matches("):").to_string());
        }
        if let Some(url) = line.trim().strip_prefix("Admin page: ") {
            page = Some(url.split(' ').next().unwrap().to_string());
            break;
        }
    }
    let (token, page) = (
        token.expect("the token is printed"),
        page.expect("the page is printed"),
    );
    assert!(page.ends_with("/admin/ui"), "{page}");
    // Logging in with the printed token opens the work-item list.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let login = agent
        .post(&format!("{page}/login"))
        .send_form([("token", token.as_str())])
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut list = agent
        .get(&format!("{page}/items"))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(list.status(), 200);
    let body = list.body_mut().read_to_string().unwrap();
    let listed: usize = body
        .split(" matching")
        .next()
        .and_then(|head| head.rsplit('>').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("a count of items: {body}"));
    assert!(
        listed >= 60,
        "the demo's 60 incidents are listed ({listed})"
    );

    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 60 s of Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn help_parses_for_the_binary_and_every_subcommand() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_goliath"))
            .args(args)
            .env_remove("DATABASE_URL")
            .output()
            .expect("goliath runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("Usage:"), "{args:?}: {text}");
        text
    };
    let top = run(&["--help"]);
    let subcommands = [
        "serve",
        "migrate",
        "check-config",
        "jira-sim",
        "simulate",
        "replay-bpic",
        "bench",
        "demo",
    ];
    for sub in subcommands {
        assert!(top.contains(sub), "--help lists {sub}: {top}");
        run(&[sub, "--help"]);
    }
    for bench in ["ingest", "jira-latency", "decide", "stalled-bodies"] {
        run(&["bench", bench, "--help"]);
    }
    // The replay's own settings are where its help says.
    let replay = run(&["replay-bpic", "--help"]);
    for flag in ["--feedback", "--roster", "--no-on-call", "--all", "--mode"] {
        assert!(replay.contains(flag), "replay-bpic --help shows {flag}");
    }
    // The service's settings are shown by the commands that read them, and only there.
    for sub in ["serve", "migrate", "check-config"] {
        let help = run(&[sub, "--help"]);
        assert!(help.contains("--jira-api-token"), "{sub} --help: {help}");
    }
    for sub in ["simulate", "replay-bpic", "demo", "jira-sim"] {
        let help = run(&[sub, "--help"]);
        for flag in [
            "--jira-api-token",
            "--database-url",
            "--admin-token",
            "--workers",
        ] {
            assert!(!help.contains(flag), "{sub} --help shows {flag}: {help}");
        }
    }
    // A flag a command does not read is refused, not accepted and ignored.
    for args in [
        &["demo", "--bind", "127.0.0.1:1"][..],
        &["simulate", "--jira-api-token", "x"],
        &["--bind", "127.0.0.1:1", "check-config"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_goliath"))
            .args(args)
            .output()
            .expect("goliath runs");
        assert_eq!(out.status.code(), Some(2), "{args:?} is refused");
        let err = String::from_utf8_lossy(&out.stderr);
        let flag = args.iter().find(|a| a.starts_with("--")).unwrap();
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}

#[test]
fn an_unknown_log_format_is_refused_and_check_config_prints_every_setting() {
    let run = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_goliath"))
            .arg("check-config")
            .env("GOLIATH_LOG_FORMAT", format)
            .env("GOLIATH_METRICS_BIND", "127.0.0.1:9109")
            .output()
            .unwrap()
    };
    let refused = run("jsn");
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("GOLIATH_LOG_FORMAT `jsn` must be one of: text, json"),
        "{err}"
    );
    assert!(refused.stdout.is_empty(), "nothing printed as if valid");

    let ok = run("TEXT");
    assert!(ok.status.success(), "{ok:?}");
    let printed: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(printed["log_format"], "text", "{printed}");
    assert_eq!(printed["metrics_bind"], "127.0.0.1:9109", "{printed}");
    assert_eq!(printed["pagerduty"]["allow_unsigned_webhooks"], false);
    let escalation = &printed["escalation_seconds"];
    assert_eq!(escalation["sev1"], 900, "{escalation}");
    assert!(escalation["sev4"].is_null(), "{escalation}");
}
