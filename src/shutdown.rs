//! Shutdown plumbing: the OS signal future, and a tracker that lets the server wait until
//! every WebSocket session has closed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Resolves on SIGINT (Ctrl-C), SIGTERM or SIGHUP. SIGHUP (the terminal Hearth was started
/// from went away, an SSH session closed) would otherwise end the process on the spot,
/// without a close frame for anyone or the database's last checkpoint: it stops Hearth the
/// same orderly way.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(mut term), Ok(mut hangup)) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                    _ = hangup.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Counts live tasks; [`Tracker::wait`] resolves when none is left.
#[derive(Clone, Default)]
pub struct Tracker {
    inner: Arc<TrackerInner>,
}

#[derive(Default)]
struct TrackerInner {
    live: AtomicUsize,
    idle: Notify,
}

/// Held by a tracked task; dropping it marks the task finished.
pub struct TrackGuard {
    inner: Arc<TrackerInner>,
}

impl Tracker {
    /// Start tracking one task.
    pub fn track(&self) -> TrackGuard {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        TrackGuard {
            inner: self.inner.clone(),
        }
    }

    /// Number of live tasks.
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Wait until no tracked task is live.
    pub async fn wait(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for TrackGuard {
    fn drop(&mut self) {
        if self.inner.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wait_returns_once_every_guard_is_gone() {
        let t = Tracker::default();
        t.wait().await; // nothing tracked
        let g1 = t.track();
        let g2 = t.track();
        let waiter = tokio::spawn({
            let t = t.clone();
            async move { t.wait().await }
        });
        drop(g1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(g2);
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("wait resolves")
            .unwrap();
    }
}
