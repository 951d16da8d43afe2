//! A private PostgreSQL cluster started from the locally installed server binaries.
//!
//! Used when no `DATABASE_URL` is configured (the embedded default) and by the test harness.
//! The cluster lives in its own directory, listens only on a Unix socket there (never on TCP,
//! so it cannot collide with a system server on 5432), and is reused on the next start.
//! `initdb` refuses to run as root, so as root the server runs as the `postgres` user (or
//! `nobody` when that user does not exist).

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use diesel::prelude::*;

/// Port number used only to name the socket file; nothing listens on TCP.
const SOCKET_PORT: u16 = 54329;
/// Unix socket paths are limited to 107 bytes.
const MAX_SOCKET_DIR_LEN: usize = 90;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl) were found on PATH or under \
         /usr/lib/postgresql/*/bin. Either install PostgreSQL (for example \
         `apt-get install postgresql`), or set DATABASE_URL to an existing database"
    )]
    NoBinaries,
    #[error("{step} failed: {detail}")]
    Command { step: &'static str, detail: String },
    #[error("cannot prepare the data directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the embedded PostgreSQL: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("cannot create the database: {0}")]
    Query(#[from] diesel::result::Error),
}

/// How the cluster should trade durability for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Normal settings, for `serve`.
    Durable,
    /// fsync off: for throwaway test clusters only.
    Throwaway,
}

#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    run_as: Option<(u32, u32)>,
    /// True when this process started the server (and so should stop it).
    started: bool,
}

impl EmbeddedPostgres {
    /// Finds `initdb`/`pg_ctl`: on PATH first, else the newest `/usr/lib/postgresql/*/bin`.
    pub fn find_bin_dir() -> Result<PathBuf, EmbeddedError> {
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                    // Follow symlinks (Debian links /usr/local/bin/initdb into the versioned dir).
                    let real = std::fs::canonicalize(dir.join("initdb")).ok();
                    let real_dir = real
                        .as_deref()
                        .and_then(Path::parent)
                        .map(Path::to_path_buf);
                    return Ok(real_dir.unwrap_or(dir));
                }
            }
        }
        let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((version, bin))
            })
            .collect();
        candidates.sort();
        candidates
            .pop()
            .map(|(_, bin)| bin)
            .ok_or(EmbeddedError::NoBinaries)
    }

    /// Starts (initialising if needed) the cluster in `data_dir`, or adopts it when it is
    /// already running (and then stops it on [`Self::stop`] all the same), and makes sure
    /// database `db_name` exists.
    pub fn start(
        data_dir: &Path,
        db_name: &str,
        durability: Durability,
    ) -> Result<Self, EmbeddedError> {
        let bin_dir = Self::find_bin_dir()?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| EmbeddedError::Io { path, source }
        };
        std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
        let data_dir = std::fs::canonicalize(data_dir).map_err(io(data_dir))?;
        let run_as = unprivileged_user();
        let socket_dir = socket_dir_for(&data_dir);
        std::fs::create_dir_all(&socket_dir).map_err(io(&socket_dir))?;
        if let Some((uid, gid)) = run_as {
            for dir in [&data_dir, &socket_dir] {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(io(dir))?;
            }
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(&data_dir))?;

        let mut pg = EmbeddedPostgres {
            bin_dir,
            data_dir,
            socket_dir,
            run_as,
            started: false,
        };
        if !pg.data_dir.join("PG_VERSION").is_file() {
            pg.initdb()?;
        }
        if !pg.is_running() {
            pg.pg_ctl_start(durability)?;
            pg.started = true;
        } else {
            // Left running by a process that was killed before it could stop it: adopted, and
            // stopped with this one, as if this process had started it. (The embedded cluster
            // belongs to one process; replicas share a database through DATABASE_URL.)
            log::info!(
                "adopting the embedded PostgreSQL left running in {}; it stops when this \
                 process does",
                pg.data_dir.display()
            );
            pg.started = true;
        }
        pg.ensure_database(db_name)?;
        Ok(pg)
    }

    /// A libpq URL for `db_name` on this cluster's socket.
    pub fn url(&self, db_name: &str) -> String {
        format!(
            "postgres://postgres@/{db_name}?host={}&port={SOCKET_PORT}",
            self.socket_dir.display()
        )
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the server if this process started it.
    pub fn stop(&mut self) {
        if self.started {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&self.data_dir)
                .args(["-m", "fast", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.started = false;
            log::info!("stopped the embedded PostgreSQL");
        }
    }

    /// Hands the stop over to a watchdog that stops the server and deletes `remove_dir` once
    /// process `pid` exits. Test binaries have no teardown hook, so this keeps them from
    /// leaving clusters behind.
    pub fn stop_when_process_exits(mut self, pid: u32, remove_dir: &Path) {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 0.5; done; \
             {pg_ctl} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{remove}'",
            pg_ctl = pg_ctl.display(),
            data = self.data_dir.display(),
            remove = remove_dir.display(),
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        // A new session, so the watchdog is not killed with the test's process group.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        if cmd.spawn().is_ok() {
            self.started = false;
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
            // Postgres tools look at HOME and the current directory; give them ones they can read.
            cmd.env("HOME", &self.data_dir).current_dir(&self.data_dir);
        }
        cmd
    }

    fn run(&self, step: &'static str, cmd: &mut Command) -> Result<(), EmbeddedError> {
        let output = cmd.output().map_err(|e| EmbeddedError::Command {
            step,
            detail: e.to_string(),
        })?;
        if output.status.success() {
            Ok(())
        } else {
            let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_string();
            if detail.is_empty() {
                detail = String::from_utf8_lossy(&output.stdout).trim().to_string();
            }
            Err(EmbeddedError::Command { step, detail })
        }
    }

    fn initdb(&self) -> Result<(), EmbeddedError> {
        log::info!(
            "initialising a private PostgreSQL cluster in {}",
            self.data_dir.display()
        );
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(&self.data_dir).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        self.run("initdb", &mut cmd)
    }

    fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn pg_ctl_start(&self, durability: Durability) -> Result<(), EmbeddedError> {
        let mut options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -p {SOCKET_PORT} \
             -c max_connections=200",
            self.socket_dir.display()
        );
        if durability == Durability::Throwaway {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = self.data_dir.join("server.log");
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdin(Stdio::null());
        // pg_ctl's server inherits our process group; a new session keeps Ctrl-C in a
        // terminal from killing it before we stop it cleanly.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        self.run("pg_ctl start", &mut cmd).map_err(|e| match e {
            EmbeddedError::Command { step, detail } => EmbeddedError::Command {
                step,
                detail: format!("{detail} (see {})", log.display()),
            },
            other => other,
        })
    }

    fn ensure_database(&self, db_name: &str) -> Result<(), EmbeddedError> {
        let mut conn = connect_with_retry(&self.url("postgres"))?;
        #[derive(QueryableByName)]
        struct Exists {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            exists: bool,
        }
        let found: Exists = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists",
        )
        .bind::<diesel::sql_types::Text, _>(db_name)
        .get_result(&mut conn)?;
        if !found.exists {
            diesel::sql_query(format!("CREATE DATABASE \"{}\"", db_name.replace('"', "")))
                .execute(&mut conn)?;
        }
        Ok(())
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn connect_with_retry(url: &str) -> Result<PgConnection, diesel::ConnectionError> {
    let mut last = None;
    for _ in 0..50 {
        match PgConnection::establish(url) {
            Ok(conn) => return Ok(conn),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last.expect("at least one attempt"))
}

/// The socket lives in the data directory unless that path is too long for a Unix socket.
fn socket_dir_for(data_dir: &Path) -> PathBuf {
    if data_dir.as_os_str().len() <= MAX_SOCKET_DIR_LEN {
        return data_dir.to_path_buf();
    }
    let digest = crate::signature::sign_hex("socket", data_dir.as_os_str().as_encoded_bytes());
    std::env::temp_dir().join(format!("goliath-pg-{}", &digest[..12]))
}

/// Root cannot run initdb: pick the `postgres` user, else `nobody`.
fn unprivileged_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in ["postgres", "nobody"] {
        let cname = CString::new(name).expect("no NUL in a literal");
        // SAFETY: getpwnam returns NULL or a pointer to a static passwd record, read at once.
        let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
        if !pw.is_null() {
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            return Some((uid, gid));
        }
    }
    Some((65534, 65534))
}
