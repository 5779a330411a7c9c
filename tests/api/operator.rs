//! Operator commands against real databases, including while a server is serving the same file.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hearth::admin;
use hearth::config::Config;
use hearth::db::{queries, Db};
use serde_json::json;

use crate::common::{json_body, operator, send_frame, session_cookie, test_config, Auth, TestApp};

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
    let secrets = "[database]\nurl = \"postgres://hearth:topsecret@10.0.0.5/hearth\"\n\
                   [cluster]\nredis_url = \"redis://:alsosecret@10.0.0.5:6379\"\n";
    std::fs::write(&path, format!("[server]\nport = 8080\n{secrets}")).unwrap();
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
    // Passwords in the database's and Redis' URLs are not printed.
    assert!(!text.contains("secret"), "{text}");
    assert!(line("database.url").contains("\"postgres://hearth@10.0.0.5/hearth\""));
    assert!(line("cluster.redis_url").contains("\"redis://@10.0.0.5:6379\""));

    // What parses but could not serve is refused, naming the file or folder.
    std::fs::write(
        &path,
        "[server.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n\
         [database]\npath = \"/nonexistent/dir/chat.db\"\n",
    )
    .unwrap();
    let e = admin::check_config(&path, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/cert.pem") && e.contains("folder /nonexistent/dir does not exist"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_manage_accounts_on_a_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let c = test_config(dir.path());
    operator(&c, move |c| admin::user_add(c, "carol", "password123"))
        .await
        .expect("add");
    assert!(
        operator(&c, move |c| admin::user_add(c, "CAROL", "password123"))
            .await
            .is_err(),
        "case-insensitive unique"
    );
    assert!(
        operator(&c, move |c| admin::user_add(c, "bad name", "password123"))
            .await
            .is_err()
    );
    assert!(operator(&c, move |c| admin::user_add(c, "dave", "short"))
        .await
        .is_err());
    operator(&c, move |c| admin::user_set_admin(c, "carol", true))
        .await
        .expect("promote");
    operator(&c, move |c| admin::user_set_disabled(c, "carol", true))
        .await
        .expect("disable");
    assert!(
        operator(&c, move |c| admin::user_set_disabled(c, "nobody", true))
            .await
            .is_err()
    );
    let out = operator(&c, |c| {
        let mut out = Vec::new();
        admin::user_list(c, &mut out).map(|()| out)
    })
    .await
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("carol") && text.contains("disabled"),
        "{text}"
    );
    operator(&c, move |c| admin::user_set_disabled(c, "carol", false))
        .await
        .expect("enable");
    operator(&c, move |c| {
        admin::user_passwd(c, "carol", "another-password")
    })
    .await
    .expect("passwd");
    // A server started on the same file signs carol in, enabled, with the new password only.
    let url = c.database.url.clone(); // the same PostgreSQL database, if any
    let mut app = TestApp::builder()
        .in_dir(dir)
        .config(move |c| c.database.url = url)
        .start()
        .await;
    assert_eq!(app.try_login("carol", "password123").await.status(), 401);
    let res = app.try_login("carol", "another-password").await;
    assert_eq!(res.status(), 200);
    let me = json_body(res).await;
    assert_eq!(me["user"]["username"], "carol", "{me}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_management_takes_effect_on_a_running_server() {
    let mut app = TestApp::start().await;
    let c = app.config.clone();

    // An account created from the command line can sign in at once.
    operator(&c, move |c| admin::user_add(c, "erin", "password123"))
        .await
        .expect("add while serving");
    let res = app.try_login("erin", "password123").await;
    assert_eq!(res.status(), 200);
    let session = Auth::Cookie(session_cookie(&res).expect("a session cookie"));
    let me = app.get_as("/api/me", &session).await;
    assert_eq!(me.status(), 200);

    // Disabling signs them out everywhere (within the server's one-second poll of the
    // database: it keeps signed-in sessions in memory) and blocks sign-in at once.
    operator(&c, move |c| admin::user_set_disabled(c, "erin", true))
        .await
        .expect("disable while serving");
    let started = std::time::Instant::now();
    while app.get_as("/api/me", &session).await.status() != 401 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the session still works 5 s after the account was disabled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let res = app.try_login("erin", "password123").await;
    assert_eq!(res.status(), 401);
    app.stop().await;
}

/// Four tasks committing messages by `general`'s first member through the server's own writer
/// thread until `stop`, each id recorded in `committed` once committed. Raw inserts on
/// purpose: thousands of commits with their ids known, which no API offers (sends are
/// acknowledged through the fan-out, at a client's pace).
fn spawn_writers(
    db: &Db,
    committed: &Arc<Mutex<Vec<i64>>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|w| {
            let (db, committed, stop) = (db.clone(), committed.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) && i < 5_000 {
                    let body = format!("writer {w} message {i}");
                    let id = db
                        .write(move |conn| {
                            queries::insert_message(conn, (1, 1), &body, (None, None), 0)
                        })
                        .await
                        .expect("committed")
                        .expect("the writer is a member of general");
                    committed.lock().unwrap().push(id);
                    i += 1;
                }
            })
        })
        .collect()
}

/// The message ids in the database at `path`, as `hearth export` lists them.
fn exported_ids(config: &Config, path: &std::path::Path) -> HashSet<i64> {
    let mut on_copy = config.clone();
    on_copy.database.path = path.to_path_buf();
    let mut json = Vec::new();
    admin::export_json(&on_copy, &mut json).expect("the copy exports");
    let json: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
    json["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_during_writes_holds_every_message_committed_before_it_started() {
    if crate::common::sqlite_only("hearth backup (PostgreSQL has its own)") {
        return;
    }
    let mut app = TestApp::start().await;
    let c = app.config.clone();
    let out = app.dir.path().join("backup.db");
    let db = app.server().state().db.clone();
    app.signup("writer").await; // user 1, a member of general (room 1)
    let committed = Arc::new(Mutex::new(Vec::<i64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&db, &committed, &stop);
    while committed.lock().unwrap().len() < 200 {
        tokio::task::yield_now().await;
    }
    let before: HashSet<i64> = committed.lock().unwrap().iter().copied().collect();
    let (c2, out2) = (c.clone(), out.clone());
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
    // One file: nothing of a write-ahead log is left beside it.
    for tail in ["-wal", "-shm"] {
        let mut side = out.clone().into_os_string();
        side.push(tail);
        assert!(
            !std::path::Path::new(&side).exists(),
            "{side:?} beside the copy"
        );
    }
    let ids = exported_ids(&c, &out);
    let missing: Vec<_> = before.difference(&ids).collect();
    assert!(missing.is_empty(), "backup lacks committed ids {missing:?}");
    // Raw on purpose: the copy's soundness, checked apart from the command's own check.
    let copy = rusqlite::Connection::open(&out).unwrap();
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert!(admin::backup(&c, &out).is_err(), "never overwrites");
    let e = admin::backup(&c, &app.dir.path().join("nodir").join("b.db"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nodir does not exist") && !e.contains("partial"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_streams_every_room_and_message_as_json() {
    let mut app = TestApp::start().await;
    let c = app.config.clone();
    let frank = app.signup("frank").await;
    let mut ws = app.ws_connect(&frank, None).await;
    for i in 0..10 {
        let nonce = format!("n{i}");
        ws.send_json(&send_frame(&format!("<b>hello</b> {i}"), Some(&nonce)))
            .await;
        let ack = ws.next_skipping(&["presence", "typing"]).await;
        assert_eq!(ack["nonce"], nonce.as_str(), "{ack}");
    }
    drop(ws);
    app.stop().await;
    let out = operator(&c, |c| {
        let mut out = Vec::new();
        admin::export_json(c, &mut out).map(|()| out)
    })
    .await
    .expect("export");
    let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(v["rooms"][0]["name"], "general");
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 10);
    assert_eq!(msgs[3]["body"], "<b>hello</b> 3");
    assert_eq!(msgs[3]["user"], "frank");
}

/// `hearth export | head`: a reader that leaves early ends the export quietly with success,
/// not with a broken pipe on standard error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_reader_leaves_ends_quietly() {
    let mut app = TestApp::start().await;
    let frank = app.signup("frank").await;
    let mut ws = app.ws_connect(&frank, None).await;
    ws.send_json(&send_frame("hello", Some("n1"))).await;
    let ack = ws.next_skipping(&["presence", "typing"]).await;
    assert_eq!(ack["nonce"], "n1", "{ack}");
    drop(ws);
    app.stop().await;
    let dir = app.dir.path().to_path_buf();
    let url = app.config.database.url.clone();

    let out = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
            .current_dir(&dir)
            .arg("--config")
            .arg(dir.join("absent.toml"))
            .arg("export")
            .env("CHAT_DATABASE__PATH", dir.join("chat.db"))
            .env("CHAT_DATABASE__URL", &url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("hearth runs");
        // The reader leaves before the first byte: every write finds the pipe closed.
        drop(child.stdout.take());
        child.wait_with_output().expect("hearth ends")
    })
    .await
    .unwrap();

    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.to_lowercase().contains("pipe"), "{err}");
}

/// Run the `hearth` binary on the database in `dir` (or at the PostgreSQL `url`, when not
/// empty); (exit code, stdout, stderr).
fn hearth(
    (dir, url): (&std::path::Path, &str),
    args: &[&str],
    envs: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.current_dir(dir)
        .arg("--config")
        .arg(dir.join("absent.toml"))
        .args(args)
        .env("CHAT_DATABASE__PATH", dir.join("chat.db"))
        .env("CHAT_DATABASE__URL", url)
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

/// `POST /api/register` as `name`, with an invite code if given: the status and the error code
/// (empty on success).
async fn register(app: &TestApp, name: &str, invite: Option<&str>) -> (u16, String) {
    let mut body = json!({"username": name, "password": "password123"});
    if let Some(code) = invite {
        body["invite"] = json!(code);
    }
    let res = app.post_json("/api/register", &body).await;
    let status = res.status().as_u16();
    let v = json_body(res).await;
    let code = v["error"]["code"].as_str().unwrap_or("").to_string();
    (status, code)
}

/// The rest of the line of `out` that starts with `prefix`.
fn line_after(out: &str, prefix: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in\n{out}"))
        .to_string()
}

/// `hearth registration` shows the mode and sets it, and the running server obeys at once.
async fn registration_modes_from_the_command_line(app: &TestApp, dir: &std::path::Path) {
    let (code, out, err) = hearth((dir, &app.config.database.url), &["registration"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("registration is open"), "{out}");

    let (code, out, err) = hearth(
        (dir, &app.config.database.url),
        &["registration", "closed"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("now closed"), "{out}");
    let refused = register(app, "alice", None).await;
    assert_eq!(refused, (403, "registration_closed".into()));

    let (code, out, _) = hearth(
        (dir, &app.config.database.url),
        &["registration", "invite"],
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.contains("now invite"), "{out}");
    let refused = register(app, "alice", None).await;
    assert_eq!(refused, (403, "invite_required".into()));
}

/// An invite from the command line, printed once with its link, admits as many accounts as
/// it has uses; its code.
async fn a_two_use_invite_from_the_command_line(app: &TestApp, dir: &std::path::Path) -> String {
    let (code, out, err) = hearth(
        (dir, &app.config.database.url),
        &["invite", "create", "--uses", "2", "--hours", "1"],
        &[("CHAT_SERVER__PUBLIC_URL", "https://chat.example.org")],
    );
    assert_eq!(code, 0, "{err}");
    let invite = line_after(&out, "code: ");
    assert_eq!(invite.len(), 43);
    let link = line_after(&out, "link: ");
    assert_eq!(link, format!("https://chat.example.org/?invite={invite}"));
    assert!(out.contains("2 uses"), "{out}");

    assert_eq!(register(app, "alice", Some(&invite)).await.0, 201);
    assert_eq!(register(app, "bob", Some(&invite)).await.0, 201);
    let refused = register(app, "carol", Some(&invite)).await;
    assert_eq!(refused, (403, "invalid_invite".into()));
    invite
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_invite_commands_take_effect_on_a_running_server() {
    let mut app = TestApp::start().await;
    let dir = app.dir.path().to_path_buf();
    registration_modes_from_the_command_line(&app, &dir).await;
    let invite = a_two_use_invite_from_the_command_line(&app, &dir).await;

    // Listing shows the use count, never the code; revoking stops a fresh invite.
    let (code, out, _) = hearth((&dir, &app.config.database.url), &["invite", "create"], &[]);
    assert_eq!(code, 0);
    let second = line_after(&out, "code: ");
    assert!(out.contains("1 use,"), "default is one use: {out}");
    assert!(out.contains("/?invite="), "{out}");
    let (_, list, _) = hearth((&dir, &app.config.database.url), &["invite", "list"], &[]);
    assert!(list.contains("used_up") && list.contains("2/2"), "{list}");
    assert!(list.contains("active") && list.contains("0/1"), "{list}");
    assert!(!list.contains(&invite) && !list.contains(&second), "{list}");
    let id = list
        .lines()
        .find(|l| l.contains("active"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let (code, out, _) = hearth(
        (&dir, &app.config.database.url),
        &["invite", "revoke", &id],
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.contains("revoked"), "{out}");
    let refused = register(&app, "carol", Some(&second)).await;
    assert_eq!(refused, (403, "invalid_invite".into()));

    // Back to open.
    assert_eq!(
        hearth(
            (&dir, &app.config.database.url),
            &["registration", "open"],
            &[]
        )
        .0,
        0
    );
    assert_eq!(register(&app, "carol", None).await.0, 201);
    app.stop().await;
}

#[test]
fn registration_and_invite_commands_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = hearth((dir.path(), ""), &["registration", "sometimes"], &[]);
    assert_eq!(code, 2, "clap refuses an unknown mode: {err}");
    for args in [
        &["invite", "create", "--uses", "0"][..],
        &["invite", "create", "--uses", "1001"],
        &["invite", "create", "--hours", "0"],
        &["invite", "create", "--hours", "721"],
    ] {
        let (code, out, err) = hearth((dir.path(), ""), args, &[]);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(err.contains("--uses") || err.contains("--hours"), "{err}");
    }
    let (code, _, err) = hearth((dir.path(), ""), &["invite", "revoke", "42"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no invite 42"), "{err}");
    let (code, _, _) = hearth(
        (dir.path(), ""),
        &["invite", "create", "--uses", "many"],
        &[],
    );
    assert_eq!(code, 2);
}

#[tokio::test]
async fn a_second_server_on_the_same_file_is_refused_and_the_copy_waits_for_the_first() {
    if crate::common::sqlite_only("one server per SQLite file") {
        return;
    }
    let mut app = TestApp::start().await;
    let path = app.db_path();
    assert!(hearth::db::serving_elsewhere(&path));
    // Another server on the same file: refused at start-up, with a reason that says so.
    let err = match hearth::run(app.config.clone()).await {
        Ok(_) => panic!("a second server started on the same file"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("another Hearth server is serving"), "{err}");
    // The copy into PostgreSQL refuses before it connects anywhere.
    let said = operator(&app.config, |c| {
        admin::migrate_to_postgres(c, "postgres://nobody@127.0.0.1:1/none")
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(said.contains("is serving"), "{said}");
    // The first one still serves; once it stops, the file is free again.
    let auth = app.signup("alice").await;
    app.api_ok(reqwest::Method::GET, "/api/me", &auth, None, 200)
        .await;
    app.stop().await;
    assert!(!hearth::db::serving_elsewhere(&path));
    app.restart().await;
    app.api_ok(reqwest::Method::GET, "/api/me", &auth, None, 200)
        .await;
}
