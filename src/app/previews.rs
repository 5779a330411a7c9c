//! Link previews: the first link of each new message is fetched off the message path, by a
//! bounded pool of workers, after the message was acknowledged and delivered. What the page
//! says about itself (title, description, site name) and a shrunk copy of its picture are
//! cached per link for a day; the preview reaches the room as a `preview` change at a
//! position of its own, like an edit, so a resuming client gets it too. Readers load the
//! picture from Hearth, never from the linked site.
//!
//! Every fetch goes through [`crate::outbound`], with its address rules. A job that finds
//! the queue full is dropped (a preview is a nicety; the message itself is never held up).

use tokio::sync::mpsc;
use url::Url;

use crate::app::error::{AppError, Code};
use crate::app::lifecycle::Actor;
use crate::app::uploads::{write_temp, Download};
use crate::app::App;
use crate::db::queries::CachedPage;
use crate::db::{Change, LinkPreview, StoredMessage};
use crate::events::Audience;
use crate::files::image::{self, Kind};
use crate::hub::Watcher;
use crate::outbound::page::{first_link, parse_head};
use crate::outbound::{check_url, BodyLimit, Outbound, OutboundError, MAX_BODY};

/// Links waiting for a worker; more are dropped.
const QUEUE: usize = 256;
/// Bytes of a page read for its head.
const PAGE_PREFIX: usize = 256 * 1024;

/// Links of one author waiting for a worker, at most; more of theirs are dropped.
const PENDING_PER_AUTHOR: usize = 32;

/// One link to preview.
struct Job {
    /// The message it belongs to.
    message_id: i64,
    /// Its first link.
    url: Url,
    /// Who wrote it: the workers go round the authors.
    author: String,
}

/// Start the workers; what the hub should call with each new message to hand them its
/// first link (`None` when `previews.enabled` is off).
pub fn start(state: &App) -> Option<Watcher> {
    if !state.config.previews.enabled {
        return None;
    }
    let (tx, rx) = mpsc::channel::<Job>(QUEUE);
    let allow_private = state.config.outbound.allow_private_networks;
    let client = client(state);
    tokio::spawn(dispatch(state.clone(), client.clone(), rx));
    Some(Box::new(move |msg: &StoredMessage, _: &[i64]| {
        let Some(url) = first_link(&msg.body) else {
            return;
        };
        if check_url(&url, allow_private).is_err() || client.never_fetches(&url) {
            return;
        }
        let _ = tx.try_send(Job {
            message_id: msg.id,
            url,
            author: msg.user.clone(),
        });
    }))
}

/// The previews' outbound client: it never fetches `previews.never_fetch`'s domains, at the
/// link, at any redirect or at the picture.
fn client(state: &App) -> Outbound {
    Outbound::new(&state.config.outbound).never(&state.config.previews.never_fetch)
}

/// Hand each job to a worker, at most `previews.workers` at once, until the server stops.
/// The workers go round the authors with links waiting, and one author's links take at most
/// half of them (at least one): someone posting link after link to a slow site delays their
/// own previews, not everyone's.
async fn dispatch(state: App, client: Outbound, mut rx: mpsc::Receiver<Job>) {
    let workers = state.config.previews.workers;
    let per_author = (workers / 2).max(1);
    let mut stop = state.shutdown.clone();
    let (done_tx, mut done) = mpsc::unbounded_channel::<String>();
    let mut waiting = Waiting::default();
    let mut busy = 0usize;
    loop {
        while busy < workers {
            let Some(job) = waiting.next(per_author) else {
                break;
            };
            busy += 1;
            let (state, client, done_tx) = (state.clone(), client.clone(), done_tx.clone());
            tokio::spawn(async move {
                // Said when the task ends, even by a panic: the worker is free again.
                let _done = Done(done_tx, job.author.clone());
                if let Err(e) = preview(&state, &client, job).await {
                    tracing::debug!("no link preview: {e}");
                }
            });
        }
        tokio::select! {
            _ = stop.changed() => return,
            job = rx.recv() => match job {
                Some(job) => waiting.add(job),
                None => return,
            },
            Some(author) = done.recv() => {
                busy -= 1;
                waiting.finished(&author);
            }
        }
    }
}

/// Tells the dispatcher, when dropped, that a job of this author ended.
struct Done(mpsc::UnboundedSender<String>, String);

impl Drop for Done {
    fn drop(&mut self) {
        let _ = self.0.send(std::mem::take(&mut self.1));
    }
}

/// The jobs waiting for a worker, per author, and how many of each author's are running.
#[derive(Default)]
struct Waiting {
    /// Authors with jobs waiting, in turn.
    turns: std::collections::VecDeque<String>,
    /// Each author's waiting jobs, oldest first.
    jobs: std::collections::HashMap<String, std::collections::VecDeque<Job>>,
    /// Jobs running, per author.
    running: std::collections::HashMap<String, usize>,
}

impl Waiting {
    fn add(&mut self, job: Job) {
        let queue = self.jobs.entry(job.author.clone()).or_default();
        if queue.len() >= PENDING_PER_AUTHOR {
            return;
        }
        if queue.is_empty() {
            self.turns.push_back(job.author.clone());
        }
        queue.push_back(job);
    }

    /// The next job to run: the first author in turn with fewer than `per_author` running.
    fn next(&mut self, per_author: usize) -> Option<Job> {
        let at = self
            .turns
            .iter()
            .position(|a| self.running.get(a).copied().unwrap_or(0) < per_author)?;
        let author = self.turns.remove(at)?;
        let queue = self.jobs.get_mut(&author)?;
        let job = queue.pop_front()?;
        if queue.is_empty() {
            self.jobs.remove(&author);
        } else {
            self.turns.push_back(author.clone());
        }
        *self.running.entry(author).or_insert(0) += 1;
        Some(job)
    }

    fn finished(&mut self, author: &str) {
        if let Some(n) = self.running.get_mut(author) {
            *n -= 1;
            if *n == 0 {
                self.running.remove(author);
            }
        }
    }
}

/// Fetch (or find in the cache) what `job`'s link says and give its message the preview.
async fn preview(state: &App, client: &Outbound, job: Job) -> Result<(), String> {
    let key = job.url.as_str();
    let page = match state.db.cached_page(key).await.map_err(|e| e.to_string())? {
        Some(page) => page,
        None => {
            let (page, image) = fetch(state, client, &job.url).await;
            state
                .db
                .cache_page(state.files.clone(), (key, job.message_id), page, image)
                .await
                .map_err(|e| e.to_string())?
        }
    };
    if !page.ok {
        return Ok(());
    }
    let preview = LinkPreview {
        url: job.url.to_string(),
        title: page.title,
        description: page.description,
        site_name: page.site_name,
        has_image: page.image.is_some(),
    };
    let image = page.image;
    let id = job.message_id;
    let files = state.files.clone();
    state
        .db
        .transact(move |tx| {
            // The picture may have gone since the page was cached (its page fetched again
            // with another one, and nothing else naming it): the preview goes without it.
            let image = image.as_ref().filter(|(h, _)| files.hold(h));
            let image = image.map(|(s, m)| (s.as_str(), m.as_str()));
            let preview = LinkPreview {
                has_image: image.is_some(),
                ..preview
            };
            let change = tx.attach_preview(id, preview, image)?;
            Ok::<_, AppError>(((), room_change(change)))
        })
        .await
        .map_err(|e| e.to_string())
}

fn room_change(change: Option<crate::db::MessageChange>) -> Vec<Change> {
    change
        .map(|change| Change::Message {
            change,
            nonce: None,
            audience: Audience::Room,
        })
        .into_iter()
        .collect()
}

/// A picture ready to be stored: the temporary file, its hash and its type.
type Picture = (crate::files::TempFile, String, String);

/// Fetch `url`'s page and, when it names one, its picture. Failures are cached as "nothing to
/// show" so the same broken link is not fetched again for a day.
async fn fetch(state: &App, client: &Outbound, url: &Url) -> (CachedPage, Option<Picture>) {
    let nothing = CachedPage {
        ok: false,
        title: String::new(),
        description: String::new(),
        site_name: String::new(),
        image: None,
    };
    let page = match client
        .get(
            url,
            "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
            BodyLimit::Prefix(PAGE_PREFIX),
        )
        .await
    {
        Ok(page) if page.status.is_success() => page,
        Ok(page) => {
            tracing::debug!("link preview of {url}: status {}", page.status);
            return (nothing, None);
        }
        Err(e) => {
            tracing::debug!("link preview of {url}: {e}");
            return (nothing, None);
        }
    };
    if !matches!(
        page.content_type.as_str(),
        "text/html" | "application/xhtml+xml"
    ) {
        return (nothing, None);
    }
    let html = String::from_utf8_lossy(&page.body);
    let meta = parse_head(&html, &page.url);
    if meta.is_empty() {
        return (nothing, None);
    }
    let picture = match &meta.image {
        Some(image_url) => match picture(state, client, image_url).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!("link preview picture {image_url}: {e}");
                None
            }
        },
        None => None,
    };
    let title = if meta.title.is_empty() {
        url.host_str().unwrap_or_default().to_string()
    } else {
        meta.title
    };
    let page = CachedPage {
        ok: true,
        title,
        description: meta.description,
        site_name: meta.site_name,
        image: None,
    };
    (page, picture)
}

/// The largest picture a preview decodes (it becomes at most 400 px a side).
const PICTURE_MAX_PIXELS: u64 = 16_000_000;

/// Fetch the picture at `url` and make it a new JPEG of at most 400 px a side: nothing the
/// site put in the file (metadata, padding, frames) is kept, and each is small.
async fn picture(state: &App, client: &Outbound, url: &Url) -> Result<Picture, String> {
    let fetched = client
        .get(url, "image/*", BodyLimit::Whole(MAX_BODY))
        .await
        .map_err(|e: OutboundError| e.to_string())?;
    if !fetched.status.is_success() {
        return Err(format!("status {}", fetched.status));
    }
    let kind = Kind::sniff(&fetched.body).ok_or("not a png, jpeg, gif or webp image")?;
    let _permit = state
        .decoders
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| "stopping")?;
    let files = state.files.clone();
    let max_pixels = state
        .config
        .uploads
        .max_image_pixels
        .min(PICTURE_MAX_PIXELS);
    tokio::task::spawn_blocking(move || {
        let (bytes, mime) = image::preview_picture(&fetched.body, kind, max_pixels)
            .map_err(|e| format!("{e:?}"))?;
        let (file, sha) = write_temp(&files, &bytes).map_err(|e| e.to_string())?;
        Ok((file, sha, mime.to_string()))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Take the preview of the actor's message `id` away for good (also one still being
/// fetched). Refusals: `unknown_message` (no such id, not readable, deleted), `forbidden`
/// (not the author).
pub async fn remove(state: &App, actor: Actor<'_>, id: i64) -> Result<(), AppError> {
    let user_id = actor.user_id;
    state
        .db
        .transact(move |tx| {
            let Some((msg, author)) = tx.message_by_id(id)? else {
                return Err(unknown_message());
            };
            let readable = tx
                .room_key_by_id(msg.room_id, user_id)?
                .is_some_and(|room| crate::app::access::key_readable(&room));
            if !readable || msg.deleted {
                return Err(unknown_message());
            }
            if author != user_id {
                return Err(AppError::new(
                    Code::Forbidden,
                    "Only the author may remove a message's preview.",
                ));
            }
            let change = tx.remove_preview(&msg, user_id)?;
            Ok(((), room_change(change)))
        })
        .await
}

/// The picture of message `id`'s preview, for a user who may read the message. Refusal:
/// `unknown_message` (no such message, not readable, no picture).
pub async fn image(state: &App, user_id: i64, id: i64) -> Result<Download, AppError> {
    crate::app::lifecycle::get(state, user_id, id).await?;
    let (sha256, mime) = state
        .db
        .preview_image(id)
        .await?
        .ok_or_else(unknown_message)?;
    Ok(Download {
        path: state.files.path_of(&sha256),
        name: format!(
            "preview-{id}.{}",
            if mime == "image/png" { "png" } else { "jpg" }
        ),
        mime,
        sha256,
        inline: true,
    })
}

/// Forget pages cached more than a week ago (hourly, with the uploads' sweep).
pub async fn sweep(state: &App) {
    match state.db.forget_old_pages(state.files.clone()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("forgot {n} cached link previews"),
        Err(e) => tracing::warn!("cannot forget old link previews: {e}"),
    }
}

/// The answer to anyone who may not read a message, whether it exists or not.
pub fn unknown_message() -> AppError {
    AppError::new(Code::UnknownMessage, "There is no message with that id.")
}
