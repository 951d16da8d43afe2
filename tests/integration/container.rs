//! The container files, as read: they cannot be built here (no Docker daemon in the test
//! environment), so what the deployment relies on is checked in the files themselves.

fn read(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_image_runs_unprivileged_keeps_its_data_and_reports_readiness() {
    let dockerfile = read("Dockerfile");
    // Nothing in the build may hide a failure.
    assert!(!dockerfile.contains("|| true"), "a step hides its failure");
    // A numeric, non-root user, and a data volume that user owns.
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the image names its user");
    let uid = user.split(':').next().unwrap().trim();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u > 0),
        "USER {user} is numeric and not root"
    );
    assert!(dockerfile.contains("VOLUME /var/lib/goliath/data"));
    assert!(dockerfile.contains(&format!("chown -R {uid}:")));
    assert!(dockerfile.contains("GOLIATH_DATA_DIR=/var/lib/goliath/data"));
    // Health from /readyz; a stripped binary built from the lock file.
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("/readyz"));
    assert!(
        dockerfile.contains("${GOLIATH_BIND##*:}/readyz"),
        "the health check asks the port GOLIATH_BIND names"
    );
    assert!(dockerfile.contains("strip "));
    assert!(dockerfile.contains("--locked"));

    let ignored = read(".dockerignore");
    for entry in ["target/", ".goliath/", ".git/"] {
        assert!(
            ignored.lines().any(|l| l.trim() == entry),
            ".dockerignore leaves out {entry}"
        );
    }
}

#[test]
fn compose_runs_two_replicas_on_one_database() {
    let compose = read("compose.yaml");
    for service in ["postgres:", "goliath-1:", "goliath-2:"] {
        assert!(compose.contains(&format!("\n  {service}")), "{service}");
    }
    // Both replicas point at the same database, and no secret is written into the file.
    assert!(compose
        .contains("DATABASE_URL: postgres://goliath:${POSTGRES_PASSWORD}@postgres:5432/goliath"));
    assert!(
        compose.contains("<<: *env"),
        "the second replica shares the first's settings"
    );
    for secret in [
        "POSTGRES_PASSWORD",
        "GOLIATH_ADMIN_TOKEN",
        "PAGERDUTY_WEBHOOK_SECRET",
        "JIRA_API_TOKEN",
        "JIRA_WEBHOOK_SECRET",
    ] {
        assert!(
            compose.contains(&format!("${{{secret}:?")),
            "{secret} must be supplied, not defaulted"
        );
    }
}
