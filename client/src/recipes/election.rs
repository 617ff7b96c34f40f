//! Leader election: etcd's `concurrency.Election`, plus an observer that
//! also reports when there is no leader (etcd's Observe stays silent then,
//! trillian #1387, so a follower cannot tell "no leader" from "no change").
//!
//! Candidates put `NAME/LEASE_HEX` with their value; the key with the
//! lowest create revision is the leader, and each candidate waits for the
//! deletion of only the key just ahead of it.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{first_created, not_leader, put_if_mine, Contender};
use crate::pb::RangeRequest;
use crate::watch::next_queued;
use crate::{mvccpb, prefix_end, Client, Error, Watch, WatchOptions};

pub struct Election {
    line: Contender,
}

impl Election {
    /// An election on `name` whose own lease (granted at campaign with
    /// `ttl` seconds, kept alive in the background) is revoked on resign,
    /// and when the election is dropped inside a tokio runtime.
    pub fn new(client: Client, name: impl AsRef<[u8]>, ttl: i64) -> Result<Election, Error> {
        let line = Contender::owned(client, name.as_ref(), ttl)?;
        Ok(Election { line })
    }

    /// An election on `name` under the caller's lease, as etcd's Campaign
    /// RPC takes one: not kept alive here, not revoked on resign.
    pub fn with_lease(
        client: Client,
        name: impl AsRef<[u8]>,
        lease: i64,
    ) -> Result<Election, Error> {
        let line = Contender::borrowed(client, name.as_ref(), lease)?;
        Ok(Election { line })
    }

    /// Stands with `value` and waits up to `timeout` (forever with None)
    /// to lead; false when the time ran out. A candidate that times out or
    /// fails withdraws, so it does not linger in line. Standing again while
    /// leading only updates the value.
    pub async fn campaign(
        &mut self,
        value: impl Into<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<bool, Error> {
        self.line.join(value.into(), timeout).await
    }

    /// Announces a new value without another election; `election: not
    /// leader` when we do not lead (any more).
    pub async fn proclaim(&mut self, value: impl Into<Vec<u8>>) -> Result<(), Error> {
        let (Some((key, rev)), Some(lease)) = (&self.line.held, self.line.lease.id()) else {
            return Err(not_leader());
        };
        let result = put_if_mine(&self.line.client, key, *rev, value.into(), lease).await;
        if matches!(&result, Err(e) if *e == not_leader()) {
            self.line.held = None;
        }
        result
    }

    /// Steps down, letting the next candidate lead. Whether we still led:
    /// false when our key had gone with our lease, or when we never led.
    pub async fn resign(&mut self) -> Result<bool, Error> {
        self.line.leave().await
    }

    /// Asks the server whether our key still exists and is the oldest.
    pub async fn is_leader(&self) -> Result<bool, Error> {
        self.line.is_first().await
    }

    /// The leader's key and value, None when no one leads.
    pub async fn leader(&self) -> Result<Option<mvccpb::KeyValue>, Error> {
        let resp = self
            .line
            .client
            .range(first_created(&self.line.prefix))
            .await?;
        Ok(resp.kvs.into_iter().next())
    }

    /// Leader changes from now on, starting with the current leader (or
    /// its absence). Must be called inside the tokio runtime that drives it.
    pub async fn observe(&self) -> Result<Observer, Error> {
        let (client, prefix) = (&self.line.client, &self.line.prefix);
        let (leader, revision) = current_leader(client, prefix, 0).await?;
        let watch = watch_prefix(client, prefix, revision + 1).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let first = LeaderChange {
            leader: leader.clone(),
            revision,
        };
        // The channel is new and has room: this cannot fail or wait.
        let _ = tx.try_send(Ok(first));
        let task = tokio::spawn(follow(
            client.clone(),
            prefix.clone(),
            leader,
            revision,
            watch,
            tx,
        ));
        Ok(Observer {
            rx,
            task,
            ended: None,
        })
    }

    /// Our key while we lead.
    pub fn key(&self) -> Option<&[u8]> {
        self.line.key()
    }

    /// Our key's create revision while we lead (etcd's `Rev`).
    pub fn revision(&self) -> Option<i64> {
        self.line.rev()
    }

    /// The lease our key is put on, once there is one.
    pub fn lease_id(&self) -> Option<i64> {
        self.line.lease.id()
    }
}

/// Changes queued ahead of the caller.
const QUEUE: usize = 64;

/// Who leads as of `revision`; `leader` is None when no one does.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderChange {
    pub leader: Option<mvccpb::KeyValue>,
    pub revision: i64,
}

/// A stream of leader changes. Dropping it (or `cancel`) stops it.
pub struct Observer {
    rx: mpsc::Receiver<Result<LeaderChange, Error>>,
    task: JoinHandle<()>,
    ended: Option<Error>,
}

impl Observer {
    /// The next change; `Ok(None)` when `timeout` passed first.
    pub async fn next(&mut self, timeout: Option<Duration>) -> Result<Option<LeaderChange>, Error> {
        let cancelled = "the observer was cancelled";
        next_queued(&mut self.rx, &mut self.ended, timeout, cancelled).await
    }

    pub fn cancel(&mut self) {
        self.task.abort();
        self.rx.close();
        if self.ended.is_none() {
            self.ended = Some(Error::InvalidArgument("the observer was cancelled".into()));
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The oldest key under `prefix` at `revision` (0: now), and the revision
/// that answer is of.
async fn current_leader(
    client: &Client,
    prefix: &[u8],
    revision: i64,
) -> Result<(Option<mvccpb::KeyValue>, i64), Error> {
    let resp = client
        .range(RangeRequest {
            revision,
            ..first_created(prefix)
        })
        .await?;
    let at = if revision > 0 {
        revision
    } else {
        resp.header.as_ref().map_or(0, |h| h.revision)
    };
    Ok((resp.kvs.into_iter().next(), at))
}

async fn watch_prefix(client: &Client, prefix: &[u8], from: i64) -> Result<Watch, Error> {
    client
        .watch(WatchOptions {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            start_revision: from,
            ..Default::default()
        })
        .await
}

/// Follows the whole prefix: a put on the leader's key is a new value, the
/// first put after "no leader" is a new leader, and a delete of the
/// leader's key is answered by reading who leads at that revision. Only
/// the leader's changes are reported.
async fn follow(
    client: Client,
    prefix: Vec<u8>,
    mut leader: Option<mvccpb::KeyValue>,
    // Everything up to here is already in `leader`.
    mut seen: i64,
    mut watch: Watch,
    tx: mpsc::Sender<Result<LeaderChange, Error>>,
) {
    let same = |a: &Option<mvccpb::KeyValue>, b: &Option<mvccpb::KeyValue>| match (a, b) {
        (Some(a), Some(b)) => a.key == b.key && a.mod_revision == b.mod_revision,
        (None, None) => true,
        _ => false,
    };
    loop {
        let batch = match watch.next(None).await {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            // History we missed is gone: start over from the present.
            Err(Error::Compacted { .. }) => {
                let resync = async {
                    let (now, at) = current_leader(&client, &prefix, 0).await?;
                    let w = watch_prefix(&client, &prefix, at + 1).await?;
                    Ok::<_, Error>((now, at, w))
                };
                match resync.await {
                    Ok((now, at, w)) => {
                        watch = w;
                        seen = at;
                        if !same(&now, &leader) {
                            leader = now;
                            let change = LeaderChange {
                                leader: leader.clone(),
                                revision: at,
                            };
                            if tx.send(Ok(change)).await.is_err() {
                                return;
                            }
                        }
                        continue;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        for ev in batch.events {
            let Some(kv) = ev.kv else { continue };
            let at = kv.mod_revision;
            if at <= seen {
                continue;
            }
            let is_leader_key = leader.as_ref().is_some_and(|l| l.key == kv.key);
            let change = if ev.r#type == mvccpb::event::EventType::Delete as i32 {
                if !is_leader_key {
                    continue;
                }
                let read = match current_leader(&client, &prefix, at).await {
                    Err(Error::Compacted { .. }) => current_leader(&client, &prefix, 0).await,
                    r => r,
                };
                match read {
                    Ok((next, read_at)) => {
                        seen = read_at;
                        leader = next;
                        LeaderChange {
                            leader: leader.clone(),
                            revision: read_at,
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            } else if is_leader_key || leader.is_none() {
                leader = Some(kv);
                LeaderChange {
                    leader: leader.clone(),
                    revision: at,
                }
            } else {
                continue;
            };
            if tx.send(Ok(change)).await.is_err() {
                return;
            }
        }
    }
}
