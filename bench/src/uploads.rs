//! Uploads beside a chat scenario: `n` clients each send files of `bytes` bytes over raw HTTP,
//! paced to `mib_per_s` each (a person on a link of that speed), one after the other until told
//! to stop; each finished upload is deleted again (a cancelled upload), so the disk does not
//! fill. Counts what went through, and how long each upload took.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::client::{Account, Target};
use crate::util::new_hist;

/// What the uploaders did.
#[derive(Default)]
pub struct Tally {
    /// Uploads answered 201.
    pub done: AtomicU64,
    /// Uploads that failed (any other answer, or a broken connection).
    pub failed: AtomicU64,
    /// Bytes of the finished uploads.
    pub bytes: AtomicU64,
    /// Seconds per finished upload, in microseconds.
    pub took: Mutex<Option<Histogram<u64>>>,
    /// The first failure, for the report.
    pub problem: Mutex<Option<String>>,
}

/// Bytes written between two pauses of a paced upload.
const SLICE: usize = 64 * 1024;

/// Start `n` uploaders (accounts taken round-robin); they run until `stop` turns true.
pub fn start(
    t: &Target,
    accounts: &[Account],
    (n, bytes, mib_per_s): (usize, usize, f64),
    stop: watch::Receiver<bool>,
) -> (Arc<Tally>, Vec<tokio::task::JoinHandle<()>>) {
    let tally = Arc::new(Tally::default());
    let tasks = (0..n)
        .map(|i| {
            let token = accounts[i % accounts.len()]
                .token
                .clone()
                .unwrap_or_default();
            let addr = t.addr;
            let tally = tally.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let mut body = crate::util::make_body(bytes, 11 + i as u64).into_bytes();
                let mut k = 0u64;
                while !*stop.borrow() {
                    // Different bytes each time: every upload is a new file to hash and store.
                    k += 1;
                    body[..8].copy_from_slice(&(k << 8 | i as u64).to_le_bytes());
                    let t0 = Instant::now();
                    let run = one(addr, &token, &body, mib_per_s);
                    let result = tokio::select! {
                        r = run => r,
                        _ = stop.changed() => break,
                    };
                    match result {
                        Ok(()) => {
                            tally.done.fetch_add(1, Relaxed);
                            tally.bytes.fetch_add(body.len() as u64, Relaxed);
                            let us = t0.elapsed().as_micros() as u64;
                            let mut h = tally.took.lock().unwrap();
                            h.get_or_insert_with(new_hist).saturating_record(us.max(1));
                        }
                        Err(e) => {
                            tally.failed.fetch_add(1, Relaxed);
                            tally.problem.lock().unwrap().get_or_insert(e);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
        })
        .collect();
    (tally, tasks)
}

/// One paced upload of `body`, then its deletion.
async fn one(
    addr: std::net::SocketAddr,
    token: &str,
    body: &[u8],
    mib_per_s: f64,
) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let head = format!(
        "POST /api/uploads?name=bench.bin HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let rate = mib_per_s * 1024.0 * 1024.0;
    let mut sent = 0usize;
    for part in body.chunks(SLICE) {
        s.write_all(part).await.map_err(|e| e.to_string())?;
        sent += part.len();
        if rate > 0.0 {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&answer);
    if !text.starts_with("HTTP/1.1 201") {
        return Err(format!(
            "upload answered {}",
            text.lines().next().unwrap_or("nothing")
        ));
    }
    let id = text
        .split("\"id\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .ok_or("no upload id in the answer")?
        .to_string();
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let del = format!(
        "DELETE /api/uploads/{id} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    s.write_all(del.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    if !answer.starts_with(b"HTTP/1.1 204") {
        return Err("deleting the upload failed".into());
    }
    Ok(())
}
