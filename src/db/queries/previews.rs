//! Link previews: the cache of fetched pages (`link_previews`) and the preview each message
//! shows (`message_previews`).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::*;
use crate::model::LinkPreview;

/// What a page said about itself, as cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPage {
    /// Whether there is anything to show.
    pub ok: bool,
    /// Title, description, site name.
    pub title: String,
    /// Description.
    pub description: String,
    /// Site name.
    pub site_name: String,
    /// The picture's file and type.
    pub image: Option<(String, String)>,
}

/// The cached page for `url`, if fetched at or after `fresh_since_ms`.
pub fn cached_page(
    conn: &Connection,
    url: &str,
    fresh_since_ms: i64,
) -> rusqlite::Result<Option<CachedPage>> {
    conn.prepare_cached(
        "SELECT ok, title, description, site_name, image_sha256, image_type FROM link_previews \
         WHERE url = ?1 AND fetched_at >= ?2",
    )?
    .query_row(params![url, fresh_since_ms], |r| {
        Ok(CachedPage {
            ok: r.get(0)?,
            title: r.get(1)?,
            description: r.get(2)?,
            site_name: r.get(3)?,
            image: match (
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ) {
                (Some(sha), Some(mime)) => Some((sha, mime)),
                _ => None,
            },
        })
    })
    .optional()
}

/// Remember what `url` said (replacing what was cached).
pub fn cache_page(
    conn: &Connection,
    url: &str,
    page: &CachedPage,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let (sha, mime) = page.image.clone().unzip();
    conn.prepare_cached(
        "INSERT INTO link_previews \
         (url, ok, title, description, site_name, image_sha256, image_type, fetched_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (url) DO UPDATE SET ok = excluded.ok, title = excluded.title, \
         description = excluded.description, site_name = excluded.site_name, \
         image_sha256 = excluded.image_sha256, image_type = excluded.image_type, \
         fetched_at = excluded.fetched_at",
    )?
    .execute(params![
        url,
        page.ok,
        page.title,
        page.description,
        page.site_name,
        sha,
        mime,
        now_ms
    ])?;
    Ok(())
}

/// Forget pages fetched before `cutoff_ms` (their pictures are queued for removal); how many.
pub fn forget_old_pages(conn: &Connection, cutoff_ms: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM link_previews WHERE fetched_at < ?1")?
        .execute([cutoff_ms])
}

/// Whether message `id` has (or had, before its author removed it) a preview.
pub fn has_preview_row(conn: &Connection, message_id: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM message_previews WHERE message_id = ?1)")?
        .query_row([message_id], |r| r.get(0))
}

/// Give message `id` its preview (`image`: the picture's file and type).
pub fn insert_message_preview(
    conn: &Connection,
    message_id: i64,
    p: &LinkPreview,
    image: Option<(&str, &str)>,
) -> rusqlite::Result<()> {
    let (sha, mime) = image.unzip();
    conn.prepare_cached(
        "INSERT INTO message_previews \
         (message_id, url, title, description, site_name, image_sha256, image_type) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        message_id,
        p.url,
        p.title,
        p.description,
        p.site_name,
        sha,
        mime
    ])?;
    Ok(())
}

/// Take message `id`'s preview away for good; whether it had one showing.
pub fn remove_message_preview(conn: &Connection, message_id: i64) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE message_previews SET removed = 1, title = '', description = '', \
             site_name = '', image_sha256 = NULL, image_type = NULL \
             WHERE message_id = ?1 AND removed = 0",
        )?
        .execute([message_id])?;
    Ok(n > 0)
}

/// Mark message `id` as never to get a preview (its author removed it before it came).
pub fn refuse_message_preview(conn: &Connection, message_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO message_previews (message_id, url, removed) VALUES (?1, '', 1)",
    )?
    .execute([message_id])?;
    Ok(())
}

/// Remove the preview of message `id` (it is being deleted).
pub fn erase_preview(conn: &Connection, message_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM message_previews WHERE message_id = ?1")?
        .execute([message_id])?;
    Ok(())
}

/// The picture of message `id`'s preview: its file and type.
pub fn preview_image(
    conn: &Connection,
    message_id: i64,
) -> rusqlite::Result<Option<(String, String)>> {
    conn.prepare_cached(
        "SELECT image_sha256, image_type FROM message_previews \
         WHERE message_id = ?1 AND removed = 0 AND image_sha256 IS NOT NULL",
    )?
    .query_row([message_id], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// Fill in the previews of `msgs` (not of tombstones).
pub fn fill_previews(conn: &Connection, msgs: &mut [StoredMessage]) -> rusqlite::Result<()> {
    let live = msgs.iter().filter(|m| !m.deleted);
    let (Some(lo), Some(hi)) = (live.clone().map(|m| m.id).min(), live.map(|m| m.id).max()) else {
        return Ok(());
    };
    let mut stmt = conn.prepare_cached(
        "SELECT message_id, url, title, description, site_name, image_sha256 IS NOT NULL \
         FROM message_previews WHERE message_id BETWEEN ?1 AND ?2 AND removed = 0",
    )?;
    let mut rows = stmt.query([lo, hi])?;
    let mut found: Option<HashMap<i64, usize>> = None;
    while let Some(row) = rows.next()? {
        let index = found.get_or_insert_with(|| {
            msgs.iter()
                .enumerate()
                .filter(|(_, m)| !m.deleted)
                .map(|(i, m)| (m.id, i))
                .collect()
        });
        let id: i64 = row.get(0)?;
        if let Some(&i) = index.get(&id) {
            msgs[i].preview = Some(Box::new(LinkPreview {
                url: row.get(1)?,
                title: row.get(2)?,
                description: row.get(3)?,
                site_name: row.get(4)?,
                has_image: row.get(5)?,
            }));
        }
    }
    Ok(())
}

/// A preview as a change row keeps it.
pub fn preview_json(p: &LinkPreview) -> String {
    serde_json::json!({
        "url": p.url,
        "title": p.title,
        "description": p.description,
        "site_name": p.site_name,
        "image": p.has_image,
    })
    .to_string()
}

/// A preview from its change row (`None`: removed, or erased with its message).
pub fn preview_from_json(s: &str) -> Option<LinkPreview> {
    let v: serde_json::Value = serde_json::from_str(s).ok()?;
    let text = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    Some(LinkPreview {
        url: text("url"),
        title: text("title"),
        description: text("description"),
        site_name: text("site_name"),
        has_image: v.get("image").and_then(|x| x.as_bool()).unwrap_or(false),
    })
}
