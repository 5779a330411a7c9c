//! Files: storing an upload as it streams in, deciding who may download one, and removing the
//! files nobody uses any more.
//!
//! An upload never passes through the message writer's queue with its bytes: it is written
//! to a temporary file while it arrives (hashed on the way, never held in memory), flushed,
//! measured and stripped off the async runtime when it is an image, and only then recorded
//! by one short writer job that also moves its files into place.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::app::access;
use crate::app::error::{AppError, Code};
use crate::app::App;
use crate::db::queries::NewUpload;
use crate::db::{Attachment, UploadFiles, UploadRefused};
use crate::files::image::{self, Kind, Problem};
use crate::files::{clean_name, clean_type, Files, TempFile};

/// How long an upload may wait to be sent with a message before it is removed.
pub const UNSENT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// How long an upload's body may stop arriving before the upload is given up (a slow link
/// is fine; a stalled one does not hold a connection and a temporary file for ever).
pub const STALL_LIMIT: Duration = Duration::from_secs(30);

/// An upload as its HTTP request describes it.
pub struct NewFile<'a> {
    /// The uploader.
    pub user_id: i64,
    /// The file name given (`?name=`).
    pub name: &'a str,
    /// The `Content-Type` given.
    pub declared: Option<&'a str>,
    /// The `Content-Length` given, if any.
    pub length: Option<u64>,
}

/// Store the file streaming in as `body`. Refusals: `payload_too_large` (over
/// `uploads.max_bytes`, told by `Content-Length` before anything is read, or found while
/// reading), `quota_exceeded`, `image_too_large`, `rate_limited` (the message rate: an upload
/// counts as a message), `bad_request` (the body broke off), `request_timeout` (the body
/// stopped arriving for [`STALL_LIMIT`]), `unavailable`.
pub async fn upload<S, B, E>(state: &App, f: NewFile<'_>, body: S) -> Result<Attachment, AppError>
where
    S: Stream<Item = Result<B, E>> + Send,
    B: Buf,
    E: std::fmt::Display,
{
    let cfg = &state.config.uploads;
    if f.length.is_some_and(|n| n > cfg.max_bytes) {
        return Err(too_large(cfg.max_bytes));
    }
    if let (Some(n), true) = (f.length, cfg.user_quota_bytes > 0) {
        let used = state.db.upload_bytes_of(f.user_id).await?;
        if used.saturating_add(n) > cfg.user_quota_bytes {
            return Err(over_quota());
        }
    }
    let why = "You are sending files too fast.";
    state.message_rate.spend(f.user_id, why).await?;
    let (temp, received) = receive(&state.files, body, cfg.max_bytes).await?;
    let kind = Kind::sniff(&received.head);
    let permit = match kind {
        Some(_) => Some(
            state
                .decoders
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| stopping())?,
        ),
        None => None,
    };
    let files = state.files.clone();
    let max_pixels = cfg.max_image_pixels;
    let stored = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        finish(&files, temp, received, kind, max_pixels)
    })
    .await
    .map_err(|e| internal(&e.to_string()))??;
    let upload = NewUpload {
        id: new_id().map_err(|e| internal(&e))?,
        user_id: f.user_id,
        name: clean_name(f.name),
        mime: match stored.image {
            Some((kind, _)) => kind.mime().to_string(),
            None => clean_type(f.declared),
        },
        size: stored.size as i64,
        sha256: stored.sha256.clone(),
        dimensions: stored.image.map(|(_, d)| d),
        thumbnail: stored
            .thumbnail
            .as_ref()
            .map(|t| (t.1.clone(), t.2.to_string()))
            .or_else(|| {
                stored
                    .image
                    .map(|(kind, _)| (stored.sha256.clone(), kind.mime().to_string()))
            }),
    };
    let attachment = Attachment {
        id: upload.id.clone(),
        name: upload.name.clone(),
        mime: upload.mime.clone(),
        size: upload.size,
        dimensions: upload.dimensions,
    };
    let temps = UploadFiles {
        file: stored.file,
        thumbnail: stored.thumbnail.map(|t| t.0),
    };
    match state
        .db
        .record_upload(state.files.clone(), upload, temps, cfg.user_quota_bytes)
        .await?
    {
        Ok(()) => Ok(attachment),
        Err(UploadRefused::OverQuota) => Err(over_quota()),
    }
}

/// What arrived: its size, hash, and first bytes.
pub(crate) struct Received {
    size: u64,
    sha256: String,
    /// The first bytes, for recognising an image.
    pub(crate) head: Vec<u8>,
    file: std::fs::File,
}

/// Write `body` to a new temporary file, hashing it; refuse it past `max` bytes.
pub(crate) async fn receive<S, B, E>(
    files: &Files,
    body: S,
    max: u64,
) -> Result<(TempFile, Received), AppError>
where
    S: Stream<Item = Result<B, E>> + Send,
    B: Buf,
    E: std::fmt::Display,
{
    let (temp, file) = files.temp().map_err(|e| internal(&e.to_string()))?;
    // Arriving bytes are gathered into batches; each batch is hashed and written by one
    // blocking task, off the runtime's threads (a hop per network read would cost more than
    // the write itself).
    let mut sink = Some((file, Sha256::new()));
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut size = 0u64;
    let mut head = Vec::with_capacity(16);
    let mut body = std::pin::pin!(body);
    loop {
        let next = tokio::time::timeout(STALL_LIMIT, body.next())
            .await
            .map_err(|_| {
                AppError::new(
                    Code::RequestTimeout,
                    "The upload stopped arriving for 30 seconds and was given up.",
                )
            })?;
        let Some(chunk) = next else { break };
        let mut chunk = chunk.map_err(|e| {
            AppError::bad_request(format!(
                "The upload broke off before it was complete ({e})."
            ))
        })?;
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            size += n as u64;
            if size > max {
                return Err(too_large(max));
            }
            if head.len() < 16 {
                let take = (16 - head.len()).min(n);
                head.extend_from_slice(&part[..take]);
            }
            batch.extend_from_slice(part);
            chunk.advance(n);
            if batch.len() >= WRITE_BATCH {
                write_batch(&mut sink, &mut batch).await?;
            }
        }
    }
    write_batch(&mut sink, &mut batch).await?;
    let (file, hasher) = sink.ok_or_else(|| internal("the upload's file was lost"))?;
    let received = Received {
        size,
        sha256: hex(&hasher.finalize()),
        head,
        file,
    };
    Ok((temp, received))
}

/// Bytes gathered before they are hashed and written in one go.
const WRITE_BATCH: usize = 1024 * 1024;

/// Hash and append `batch` to the file on a blocking thread; the batch comes back empty.
async fn write_batch(
    sink: &mut Option<(std::fs::File, Sha256)>,
    batch: &mut Vec<u8>,
) -> Result<(), AppError> {
    if batch.is_empty() {
        return Ok(());
    }
    let (mut file, mut hasher) = sink
        .take()
        .ok_or_else(|| internal("the upload's file was lost"))?;
    let data = std::mem::take(batch);
    let (file, hasher, mut data) = tokio::task::spawn_blocking(move || {
        hasher.update(&data);
        std::io::Write::write_all(&mut file, &data).map(|()| (file, hasher, data))
    })
    .await
    .map_err(|e| internal(&e.to_string()))?
    .map_err(|e| internal(&e.to_string()))?;
    data.clear();
    *batch = data;
    *sink = Some((file, hasher));
    Ok(())
}

/// An upload ready to be recorded.
struct Stored {
    file: TempFile,
    size: u64,
    sha256: String,
    /// For an image: its kind and shown dimensions.
    image: Option<(Kind, (u32, u32))>,
    /// A thumbnail that is not the file itself: its file, hash and type.
    thumbnail: Option<(TempFile, String, &'static str)>,
}

/// Flush the file to disk; for an image, measure it, strip its metadata (a new file) and
/// write its thumbnail. Blocking.
fn finish(
    files: &Files,
    temp: TempFile,
    received: Received,
    kind: Option<Kind>,
    max_pixels: u64,
) -> Result<Stored, AppError> {
    let io = |e: std::io::Error| internal(&e.to_string());
    received.file.sync_all().map_err(io)?;
    drop(received.file);
    let plain = |temp| Stored {
        file: temp,
        size: received.size,
        sha256: received.sha256.clone(),
        image: None,
        thumbnail: None,
    };
    let Some(kind) = kind else {
        return Ok(plain(temp));
    };
    let data = std::fs::read(temp.path()).map_err(io)?;
    let prepared = match image::prepare(&data, kind, max_pixels) {
        Ok(p) => p,
        Err(Problem::TooLarge) => return Err(image_too_large(max_pixels)),
        // Not really an image: kept as a plain file, served as a download.
        Err(Problem::Unreadable) => return Ok(plain(temp)),
    };
    let (file, size, sha256) = match prepared.bytes {
        Some(bytes) => {
            let (t, sha) = write_temp(files, &bytes).map_err(io)?;
            (t, bytes.len() as u64, sha)
        }
        None => (temp, received.size, received.sha256.clone()),
    };
    let thumbnail = match prepared.thumbnail {
        Some((bytes, mime)) => {
            let (t, sha) = write_temp(files, &bytes).map_err(io)?;
            Some((t, sha, mime))
        }
        None => None,
    };
    Ok(Stored {
        file,
        size,
        sha256,
        image: Some((kind, prepared.dimensions)),
        thumbnail,
    })
}

/// Write `bytes` to a new temporary file, flushed to disk; it and its hash.
pub(crate) fn write_temp(files: &Files, bytes: &[u8]) -> std::io::Result<(TempFile, String)> {
    let (t, mut f) = files.temp()?;
    std::io::Write::write_all(&mut f, bytes)?;
    f.sync_all()?;
    Ok((t, hex(&Sha256::digest(bytes))))
}

/// A file to serve.
#[derive(Debug)]
pub struct Download {
    /// Where its bytes are.
    pub path: PathBuf,
    /// Its media type.
    pub mime: String,
    /// The name to save it under.
    pub name: String,
    /// Its SHA-256 (the entity tag).
    pub sha256: String,
    /// Shown in the page (a raster image Hearth recognised) rather than downloaded.
    pub inline: bool,
}

/// The answer to anyone who may not see a file, whether it exists or not.
pub fn unknown_upload() -> AppError {
    AppError::new(Code::UnknownUpload, "There is no such file.")
}

/// The file of upload `id` (its thumbnail when `thumbnail`) if `user_id` may read it: the
/// uploader before it is sent, and anyone who may read its message's room after. Everything
/// else is `unknown_upload`, so nobody learns which ids exist.
pub async fn download(
    state: &App,
    user_id: i64,
    id: &str,
    thumbnail: bool,
) -> Result<Download, AppError> {
    let unknown = unknown_upload;
    if !valid_id(id) {
        return Err(unknown());
    }
    let id = id.to_string();
    let row = state
        .db
        .read_tx(move |tx| {
            let Some(row) = tx.upload(&id)? else {
                return Ok::<_, crate::db::DbError>(None);
            };
            let allowed = match row.message {
                None => row.user_id == user_id,
                Some((_, _, true)) => false,
                Some((_, room_id, false)) => tx
                    .room_key_by_id(room_id, user_id)?
                    .is_some_and(|r| access::key_readable(&r)),
            };
            Ok(allowed.then_some(row))
        })
        .await?
        .ok_or_else(unknown)?;
    let a = &row.attachment;
    let (sha256, mime) = if thumbnail {
        row.thumbnail.clone().ok_or_else(unknown)?
    } else {
        (row.sha256.clone(), a.mime.clone())
    };
    let inline = a.dimensions.is_some()
        && matches!(
            mime.as_str(),
            "image/png" | "image/jpeg" | "image/gif" | "image/webp"
        );
    Ok(Download {
        path: state.files.path_of(&sha256),
        mime,
        name: a.name.clone(),
        sha256,
        inline,
    })
}

/// Remove `user_id`'s upload `id` that was not sent (a cancelled upload). Refusal:
/// `unknown_upload` (no such unsent upload of theirs).
pub async fn discard(state: &App, user_id: i64, id: &str) -> Result<(), AppError> {
    let removed = valid_id(id)
        && state
            .db
            .delete_unsent_upload(state.files.clone(), id, user_id)
            .await?;
    if removed {
        Ok(())
    } else {
        Err(AppError::new(
            Code::UnknownUpload,
            "There is no such file waiting to be sent.",
        ))
    }
}

/// Remove, soon and off the caller's path, the files that deleted messages left unused.
pub fn collect_soon(state: &App) {
    let (db, files) = (state.db.clone(), state.files.clone());
    tokio::spawn(async move {
        if let Err(e) = db.collect_files(files).await {
            tracing::warn!("cannot remove unused files: {e}");
        }
    });
}

/// Hourly upkeep: uploads never sent within a day go, then every file no upload uses.
pub async fn sweep(state: &App) {
    let files = state.files.clone();
    match state
        .db
        .sweep_uploads(files.clone(), UNSENT_MAX_AGE.as_millis() as i64)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} files no message uses"),
        Err(e) => tracing::warn!("cannot remove old uploads: {e}"),
    }
    match state.db.remove_orphan_files(files).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} files left by an interrupted upload"),
        Err(e) => tracing::warn!("cannot look for unused files: {e}"),
    }
}

/// Whether `id` looks like an upload id (22 URL-safe base64 characters).
pub fn valid_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn new_id() -> Result<String, String> {
    use base64::Engine;
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| e.to_string())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `image_too_large`, for an image over `max_pixels` (or over what that many take decoded).
pub(crate) fn image_too_large(max_pixels: u64) -> AppError {
    let mp = max_pixels / 1_000_000;
    AppError::new(
        Code::ImageTooLarge,
        format!(
            "The image is too large: at most {mp} megapixels ({} with 16 bits per channel).",
            mp / 2
        ),
    )
}

pub(crate) fn too_large(max: u64) -> AppError {
    AppError::new(
        Code::PayloadTooLarge,
        format!("Files may be at most {}.", size_text(max)),
    )
}

/// `bytes` for a sentence: in MiB (one decimal, when it has one) from 1 MiB on, in KiB from
/// 1 KiB, else in bytes.
fn size_text(bytes: u64) -> String {
    let unit = |n: u64, name: &str| {
        let tenths = (bytes as f64 / n as f64 * 10.0).round() / 10.0;
        format!("{tenths} {name}")
    };
    match bytes {
        b if b >= 1 << 20 => unit(1 << 20, "MiB"),
        b if b >= 1 << 10 => unit(1 << 10, "KiB"),
        1 => "1 byte".to_string(),
        b => format!("{b} bytes"),
    }
}

fn over_quota() -> AppError {
    AppError::new(
        Code::QuotaExceeded,
        "You have used all the space you have for files. Delete some messages with files first.",
    )
}

fn stopping() -> AppError {
    AppError::new(Code::Unavailable, "The server is stopping.").retry_after(Duration::from_secs(1))
}

pub(crate) fn internal(e: &str) -> AppError {
    tracing::error!("upload failed: {e}");
    AppError::new(
        Code::Unavailable,
        "The file could not be stored. Try again.",
    )
    .retry_after(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_checked() {
        let a = new_id().unwrap();
        assert!(valid_id(&a));
        assert_ne!(a, new_id().unwrap());
        assert!(!valid_id("../../etc/passwd"));
        assert!(!valid_id(&"a".repeat(23)));
    }

    #[test]
    fn sizes_read_in_the_unit_that_fits() {
        assert_eq!(size_text(25 << 20), "25 MiB");
        assert_eq!(size_text(1_572_864), "1.5 MiB");
        assert_eq!(size_text(2000), "2 KiB");
        assert_eq!(size_text(1536), "1.5 KiB");
        assert_eq!(size_text(512), "512 bytes");
        assert_eq!(size_text(1), "1 byte");
    }
}
