//! Engines the cluster-mode tests start themselves: a private PostgreSQL server and a private
//! Redis, each in a temporary directory and reachable only through a Unix socket there (no TCP
//! port to collide with anything), stopped when the test ends. `scripts/install-engines.sh`
//! installs both from Debian's packages; a missing engine skips its test, except in CI (`CI`
//! set), where it fails.
//!
//! PostgreSQL refuses to run as root: as root (CI), `initdb` and `postgres` run as the
//! `postgres` account that Debian's package creates, in a directory handed to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A missing engine: the test is skipped outside CI, and fails in CI.
fn missing(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is not installed: CI runs scripts/install-engines.sh first");
    }
    eprintln!("skipped: {what} is not installed (bash scripts/install-engines.sh)");
}

/// A PostgreSQL server stopped with SIGSTOP ([`Postgres::freeze`]); SIGCONT when dropped.
pub struct Frozen {
    pids: Vec<String>,
}

impl Frozen {
    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&self.pids)
            .status();
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.signal("CONT");
    }
}

/// A running private PostgreSQL server.
pub struct Postgres {
    dir: TempDir,
    child: Child,
    bin: PathBuf,
    root: bool,
}

/// Where Debian puts a PostgreSQL version's programs (the newest installed), or `None`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `program args…`, as the `postgres` account when running as root.
fn as_owner(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// Start one; `None` (the test is skipped) when PostgreSQL is not installed outside CI.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = postgres_bin() else {
            missing("PostgreSQL");
            return None;
        };
        let root = is_root();
        let dir = tempfile::Builder::new()
            .prefix("hearth-pg-")
            .tempdir()
            .expect("a temporary directory");
        if root {
            let status = Command::new("chown")
                .args(["postgres:"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "the directory is handed to postgres");
        }
        let data = dir.path().join("data");
        let out = as_owner(&bin.join("initdb"), root)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let child = spawn_server(&bin, root, dir.path());
        let pg = Postgres {
            dir,
            child,
            bin,
            root,
        };
        pg.wait_ready();
        Some(pg)
    }

    /// Stop the server (a fast shutdown: every connection is cut) and start it again on the
    /// same data and socket; returns once it answers.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn_server(&self.bin, self.root, self.dir.path());
        self.wait_ready();
    }

    /// Freeze the server (SIGSTOP to the postmaster and each of its backends), as a host
    /// that stops answering would: connections stay open and nothing answers. Thawed when
    /// the guard is dropped (also when the test fails).
    pub fn freeze(&self) -> Frozen {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).expect("postmaster.pid is readable");
        let postmaster = text.lines().next().expect("a pid").trim().to_string();
        let children = Command::new("pgrep")
            .args(["-P", &postmaster])
            .output()
            .expect("pgrep runs");
        let mut pids = vec![postmaster];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .map(str::to_string),
        );
        let frozen = Frozen { pids };
        frozen.signal("STOP");
        frozen
    }

    /// Stop the server (a fast shutdown) until [`Postgres::start_again`].
    pub fn stop_for_now(&mut self) {
        self.stop();
    }

    /// Start the server again after [`Postgres::stop_for_now`]; returns once it answers.
    pub fn start_again(&mut self) {
        self.child = spawn_server(&self.bin, self.root, self.dir.path());
        self.wait_ready();
    }

    fn stop(&mut self) {
        // A fast shutdown through pg_ctl, which signals the server itself (as root the child
        // is runuser, which does not pass signals on).
        let _ = as_owner(&self.bin.join("pg_ctl"), self.root)
            .arg("stop")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "-t", "20"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match postgres::Client::connect(&self.url("postgres"), postgres::NoTls) {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => panic!(
                    "PostgreSQL did not start: {e}\n{}",
                    std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@/{name}?host={}",
            self.dir.path().display()
        )
    }

    /// Create an empty database `name`; its URL.
    pub fn create_database(&self, name: &str) -> String {
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("the server answers");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("a new database");
        self.url(name)
    }

    /// A client of database `name`.
    pub fn client(&self, name: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(name), postgres::NoTls).expect("the database answers")
    }
}

/// Start `postgres` on the data in `dir`, listening on a Unix socket there only.
fn spawn_server(bin: &Path, root: bool, dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("a log file");
    as_owner(&bin.join("postgres"), root)
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-k")
        .arg(dir)
        .args([
            "-c",
            "listen_addresses=",
            "-c",
            "port=5432",
            "-c",
            "fsync=on",
            "-c",
            "shared_buffers=32MB",
            "-c",
            "max_connections=200",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("postgres starts")
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running private Redis: no persistence, no TCP port, a Unix socket in its own directory.
/// It can be killed and started again on the same socket, as the fault tests need.
pub struct Redis {
    dir: TempDir,
    child: Option<Child>,
}

impl Redis {
    /// Start one; `None` (the test is skipped) when Redis is not installed outside CI.
    pub fn start() -> Option<Redis> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            missing("Redis");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("hearth-redis-")
            .tempdir()
            .expect("a temporary directory");
        let mut redis = Redis { dir, child: None };
        redis.restart();
        Some(redis)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// The URL clients connect with.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// Start the server (again, after [`Redis::kill`]), empty, and wait until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let _ = std::fs::remove_file(self.socket());
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("a log file");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
            ])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = redis::Client::open(self.url()).and_then(|c| c.get_connection()) {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Redis did not start: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run one command on a connection of its own (a test looking behind the node's back).
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut c = redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("Redis answers");
        cmd.query(&mut c).expect("Redis answers the command")
    }

    /// Write a snapshot now (`SAVE`), which the next [`Redis::restart`] starts from.
    pub fn save(&self) {
        let _: String = self.query(&redis::cmd("SAVE"));
    }

    /// Freeze the server (SIGSTOP): connections stay open and nothing answers. Thawed when
    /// the guard is dropped.
    pub fn freeze(&self) -> Frozen {
        let pid = self.child.as_ref().expect("running").id();
        let frozen = Frozen {
            pids: vec![pid.to_string()],
        };
        frozen.signal("STOP");
        frozen
    }

    /// Kill the server at once (SIGKILL): everything it held is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
