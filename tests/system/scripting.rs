//! `hearth post` and `hearth tail` against a running server, as a cron job or a shell
//! pipeline uses them: post from an argument and from stdin; tail prints each message of its
//! room once, as a JSON line, and keeps following across a restart of the server (resuming
//! from the last position it printed: no gap, no repeat); bad tokens and unknown rooms fail
//! with a readable message and a non-zero exit.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::common::http_client;
use crate::durability::{create_account, start_server_with};
use crate::process::{Hearth, BIN};

fn start(dir: &Path, port: u16) -> Hearth {
    start_server_with(
        dir,
        &[
            ("CHAT_SERVER__PORT", port.to_string()),
            ("CHAT_PREVIEWS__ENABLED", "false".into()),
        ],
    )
}

/// `hearth ARGS` against `server` with `token`, in `dir` (no chat.toml there).
fn hearth(dir: &Path, server: &str, token: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(args)
        .arg("--server")
        .arg(server)
        .env("HEARTH_TOKEN", token)
        .env_remove("RUST_LOG");
    cmd
}

/// Lines `child` prints, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn next_line(rx: &mpsc::Receiver<String>, what: &str) -> Value {
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("hearth tail printed no line for {what}"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_and_tail_follow_a_room_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), 0);
    let port = server.port;
    let base = format!("http://127.0.0.1:{port}");
    let token = create_account(&http_client(), port, "cron").await;

    let mut tail = hearth(dir.path(), &base, &token, &["tail", "general"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut tail);
    // The tail is connected once a message posted now reaches it; post until one does.
    let mut first = None;
    for i in 0..50 {
        let out = hearth(
            dir.path(),
            &base,
            &token,
            &["post", "general", &format!("ping {i}")],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let posted: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(posted["user"], "cron");
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(300)) {
            first = Some(serde_json::from_str::<Value>(&line).unwrap());
            break;
        }
    }
    let first = first.expect("the tail prints what is posted");
    assert_eq!(first["type"], "message");
    assert_eq!(first["room"], "general");

    // From stdin, in a pipeline.
    let mut post = hearth(dir.path(), &base, &token, &["post", "general"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    post.stdin
        .take()
        .unwrap()
        .write_all(b"disk 91% full on db1\n")
        .unwrap();
    let out = post.wait_with_output().unwrap();
    assert!(out.status.success());
    let line = loop {
        let v = next_line(&lines, "the message from stdin");
        if v["body"] == "disk 91% full on db1" {
            break v;
        }
    };
    let before_restart = line["id"].as_i64().unwrap();

    // The server restarts on the same port; the tail resumes after what it printed.
    let exit = server.sigterm(Duration::from_secs(20));
    assert_eq!(exit.code(), Some(0));
    let server = start(dir.path(), port);
    let out = hearth(
        dir.path(),
        &base,
        &token,
        &["post", "general", "after the restart"],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = next_line(&lines, "the message after the restart");
    assert_eq!(
        after["body"], "after the restart",
        "no repeat, no gap: {after}"
    );
    assert!(after["id"].as_i64().unwrap() > before_restart);

    // Edits are followed too.
    let id = after["id"].as_i64().unwrap();
    let res = http_client()
        .patch(format!("{base}/api/messages/{id}"))
        .header("authorization", format!("Bearer {token}"))
        .json(&serde_json::json!({"body": "after the restart (edited)"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let edit = next_line(&lines, "the edit");
    assert_eq!(edit["type"], "edited");
    assert_eq!(edit["id"], id);

    // Readable failures.
    let out = hearth(dir.path(), &base, "wrong-token", &["post", "general", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") || err.to_lowercase().contains("sign in"),
        "{err}"
    );
    let out = hearth(dir.path(), &base, &token, &["tail", "no-such-room"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_room"));
    let out = hearth(
        dir.path(),
        "http://127.0.0.1:1",
        &token,
        &["post", "general", "x"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));

    let _ = tail.kill();
    let _ = tail.wait();
    drop(server);
}

/// A server whose certificate no public authority signed (its own, self-signed): `post` and
/// `tail` (over `wss`) reach it once `--cacert` names the certificate, and without it refuse
/// it, saying why; a `--cacert` file without a certificate is refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_and_tail_trust_a_servers_own_certificate_given_with_cacert() {
    let dir = tempfile::tempdir().unwrap();
    // The bot's token is made over plain HTTP; then the server starts again, with TLS.
    let token = {
        let server = start(dir.path(), 0);
        create_account(&http_client(), server.port, "cron").await
    };
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let server = start_server_with(
        dir.path(),
        &[
            ("CHAT_SERVER__PORT", "0".into()),
            ("CHAT_PREVIEWS__ENABLED", "false".into()),
            ("CHAT_SERVER__TLS__CERT", cert.display().to_string()),
            ("CHAT_SERVER__TLS__KEY", key.display().to_string()),
        ],
    );
    let base = format!("https://localhost:{}", server.port);
    let cacert = cert.display().to_string();

    let out = hearth(dir.path(), &base, &token, &["post", "general", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS") && err.contains("cert"), "{err}");

    let out = hearth(
        dir.path(),
        &base,
        &token,
        &["post", "general", "over TLS", "--cacert", &cacert],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let posted: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(posted["body"], "over TLS");

    // From the start of the room, over wss.
    let mut tail = hearth(
        dir.path(),
        &base,
        &token,
        &["tail", "general", "--since", "0", "--cacert", &cacert],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let lines = lines_of(&mut tail);
    let line = next_line(&lines, "the message posted over TLS");
    assert_eq!(line["id"], posted["id"], "{line}");
    let _ = tail.kill();
    let _ = tail.wait();

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let out = hearth(
        dir.path(),
        &base,
        &token,
        &[
            "post",
            "general",
            "x",
            "--cacert",
            &empty.display().to_string(),
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds no certificate"), "{err}");
    drop(server);
}
