//! Black-box tests of the `hearth` binary: start-up line, configuration errors, signals.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::raw_get;
use crate::process::{command, Hearth, BIN};

/// `hearth --config <config>` in `dir`, with nothing else but the settings every child gets.
fn start(dir: &Path, config: &str) -> Hearth {
    Hearth::start(command(dir, config), String::new)
}

#[tokio::test]
async fn prints_the_real_port_and_serves_with_defaults_when_the_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), "absent.toml");
    assert!(p.port > 0);
    let res = raw_get(p.addr(), "/healthz").await;
    assert_eq!(res.status, 200, "{res:?}");
    assert!(res.body.ends_with("ok"), "{res:?}");
    // The database was created with its schema in the working directory.
    assert!(dir.path().join("chat.db").exists());
    let err = p.kill_and_read_stderr();
    assert!(err.contains("built-in defaults"), "{err}");
}

#[tokio::test]
async fn config_js_is_generated_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("chat.toml"),
        "[server]\npublic_url = \"https://chat.example.org\"\n",
    )
    .unwrap();
    let p = start(dir.path(), "chat.toml");
    let res = raw_get(p.addr(), "/config.js").await;
    assert!(
        res.body.contains(r#"window.HEARTH = {"url":"https://chat.example.org","ws":"wss://chat.example.org/ws"};"#),
        "{res:?}"
    );
}

#[tokio::test]
async fn sigterm_stops_cleanly_with_exit_code_zero() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), "absent.toml");
    assert!(raw_get(p.addr(), "/healthz").await.body.ends_with("ok"));
    let exit = p.sigterm(Duration::from_secs(20));
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    // The WAL was checkpointed into the main file on the way out.
    let wal = dir.path().join("chat.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "WAL left behind"
    );
}

#[tokio::test]
async fn sighup_stops_as_orderly_as_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = start(dir.path(), "absent.toml");
    assert!(raw_get(p.addr(), "/healthz").await.body.ends_with("ok"));
    p.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(status) = p.exited() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Not killed by the signal (129 from a shell, no code at all here): stopped, exit 0.
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    let wal = dir.path().join("chat.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "WAL left behind"
    );
}

/// Run `hearth --config bad.toml` (with `toml` in it) and the environment `envs`; returns the
/// exit code and stderr. Nothing else is set, so the error can only come from these two.
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
        (
            "[database]\nurl = \"mysql://db/chat\"\n",
            vec![],
            "database.url",
        ),
        (
            "[cluster]\nredis_url = \"redis://127.0.0.1:6379\"\n",
            vec![],
            "cluster.redis_url",
        ),
        (
            "[database]\nurl = \"postgres://h@127.0.0.1/c\"\n[cluster]\nredis_url = \"redis://127.0.0.1:port\"\n",
            vec![],
            "cluster.redis_url",
        ),
        ("[cluster]\nnode = \"a:b\"\n", vec![], "cluster.node"),
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
