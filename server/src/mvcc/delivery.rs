//! How far watch delivery trails the store's broadcasts, so that writes can
//! yield to it.
//!
//! The watchers run on a runtime of their own (see api/watch.rs): on the
//! serving runtime each put waited behind a whole round of the watchers'
//! tasks, so every watcher got one event per response and paid a wake, a
//! header and a frame for each. With their own runtime the writes run
//! ahead and the watchers gather several revisions per response, which
//! costs far less per event; but writes that never wait would let the
//! watchers fall further and further behind. So a write waits while the
//! watchers are more than [`ROUNDS_AHEAD`] broadcasts behind, and never
//! longer than [`MAX_WAIT`]. A watcher whose client stops reading does not
//! count: it waits on its stream, not on this runtime, and catches up from
//! storage later, on the blocking pool, as any long replay does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Notify;

/// Broadcasts the watchers may trail before writes wait for them: fewer
/// gathered too little per response, more only added lag (BENCHMARKS.md,
/// "Watchers on a runtime of their own").
pub const ROUNDS_AHEAD: u64 = 8;
/// The longest a write waits for the watchers.
pub const MAX_WAIT: Duration = Duration::from_millis(50);

#[derive(Default)]
pub struct Delivery {
    runtime: OnceLock<Handle>,
    /// Broadcasts that reached at least one subscriber: a watcher, or a
    /// lock waiter or election observer on the serving runtime.
    sent: AtomicU64,
    /// Of those, how many the watchers' runtime has worked through.
    done: AtomicU64,
    progressed: Notify,
}

impl Delivery {
    /// Names the runtime the watchers run on; until then nothing is tracked.
    pub fn attach(&self, runtime: Handle) {
        let _ = self.runtime.set(runtime);
    }

    /// Called right after a broadcast woke the watchers: a marker queued
    /// behind their wake-ups runs once the runtime has taken those up. A
    /// heuristic, not a barrier: a worker may steal the marker ahead of a
    /// wake-up, and a watcher busy sending is not counted at all.
    pub(super) fn woke(self: &Arc<Self>) {
        let Some(rt) = self.runtime.get() else {
            return;
        };
        let n = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        let me = self.clone();
        rt.spawn(async move {
            me.done.fetch_max(n, Ordering::SeqCst);
            me.progressed.notify_waiters();
        });
    }

    fn behind(&self) -> u64 {
        let sent = self.sent.load(Ordering::SeqCst);
        sent.saturating_sub(self.done.load(Ordering::SeqCst))
    }

    /// Waits, at most [`MAX_WAIT`], until the watchers are no more than
    /// [`ROUNDS_AHEAD`] broadcasts behind.
    pub async fn wait(&self) {
        if self.behind() <= ROUNDS_AHEAD {
            return;
        }
        let _ = tokio::time::timeout(MAX_WAIT, async {
            loop {
                let progressed = self.progressed.notified();
                tokio::pin!(progressed);
                progressed.as_mut().enable();
                if self.behind() <= ROUNDS_AHEAD {
                    return;
                }
                progressed.await;
            }
        })
        .await;
    }
}
