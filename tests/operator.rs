//! Operator commands against real databases, including while a server is serving the same file.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hearth::admin;
use hearth::config::Config;
use hearth::db::queries;

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.server.host = "127.0.0.1".into();
    c.server.port = 0;
    c.database.path = dir.join("chat.db");
    c.auth.pbkdf2_iterations = 1000;
    c
}

async fn post_json(url: &str, body: serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("request")
}

fn cookie(res: &reqwest::Response) -> String {
    let raw = res
        .headers()
        .get("set-cookie")
        .expect("cookie")
        .to_str()
        .unwrap();
    raw.split(';').next().unwrap().to_string()
}

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
    let c = config(dir.path());
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
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let server = hearth::run(c.clone()).await.expect("server starts");
    let base = format!("http://{}", server.local_addr());

    // An account created from the command line can sign in at once.
    admin::user_add(&c, "erin", "password123").expect("add while serving");
    let res = post_json(
        &format!("{base}/api/login"),
        serde_json::json!({"username":"erin","password":"password123"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let session = cookie(&res);
    let me = reqwest::Client::new()
        .get(format!("{base}/api/me"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // Disabling signs them out everywhere and blocks sign-in.
    admin::user_set_disabled(&c, "erin", true).expect("disable while serving");
    let me = reqwest::Client::new()
        .get(format!("{base}/api/me"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    let res = post_json(
        &format!("{base}/api/login"),
        serde_json::json!({"username":"erin","password":"password123"}),
    )
    .await;
    assert_eq!(res.status(), 401);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_during_writes_holds_every_message_committed_before_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let server = hearth::run(c.clone()).await.expect("server starts");
    let db = server.state().db.clone();
    db.write(|conn| queries::insert_user(conn, "writer", "writer", "x", 0))
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
                    .expect("committed");
                committed.lock().unwrap().push(id);
                i += 1;
            }
        }));
    }
    while committed.lock().unwrap().len() < 200 {
        tokio::task::yield_now().await;
    }
    let before: HashSet<i64> = committed.lock().unwrap().iter().copied().collect();
    let out = dir.path().join("backup.db");
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
    server.shutdown().await;

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
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let server = hearth::run(c.clone()).await.expect("server starts");
    let db = server.state().db.clone();
    db.write(|conn| {
        queries::insert_user(conn, "frank", "frank", "x", 0)?;
        for i in 0..10 {
            queries::insert_message(conn, 1, 1, &format!("<b>hello</b> {i}"), None, i)?;
        }
        Ok(())
    })
    .await
    .unwrap();
    server.shutdown().await;
    let mut out = Vec::new();
    admin::export_json(&c, &mut out).expect("export");
    let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(v["rooms"][0]["name"], "general");
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 10);
    assert_eq!(msgs[3]["body"], "<b>hello</b> 3");
    assert_eq!(msgs[3]["user"], "frank");
}
