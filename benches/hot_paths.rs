//! Micro-benchmarks of the hot spots: encoding a `message` frame, committing a batch through
//! the writer thread, the history queries, and a history page from memory and from the
//! database as the server writes it.
//!
//! `cargo bench --bench hot_paths`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use hearth::config::Synchronous;
use hearth::db::Page;
use hearth::db::{queries, Committed, Db, NewMessage, StoredMessage};
use hearth::hub::{Loaded, Readers, Tails, TAIL_LEN};
use hearth::protocol::{self, ServerMsg};

fn sample_message() -> StoredMessage {
    StoredMessage {
        id: 1_234_567,
        room_id: 1,
        room: "general".into(),
        user: "alice".into(),
        body: "Are we still on for Saturday? I can bring the board games.".into(),
        nonce: Some("0f8c2d4e-6a1b-4c3d-9e8f-7a6b5c4d3e2f".into()),
        ts_ms: 1_764_108_674_123,
        edited_ms: None,
        deleted: false,
        reply_to: None,
        reactions: Vec::new(),
        attachments: Vec::new(),
        preview: None,
    }
}

fn frame_encode(c: &mut Criterion) {
    let m = sample_message();
    c.bench_function("encode message frame", |b| {
        b.iter(|| black_box(ServerMsg::Message(black_box(&m).into()).encode()))
    });
}

/// Open a fresh store with one user; returns the runtime, store, commit receiver and user id.
fn store(
    sync: Synchronous,
) -> (
    tokio::runtime::Runtime,
    Db,
    std::sync::mpsc::Receiver<Vec<Committed>>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (tx, rx) = std::sync::mpsc::channel();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (db, writer) =
        Db::open(&dir.path().join("bench.db"), sync, tx, Default::default()).expect("open");
    std::mem::forget(writer); // lives for the whole benchmark process
    rt.block_on(db.write(|c| {
        queries::insert_user(c, "alice", "alice", "x", hearth::db::NewAdmin::IfFirst, 0)
    }))
    .expect("user");
    (rt, db, rx, dir)
}

fn batch_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit batch of 256 messages");
    group.measurement_time(Duration::from_secs(5));
    for sync in [Synchronous::Full, Synchronous::Normal] {
        let (rt, db, rx, _dir) = store(sync);
        let room: Arc<str> = Arc::from("general");
        let user: Arc<str> = Arc::from("alice");
        group.bench_function(format!("{sync:?}"), |b| {
            b.iter_batched(
                || {
                    (0..256)
                        .map(|i| NewMessage {
                            room_id: 1,
                            room: room.clone(),
                            user_id: 1,
                            username: user.clone(),
                            body: format!("message {i}"),
                            nonce: None,
                            reply_to: None,
                            attachments: Vec::new(),
                            here: Vec::new(),
                            origin: 0,
                            answer: None,
                            queued_at: std::time::Instant::now(),
                        })
                        .collect::<Vec<_>>()
                },
                |msgs| {
                    rt.block_on(async {
                        for m in msgs {
                            db.submit(m).await.expect("queued");
                        }
                    });
                    let mut got = 0;
                    while got < 256 {
                        got += rx.recv().expect("commit").len();
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn history(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("history.db");
    let (tx, _rx) = std::sync::mpsc::channel();
    let (db, writer) = Db::open(&path, Synchronous::Normal, tx, Default::default()).expect("open");
    std::mem::forget(writer);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(db.write(|c| {
        queries::insert_user(c, "alice", "alice", "x", hearth::db::NewAdmin::IfFirst, 0)?;
        for i in 0..100_000 {
            queries::insert_message(c, (1, 1), &format!("message number {i}"), (None, None), i)?;
        }
        Ok(())
    }))
    .expect("filled");
    let conn = rusqlite::Connection::open(&path).expect("reader");
    c.bench_function("history: latest 50 of 100k", |b| {
        b.iter(|| black_box(queries::messages_before(&conn, 1, None, 50).expect("rows")))
    });
    // The same page through `Conn`, the connection type the store's threads hold (one more
    // branch per statement and per column than the driver's own connection).
    let any = hearth::db::sql::Conn::Lite(rusqlite::Connection::open(&path).expect("reader"));
    c.bench_function("history: latest 50 of 100k, through Conn", |b| {
        b.iter(|| black_box(queries::messages_before(&any, 1, None, 50).expect("rows")))
    });
    c.bench_function("replay: 1000 after id 90000, through Conn", |b| {
        b.iter(|| black_box(queries::messages_since_for_user(&any, 1, 90_000, 1000).expect("rows")))
    });
    c.bench_function("history: 50 before id 50000", |b| {
        b.iter(|| black_box(queries::messages_before(&conn, 1, Some(50_000), 50).expect("rows")))
    });
    // The same page on a plain connection with one plan per statement (the plain connection
    // above compiles the statement again on every run, since SQLite plans with the value
    // bound to its `LIMIT`), then on one opened as the server's readers are (one plan per
    // statement, the file mapped).
    let planned = rusqlite::Connection::open(&path).expect("reader");
    planned
        .set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .expect("planner setting");
    c.bench_function("history: 50 before id 50000, planned once", |b| {
        b.iter(|| black_box(queries::messages_before(&planned, 1, Some(50_000), 50).expect("rows")))
    });
    let reader = hearth::db::open_reader(&path).expect("reader");
    c.bench_function("history: 50 before id 50000, a server reader", |b| {
        b.iter(|| black_box(queries::messages_before(&reader, 1, Some(50_000), 50).expect("rows")))
    });
    // A whole `before=` page as the server answers it from the store: the rows and their
    // extras read and written as JSON, through a struct and strings per message and each
    // message's own object (as before), then straight from the rows.
    let key = queries::room_key_by_id(&reader, 1, 1)
        .expect("room")
        .expect("general");
    c.bench_function("history page: 50 before id 50000, via messages", |b| {
        b.iter(|| {
            let mut rows = queries::messages_before(&reader, 1, Some(50_000), 50).expect("rows");
            queries::fill_extras(&reader, &mut rows).expect("extras");
            let items: Vec<_> = rows.iter().map(protocol::message_json).collect();
            black_box(protocol::history_body(&items))
        })
    });
    c.bench_function(
        "history page: 50 before id 50000, straight from the rows",
        |b| {
            b.iter(|| {
                let page = queries::room_page(&reader, &key, Page::Before(Some(50_000)), 50)
                    .expect("page");
                black_box(protocol::history_body_of(&page))
            })
        },
    );
    c.bench_function("replay: 1000 after id 90000, a server reader", |b| {
        b.iter(|| {
            black_box(queries::messages_since_for_user(&reader, 1, 90_000, 1000).expect("rows"))
        })
    });
    c.bench_function("replay: 1000 after id 90000", |b| {
        b.iter(|| {
            black_box(queries::messages_since_for_user(&conn, 1, 90_000, 1000).expect("rows"))
        })
    });
    c.bench_function(
        "history page from the database: latest 50 of 100k, as JSON",
        |b| {
            b.iter(|| {
                let mut rows = queries::messages_before(&conn, 1, None, 50).expect("rows");
                queries::fill_reactions(&conn, &mut rows).expect("reactions");
                let items: Vec<_> = rows.iter().map(protocol::message_json).collect();
                black_box(protocol::history_body(&items))
            })
        },
    );
    history_from_memory(c);
}

/// A room's tail of [`TAIL_LEN`] messages: the newest page answered from it, and a new
/// message appended to it by the fan-out.
fn history_from_memory(c: &mut Criterion) {
    let tails = Tails::default();
    let message = |id: i64| {
        let mut m = sample_message();
        m.id = id;
        (id, protocol::message_json(&m))
    };
    let messages = (1..=TAIL_LEN as i64).map(message).collect();
    let ticket = tails.ticket("general");
    let loaded = Loaded {
        readers: Readers::Everyone,
        messages,
    };
    assert!(tails.install("general", ticket, loaded));
    c.bench_function("history page from memory: latest 50, as JSON", |b| {
        b.iter(|| match tails.page("general", 1, Page::Before(None), 50) {
            hearth::hub::Lookup::Page(items) => black_box(protocol::history_body(&items)),
            other => panic!("not from memory: {other:?}"),
        })
    });
    let mut next = TAIL_LEN as i64 + 1;
    let frame = ServerMsg::Message((&sample_message()).into()).encode();
    c.bench_function("tail: append a delivered message", |b| {
        b.iter(|| {
            let json = || protocol::message_json_from_frame(&frame);
            tails.append("general", next, json);
            next += 1;
        })
    });
}

criterion_group!(benches, frame_encode, batch_commit, history);
criterion_main!(benches);
