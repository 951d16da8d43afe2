//! Logs on a bad day: a failure repeated on every retry is written once, then counted.

use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A "database" that takes each connection and hangs up at once, counting them: every attempt
/// to connect fails the same way.
struct HangUp {
    port: u16,
    attempts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl HangUp {
    fn start() -> HangUp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let attempts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = (attempts.clone(), stop.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        drop(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HangUp {
            port,
            attempts,
            stop,
        }
    }
}

impl Drop for HangUp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_repeated_database_error_is_written_once_then_counted() {
    let db = HangUp::start();
    // `migrate` tries to connect for 3 s (the pool's timeout), retrying, then gives up.
    let out = Command::new(env!("CARGO_BIN_EXE_goliath"))
        .arg("migrate")
        .env(
            "DATABASE_URL",
            format!(
                "postgres://goliath@127.0.0.1:{}/goliath?sslmode=disable",
                db.port
            ),
        )
        .env("GOLIATH_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let attempts = db.attempts.load(Ordering::SeqCst);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failures: Vec<String> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["target"] == "r2d2" && l["level"] == "ERROR")
        .map(|l| l["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(attempts >= 2, "{attempts} attempt(s) to connect: {stderr}");
    assert_eq!(
        failures.len(),
        2,
        "the first failure, then a count, for {attempts} attempts: {stderr}"
    );
    assert!(!failures[0].contains("more like this"), "{}", failures[0]);
    let counted: usize = failures[1]
        .split_once(" (and ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {}", failures[1]));
    assert!(
        failures[1].contains(" more like this in the last ") && failures[1].ends_with(" s)"),
        "{}",
        failures[1]
    );
    assert!(
        counted >= 1 && counted < attempts,
        "{counted} counted, {attempts} attempts: {stderr}"
    );
}
