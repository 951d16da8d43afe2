//! No secret in any output of the binary: help, check-config, and the errors of a database
//! that cannot be reached or whose URL is malformed.

use std::process::Command;

const PASSWORD: &str = "hunter2-db-password";
const ADMIN: &str = "admin-token-0123456789";
const JIRA_TOKEN: &str = "jira-api-token-abcdef";
const PD_TOKEN: &str = "pagerduty-api-token-xyz";

fn base64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// Runs the binary with every secret set; returns stdout and stderr together.
fn run(args: &[&str], database_url: &str) -> String {
    let dir = std::env::temp_dir().join(format!("goliath-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_goliath"))
        .args(args)
        .current_dir(&dir)
        .env("DATABASE_URL", database_url)
        .env("GOLIATH_ADMIN_TOKEN", ADMIN)
        .env("GOLIATH_DATA_DIR", &dir)
        .env("JIRA_BASE_URL", "https://example.atlassian.net")
        .env("JIRA_EMAIL", "bot@example.com")
        .env("JIRA_API_TOKEN", JIRA_TOKEN)
        .env("PAGERDUTY_API_TOKEN", PD_TOKEN)
        .env("RUST_LOG", "trace")
        .output()
        .expect("the binary runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_clean(what: &str, output: &str) {
    let basic = base64(&format!("bot@example.com:{JIRA_TOKEN}"));
    for secret in [
        PASSWORD,
        ADMIN,
        JIRA_TOKEN,
        PD_TOKEN,
        &basic,
        &base64(PASSWORD),
    ] {
        assert!(
            !output.contains(secret),
            "{what} prints a secret ({secret}):\n{output}"
        );
    }
}

#[test]
fn no_output_of_the_binary_holds_a_secret() {
    let good = format!("postgres://app:{PASSWORD}@127.0.0.1:1/goliath");
    let help = run(&["--help"], &good);
    assert!(help.contains("DATABASE_URL"), "{help}");
    assert_clean("--help", &help);
    assert_clean("serve --help", &run(&["serve", "--help"], &good));
    let config = run(&["check-config"], &good);
    assert!(config.contains("redacted"), "{config}");
    assert_clean("check-config", &config);
    // Nothing listens on port 1: the connection error is printed.
    assert_clean("migrate", &run(&["migrate"], &good));
    for malformed in [
        format!("postgres://app:{PASSWORD}@127.0.0.1:notaport/goliath"),
        format!("host=127.0.0.1 port=1 password={PASSWORD} dbname"),
        format!("postgres://app:{PASSWORD}@/goliath?host=/nonexistent&sslmode=bogus"),
    ] {
        assert_clean(
            &format!("migrate with {malformed}"),
            &run(&["migrate"], &malformed),
        );
        assert_clean("check-config", &run(&["check-config"], &malformed));
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_goliath"))
        .arg("check-config")
        .env(
            "DATABASE_URL",
            format!("postgres://app:{PASSWORD}@db:notaport/x"),
        )
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "a malformed DATABASE_URL fails check-config"
    );
    assert_clean("check-config", &String::from_utf8_lossy(&refused.stderr));
}
