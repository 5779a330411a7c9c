//! Uploads in the store: recording one (its files moved into place in the same writer job),
//! reading one for a download, and removing the files nobody uses any more. On one node every
//! job that moves or removes files runs on the writer thread, so those moves and removals
//! happen in one order with the rows that say which files are in use. In a folder several
//! nodes share, a removal cannot be ordered with the other nodes' moves anyway and is guarded
//! by the files' age instead (see [`crate::files`]): there the removals run off the writer,
//! whose batch may hold the log head every node's writer waits for, and a walk of a folder
//! (perhaps over the network) must not.

use std::sync::Arc;

use super::Tx;
use crate::db::queries::{self, NewUpload, UploadRow};
use crate::db::{now_ms, Db, DbError};
use crate::files::{Files, TempFile};

/// Queued files taken (and checked) at once.
const GC_PART: i64 = 500;

/// Why an upload was not recorded.
#[derive(Debug, PartialEq, Eq)]
pub enum UploadRefused {
    /// The owner's files would exceed the quota.
    OverQuota,
}

/// An upload's files, flushed to disk in `tmp/`: its bytes and, for an image, its thumbnail.
pub struct UploadFiles {
    /// The bytes.
    pub file: TempFile,
    /// The thumbnail, when it is not the file itself.
    pub thumbnail: Option<TempFile>,
}

impl Db {
    /// Record `upload` and move its files into place, unless its owner's uploads would then
    /// exceed `quota` bytes (0: no quota). The files are dropped when it is refused or fails.
    pub async fn record_upload(
        &self,
        files: Arc<Files>,
        upload: NewUpload,
        temps: UploadFiles,
        quota: u64,
    ) -> Result<Result<(), UploadRefused>, DbError> {
        let now = now_ms();
        self.write_if(
            move |c| {
                if quota > 0 {
                    // Counted under the uploader's row lock on PostgreSQL: two uploads through
                    // two nodes at once count one after the other, not both under the quota.
                    queries::lock_user(c, upload.user_id)?;
                    let used = queries::upload_bytes_of(c, upload.user_id)?;
                    if (used.max(0) as u64).saturating_add(upload.size as u64) > quota {
                        return Ok(Err(UploadRefused::OverQuota));
                    }
                }
                queries::insert_upload(c, &upload, now)?;
                let io = crate::db::sql::SqlError::Io;
                files.settle(temps.file, &upload.sha256).map_err(io)?;
                if let (Some(t), Some((hash, _))) = (temps.thumbnail, &upload.thumbnail) {
                    files.settle(t, hash).map_err(io)?;
                }
                Ok(Ok(()))
            },
            Result::is_ok,
        )
        .await
    }

    /// The bytes of every upload `user_id` holds.
    pub async fn upload_bytes_of(&self, user_id: i64) -> Result<u64, DbError> {
        self.read(move |c| queries::upload_bytes_of(c, user_id))
            .await
            .map(|n| n.max(0) as u64)
    }

    /// The upload `id`, with the room of the message it was sent with.
    pub async fn upload(&self, id: &str) -> Result<Option<UploadRow>, DbError> {
        let id = id.to_string();
        self.read(move |c| queries::upload_by_id(c, &id)).await
    }

    /// Remove `user_id`'s upload `id` if it was never sent, and its files if nothing else
    /// uses them; whether it was removed.
    pub async fn delete_unsent_upload(
        &self,
        files: Arc<Files>,
        id: &str,
        user_id: i64,
    ) -> Result<bool, DbError> {
        let id = id.to_string();
        let removed = self
            .write(move |c| queries::delete_unsent_upload(c, &id, user_id))
            .await?;
        // (Committed: a removal that fails now is the hourly sweep's, not the caller's error.)
        collect_after(self, files).await;
        Ok(removed)
    }

    /// Remove the uploads never sent that are older than `max_age_ms`, then every queued file
    /// no upload uses; how many files went.
    pub async fn sweep_uploads(
        &self,
        files: Arc<Files>,
        max_age_ms: i64,
    ) -> Result<usize, DbError> {
        self.write(move |c| queries::delete_stale_uploads(c, now_ms() - max_age_ms))
            .await?;
        Ok(collect_after(self, files).await)
    }

    /// Remove the files of the queue that no upload uses (after a message was deleted); how
    /// many.
    ///
    /// With the folder this server's alone, each part of the queue is taken in a transaction
    /// of the writer's and its files are removed once that committed, before the writer's
    /// next transaction: a file goes only when no committed row names it (a transaction that
    /// fails leaves the queue and the files as they were), and no upload is moved into place
    /// meanwhile (the writer does that, in its jobs). In a shared folder the part taken is
    /// checked and removed off the writer (see [`Files`]).
    pub async fn collect_files(&self, files: Arc<Files>) -> Result<usize, DbError> {
        let mut removed = 0;
        loop {
            let (taken, gone) = if files.is_shared() {
                self.collect_part_shared(files.clone()).await?
            } else {
                self.collect_part_here(files.clone()).await?
            };
            removed += gone;
            if taken == 0 {
                return Ok(removed);
            }
        }
    }

    /// One part of the queue, this server's folder alone: taken in a transaction, removed
    /// on the writer thread once it committed. How many were taken, and how many went.
    async fn collect_part_here(&self, files: Arc<Files>) -> Result<(usize, usize), DbError> {
        self.write_then(
            |c| queries::take_file_gc(c, GC_PART),
            move |c, hashes| {
                let gone = files.collect(&hashes, |h| queries::file_in_use(c, h))?;
                Ok((hashes.len(), gone))
            },
        )
        .await
    }

    /// One part of the queue, in a shared folder: taken in a short writer job, checked on a
    /// reader, removed off the writer. How many were taken, and how many went.
    async fn collect_part_shared(&self, files: Arc<Files>) -> Result<(usize, usize), DbError> {
        let hashes = self.write(|c| queries::take_file_gc(c, GC_PART)).await?;
        if hashes.is_empty() {
            return Ok((0, 0));
        }
        let (taken, used) = self
            .read(move |c| {
                let mut used = std::collections::HashSet::new();
                for h in &hashes {
                    if queries::file_in_use(c, h)? {
                        used.insert(h.clone());
                    }
                }
                Ok((hashes, used))
            })
            .await?;
        let n = taken.len();
        let gone = off_writer(move || {
            files.collect(&taken, |h| Ok::<bool, std::io::Error>(used.contains(h)))
        })
        .await?;
        Ok((n, gone))
    }

    /// Remove every stored file no upload uses (what a crash between moving a file into place
    /// and committing its row leaves behind); how many. With the folder this server's alone,
    /// on the writer thread between two transactions, as committed rows name them.
    pub async fn remove_orphan_files(&self, files: Arc<Files>) -> Result<usize, DbError> {
        if !files.is_shared() {
            return self
                .write_then(
                    |_| Ok(()),
                    move |c, ()| {
                        let in_use = queries::files_in_use(c)?;
                        files
                            .remove_orphans(&in_use)
                            .map_err(crate::db::sql::SqlError::Io)
                    },
                )
                .await;
        }
        let in_use = self.read(queries::files_in_use).await?;
        off_writer(move || files.remove_orphans(&in_use)).await
    }
}

/// After a committed job that may have queued files (their last upload deleted): remove
/// the unused ones; how many went (a failure is logged, and the hourly sweep tries again).
pub(super) async fn collect_after(db: &Db, files: Arc<Files>) -> usize {
    db.collect_files(files).await.unwrap_or_else(|e| {
        tracing::warn!("cannot remove unused files: {e}");
        0
    })
}

/// Run file work on a blocking thread (not the writer's).
async fn off_writer<F>(f: F) -> Result<usize, DbError>
where
    F: FnOnce() -> std::io::Result<usize> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(done) => done.map_err(|e| DbError::from(crate::db::sql::SqlError::Io(e))),
        Err(e) => Err(DbError::from(crate::db::sql::SqlError::Io(
            std::io::Error::other(e.to_string()),
        ))),
    }
}

impl Tx<'_> {
    /// The upload `id` (for a use case checking access inside a read).
    pub fn upload(&self, id: &str) -> Result<Option<UploadRow>, DbError> {
        Ok(queries::upload_by_id(self.0, id)?)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Waker};

    use super::*;
    use crate::db::sql::Sql;
    use crate::db::NewAdmin;

    type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

    /// Queue `fut`'s write with the writer now (its first poll sends it), to be awaited later.
    fn queued<'a, T>(fut: impl Future<Output = T> + Send + 'a) -> Pending<'a, T> {
        let mut fut: Pending<'a, T> = Box::pin(fut);
        let polled = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        assert!(polled.is_pending(), "a write waits for its commit");
        fut
    }

    /// A batch that deletes an upload, takes its file off the queue and then fails (SQLite
    /// rolls a transaction back by itself on an I/O error or a full disk: a job does it here)
    /// leaves the file in place, for the row that comes back with the rollback. Once a
    /// deletion commits, the file goes.
    #[tokio::test]
    async fn a_file_is_removed_only_once_the_transaction_that_freed_it_committed() {
        let dir = tempfile::tempdir().unwrap();
        let (commits, _received) = std::sync::mpsc::channel();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let full = crate::config::Synchronous::Full;
        let (db, writer) = Db::open(&dir.path().join("chat.db"), full, commits, metrics).unwrap();
        let files = Arc::new(Files::open(&dir.path().join("uploads")).unwrap());
        let user = db
            .write(|c| queries::insert_user(c, "ada", "ada", "x", NewAdmin::No, 0))
            .await
            .unwrap()
            .unwrap()
            .id;
        let sha = "ab".repeat(32);
        let (temp, mut f) = files.temp().unwrap();
        std::io::Write::write_all(&mut f, b"bytes").unwrap();
        let upload = NewUpload {
            id: "u1".into(),
            user_id: user,
            name: "a.txt".into(),
            mime: "text/plain".into(),
            size: 5,
            sha256: sha.clone(),
            dimensions: None,
            thumbnail: None,
        };
        let temps = UploadFiles {
            file: temp,
            thumbnail: None,
        };
        db.record_upload(files.clone(), upload, temps, 0)
            .await
            .unwrap()
            .unwrap();
        assert!(files.path_of(&sha).is_file());

        // Hold the writer so the next three writes make one batch.
        let (gate, wait) = std::sync::mpsc::channel::<()>();
        let (started, on_started) = tokio::sync::oneshot::channel();
        let held = queued(db.write(move |_| {
            let _ = started.send(());
            let _ = wait.recv();
            Ok(())
        }));
        on_started.await.unwrap();
        let delete = queued(db.write(move |c| queries::delete_unsent_upload(c, "u1", user)));
        let collect = queued(db.collect_files(files.clone()));
        let fail = queued(db.write(|c| c.batch("ROLLBACK")));
        gate.send(()).unwrap();
        held.await.unwrap();
        assert!(delete.await.is_err(), "the batch failed");
        assert!(collect.await.is_err());
        assert!(fail.await.is_err());
        assert!(db.upload("u1").await.unwrap().is_some(), "rolled back");
        assert!(
            files.path_of(&sha).is_file(),
            "the row that came back names it"
        );

        assert!(db
            .delete_unsent_upload(files.clone(), "u1", user)
            .await
            .unwrap());
        assert!(
            !files.path_of(&sha).exists(),
            "removed once the deletion committed"
        );
        writer.shutdown().await;
    }
}
