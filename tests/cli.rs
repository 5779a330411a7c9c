//! Black-box tests of the `hearth` binary: start-up line, configuration errors, signals.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hearth");

/// A running `hearth` child process, killed on drop.
struct Proc {
    child: Child,
    port: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path, config: &str, envs: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .arg("--config")
        .arg(config)
        .env("CHAT_SERVER__HOST", "127.0.0.1")
        .env("CHAT_SERVER__PORT", "0")
        .env("CHAT_AUTH__PBKDF2_ITERATIONS", "1000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("hearth starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reads the first line");
    let port = line
        .trim()
        .strip_prefix("listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("a port number");
    Proc { child, port }
}

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("reads the response");
    out
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "hearth did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn prints_the_real_port_and_serves_with_defaults_when_the_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = start(dir.path(), "absent.toml", &[]);
    assert!(p.port > 0);
    let res = get(p.port, "/healthz");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.ends_with("ok"), "{res}");
    // The database was created with its schema in the working directory.
    assert!(dir.path().join("chat.db").exists());
    let _ = p.child.kill();
    let mut err = String::new();
    p.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("built-in defaults"), "{err}");
}

#[test]
fn config_js_is_generated_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("chat.toml"),
        "[server]\npublic_url = \"https://chat.example.org\"\n",
    )
    .unwrap();
    let p = start(dir.path(), "chat.toml", &[]);
    let res = get(p.port, "/config.js");
    assert!(
        res.contains(r#"window.HEARTH = {"url":"https://chat.example.org","ws":"wss://chat.example.org/ws"};"#),
        "{res}"
    );
}

#[test]
fn sigterm_stops_cleanly_with_exit_code_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = start(dir.path(), "absent.toml", &[]);
    assert!(get(p.port, "/healthz").ends_with("ok"));
    let status = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = wait_exit(&mut p.child);
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    // The WAL was checkpointed into the main file on the way out.
    let wal = dir.path().join("chat.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "WAL left behind"
    );
}

fn config_error(toml: &str, envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), toml).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir.path()).args(["--config", "bad.toml"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_errors_exit_2_with_one_line_naming_file_and_key() {
    for (toml, envs, needle) in [
        ("[server]\nport = \"high\"\n", vec![], "server.port"),
        ("[server]\nprot = 1\n", vec![], "prot"),
        ("[server\n", vec![], "bad.toml"),
        (
            "[server]\npublic_url = \"example.org\"\n",
            vec![],
            "server.public_url",
        ),
        (
            "",
            vec![("CHAT_LIMITS__MESSAGE_BURST", "many")],
            "limits.message_burst",
        ),
        ("[server]\nhost = \"not an ip\"\n", vec![], "server.host"),
    ] {
        let (code, err) = config_error(toml, &envs);
        assert_eq!(code, Some(2), "{toml:?}: {err}");
        assert!(err.contains(needle), "{toml:?}: {err}");
        let source = if envs.is_empty() {
            "bad.toml"
        } else {
            "CHAT_LIMITS__MESSAGE_BURST"
        };
        assert!(err.contains(source), "{toml:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{toml:?}: {err}");
    }
}

#[test]
fn help_and_version_work() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hearth "));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config"));
}
