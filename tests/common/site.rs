//! A small web site on 127.0.0.1 for the tests of requests Hearth makes (link previews): it
//! answers from a fixed table and records every request, so a test can prove what was, and
//! what was never, fetched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the site answers on one path.
#[derive(Clone)]
pub enum Answer {
    /// 200 with this type and body.
    Ok(&'static str, Vec<u8>),
    /// 302 to this location.
    Redirect(String),
    /// Read the request, then say nothing for a minute.
    Hang,
    /// 200 with this type and body, after this pause.
    Late(Duration, &'static str, Vec<u8>),
}

/// A web site on 127.0.0.1 that records the path and `Host` of every request.
pub struct Site {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Site {
    /// Serve `pages` until the test ends.
    pub async fn start(pages: HashMap<&'static str, Answer>) -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let pages = Arc::new(pages);
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (pages, log) = (pages.clone(), log.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let host = head
                        .lines()
                        .find_map(|l| l.strip_prefix("host: ").or(l.strip_prefix("Host: ")))
                        .unwrap_or("")
                        .to_string();
                    log.lock().unwrap().push((path.clone(), host));
                    let (status, headers, body) = match pages.get(path.as_str()) {
                        Some(Answer::Ok(ty, body)) => {
                            ("200 OK", format!("Content-Type: {ty}\r\n"), body.clone())
                        }
                        Some(Answer::Redirect(to)) => {
                            ("302 Found", format!("Location: {to}\r\n"), Vec::new())
                        }
                        Some(Answer::Late(pause, ty, body)) => {
                            tokio::time::sleep(*pause).await;
                            ("200 OK", format!("Content-Type: {ty}\r\n"), body.clone())
                        }
                        Some(Answer::Hang) => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        }
                        None => ("404 Not Found", String::new(), Vec::new()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Site { addr, seen }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests asked for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .count()
    }

    /// How many requests arrived in all.
    pub fn total(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The path and `Host` of every request so far.
    pub fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().unwrap().clone()
    }
}

/// A `w`×`h` PNG picture with a gradient (what a site's `og:image` serves in the tests).
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 40])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method and path.
    pub line: String,
    /// Header names lowercased, with their values.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

/// An HTTP endpoint on 127.0.0.1 that records every request with its body and answers with a
/// status the test sets (and may change at any time): a webhook's receiver.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    status: Arc<std::sync::atomic::AtomicU16>,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Listen, answering `status` until told otherwise.
    pub async fn start(status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(std::sync::atomic::AtomicU16::new(status));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (a, g) = (answer.clone(), got.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (answer, got) = (a.clone(), g.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut lines = head.lines();
                    let line = lines.next().unwrap_or("").to_string();
                    let headers: HashMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let len: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buf[head_end..head_end + len].to_vec();
                    let status = answer.load(std::sync::atomic::Ordering::SeqCst);
                    got.lock().unwrap().push(Received {
                        line,
                        headers,
                        body,
                        status,
                    });
                    if status == 0 {
                        // Held: no answer; the connection stays open until the sender goes.
                        let _ = stream.read(&mut chunk).await;
                        return;
                    }
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Receiver {
            addr,
            status: answer,
            got,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer `status` from now on; 0 holds each request unanswered (recorded with status 0)
    /// until its sender gives up or goes away.
    pub fn answer(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Wait (up to `limit`) until `pred` holds of what was received; what was received then.
    pub async fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let got = self.received();
            if pred(&got) {
                return got;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "timed out after {limit:?} waiting for {what}; received {} requests",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `sha256=<hex HMAC-SHA256 of body keyed with secret>`: what `X-Hearth-Signature` must say.
pub fn hmac_signature(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}
