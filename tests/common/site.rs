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
