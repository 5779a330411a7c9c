//! A `kill -9` in the middle of twenty concurrent uploads leaves a consistent store: after the
//! restart every upload that was answered 201 serves its bytes, nothing is left in the uploads
//! folder's `tmp/`, every stored file is named by the SHA-256 of its bytes and used by an
//! upload row (a file moved into place whose transaction never committed is swept at start),
//! every row's file is there, and the database passes its integrity check.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{http_client, Rng};
use crate::durability::{create_account, db_path, start_server};
use crate::process::HANG;

const UPLOADS: usize = 20;
const SIZE: usize = 256 * 1024;
const CHUNK: usize = 16 * 1024;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Upload `data` over a raw connection, `CHUNK` bytes at a time with `pause` between them; the
/// answer's upload id when it was 201 (`None` when the connection died first).
async fn upload(
    port: u16,
    token: String,
    name: String,
    data: Vec<u8>,
    pause: Duration,
) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let head = format!(
        "POST /api/uploads?name={name} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    );
    s.write_all(head.as_bytes()).await.ok()?;
    for part in data.chunks(CHUNK) {
        s.write_all(part).await.ok()?;
        tokio::time::sleep(pause).await;
    }
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.ok()?;
    let text = String::from_utf8_lossy(&answer);
    if !text.starts_with("HTTP/1.1 201") {
        return None;
    }
    let body = text.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["upload"]["id"].as_str().map(str::to_string)
}

/// Every stored file's hash (outside `tmp/`), checked against its bytes, and how many files
/// `tmp/` holds.
fn stored(folder: &Path) -> (HashSet<String>, usize) {
    let mut files = HashSet::new();
    let mut tmp = 0;
    for d in std::fs::read_dir(folder).unwrap().flatten() {
        let entries: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        if d.file_name() == "tmp" {
            tmp = entries.len();
            continue;
        }
        for f in entries {
            let name = f.file_name().to_string_lossy().to_string();
            let bytes = std::fs::read(f.path()).unwrap();
            assert_eq!(
                hex(&Sha256::digest(&bytes)),
                name,
                "a file is named by its hash"
            );
            files.insert(name);
        }
    }
    (files, tmp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_twenty_uploads_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let port = server.port;
    let http = http_client();
    let token = create_account(&http, port, "uploader").await;
    let mut rng = Rng::new(crate::common::seed(
        "uploads-crash",
        crate::durability::SEED_VAR,
        None,
    ));

    // Fifteen slow uploads are under way when five quick ones have finished; then the kill.
    let sent: Vec<Vec<u8>> = (0..UPLOADS)
        .map(|_| (0..SIZE).map(|_| rng.below(256) as u8).collect())
        .collect();
    let mut slow = Vec::new();
    for (i, data) in sent.iter().enumerate().skip(5) {
        let pause = Duration::from_millis(40 + rng.below(60));
        let up = upload(
            port,
            token.clone(),
            format!("f{i}.bin"),
            data.clone(),
            pause,
        );
        slow.push((i, tokio::spawn(up)));
    }
    let mut done = Vec::new();
    for (i, data) in sent.iter().enumerate().take(5) {
        let up = upload(
            port,
            token.clone(),
            format!("f{i}.bin"),
            data.clone(),
            Duration::ZERO,
        );
        let id = tokio::time::timeout(HANG, up).await.unwrap();
        done.push((id.expect("a quick upload is answered 201"), i));
    }
    server.kill_9();
    for (i, t) in slow {
        if let Some(id) = tokio::time::timeout(HANG, t).await.unwrap().unwrap() {
            done.push((id, i));
        }
    }
    assert!(done.len() < UPLOADS, "the kill cut some uploads");
    let folder = {
        let mut p = db_path(dir.path()).into_os_string();
        p.push("-files");
        std::path::PathBuf::from(p)
    };
    let (_, cut) = stored(&folder);
    assert!(cut > 0, "the kill left unfinished uploads in tmp/");

    let server = start_server(dir.path());
    let base = format!("http://127.0.0.1:{}", server.port);
    for (id, i) in &done {
        let res = http
            .get(format!("{base}/api/uploads/{id}"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "upload {i} was acknowledged");
        assert_eq!(
            res.bytes().await.unwrap().to_vec(),
            sent[*i],
            "upload {i} is intact"
        );
    }

    // The start empties tmp/ and the first sweep removes files no row uses.
    let db = db_path(dir.path());
    let used = || {
        let c =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let mut stmt = c.prepare("SELECT sha256 FROM uploads").unwrap();
        let rows: HashSet<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    };
    let deadline = std::time::Instant::now() + HANG;
    loop {
        let (files, tmp) = stored(&folder);
        let rows = used();
        if files == rows && tmp == 0 {
            assert_eq!(rows.len(), done.len(), "one row per acknowledged upload");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "files {files:?} (and {tmp} in tmp/) never matched the rows {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = rusqlite::Connection::open(&db).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // Uploads keep working after the crash.
    let again = upload(
        server.port,
        token.clone(),
        "after.bin".into(),
        b"after".to_vec(),
        Duration::ZERO,
    )
    .await;
    assert!(again.is_some());
    server.kill_9();
}
