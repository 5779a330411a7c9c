//! Link previews: the cache of fetched pages (`link_previews`) and the preview each message
//! shows (`message_previews`).

use std::collections::HashMap;

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
pub fn cached_page<C: Sql>(
    conn: &C,
    url: &str,
    fresh_since_ms: i64,
) -> Result<Option<CachedPage>, C::Error> {
    conn.row(
        "SELECT ok, title, description, site_name, image_sha256, image_type FROM link_previews \
         WHERE url = ?1 AND fetched_at >= ?2",
        args![url, fresh_since_ms],
        |r| {
            Ok(CachedPage {
                ok: r.get(0)?,
                title: r.get(1)?,
                description: r.get(2)?,
                site_name: r.get(3)?,
                image: match (r.get::<Option<String>>(4)?, r.get::<Option<String>>(5)?) {
                    (Some(sha), Some(mime)) => Some((sha, mime)),
                    _ => None,
                },
            })
        },
    )
}

/// Remember what `url` said (replacing what was cached).
pub fn cache_page<C: Sql>(
    conn: &C,
    url: &str,
    page: &CachedPage,
    now_ms: i64,
) -> Result<(), C::Error> {
    let (sha, mime) = page.image.clone().unzip();
    conn.exec(
        "INSERT INTO link_previews \
         (url, ok, title, description, site_name, image_sha256, image_type, fetched_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (url) DO UPDATE SET ok = excluded.ok, title = excluded.title, \
         description = excluded.description, site_name = excluded.site_name, \
         image_sha256 = excluded.image_sha256, image_type = excluded.image_type, \
         fetched_at = excluded.fetched_at",
        args![
            url,
            page.ok,
            page.title,
            page.description,
            page.site_name,
            sha,
            mime,
            now_ms
        ],
    )?;
    Ok(())
}

/// Forget pages fetched before `cutoff_ms` (their pictures are queued for removal); how many.
pub fn forget_old_pages<C: Sql>(conn: &C, cutoff_ms: i64) -> Result<usize, C::Error> {
    conn.exec(
        "DELETE FROM link_previews WHERE fetched_at < ?1",
        args![cutoff_ms],
    )
}

/// Whether message `id` has (or had, before its author removed it) a preview.
pub fn has_preview_row<C: Sql>(conn: &C, message_id: i64) -> Result<bool, C::Error> {
    Ok(conn
        .row(
            "SELECT 1 FROM message_previews WHERE message_id = ?1",
            args![message_id],
            |_| Ok(()),
        )?
        .is_some())
}

/// Give message `id` its preview (`image`: the picture's file and type).
pub fn insert_message_preview<C: Sql>(
    conn: &C,
    message_id: i64,
    p: &LinkPreview,
    image: Option<(&str, &str)>,
) -> Result<(), C::Error> {
    let (sha, mime) = image.unzip();
    conn.exec(
        "INSERT INTO message_previews \
         (message_id, url, title, description, site_name, image_sha256, image_type) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![
            message_id,
            p.url,
            p.title,
            p.description,
            p.site_name,
            sha,
            mime
        ],
    )?;
    Ok(())
}

/// Take message `id`'s preview away for good; whether it had one showing.
pub fn remove_message_preview<C: Sql>(conn: &C, message_id: i64) -> Result<bool, C::Error> {
    let n = conn.exec(
        "UPDATE message_previews SET removed = TRUE, title = '', description = '', \
         site_name = '', image_sha256 = NULL, image_type = NULL \
         WHERE message_id = ?1 AND removed = FALSE",
        args![message_id],
    )?;
    Ok(n > 0)
}

/// Mark message `id` as never to get a preview (its author removed it before it came).
pub fn refuse_message_preview<C: Sql>(conn: &C, message_id: i64) -> Result<(), C::Error> {
    conn.exec(
        "INSERT INTO message_previews (message_id, url, removed) VALUES (?1, '', TRUE) \
         ON CONFLICT DO NOTHING",
        args![message_id],
    )?;
    Ok(())
}

/// Remove the preview of message `id` (it is being deleted).
pub fn erase_preview<C: Sql>(conn: &C, message_id: i64) -> Result<(), C::Error> {
    conn.exec(
        "DELETE FROM message_previews WHERE message_id = ?1",
        args![message_id],
    )?;
    Ok(())
}

/// The picture of message `id`'s preview: its file and type.
pub fn preview_image<C: Sql>(
    conn: &C,
    message_id: i64,
) -> Result<Option<(String, String)>, C::Error> {
    conn.row(
        "SELECT image_sha256, image_type FROM message_previews \
         WHERE message_id = ?1 AND removed = FALSE AND image_sha256 IS NOT NULL",
        args![message_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Fill in the previews of `msgs` (not of tombstones).
pub fn fill_previews<C: Sql>(conn: &C, msgs: &mut [StoredMessage]) -> Result<(), C::Error> {
    let live = msgs.iter().filter(|m| !m.deleted);
    let (Some(lo), Some(hi)) = (live.clone().map(|m| m.id).min(), live.map(|m| m.id).max()) else {
        return Ok(());
    };
    // Built at the first row, if any: most pages have no preview.
    let index: std::cell::OnceCell<HashMap<i64, usize>> = std::cell::OnceCell::new();
    let index_of = || {
        index.get_or_init(|| {
            msgs.iter()
                .enumerate()
                .filter(|(_, m)| !m.deleted)
                .map(|(i, m)| (m.id, i))
                .collect()
        })
    };
    let mut found = Vec::new();
    previews_between(
        conn,
        (lo, hi),
        |id| index_of().contains_key(&id),
        |id, p| found.push((id, p)),
    )?;
    if let Some(index) = index.get() {
        for (id, p) in found {
            msgs[index[&id]].preview = Some(Box::new(p));
        }
    }
    Ok(())
}

/// The preview of each of the messages `lo..=hi` that `wanted` and has one (and whose author
/// did not remove it), as `f(message id, preview)`. Rows of messages not wanted are not read
/// further than their id.
pub(super) fn previews_between<C: Sql>(
    conn: &C,
    (lo, hi): (i64, i64),
    wanted: impl Fn(i64) -> bool,
    mut f: impl FnMut(i64, LinkPreview),
) -> Result<(), C::Error> {
    conn.rows(
        "SELECT message_id, url, title, description, site_name, image_sha256 IS NOT NULL \
         FROM message_previews WHERE message_id BETWEEN ?1 AND ?2 AND removed = FALSE",
        args![lo, hi],
        |row| {
            let id = row.get(0)?;
            if wanted(id) {
                f(
                    id,
                    LinkPreview {
                        url: row.get(1)?,
                        title: row.get(2)?,
                        description: row.get(3)?,
                        site_name: row.get(4)?,
                        has_image: row.get(5)?,
                    },
                );
            }
            Ok(())
        },
    )?;
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
