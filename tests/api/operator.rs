//! Operator commands against real databases, including while a server is serving the same file.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hearth::admin;
use hearth::config::Config;
use hearth::db::queries;
use serde_json::json;

use crate::common::{json_body, session_cookie, test_config, Auth, TestApp};

#[test]
fn init_writes_the_commented_defaults_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.toml");
    admin::init(&path, false).expect("first init");
    let (loaded, _) = Config::load(&path).expect("the written file loads");
    assert_eq!(loaded, Config::default());
    assert!(admin::init(&path, false).is_err());
    std::fs::write(&path, "junk").unwrap();
    admin::init(&path, true).expect("--force overwrites");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        admin::DEFAULT_CONFIG
    );
}

#[test]
fn check_config_names_the_source_of_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[server]\nport = 8080\n").unwrap();
    let mut out = Vec::new();
    admin::check_config(&path, &mut out).expect("valid");
    let text = String::from_utf8(out).unwrap();
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{key} missing in\n{text}"))
            .to_string()
    };
    assert!(line("server.port").contains("8080") && line("server.port").contains("c.toml"));
    assert!(line("server.host").contains("default"));
    assert!(line("auth.pbkdf2_iterations").contains("600000"));
    // One line per key: as many as the shipped chat.toml sets.
    let keys = admin::DEFAULT_CONFIG
        .lines()
        .filter(|l| l.contains(" = ") && !l.trim_start().starts_with('#'))
        .count();
    assert_eq!(text.lines().count(), keys, "{text}");
    assert!(line("server.tls.cert").contains("default"));
}

#[test]
fn user_commands_manage_accounts_on_a_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let c = test_config(dir.path());
    admin::user_add(&c, "carol", "password123").expect("add");
    assert!(
        admin::user_add(&c, "CAROL", "password123").is_err(),
        "case-insensitive unique"
    );
    assert!(admin::user_add(&c, "bad name", "password123").is_err());
    assert!(admin::user_add(&c, "dave", "short").is_err());
    admin::user_set_admin(&c, "carol", true).expect("promote");
    admin::user_set_disabled(&c, "carol", true).expect("disable");
    assert!(admin::user_set_disabled(&c, "nobody", true).is_err());
    let mut out = Vec::new();
    admin::user_list(&c, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("carol") && text.contains("disabled"),
        "{text}"
    );
    admin::user_set_disabled(&c, "carol", false).expect("enable");
    admin::user_passwd(&c, "carol", "another-password").expect("passwd");
    let conn = rusqlite::Connection::open(&c.database.path).unwrap();
    let (user, hash) = queries::user_for_login(&conn, "carol")
        .unwrap()
        .expect("enabled");
    assert_eq!(user.username, "carol");
    assert!(hearth::auth::password::verify("another-password", &hash));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_management_takes_effect_on_a_running_server() {
    let mut app = TestApp::start().await;
    let c = app.config.clone();

    // An account created from the command line can sign in at once.
    admin::user_add(&c, "erin", "password123").expect("add while serving");
    let res = app.try_login("erin", "password123").await;
    assert_eq!(res.status(), 200);
    let session = Auth::Cookie(session_cookie(&res).expect("a session cookie"));
    let me = app.get_as("/api/me", &session).await;
    assert_eq!(me.status(), 200);

    // Disabling signs them out everywhere and blocks sign-in.
    admin::user_set_disabled(&c, "erin", true).expect("disable while serving");
    let me = app.get_as("/api/me", &session).await;
    assert_eq!(me.status(), 401);
    let res = app.try_login("erin", "password123").await;
    assert_eq!(res.status(), 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_during_writes_holds_every_message_committed_before_it_started() {
    let mut app = TestApp::start().await;
    let c = app.config.clone();
    let dir = app.dir.path().to_path_buf();
    let db = app.server().state().db.clone();
    db.write(|conn| {
        queries::insert_user(
            conn,
            "writer",
            "writer",
            "x",
            hearth::db::NewAdmin::IfFirst,
            0,
        )
    })
    .await
    .expect("user");

    // Writers commit through the server's own writer thread and record each committed id.
    let committed = Arc::new(Mutex::new(Vec::<i64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (db, committed, stop) = (db.clone(), committed.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 5_000 {
                let body = format!("writer {w} message {i}");
                let id = db
                    .write(move |conn| queries::insert_message(conn, 1, 1, &body, None, 0))
                    .await
                    .expect("committed")
                    .expect("the writer is a member of general");
                committed.lock().unwrap().push(id);
                i += 1;
            }
        }));
    }
    while committed.lock().unwrap().len() < 200 {
        tokio::task::yield_now().await;
    }
    let before: HashSet<i64> = committed.lock().unwrap().iter().copied().collect();
    let out = dir.join("backup.db");
    let c2 = c.clone();
    let out2 = out.clone();
    let msg = tokio::task::spawn_blocking(move || admin::backup(&c2, &out2))
        .await
        .unwrap()
        .expect("backup succeeds while writing");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    app.stop().await;

    assert!(msg.starts_with("backed up"), "{msg}");
    let copy = rusqlite::Connection::open(&out).unwrap();
    let ids: HashSet<i64> = copy
        .prepare("SELECT id FROM messages")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let missing: Vec<_> = before.difference(&ids).collect();
    assert!(missing.is_empty(), "backup lacks committed ids {missing:?}");
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert!(admin::backup(&c, &out).is_err(), "never overwrites");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_streams_every_room_and_message_as_json() {
    let mut app = TestApp::start().await;
    let c = app.config.clone();
    let db = app.server().state().db.clone();
    db.write(|conn| {
        queries::insert_user(
            conn,
            "frank",
            "frank",
            "x",
            hearth::db::NewAdmin::IfFirst,
            0,
        )?;
        for i in 0..10 {
            queries::insert_message(conn, 1, 1, &format!("<b>hello</b> {i}"), None, i)?;
        }
        Ok(())
    })
    .await
    .unwrap();
    app.stop().await;
    let mut out = Vec::new();
    admin::export_json(&c, &mut out).expect("export");
    let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(v["rooms"][0]["name"], "general");
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 10);
    assert_eq!(msgs[3]["body"], "<b>hello</b> 3");
    assert_eq!(msgs[3]["user"], "frank");
}

/// Run the `hearth` binary on the database in `dir`; (exit code, stdout, stderr).
fn hearth(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.current_dir(dir)
        .arg("--config")
        .arg(dir.join("absent.toml"))
        .args(args)
        .env("CHAT_DATABASE__PATH", dir.join("chat.db"))
        .env("CHAT_AUTH__PBKDF2_ITERATIONS", "1000")
        .env_remove("CHAT_SERVER__PUBLIC_URL");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("hearth runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_invite_commands_take_effect_on_a_running_server() {
    let mut app = TestApp::start().await;
    let dir = app.dir.path().to_path_buf();
    let register = |name: &str, invite: Option<&str>| {
        let mut body = json!({"username": name, "password": "password123"});
        if let Some(code) = invite {
            body["invite"] = json!(code);
        }
        let app = &app;
        async move {
            let res = app.post_json("/api/register", &body).await;
            let status = res.status().as_u16();
            let v = json_body(res).await;
            (
                status,
                v["error"]["code"].as_str().unwrap_or("").to_string(),
            )
        }
    };

    let (code, out, err) = hearth(&dir, &["registration"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("registration is open"), "{out}");

    let (code, out, err) = hearth(&dir, &["registration", "closed"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("now closed"), "{out}");
    assert_eq!(
        register("alice", None).await,
        (403, "registration_closed".into())
    );

    let (code, out, _) = hearth(&dir, &["registration", "invite"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("now invite"), "{out}");
    assert_eq!(
        register("alice", None).await,
        (403, "invite_required".into())
    );

    // An invite from the command line, printed once with its link.
    let (code, out, err) = hearth(
        &dir,
        &["invite", "create", "--uses", "2", "--hours", "1"],
        &[("CHAT_SERVER__PUBLIC_URL", "https://chat.example.org")],
    );
    assert_eq!(code, 0, "{err}");
    let line = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in\n{out}"))
            .to_string()
    };
    let invite = line("code: ");
    assert_eq!(invite.len(), 43);
    assert_eq!(
        line("link: "),
        format!("https://chat.example.org/?invite={invite}")
    );
    assert!(out.contains("2 uses"), "{out}");

    assert_eq!(register("alice", Some(&invite)).await.0, 201);
    assert_eq!(register("bob", Some(&invite)).await.0, 201);
    assert_eq!(
        register("carol", Some(&invite)).await,
        (403, "invalid_invite".into())
    );

    // Listing shows the use count, never the code; revoking stops a fresh invite.
    let (code, out, _) = hearth(&dir, &["invite", "create"], &[]);
    assert_eq!(code, 0);
    let second = out
        .lines()
        .find_map(|l| l.strip_prefix("code: "))
        .unwrap()
        .to_string();
    assert!(out.contains("1 use,"), "default is one use: {out}");
    assert!(out.contains("/?invite="), "{out}");
    let (_, list, _) = hearth(&dir, &["invite", "list"], &[]);
    assert!(list.contains("used_up") && list.contains("2/2"), "{list}");
    assert!(list.contains("active") && list.contains("0/1"), "{list}");
    assert!(!list.contains(&invite) && !list.contains(&second), "{list}");
    let id = list
        .lines()
        .find(|l| l.contains("active"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let (code, out, _) = hearth(&dir, &["invite", "revoke", &id], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("revoked"), "{out}");
    assert_eq!(
        register("carol", Some(&second)).await,
        (403, "invalid_invite".into())
    );

    // Back to open.
    assert_eq!(hearth(&dir, &["registration", "open"], &[]).0, 0);
    assert_eq!(register("carol", None).await.0, 201);
    app.stop().await;
}

#[test]
fn registration_and_invite_commands_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = hearth(dir.path(), &["registration", "sometimes"], &[]);
    assert_eq!(code, 2, "clap refuses an unknown mode: {err}");
    for args in [
        &["invite", "create", "--uses", "0"][..],
        &["invite", "create", "--uses", "1001"],
        &["invite", "create", "--hours", "0"],
        &["invite", "create", "--hours", "721"],
    ] {
        let (code, out, err) = hearth(dir.path(), args, &[]);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(err.contains("--uses") || err.contains("--hours"), "{err}");
    }
    let (code, _, err) = hearth(dir.path(), &["invite", "revoke", "42"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no invite 42"), "{err}");
    let (code, _, _) = hearth(dir.path(), &["invite", "create", "--uses", "many"], &[]);
    assert_eq!(code, 2);
}
