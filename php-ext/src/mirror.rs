//! `Synod\Mirror`: a face on the client's mirror recipe. The copy lives in
//! the runtime's registry under (client, prefix), not in this object, so
//! every request of a php-fpm worker reads the copy the first one loaded,
//! without a server round trip. The background watch that keeps it fresh
//! only writes Rust data; PHP reads it on its own thread.

use std::sync::Arc;

use ext_php_rs::binary::Binary;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use synod_client::recipes;

use crate::args::{self, Bytes};
use crate::client::KeyMap;
use crate::errors::to_php;
use crate::runtime::{self, Conn, MirrorKey};
use crate::txn::value_error;

/// A process-local copy of every key under a prefix, kept fresh by a background watch; reads never leave the process. Made by Client::mirror(); lives as long as the PHP process, shared by all its requests.
#[php_class]
#[php(name = "Synod\\Mirror")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Default)]
pub struct Mirror {
    conn: Option<Conn>,
    key: MirrorKey,
}

impl Mirror {
    /// This process's mirror of `prefix`, loaded now if it was not yet.
    pub fn new(conn: &Conn, prefix: &[u8]) -> PhpResult<Mirror> {
        let m = Mirror {
            key: (conn.key(), prefix.to_vec()),
            conn: Some(conn.clone()),
        };
        m.copy()?;
        Ok(m)
    }

    fn copy(&self) -> PhpResult<Arc<recipes::Mirror>> {
        let Some(conn) = &self.conn else {
            return Err(value_error("a Mirror is made with Client::mirror()".into()));
        };
        runtime::mirror(conn, &self.key)
    }
}

#[php_impl]
impl Mirror {
    /// The mirrored prefix.
    #[php(getter)]
    pub fn get_prefix(&self) -> Binary<u8> {
        Binary::from(self.key.1.clone())
    }

    /// The value of `key` in the copy, or null when it does not exist there. `key` must be under the prefix (ValueError otherwise).
    pub fn get(&self, key: Bytes) -> PhpResult<Option<Binary<u8>>> {
        let value = self.copy()?.get(&key).map_err(to_php)?;
        Ok(value.map(Binary::from))
    }

    /// Every key in the copy as key => value, sorted by key, like Client::getPrefix().
    pub fn all(&self) -> PhpResult<KeyMap> {
        Ok(KeyMap(self.copy()?.all()))
    }

    /// The store revision the copy is at: every change under the prefix up to it is in the copy.
    pub fn revision(&self) -> PhpResult<i64> {
        Ok(self.copy()?.revision())
    }

    /// Waits up to `timeout` seconds (without limit when null) until the copy is at `revision` or later, to read one's own writes: pass what put() returned. False when the time ran out.
    pub fn wait_for(&self, revision: i64, timeout: Option<f64>) -> PhpResult<bool> {
        if revision < 0 {
            return Err(value_error(format!(
                "revision must not be negative, {revision} given"
            )));
        }
        let wait = args::timeout(timeout)?;
        let m = self.copy()?;
        runtime::run(async move { m.wait_for(revision, wait).await })
    }
}
