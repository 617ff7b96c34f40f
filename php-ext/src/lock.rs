//! `Synod\Lock`: a face on the client's lock recipe. The recipe lives in the
//! runtime's registry for the rest of the request, not in this object, so
//! that the end of the request releases it even while PHP still holds the
//! object (php-fpm must never carry a lock into the next request).

use ext_php_rs::binary::Binary;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use synod_client::pb::compare::{CompareResult, CompareTarget, TargetUnion};
use synod_client::pb::Compare;
use synod_client::recipes;

use crate::args;
use crate::errors::{self, to_php};
use crate::runtime::{self, Conn};
use crate::txn::value_error;

/// A distributed lock with etcd's key layout (`NAME/LEASE_ID_IN_HEX`), so it excludes `etcdctl lock` and etcd's own clients on the same name. Made by Client::lock(); released when the request ends at the latest.
#[php_class]
#[php(name = "Synod\\Lock")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Default)]
pub struct Lock {
    /// The recipe's id in the registry; 0 when not made by Client::lock().
    id: u64,
    /// The process that made it: a child of fork has none of its state.
    pid: u32,
    name: Vec<u8>,
}

impl Lock {
    pub fn new(conn: &Conn, name: &[u8], ttl: i64) -> PhpResult<Lock> {
        let recipe = recipes::Lock::new(conn.client()?, name, ttl).map_err(to_php)?;
        Ok(Lock {
            id: runtime::add_lock(recipe)?,
            pid: std::process::id(),
            name: name.to_vec(),
        })
    }

    fn id(&self) -> PhpResult<u64> {
        if self.id == 0 {
            return Err(value_error("a Lock is made with Client::lock()".into()));
        }
        if self.pid != std::process::id() {
            return Err(errors::synod(
                "a lock does not survive fork: make a new one in this process".into(),
            ));
        }
        Ok(self.id)
    }

    pub fn acquire_within(&self, timeout: Option<std::time::Duration>) -> PhpResult<bool> {
        runtime::with_lock(self.id()?, async |l| l.acquire(timeout).await)?.map_err(to_php)
    }

    pub fn name_text(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// The compare that guards a write with this grant of the lock; one
    /// that never holds when the lock is not held, so such a write fails
    /// rather than going through unguarded.
    pub fn guard(&self) -> PhpResult<Compare> {
        let guard = runtime::view_lock(self.id()?, |l| l.guard())?;
        Ok(guard.unwrap_or_else(|| Compare {
            key: self.name.clone(),
            target: CompareTarget::Create as i32,
            result: CompareResult::Less as i32,
            target_union: Some(TargetUnion::CreateRevision(0)),
            ..Default::default()
        }))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.id != 0 && self.pid == std::process::id() {
            runtime::drop_lock(self.id);
        }
    }
}

#[php_impl]
impl Lock {
    /// The lock's name.
    #[php(getter)]
    pub fn get_name(&self) -> Binary<u8> {
        Binary::from(self.name.clone())
    }

    /// Waits up to `timeout` seconds (without limit when null) for the lock; false when the time ran out. True at once when already held. LockLostException when the lock's lease went away while waiting.
    pub fn acquire(&self, timeout: Option<f64>) -> PhpResult<bool> {
        self.acquire_within(args::timeout(timeout)?)
    }

    /// Takes the lock only if no one holds it or waits for it; never waits.
    pub fn try_acquire(&self) -> PhpResult<bool> {
        self.acquire_within(Some(std::time::Duration::ZERO))
    }

    /// Gives the lock up (nothing to do when not held). LockLostException when it had been lost meanwhile (its lease expired or was revoked), so someone else may have held it while this process thought it did.
    pub fn release(&self) -> PhpResult<()> {
        let id = self.id()?;
        if runtime::view_lock(id, |l| l.fencing_token().is_none())? {
            return Ok(());
        }
        if runtime::with_lock(id, async |l| l.release().await)?.map_err(to_php)? {
            return Ok(());
        }
        Err(errors::lock_lost(format!(
            "lock {:?} was lost before release: its lease expired or was revoked",
            self.name_text()
        )))
    }

    /// Asks the server whether this process still holds the lock (its key exists and is first in line).
    pub fn is_held(&self) -> PhpResult<bool> {
        runtime::with_lock(self.id()?, async |l| l.is_held().await)?.map_err(to_php)
    }

    /// While held: the create revision of the lock's key, larger with every grant of the lock; Txn::ifHeld() guards writes with it. Null when not acquired.
    pub fn fencing_token(&self) -> PhpResult<Option<i64>> {
        runtime::view_lock(self.id()?, |l| l.fencing_token())
    }

    /// While held: the lock's key (`name/LEASE_ID_IN_HEX`). Null when not acquired.
    pub fn key(&self) -> PhpResult<Option<Binary<u8>>> {
        runtime::view_lock(self.id()?, |l| l.key().map(|k| Binary::from(k.to_vec())))
    }
}
