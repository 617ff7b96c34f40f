//! The state machine's sled writes, made on a thread of their own.
//!
//! sled is never synced on the write path (the Raft log is what makes a
//! write durable), so nothing a writer waits for needs sled's copy of a
//! batch: once a batch is applied in memory, its sled batch is handed to
//! this thread and the writers are answered while it is written, on the
//! other core. Under one client's puts sled's `apply_batch` was about a
//! sixth of the serving thread's time per put.
//!
//! Until a batch is written, its records stay readable from here: a read
//! picks revisions under the store's lock, then loads each one from here
//! or else from sled, and a batch leaves here only after sled has it, so
//! every revision is found in one place or the other. Everything that
//! reads sled otherwise (scans, metadata, snapshots) calls `settle` first.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use synod_proto::mvccpb::KeyValue;

use super::Rev;
use crate::error::EtcdError;

/// Records by revision: the value and whether it is a tombstone.
pub type Records = HashMap<Rev, (KeyValue, bool)>;

/// Batches handed over and not yet written before `write` waits: enough for
/// the thread to fall behind a burst, few enough to bound the memory held.
const QUEUE: usize = 256;

pub struct Writer {
    shared: Arc<Shared>,
    tx: Option<SyncSender<sled::Batch>>,
    /// Batches handed over so far (the next one's number, minus one).
    sent: AtomicU64,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    /// The records of the batches not yet written, oldest first.
    unwritten: RwLock<VecDeque<Records>>,
    /// Batches written so far.
    written: Mutex<u64>,
    progress: Condvar,
    failed: AtomicBool,
}

impl Writer {
    pub fn start(tree: sled::Tree) -> Writer {
        let shared = Arc::new(Shared {
            unwritten: RwLock::new(VecDeque::new()),
            written: Mutex::new(0),
            progress: Condvar::new(),
            failed: AtomicBool::new(false),
        });
        let (tx, rx) = sync_channel::<sled::Batch>(QUEUE);
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("synod-sm-writer".into())
            .spawn(move || {
                let _exit = Exit(&s);
                for batch in rx {
                    if let Err(e) = tree.apply_batch(batch) {
                        tracing::error!("writing applied entries to storage failed: {e}");
                        s.failed.store(true, Ordering::SeqCst);
                    }
                    // Only now: a reader that misses the records here must
                    // find them in sled.
                    s.unwritten
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .pop_front();
                    *s.written.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    s.progress.notify_all();
                }
            })
            .expect("spawn the state machine's writer thread");
        Writer {
            shared,
            tx: Some(tx),
            sent: AtomicU64::new(0),
            thread: Some(thread),
        }
    }

    /// Hands `batch` over to be written; `records` are the revision records
    /// it holds, readable through `get` until it is. Calls must come in the
    /// order the batches are to be written (the store's write lock orders
    /// them).
    pub fn write(&self, batch: sled::Batch, records: Records) -> Result<(), EtcdError> {
        self.shared
            .unwritten
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(records);
        self.sent.fetch_add(1, Ordering::SeqCst);
        let sent = self.tx.as_ref().map(|tx| tx.send(batch));
        if !matches!(sent, Some(Ok(()))) {
            self.shared.failed.store(true, Ordering::SeqCst);
            return Err(EtcdError::Internal(
                "the state machine's writer thread stopped".into(),
            ));
        }
        Ok(())
    }

    /// A record of a batch not yet written.
    pub fn get(&self, rev: &Rev) -> Option<(KeyValue, bool)> {
        let unwritten = self
            .shared
            .unwritten
            .read()
            .unwrap_or_else(|e| e.into_inner());
        unwritten.iter().rev().find_map(|r| r.get(rev).cloned())
    }

    /// Blocks until every batch handed over so far is in sled, or a write
    /// failed (see `failed`). The thread never waits on the caller, so this
    /// may be called under the store's locks and from the async runtime's
    /// threads.
    pub fn settle(&self) {
        let target = self.sent.load(Ordering::SeqCst);
        let written = self
            .shared
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let _written = self
            .shared
            .progress
            .wait_while(written, |w| {
                *w < target && !self.shared.failed.load(Ordering::SeqCst)
            })
            .unwrap_or_else(|e| e.into_inner());
    }

    /// Whether a write failed: memory is then ahead of storage.
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::SeqCst)
    }
}

/// A writer thread that panicked wrote nothing more: waiters are told.
struct Exit<'a>(&'a Shared);

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, Ordering::SeqCst);
        }
        let _guard = self.0.written.lock().unwrap_or_else(|e| e.into_inner());
        self.0.progress.notify_all();
    }
}

/// Everything handed over is written before the drop returns, and the
/// thread's handle on the database goes with it, so the database can be
/// opened again at once.
impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
