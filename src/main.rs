use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use goliath::config::{Config, Settings};

/// Request handling and the intake writers allocate and free many short-lived buffers on
/// several threads; glibc's allocator spent about a tenth of the process's time doing so
/// (consolidating free chunks under contention).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Goliath routes PagerDuty incidents to the right person and opens their Jira issue.
#[derive(Parser)]
#[command(
    name = "goliath",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// With no subcommand, `goliath` serves with these settings.
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server and the Jira workers (the default).
    Serve(Settings),
    /// Apply pending database migrations and exit.
    Migrate(Settings),
    /// Print the effective configuration (secrets redacted); non-zero exit if invalid.
    CheckConfig(Settings),
    /// Run the Jira simulator on its own (speaks Jira REST v3/v2 and sends Jira webhooks).
    JiraSim(goliath::jira::JiraSimArgs),
    /// Prove the router learns: Goliath against random, round-robin, least-loaded and an
    /// oracle on a simulated roster with a hidden skill model.
    Simulate(goliath::lab::simulate::SimulateArgs),
    /// Replay a real history (bpic, xfce) through the router, against frequency lookups.
    Replay(goliath::lab::simulate::ReplayCommand),
    /// The same as `replay bpic`.
    ReplayBpic(goliath::lab::simulate::ReplayArgs),
    /// Benchmarks that print figures: webhook ingest vs pgbench, webhook-to-Jira latency,
    /// decision latency.
    Bench(goliath::lab::bench::BenchArgs),
    /// The whole product on embedded defaults: simulated people, signed incidents, learning.
    Demo(goliath::lab::demo::DemoArgs),
}

fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let logs = init_logging();
    raise_open_file_limit();
    let code = run(Cli::parse());
    // Repeats counted since their last summary are written before the process ends.
    if let Some(logs) = logs {
        logs.finish();
    }
    code
}

fn run(cli: Cli) -> ExitCode {
    let command = cli.command.unwrap_or(Command::Serve(cli.settings));
    let result = match command {
        Command::Serve(settings) => match config(&settings) {
            Ok(config) => run_async(goliath::server::serve(config)),
            Err(code) => return code,
        },
        Command::Migrate(settings) => match config(&settings) {
            Ok(config) => migrate(&config),
            Err(code) => return code,
        },
        Command::CheckConfig(settings) => match config(&settings) {
            Ok(config) => {
                println!(
                    "{}",
                    goliath::redact::scrub(
                        &serde_json::to_string_pretty(&config.redacted()).unwrap_or_default()
                    )
                );
                Ok(())
            }
            Err(code) => return code,
        },
        Command::JiraSim(args) => goliath::jira::run_standalone(args),
        Command::Simulate(args) => goliath::lab::simulate::run_simulate(&args),
        Command::Replay(cmd) => goliath::lab::simulate::run_history(&cmd),
        Command::ReplayBpic(args) => goliath::lab::simulate::run_replay(&args),
        Command::Bench(args) => {
            Settings {
                database_url: args.database_url.clone(),
                ..Settings::default()
            }
            .register_secrets();
            goliath::lab::bench::run(args)
        }
        Command::Demo(args) => goliath::lab::demo::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("goliath: {}", goliath::redact::scrub(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// The service's configuration from its settings and the environment; exit code 2 (with the
/// reason printed, secrets redacted) when it is invalid.
fn config(settings: &Settings) -> Result<Config, ExitCode> {
    settings.register_secrets();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    for name in goliath::config::unknown_variables(env.keys()) {
        log::warn!("{name} is set but Goliath does not read it (a typo?)");
    }
    Config::from_settings(settings, &env).map_err(|e| {
        eprintln!("goliath: {}", goliath::redact::scrub(&e.to_string()));
        ExitCode::from(2)
    })
}

/// The installed logger, for writing the summaries still pending at exit.
type Logs = goliath::logsummary::SummarisingLogger<env_logger::Logger>;

/// `RUST_LOG` (default `info`), every line scrubbed of secrets; `GOLIATH_LOG_FORMAT=json`
/// writes one JSON object per line. The HTTP client's trace output dumps request bytes,
/// headers and all: it stays at info unless `RUST_LOG` names it. Repeated warnings and
/// errors are summarised ([`goliath::logsummary`]): one line per cause per 10 s with a count.
fn init_logging() -> Option<&'static Logs> {
    use std::io::Write as _;
    let spec = std::env::var("RUST_LOG").unwrap_or_default();
    let json = std::env::var("GOLIATH_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if !spec.contains("ureq") {
        builder.filter_module("ureq", log::LevelFilter::Info);
        builder.filter_module("ureq_proto", log::LevelFilter::Info);
    }
    builder.format(move |buf, record| {
        let line = goliath::redact::scrub(&record.args().to_string());
        if json {
            let mut entry = serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": line,
            });
            if let Some(id) = goliath::redact::work_item_id_in(&line) {
                entry["work_item_id"] = id.into();
            }
            return writeln!(buf, "{entry}");
        }
        writeln!(
            buf,
            "[{} {:<5} {}] {line}",
            buf.timestamp(),
            record.level(),
            record.target()
        )
    });
    let inner = builder.build();
    let max_level = inner.filter();
    // Leaked: the logger lives as long as the process, and main and the ticker need it.
    let logs: &'static Logs = Box::leak(Box::new(goliath::logsummary::SummarisingLogger::new(
        inner,
        goliath::logsummary::Summariser::default(),
    )));
    if log::set_logger(logs).is_err() {
        return None;
    }
    log::set_max_level(max_level);
    // A cause's count is written when its interval ends, even if nothing else is logged.
    let _ = std::thread::Builder::new()
        .name("log-summary".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            logs.tick();
        });
    Some(logs)
}

/// Each client connection is a file descriptor: the soft limit (often 1,024) is raised to the
/// hard one, so many slow clients cannot starve new connections.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                log::warn!("could not raise the open-file limit");
            }
        }
    }
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(fut)
}

fn migrate(config: &Config) -> anyhow::Result<()> {
    let database = goliath::server::Database::open(config)?;
    let pool = goliath::db::build_pool(&database.url, 1);
    let mut conn = pool.get()?;
    let applied = goliath::db::run_migrations(&mut conn)?;
    if applied.is_empty() {
        println!("migrations are up to date");
    } else {
        println!("applied: {}", applied.join(", "));
    }
    Ok(())
}
