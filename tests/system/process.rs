//! The `hearth` binary as a child process: started on a port of the system's choosing (read
//! back from its `listening on` line), stopped with SIGTERM or SIGKILL, and never left running
//! when a test fails.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test, built by Cargo for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_hearth");

/// A wait this long means something hangs; it is never a performance expectation.
pub const HANG: Duration = Duration::from_secs(30);

/// `hearth --config <config>` run in `dir` with what every child needs: loopback, a port of the
/// system's choosing and cheap password hashing. The database path is left alone, because a
/// test may rely on the default (`chat.db` in the working directory). stdout is piped (it
/// carries the port); stderr is piped unless the caller sends it elsewhere.
pub fn command(dir: &Path, config: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .arg("--config")
        .arg(config)
        .env("CHAT_SERVER__HOST", "127.0.0.1")
        .env("CHAT_SERVER__PORT", "0")
        .env("CHAT_AUTH__PBKDF2_ITERATIONS", "1000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A running `hearth`; killed if still running when dropped (a failing test).
pub struct Hearth {
    child: Child,
    /// The port it printed.
    pub port: u16,
    /// Kept open, so that a later write to stdout does not fail with a broken pipe.
    _stdout: ChildStdout,
}

impl Hearth {
    /// Spawn `cmd` (see [`command`]) and wait up to [`HANG`] for its first line,
    /// `listening on http://127.0.0.1:PORT`. Otherwise the child is killed and the test fails
    /// with what the child wrote to a piped stderr and with `context()` (the end of a log file,
    /// say).
    pub fn start(mut cmd: Command, context: impl Fn() -> String) -> Hearth {
        let mut child = cmd.spawn().expect("hearth starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        // Read on a thread, so that a child that prints nothing fails the test instead of
        // blocking it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send((read, reader.into_inner()));
        });
        let failure = match rx.recv_timeout(HANG) {
            Ok((Ok(line), stdout)) => match port_of(&line) {
                Some(port) => {
                    return Hearth {
                        child,
                        port,
                        _stdout: stdout,
                    }
                }
                None => format!("unexpected first line {line:?}"),
            },
            Ok((Err(e), _)) => format!("reading hearth's stdout failed: {e}"),
            Err(_) => format!("hearth printed nothing within {HANG:?}"),
        };
        let stderr = kill_and_read_stderr(&mut child);
        let stderr = if stderr.is_empty() {
            stderr
        } else {
            format!("--- hearth's stderr ---\n{stderr}\n")
        };
        panic!("{failure}\n{stderr}{}", context());
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Send `signal` (`STOP`, `CONT`, …) without waiting for anything.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// How it exited, if it has (without waiting).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL is delivered");
        self.child.wait().expect("the killed server is reaped");
    }

    /// SIGKILL, then everything the child wrote to its piped stderr.
    pub fn kill_and_read_stderr(mut self) -> String {
        kill_and_read_stderr(&mut self.child)
    }

    /// SIGTERM, then wait up to `limit` for the exit.
    pub fn sigterm(mut self, limit: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hearth did not exit within {limit:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Hearth {
    fn drop(&mut self) {
        // A no-op once the child has been reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in `listening on http://127.0.0.1:PORT`.
fn port_of(line: &str) -> Option<u16> {
    let url = line.trim().strip_prefix("listening on ")?;
    url.strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?
        .strip_prefix("127.0.0.1:")?
        .parse()
        .ok()
}

/// Kill and reap `child`, then read what it wrote to its stderr (empty unless piped).
fn kill_and_read_stderr(child: &mut Child) -> String {
    let _ = child.kill();
    let _ = child.wait();
    let mut text = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut text)
            .expect("hearth's stderr can be read");
    }
    text
}
