//! Uploads: the stored files' rows, attaching them to messages, and the queue of files that
//! may have lost their last user.

use std::collections::{BTreeMap, HashMap};

use crate::model::Extras;

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

fn attachment_row<R: SqlRow + ?Sized>(r: &R) -> Result<Attachment, R::Error> {
    // Dimensions are stored from `u32`s; anything else reads as none.
    let side = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    let width = side(r.get(4)?);
    let height = side(r.get(5)?);
    Ok(Attachment {
        id: r.get(0)?,
        name: r.get(1)?,
        mime: r.get(2)?,
        size: r.get(3)?,
        dimensions: width.zip(height),
    })
}

/// Record an upload (not sent yet).
pub fn insert_upload<C: Sql>(conn: &C, u: &NewUpload, now_ms: i64) -> Result<(), C::Error> {
    let (thumb, thumb_type) = match &u.thumbnail {
        Some((h, t)) => (Some(h.as_str()), Some(t.as_str())),
        None => (None, None),
    };
    conn.exec(
        "INSERT INTO uploads (id, user_id, name, type, size, sha256, width, height, \
         thumb_sha256, thumb_type, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        args![
            u.id,
            u.user_id,
            u.name,
            u.mime,
            u.size,
            u.sha256,
            u.dimensions.map(|d| i64::from(d.0)),
            u.dimensions.map(|d| i64::from(d.1)),
            thumb,
            thumb_type,
            now_ms
        ],
    )?;
    Ok(())
}

/// The bytes of every upload `user_id` holds (sent or not).
pub fn upload_bytes_of<C: Sql>(conn: &C, user_id: i64) -> Result<i64, C::Error> {
    Ok(conn
        .row(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM uploads WHERE user_id = ?1",
            args![user_id],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

/// The upload `id`, with its message's room when it was sent.
pub fn upload_by_id<C: Sql>(conn: &C, id: &str) -> Result<Option<UploadRow>, C::Error> {
    conn.row(
        &format!(
            "SELECT {ATTACHMENT_COLUMNS}, u.user_id, u.sha256, u.thumb_sha256, u.thumb_type, \
             u.message_id, m.room_id, m.deleted \
             FROM uploads u LEFT JOIN messages m ON m.id = u.message_id WHERE u.id = ?1"
        ),
        args![id],
        |r| {
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
        },
    )
}

/// Lock `user_id`'s row to the end of the transaction on PostgreSQL, so that what is
/// counted of theirs next (their uploads' bytes) is not counted by another node's writer at
/// the same time; nothing on SQLite, whose write transaction excludes every other writer.
/// (`FOR NO KEY UPDATE`, as every such lock here: it does not hold up the foreign-key checks
/// of rows that name the locked one, such as another node's message by this user, which
/// waits for the log head other nodes' messages queue behind.)
pub fn lock_user<C: Sql>(conn: &C, user_id: i64) -> Result<(), C::Error> {
    if conn.is_postgres() {
        conn.row(
            "SELECT id FROM users WHERE id = ?1 FOR NO KEY UPDATE",
            args![user_id],
            |r| r.get::<i64>(0),
        )?;
    }
    Ok(())
}

/// Give the uploads `ids` (in this order) to message `message_id`: each must be `user_id`'s
/// and not sent yet. Their views, or `None` when one is not (the caller rolls back whatever
/// was changed).
pub fn attach_uploads<C: Sql>(
    conn: &C,
    message_id: i64,
    user_id: i64,
    ids: &[String],
) -> Result<Option<Vec<Attachment>>, C::Error> {
    let mut out = Vec::with_capacity(ids.len());
    // Locked on PostgreSQL: an upload discarded or swept by another node meanwhile is then
    // either still there to attach, or seen gone here (not attached to a message as a file
    // that no longer exists).
    let lock = if conn.is_postgres() {
        " FOR NO KEY UPDATE"
    } else {
        ""
    };
    let find = format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM uploads u \
         WHERE u.id = ?1 AND u.user_id = ?2 AND u.message_id IS NULL{lock}"
    );
    for id in ids {
        match conn.row(&find, args![id, user_id], |r| attachment_row(r))? {
            Some(a) if !out.iter().any(|o: &Attachment| o.id == a.id) => out.push(a),
            _ => return Ok(None),
        }
    }
    for (i, a) in out.iter().enumerate() {
        let changed = conn.exec(
            "UPDATE uploads SET message_id = ?2, position = ?3 WHERE id = ?1 \
             AND message_id IS NULL",
            args![a.id, message_id, i as i64],
        )?;
        if changed == 0 {
            // Taken meanwhile: the caller rolls back what this message changed.
            return Ok(None);
        }
    }
    Ok(Some(out))
}

/// Fill in the attachments of `msgs`: one indexed range read over their ids.
pub fn fill_attachments<C: Sql>(conn: &C, msgs: &mut [StoredMessage]) -> Result<(), C::Error> {
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
    attachments_between(
        conn,
        (lo, hi),
        |id| index.contains_key(&id),
        |id, a| msgs[index[&id]].attachments.push(a),
    )
}

/// Every file sent with the messages `lo..=hi` that `wanted` (ids of any room: a busy server
/// has others' between a quiet room's), as `f(message id, file)`: by message, in the order
/// they were given. Rows of messages not wanted are not read further than their id.
fn attachments_between<C: Sql>(
    conn: &C,
    (lo, hi): (i64, i64),
    wanted: impl Fn(i64) -> bool,
    mut f: impl FnMut(i64, Attachment),
) -> Result<(), C::Error> {
    conn.rows(
        &format!(
            "SELECT {ATTACHMENT_COLUMNS}, u.message_id FROM uploads u \
             WHERE u.message_id BETWEEN ?1 AND ?2 ORDER BY u.message_id, u.position"
        ),
        args![lo, hi],
        |row| {
            let id = row.get(6)?;
            if wanted(id) {
                f(id, attachment_row(row)?);
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Fill in reactions and attachments: what a message read from its row lacks.
pub fn fill_extras<C: Sql>(conn: &C, msgs: &mut [StoredMessage]) -> Result<(), C::Error> {
    fill_reactions(conn, msgs)?;
    fill_attachments(conn, msgs)?;
    fill_previews(conn, msgs)
}

/// Fill in the extras of a page of room `room_id` (its reactions, files and previews): one
/// indexed range read of each over the ids of its live messages.
pub fn fill_page_extras<C: Sql>(
    conn: &C,
    room_id: i64,
    page: &mut PageRows,
) -> Result<(), C::Error> {
    let live = page.rows.iter().filter(|r| !r.deleted);
    let (Some(lo), Some(hi)) = (live.clone().map(|r| r.id).min(), live.map(|r| r.id).max()) else {
        return Ok(());
    };
    let mut extras: BTreeMap<i64, Extras> = BTreeMap::new();
    let live = |id| page.has_live(id);
    reactions_between(conn, (room_id, lo, hi), live, |id, emoji, user| {
        add_reaction(&mut extras.entry(id).or_default().reactions, emoji, user)
    })?;
    attachments_between(conn, (lo, hi), live, |id, a| {
        extras.entry(id).or_default().attachments.push(a)
    })?;
    previews_between(conn, (lo, hi), live, |id, p| {
        extras.entry(id).or_default().preview = Some(p)
    })?;
    page.extras = extras;
    Ok(())
}

/// Remove the uploads of message `id` (it is being deleted); their files are queued for
/// removal by the trigger.
pub fn erase_attachments<C: Sql>(conn: &C, message_id: i64) -> Result<(), C::Error> {
    conn.exec(
        "DELETE FROM uploads WHERE message_id = ?1",
        args![message_id],
    )?;
    Ok(())
}

/// Remove `user_id`'s upload `id` if it was not sent; whether it was removed.
pub fn delete_unsent_upload<C: Sql>(conn: &C, id: &str, user_id: i64) -> Result<bool, C::Error> {
    let n = conn.exec(
        "DELETE FROM uploads WHERE id = ?1 AND user_id = ?2 AND message_id IS NULL",
        args![id, user_id],
    )?;
    Ok(n > 0)
}

/// Remove the uploads created before `cutoff_ms` that were never sent; how many.
pub fn delete_stale_uploads<C: Sql>(conn: &C, cutoff_ms: i64) -> Result<usize, C::Error> {
    conn.exec(
        "DELETE FROM uploads WHERE message_id IS NULL AND created_at < ?1",
        args![cutoff_ms],
    )
}

/// Whether any upload uses the file `sha256` (as its bytes or its thumbnail), or an account as
/// its avatar.
pub fn file_in_use<C: Sql>(conn: &C, sha256: &str) -> Result<bool, C::Error> {
    Ok(conn
        .row(
            "SELECT EXISTS (SELECT 1 FROM uploads WHERE sha256 = ?1) \
             OR EXISTS (SELECT 1 FROM uploads WHERE thumb_sha256 = ?1) \
             OR EXISTS (SELECT 1 FROM users WHERE avatar_sha256 = ?1) \
             OR EXISTS (SELECT 1 FROM message_previews WHERE image_sha256 = ?1) \
             OR EXISTS (SELECT 1 FROM link_previews WHERE image_sha256 = ?1)",
            args![sha256],
            |r| r.get(0),
        )?
        .unwrap_or(false))
}

/// Take up to `limit` queued hashes of files that may have lost their last upload, removing
/// them from the queue (the caller removes whichever file is unused, in the same transaction).
pub fn take_file_gc<C: Sql>(conn: &C, limit: i64) -> Result<Vec<String>, C::Error> {
    let hashes: Vec<String> =
        conn.rows("SELECT sha256 FROM file_gc LIMIT ?1", args![limit], |r| {
            r.get(0)
        })?;
    for h in &hashes {
        conn.exec("DELETE FROM file_gc WHERE sha256 = ?1", args![h])?;
    }
    Ok(hashes)
}

/// Every file hash some upload (bytes and thumbnails) or avatar uses: for finding orphaned
/// files.
pub fn files_in_use<C: Sql>(conn: &C) -> Result<std::collections::HashSet<String>, C::Error> {
    let mut out = std::collections::HashSet::new();
    conn.rows(
        "SELECT sha256 FROM uploads UNION SELECT thumb_sha256 FROM uploads \
         WHERE thumb_sha256 IS NOT NULL UNION SELECT avatar_sha256 FROM users \
         WHERE avatar_sha256 IS NOT NULL UNION SELECT image_sha256 FROM message_previews \
         WHERE image_sha256 IS NOT NULL UNION SELECT image_sha256 FROM link_previews \
         WHERE image_sha256 IS NOT NULL",
        args![],
        |r| {
            out.insert(r.get(0)?);
            Ok(())
        },
    )?;
    Ok(out)
}
