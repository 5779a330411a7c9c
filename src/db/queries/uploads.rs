//! Uploads: the stored files' rows, attaching them to messages, and the queue of files that
//! may have lost their last user.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::*;

/// An upload to record.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// Random id.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// File name (cleaned).
    pub name: String,
    /// Media type.
    pub mime: String,
    /// Bytes.
    pub size: i64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// An image's width and height.
    pub dimensions: Option<(u32, u32)>,
    /// An image's thumbnail: its file's hash and its media type.
    pub thumbnail: Option<(String, String)>,
}

/// One upload as the download route needs it: what to serve, and who may read it.
#[derive(Debug, Clone)]
pub struct UploadRow {
    /// Its attachment view.
    pub attachment: Attachment,
    /// Who uploaded it.
    pub user_id: i64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// The thumbnail's file and type, for images.
    pub thumbnail: Option<(String, String)>,
    /// The message it was sent with, and that message's room id and whether it is deleted.
    pub message: Option<(i64, i64, bool)>,
}

const ATTACHMENT_COLUMNS: &str = "u.id, u.name, u.type, u.size, u.width, u.height";

fn attachment_row(r: &Row<'_>) -> rusqlite::Result<Attachment> {
    let width: Option<u32> = r.get(4)?;
    let height: Option<u32> = r.get(5)?;
    Ok(Attachment {
        id: r.get(0)?,
        name: r.get(1)?,
        mime: r.get(2)?,
        size: r.get(3)?,
        dimensions: width.zip(height),
    })
}

/// Record an upload (not sent yet).
pub fn insert_upload(conn: &Connection, u: &NewUpload, now_ms: i64) -> rusqlite::Result<()> {
    let (thumb, thumb_type) = match &u.thumbnail {
        Some((h, t)) => (Some(h.as_str()), Some(t.as_str())),
        None => (None, None),
    };
    conn.prepare_cached(
        "INSERT INTO uploads (id, user_id, name, type, size, sha256, width, height, \
         thumb_sha256, thumb_type, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        u.id,
        u.user_id,
        u.name,
        u.mime,
        u.size,
        u.sha256,
        u.dimensions.map(|d| d.0),
        u.dimensions.map(|d| d.1),
        thumb,
        thumb_type,
        now_ms
    ])?;
    Ok(())
}

/// The bytes of every upload `user_id` holds (sent or not).
pub fn upload_bytes_of(conn: &Connection, user_id: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(SUM(size), 0) FROM uploads WHERE user_id = ?1")?
        .query_row([user_id], |r| r.get(0))
}

/// The upload `id`, with its message's room when it was sent.
pub fn upload_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<UploadRow>> {
    conn.prepare_cached(&format!(
        "SELECT {ATTACHMENT_COLUMNS}, u.user_id, u.sha256, u.thumb_sha256, u.thumb_type, \
         u.message_id, m.room_id, m.deleted \
         FROM uploads u LEFT JOIN messages m ON m.id = u.message_id WHERE u.id = ?1"
    ))?
    .query_row([id], |r| {
        let thumb: Option<String> = r.get(8)?;
        let thumb_type: Option<String> = r.get(9)?;
        let message: Option<i64> = r.get(10)?;
        Ok(UploadRow {
            attachment: attachment_row(r)?,
            user_id: r.get(6)?,
            sha256: r.get(7)?,
            thumbnail: thumb.zip(thumb_type),
            message: match message {
                Some(id) => Some((id, r.get(11)?, r.get(12)?)),
                None => None,
            },
        })
    })
    .optional()
}

/// Give the uploads `ids` (in this order) to message `message_id`: each must be `user_id`'s
/// and not sent yet. Their views, or `None` (nothing changed) when one is not.
pub fn attach_uploads(
    conn: &Connection,
    message_id: i64,
    user_id: i64,
    ids: &[String],
) -> rusqlite::Result<Option<Vec<Attachment>>> {
    let mut out = Vec::with_capacity(ids.len());
    let mut find = conn.prepare_cached(&format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM uploads u \
         WHERE u.id = ?1 AND u.user_id = ?2 AND u.message_id IS NULL"
    ))?;
    for id in ids {
        match find
            .query_row(params![id, user_id], attachment_row)
            .optional()?
        {
            Some(a) if !out.iter().any(|o: &Attachment| o.id == a.id) => out.push(a),
            _ => return Ok(None),
        }
    }
    let mut set =
        conn.prepare_cached("UPDATE uploads SET message_id = ?2, position = ?3 WHERE id = ?1")?;
    for (i, a) in out.iter().enumerate() {
        set.execute(params![a.id, message_id, i as i64])?;
    }
    Ok(Some(out))
}

/// Fill in the attachments of `msgs`: one indexed range read over their ids.
pub fn fill_attachments(conn: &Connection, msgs: &mut [StoredMessage]) -> rusqlite::Result<()> {
    let live = msgs.iter().filter(|m| !m.deleted);
    let (Some(lo), Some(hi)) = (live.clone().map(|m| m.id).min(), live.map(|m| m.id).max()) else {
        return Ok(());
    };
    let index: HashMap<i64, usize> = msgs
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.deleted)
        .map(|(i, m)| (m.id, i))
        .collect();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTACHMENT_COLUMNS}, u.message_id FROM uploads u \
         WHERE u.message_id BETWEEN ?1 AND ?2 ORDER BY u.message_id, u.position"
    ))?;
    let mut rows = stmt.query([lo, hi])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(6)?;
        if let Some(&i) = index.get(&id) {
            msgs[i].attachments.push(attachment_row(row)?);
        }
    }
    Ok(())
}

/// Fill in reactions and attachments: what a message read from its row lacks.
pub fn fill_extras(conn: &Connection, msgs: &mut [StoredMessage]) -> rusqlite::Result<()> {
    fill_reactions(conn, msgs)?;
    fill_attachments(conn, msgs)?;
    fill_previews(conn, msgs)
}

/// Remove the uploads of message `id` (it is being deleted); their files are queued for
/// removal by the trigger.
pub fn erase_attachments(conn: &Connection, message_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM uploads WHERE message_id = ?1")?
        .execute([message_id])?;
    Ok(())
}

/// Remove `user_id`'s upload `id` if it was not sent; whether it was removed.
pub fn delete_unsent_upload(conn: &Connection, id: &str, user_id: i64) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "DELETE FROM uploads WHERE id = ?1 AND user_id = ?2 AND message_id IS NULL",
        )?
        .execute(params![id, user_id])?;
    Ok(n > 0)
}

/// Remove the uploads created before `cutoff_ms` that were never sent; how many.
pub fn delete_stale_uploads(conn: &Connection, cutoff_ms: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM uploads WHERE message_id IS NULL AND created_at < ?1")?
        .execute([cutoff_ms])
}

/// Whether any upload uses the file `sha256` (as its bytes or its thumbnail), or an account as
/// its avatar.
pub fn file_in_use(conn: &Connection, sha256: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM uploads WHERE sha256 = ?1) \
         OR EXISTS (SELECT 1 FROM uploads WHERE thumb_sha256 = ?1) \
         OR EXISTS (SELECT 1 FROM users WHERE avatar_sha256 = ?1) \
         OR EXISTS (SELECT 1 FROM message_previews WHERE image_sha256 = ?1) \
         OR EXISTS (SELECT 1 FROM link_previews WHERE image_sha256 = ?1)",
    )?
    .query_row([sha256], |r| r.get(0))
}

/// Take up to `limit` queued hashes of files that may have lost their last upload, removing
/// them from the queue (the caller removes whichever file is unused, in the same transaction).
pub fn take_file_gc(conn: &Connection, limit: i64) -> rusqlite::Result<Vec<String>> {
    let hashes: Vec<String> =
        all_rows(conn, "SELECT sha256 FROM file_gc LIMIT ?1", [limit], |r| {
            r.get(0)
        })?;
    let mut del = conn.prepare_cached("DELETE FROM file_gc WHERE sha256 = ?1")?;
    for h in &hashes {
        del.execute([h])?;
    }
    Ok(hashes)
}

/// Every file hash some upload (bytes and thumbnails) or avatar uses: for finding orphaned
/// files.
pub fn files_in_use(conn: &Connection) -> rusqlite::Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    let mut stmt = conn.prepare_cached(
        "SELECT sha256 FROM uploads UNION SELECT thumb_sha256 FROM uploads \
         WHERE thumb_sha256 IS NOT NULL UNION SELECT avatar_sha256 FROM users \
         WHERE avatar_sha256 IS NOT NULL UNION SELECT image_sha256 FROM message_previews \
         WHERE image_sha256 IS NOT NULL UNION SELECT image_sha256 FROM link_previews \
         WHERE image_sha256 IS NOT NULL",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        out.insert(r.get(0)?);
    }
    Ok(out)
}
