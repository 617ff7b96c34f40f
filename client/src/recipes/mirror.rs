//! A process-local copy of a prefix, as etcd's `mirror.Syncer` makes one:
//! loaded at one revision in pages, then kept fresh by a watch from the next
//! revision. Reads never leave the process.
//!
//! The watch itself resumes after a short connection loss from the revision
//! after the last one it delivered, so nothing is missed. When it cannot
//! (the connection stayed down past the request timeout, or the history it
//! needs was compacted meanwhile) the copy is loaded again, retried with
//! backoff until the servers answer; until then the last copy is served
//! rather than an error, the way a configuration cache should behave.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::pb::RangeRequest;
use crate::{mvccpb, prefix_end, Client, Error, Watch, WatchBatch, WatchOptions};

/// Keys read per request while loading, as etcd's syncer does.
const PAGE: i64 = 1000;

/// How long a waiter gives the watch to bring the revision it waits for
/// before it asks the server whether anything under the prefix changed.
const EVENT_GRACE: Duration = Duration::from_millis(20);

/// Longest pause between attempts to load the copy again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub struct Mirror {
    client: Client,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    prefix: Vec<u8>,
    copy: RwLock<Copy>,
    /// The revision the copy is at, for waiters.
    revision: watch::Sender<i64>,
    loads: AtomicU64,
}

struct Copy {
    kvs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Every change under the prefix up to here is in `kvs`.
    revision: i64,
}

impl Mirror {
    /// Loads the keys under `prefix` and starts following them. Must be
    /// called inside the tokio runtime that will keep the copy fresh.
    pub async fn start(client: Client, prefix: impl Into<Vec<u8>>) -> Result<Mirror, Error> {
        let prefix = prefix.into();
        if prefix.is_empty() {
            return Err(Error::InvalidArgument(
                "the prefix must not be empty (a mirror of every key is not offered)".into(),
            ));
        }
        let (copy, watch) = load(&client, &prefix).await?;
        let (revision, _) = watch::channel(copy.revision);
        let shared = Arc::new(Shared {
            prefix,
            copy: RwLock::new(copy),
            revision,
            loads: AtomicU64::new(1),
        });
        let task = tokio::spawn(follow(client.clone(), shared.clone(), watch));
        Ok(Mirror {
            client,
            shared,
            task,
        })
    }

    pub fn prefix(&self) -> &[u8] {
        &self.shared.prefix
    }

    /// The value of `key` in the copy; `key` must be under the prefix,
    /// since for any other key "absent" would be a guess.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        if !key.starts_with(&self.shared.prefix) {
            return Err(Error::InvalidArgument(format!(
                "{:?} is not under the mirrored prefix {:?}",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(&self.shared.prefix)
            )));
        }
        Ok(self.copy().kvs.get(key).cloned())
    }

    /// Every key and value in the copy, sorted by key.
    pub fn all(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let copy = self.copy();
        copy.kvs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.copy().kvs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The revision the copy is at: every change under the prefix up to it
    /// is in the copy.
    pub fn revision(&self) -> i64 {
        self.copy().revision
    }

    /// How many times the copy was loaded (1, plus one per reload).
    pub fn loads(&self) -> u64 {
        self.shared.loads.load(Ordering::Relaxed)
    }

    /// Waits up to `timeout` (without limit when None) until the copy is at
    /// `revision` or later, for reading one's own writes: pass the revision
    /// a put returned. False when the time ran out.
    pub async fn wait_for(&self, revision: i64, timeout: Option<Duration>) -> bool {
        let mut at = self.shared.revision.subscribe();
        let wait = async {
            loop {
                if *at.borrow_and_update() >= revision {
                    return true;
                }
                // Usually the watch brings it (a write under the prefix).
                if let Ok(changed) = tokio::time::timeout(EVENT_GRACE, at.changed()).await {
                    if changed.is_err() {
                        return false;
                    }
                    continue;
                }
                // A write elsewhere moves no event here: ask the server.
                if !self.unchanged_until(revision).await {
                    let _ = tokio::time::timeout(EVENT_GRACE * 10, at.changed()).await;
                }
            }
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, wait).await.unwrap_or(false),
            None => wait.await,
        }
    }

    /// Moves the copy to `revision` if nothing under the prefix changed
    /// between the copy's revision and it. Not with a progress notification:
    /// etcd before 3.4.25 and 3.5.8 may send one ahead of pending events
    /// (etcd #15220). Instead, at `revision`: no key under the prefix was
    /// written after the copy's revision, and as many keys exist as in the
    /// copy, so none was deleted either (a key put and deleted in between
    /// leaves the state as the copy has it). Whether it moved.
    async fn unchanged_until(&self, revision: i64) -> bool {
        let (since, len) = {
            let copy = self.copy();
            (copy.revision, copy.kvs.len())
        };
        let prefix = &self.shared.prefix;
        let range = RangeRequest {
            key: prefix.clone(),
            range_end: prefix_end(prefix),
            revision,
            ..Default::default()
        };
        let written = RangeRequest {
            // Counting ignores the revision filters: read one key instead.
            keys_only: true,
            limit: 1,
            min_mod_revision: since + 1,
            ..range.clone()
        };
        let count = RangeRequest {
            count_only: true,
            ..range
        };
        let (Ok(written), Ok(count)) = (
            self.client.range(written).await,
            self.client.range(count).await,
        ) else {
            // A future revision, a compacted one, no server: the watch or a
            // reload will tell.
            return false;
        };
        if !written.kvs.is_empty() || usize::try_from(count.count) != Ok(len) {
            return false;
        }
        let moved = {
            let mut copy = self.shared.copy.write().unwrap_or_else(|e| e.into_inner());
            // Only the state at `since` was compared: events applied
            // meanwhile may be ones that a later event undoes.
            let same = copy.revision == since;
            if same {
                copy.revision = revision;
            }
            same
        };
        if moved {
            self.shared.revision.send_replace(revision);
        }
        moved
    }

    fn copy(&self) -> RwLockReadGuard<'_, Copy> {
        self.shared.copy.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads every key under `prefix` at one revision, a page at a time, and
/// starts a watch from the revision after it.
async fn load(client: &Client, prefix: &[u8]) -> Result<(Copy, Watch), Error> {
    let end = prefix_end(prefix);
    let mut kvs = BTreeMap::new();
    let mut from = prefix.to_vec();
    // The first page fixes the revision every later page is read at.
    let mut revision = 0;
    loop {
        let resp = client
            .range(RangeRequest {
                key: from,
                range_end: end.clone(),
                limit: PAGE,
                revision,
                ..Default::default()
            })
            .await?;
        if revision == 0 {
            revision = resp.header.as_ref().map_or(0, |h| h.revision);
        }
        let more = resp.more;
        let Some(last) = resp.kvs.last().map(|kv| kv.key.clone()) else {
            break;
        };
        kvs.extend(resp.kvs.into_iter().map(|kv| (kv.key, kv.value)));
        if !more {
            break;
        }
        from = last;
        from.push(0);
    }
    let watch = client
        .watch(WatchOptions {
            key: prefix.to_vec(),
            range_end: end,
            start_revision: revision + 1,
            ..Default::default()
        })
        .await?;
    Ok((Copy { kvs, revision }, watch))
}

/// Applies what the watch delivers; reloads when it ends.
async fn follow(client: Client, shared: Arc<Shared>, mut watch: Watch) {
    loop {
        match watch.next(None).await {
            Ok(Some(b)) => apply(&shared, b),
            Ok(None) => {}
            Err(_) => watch = reload(&client, &shared).await,
        }
    }
}

fn apply(shared: &Shared, batch: WatchBatch) {
    let revision = {
        let mut copy = shared.copy.write().unwrap_or_else(|e| e.into_inner());
        for ev in batch.events {
            let Some(kv) = ev.kv else { continue };
            if kv.mod_revision <= copy.revision {
                continue;
            }
            copy.revision = kv.mod_revision;
            if ev.r#type == mvccpb::event::EventType::Delete as i32 {
                copy.kvs.remove(&kv.key);
            } else {
                copy.kvs.insert(kv.key, kv.value);
            }
        }
        copy.revision
    };
    shared.revision.send_replace(revision);
}

/// Loads the copy again, retrying with backoff until a server answers, and
/// returns the new watch.
async fn reload(client: &Client, shared: &Shared) -> Watch {
    let mut backoff = Duration::from_millis(100);
    loop {
        if let Ok((fresh, watch)) = load(client, &shared.prefix).await {
            let revision = fresh.revision;
            *shared.copy.write().unwrap_or_else(|e| e.into_inner()) = fresh;
            shared.loads.fetch_add(1, Ordering::Relaxed);
            shared.revision.send_replace(revision);
            return watch;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
