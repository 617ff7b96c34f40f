//! `Synod\Lease`: a granted lease, kept alive in the background by the
//! process's runtime (not by this object, which may go away with the
//! request while the lease lives on).

use ext_php_rs::binary::Binary;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;

use crate::errors;
use crate::runtime::{self, Conn};
use crate::txn::value_error;

/// A lease: keys attached to it are deleted when it expires or is revoked. Made by Client::lease().
#[php_class]
#[php(name = "Synod\\Lease")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Default)]
pub struct Lease {
    conn: Option<Conn>,
    id: i64,
    ttl: i64,
}

impl Lease {
    pub fn new(conn: Conn, id: i64, ttl: i64) -> Lease {
        Lease {
            conn: Some(conn),
            id,
            ttl,
        }
    }

    fn core(&self) -> PhpResult<(String, synod_client::Client)> {
        match &self.conn {
            Some(c) => Ok((c.key(), c.client()?)),
            None => Err(value_error("a Lease is made with Client::lease()".into())),
        }
    }
}

#[php_impl]
impl Lease {
    /// The lease ID, to pass as `lease:` when writing keys.
    #[php(getter)]
    pub fn get_id(&self) -> i64 {
        self.id
    }

    /// The TTL in seconds the server granted.
    #[php(getter)]
    pub fn get_ttl(&self) -> i64 {
        self.ttl
    }

    /// Refreshes the lease once and returns its TTL; LeaseNotFoundException when it is gone.
    pub fn keep_alive(&self) -> PhpResult<i64> {
        let (_, c) = self.core()?;
        let id = self.id;
        runtime::block_on(async move { c.lease_keep_alive_once(id).await })
    }

    /// Keeps the lease alive in the background from now on (Client::lease() does this unless told not to).
    pub fn start_keep_alive(&self) -> PhpResult<()> {
        let (key, c) = self.core()?;
        runtime::start_keep_alive(&key, &c, self.id, self.ttl)
    }

    /// Stops the background keep-alive; the lease then expires after its TTL.
    pub fn stop_keep_alive(&self) -> PhpResult<()> {
        let (key, _) = self.core()?;
        runtime::stop_keep_alive(&key, self.id)
    }

    /// Whether the background keep-alive is running: false once stopped, or once the lease was lost.
    pub fn is_kept_alive(&self) -> PhpResult<bool> {
        let (key, _) = self.core()?;
        Ok(runtime::keep_alive_status(&key, self.id)?.is_some_and(|s| s.running))
    }

    /// Seconds the lease has left, or -1 when it has expired or was revoked.
    pub fn time_to_live(&self) -> PhpResult<i64> {
        let (_, c) = self.core()?;
        let id = self.id;
        let r = runtime::block_on(async move { c.lease_time_to_live(id, false).await })?;
        Ok(r.ttl)
    }

    /// The keys attached to the lease.
    pub fn keys(&self) -> PhpResult<Vec<Binary<u8>>> {
        let (_, c) = self.core()?;
        let id = self.id;
        let r = runtime::block_on(async move { c.lease_time_to_live(id, true).await })?;
        Ok(r.keys.into_iter().map(Binary::from).collect())
    }

    /// Revokes the lease now, deleting its keys; LeaseNotFoundException when it is already gone.
    pub fn revoke(&self) -> PhpResult<()> {
        let (key, c) = self.core()?;
        let id = self.id;
        let result = runtime::run(async move { c.lease_revoke(id).await })?;
        // After a failure that may have left it alive (say, a timeout), it
        // stays kept alive and revoked at shutdown as before.
        if matches!(result, Ok(_) | Err(synod_client::Error::LeaseNotFound(_))) {
            runtime::stop_keep_alive(&key, self.id)?;
            runtime::revoke_at_shutdown(&key, self.id, false)?;
        }
        result.map(|_| ()).map_err(errors::to_php)
    }

    /// Whether to revoke the lease when the current request ends (off unless asked for).
    pub fn revoke_on_shutdown(&self, revoke: bool) -> PhpResult<()> {
        let (key, _) = self.core()?;
        runtime::revoke_at_shutdown(&key, self.id, revoke)
    }
}
