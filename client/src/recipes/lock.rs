//! A distributed lock: etcd's `concurrency.Mutex` with a fencing token.
//!
//! Each contender puts `NAME/LEASE_HEX` on its lease; the key with the
//! lowest create revision holds the lock, and every other contender waits
//! for the deletion of only the key just ahead of it. The holder's create
//! revision grows with every grant, so it serves as a fencing token: a
//! write guarded by `CreateRevision(key) == token` fails once the lock is
//! lost, which a lease-based lock alone cannot promise (a holder paused
//! past its TTL still believes it holds the lock).

use std::time::Duration;

use super::{create_revision_is, Contender};
use crate::pb::Compare;
use crate::{Client, Error};

pub struct Lock {
    line: Contender,
}

impl Lock {
    /// A lock on `name` whose own lease (granted at acquire with `ttl`
    /// seconds, kept alive in the background) is revoked on release, and
    /// when the lock is dropped inside a tokio runtime.
    pub fn new(client: Client, name: impl AsRef<[u8]>, ttl: i64) -> Result<Lock, Error> {
        let line = Contender::owned(client, name.as_ref(), ttl)?;
        Ok(Lock { line })
    }

    /// A lock on `name` under the caller's lease, as etcd's Lock RPC takes
    /// one: not kept alive here, not revoked on release; the same lease
    /// acquiring twice holds one place in line.
    pub fn with_lease(client: Client, name: impl AsRef<[u8]>, lease: i64) -> Result<Lock, Error> {
        let line = Contender::borrowed(client, name.as_ref(), lease)?;
        Ok(Lock { line })
    }

    /// Waits up to `timeout` (forever with None) for the lock; false when
    /// the time ran out. Our key is taken back on a timeout or an error, so
    /// a failed attempt never stays in line ahead of others. Acquiring a
    /// lock we hold answers true at once.
    pub async fn acquire(&mut self, timeout: Option<Duration>) -> Result<bool, Error> {
        self.line.join(Vec::new(), timeout).await
    }

    /// Takes the lock only if no one holds or waits for it.
    pub async fn try_acquire(&mut self) -> Result<bool, Error> {
        self.acquire(Some(Duration::ZERO)).await
    }

    /// Gives the lock up. Whether we still held it: false when our key had
    /// gone (lease expired or revoked) and someone else may have taken the
    /// lock meanwhile, or when it was never acquired.
    pub async fn release(&mut self) -> Result<bool, Error> {
        self.line.leave().await
    }

    /// Asks the server whether our key still exists and is first in line.
    pub async fn is_held(&self) -> Result<bool, Error> {
        self.line.is_first().await
    }

    /// The create revision of our key while we hold the lock: larger with
    /// every grant of this lock, whoever gets it.
    pub fn fencing_token(&self) -> Option<i64> {
        self.line.rev()
    }

    /// A txn compare that holds only while this grant of the lock does, so
    /// a holder that lost the lock cannot write.
    pub fn guard(&self) -> Option<Compare> {
        let (key, rev) = self.line.held.as_ref()?;
        Some(create_revision_is(key, *rev))
    }

    /// Our key (`NAME/LEASE_HEX`) while we hold the lock.
    pub fn key(&self) -> Option<&[u8]> {
        self.line.key()
    }

    /// The lease our key is put on, once there is one.
    pub fn lease_id(&self) -> Option<i64> {
        self.line.lease.id()
    }
}
