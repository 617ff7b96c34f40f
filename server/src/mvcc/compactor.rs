//! Deletes compacted revisions from storage in the background, as etcd does:
//! applying a Compaction only drops the revisions from the in-memory index
//! (reads at compacted revisions are refused from then on) and hands their
//! records to this worker, which deletes them in small batches with pauses
//! between, so that a compaction of millions of revisions never holds up
//! writes or reads for long.
//!
//! The queue is not persisted: after a restart `Store::open` finds the
//! records the index no longer needs and queues them again.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use super::{rev_key, Rev};

/// etcd's compaction batch limit and the pause between batches.
const BATCH: usize = 1000;
const PAUSE: Duration = Duration::from_millis(10);

pub struct Compactor {
    shared: Arc<Shared>,
    worker: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    queue: Mutex<Queue>,
    more: Condvar,
    /// Records queued and not yet deleted, for callers that wait until a
    /// compaction is physically done (HashKV, `physical` compactions).
    left: tokio::sync::watch::Sender<usize>,
    /// Held (shared) by scans that need the history to stay put, taken
    /// (exclusive) by the worker for each batch it deletes.
    pause: RwLock<()>,
}

#[derive(Default)]
struct Queue {
    revs: VecDeque<Rev>,
    closed: bool,
}

impl Compactor {
    /// Starts the worker on `tree`.
    pub fn start(tree: sled::Tree) -> Compactor {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            more: Condvar::new(),
            left: tokio::sync::watch::channel(0).0,
            pause: RwLock::new(()),
        });
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name("synod-compactor".into())
            .spawn(move || run(&s, &tree))
            .expect("spawn the compaction thread");
        Compactor {
            shared,
            worker: Some(worker),
        }
    }

    pub fn enqueue(&self, revs: Vec<Rev>) {
        if revs.is_empty() {
            return;
        }
        let mut q = self.shared.lock();
        q.revs.extend(revs);
        self.shared.left.send_replace(q.revs.len());
        self.shared.more.notify_one();
    }

    pub fn hold(&self) -> RwLockReadGuard<'_, ()> {
        self.shared.pause.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until every record queued so far is deleted.
    pub async fn done(&self) {
        let mut rx = self.shared.left.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// The worker stops with the store, and its handle on the database goes with
/// it before the drop returns, so the database can be opened again at once.
/// What it had not deleted yet is found again at the next open.
impl Drop for Compactor {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.more.notify_one();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next batch, waiting for one; None once the store is closed.
    fn next_batch(&self) -> Option<Vec<Rev>> {
        let q = self.lock();
        let mut q = self
            .more
            .wait_while(q, |q| q.revs.is_empty() && !q.closed)
            .unwrap_or_else(|e| e.into_inner());
        if q.closed {
            return None;
        }
        let n = q.revs.len().min(BATCH);
        Some(q.revs.drain(..n).collect())
    }
}

fn run(shared: &Shared, tree: &sled::Tree) {
    while let Some(batch) = shared.next_batch() {
        let mut b = sled::Batch::default();
        for rev in &batch {
            b.remove(&rev_key(*rev)[..]);
        }
        // A failed delete leaves records nothing reads (the index dropped
        // them); the next start queues them again.
        let held = shared.pause.write().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = tree.apply_batch(b) {
            tracing::warn!("deleting compacted revisions failed: {e}");
        }
        drop(held);
        let left = shared.lock().revs.len();
        shared.left.send_replace(left);
        std::thread::sleep(PAUSE);
    }
}
