//! `Synod\Client`: the entry point. Keys, prefixes, compare-and-swap,
//! transactions, compaction, status, and the factories for leases and
//! watches.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use crate::args::Bytes;
use ext_php_rs::binary::Binary;
use ext_php_rs::convert::IntoZval;
use ext_php_rs::exception::PhpException;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::flags::DataType;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendCallable, ZendClassObject, ZendHashTable, Zval};
use ext_php_rs::zend::ce;
use synod_client::pb::compare::{CompareResult, CompareTarget, TargetUnion};
use synod_client::pb::range_request::{SortOrder, SortTarget};
use synod_client::pb::request_op::Request;
use synod_client::pb::{
    CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantResponse,
    LeaseTimeToLiveResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, StatusResponse, TxnRequest, TxnResponse,
};
use synod_client::recipes;

use crate::args;
use crate::election::Election;
use crate::errors;
use crate::lease::Lease;
use crate::lock::Lock;
use crate::mirror::Mirror;
use crate::queue::Queue;
use crate::runtime::{self, Conn};
use crate::services::ServiceRegistry;
use crate::txn::{key_range, value_error, Txn};
use crate::values::KeyValue;
use crate::watch::Watch;

/// A connection to a list of etcd v3 endpoints (Synod or etcd). Connections
/// live for the whole PHP process and are shared by every Client with the
/// same endpoints and timeouts, so php-fpm workers reuse them across requests.
#[php_class]
#[php(name = "Synod\\Client")]
#[php(flags = ClassFlags::NoDynamicProperties)]
pub struct Client {
    conn: Conn,
    last: LastRevision,
}

/// The store revision of the last response a Client (or a transaction it
/// made) received, for `lastRevision()`. Shared with its Txn objects, which
/// live on the same PHP thread.
#[derive(Clone, Default)]
pub struct LastRevision(Rc<Cell<Option<i64>>>);

impl LastRevision {
    pub fn record(&self, resp: &impl Headed) {
        if let Some(h) = resp.header() {
            self.0.set(Some(h.revision));
        }
    }

    fn set(&self, revision: i64) {
        self.0.set(Some(revision));
    }

    fn get(&self) -> Option<i64> {
        self.0.get()
    }
}

/// A response carrying etcd's header (and so the revision it was served at).
pub trait Headed {
    fn header(&self) -> Option<&ResponseHeader>;
}

macro_rules! headed {
    ($($t:ty),*) => {$(
        impl Headed for $t {
            fn header(&self) -> Option<&ResponseHeader> {
                self.header.as_ref()
            }
        }
    )*};
}

headed!(
    RangeResponse,
    PutResponse,
    DeleteRangeResponse,
    TxnResponse,
    CompactionResponse,
    StatusResponse,
    LeaseGrantResponse,
    LeaseTimeToLiveResponse
);

fn seconds(name: &str, v: Option<f64>, default: Duration) -> PhpResult<Duration> {
    match v {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(value_error(format!(
            "{name} must be a number of seconds in (0, 86400], {s} given"
        ))),
    }
}

fn type_error(msg: &str) -> PhpException {
    PhpException::new(msg.into(), 0, ce::type_error())
}

fn endpoint_list(endpoints: &Zval) -> PhpResult<Vec<String>> {
    const WANT: &str = "endpoints must be a string or a list of strings";
    let list: Vec<String> = if let Some(s) = endpoints.str() {
        s.split(',').map(|e| e.trim().to_string()).collect()
    } else if let Some(arr) = endpoints.array() {
        let mut out = Vec::with_capacity(arr.len());
        for (_, v) in args::entries(arr) {
            out.push(v.str().ok_or_else(|| type_error(WANT))?.trim().to_string());
        }
        out
    } else {
        return Err(type_error(WANT));
    };
    if list.is_empty() || list.iter().any(|e| e.is_empty()) {
        return Err(value_error("endpoints must not be empty".into()));
    }
    Ok(list)
}

/// Keys and values as a PHP array `key => value`. Keys are raw bytes; a
/// key that reads as a decimal integer becomes an integer key, as it would
/// in `$a[$key] = ...`, so that `$a[$key]` finds it.
pub struct KeyMap(pub Vec<(Vec<u8>, Vec<u8>)>);

pub(crate) fn integer_key(k: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(k).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

impl IntoZval for KeyMap {
    const TYPE: DataType = DataType::Array;
    const NULLABLE: bool = false;

    fn set_zval(self, zv: &mut Zval, _persistent: bool) -> ext_php_rs::error::Result<()> {
        let mut ht = ZendHashTable::with_capacity(u32::try_from(self.0.len()).unwrap_or(u32::MAX));
        for (k, v) in self.0 {
            if let Some(i) = integer_key(&k) {
                ht.insert_at_index(i, Binary::from(v))?;
                continue;
            }
            let mut val = Binary::from(v).into_zval(false)?;
            // SAFETY: `ht` is a live table; zend_hash_str_update copies the key
            // bytes and takes over `val`'s reference, so `val` must not be dropped.
            unsafe {
                ext_php_rs::ffi::zend_hash_str_update(
                    &mut *ht,
                    k.as_ptr().cast(),
                    k.len(),
                    &raw mut val,
                )
            };
            std::mem::forget(val);
        }
        zv.set_hashtable(ht);
        Ok(())
    }
}

fn sort_order(sort: Option<&str>) -> PhpResult<SortOrder> {
    match sort.map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") | Some("ascend") => Ok(SortOrder::Ascend),
        Some("desc") | Some("descend") => Ok(SortOrder::Descend),
        Some(_) => Err(value_error(format!(
            "sort must be 'asc' or 'desc', {:?} given",
            sort.unwrap_or_default()
        ))),
    }
}

fn revision_arg(name: &str, v: Option<i64>) -> PhpResult<i64> {
    match v {
        Some(r) if r < 0 => Err(value_error(format!(
            "{name} must not be negative, {r} given"
        ))),
        Some(r) => Ok(r),
        None => Ok(0),
    }
}

fn header_revision(h: &Option<ResponseHeader>) -> i64 {
    h.as_ref().map_or(0, |h| h.revision)
}

impl Client {
    fn core(&self) -> PhpResult<synod_client::Client> {
        self.conn.client()
    }

    /// Runs one call on the client core and remembers the revision its
    /// response was served at.
    fn call<T: Headed, F>(&self, f: impl FnOnce(synod_client::Client) -> F) -> PhpResult<T>
    where
        F: Future<Output = Result<T, synod_client::Error>>,
    {
        let resp = runtime::block_on(f(self.core()?))?;
        self.last.record(&resp);
        Ok(resp)
    }

    fn range(&self, req: RangeRequest) -> PhpResult<Vec<synod_client::mvccpb::KeyValue>> {
        Ok(self.call(|c| async move { c.range(req).await })?.kvs)
    }

    fn prefix_request(
        prefix: &[u8],
        limit: Option<i64>,
        sort: Option<&str>,
        revision: Option<i64>,
        serializable: bool,
    ) -> PhpResult<RangeRequest> {
        let limit = revision_arg("limit", limit)?;
        let order = sort_order(sort)?;
        let (key, range_end) = key_range(prefix, true);
        Ok(RangeRequest {
            key,
            range_end,
            limit,
            revision: revision_arg("revision", revision)?,
            sort_order: order as i32,
            sort_target: SortTarget::Key as i32,
            serializable,
            ..Default::default()
        })
    }

    fn put_request(key: &[u8], value: &[u8], lease: Option<i64>, prev_kv: bool) -> PutRequest {
        PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease: lease.unwrap_or(0),
            prev_kv,
            ..Default::default()
        }
    }

    fn delete_range(
        &self,
        key: &[u8],
        prefix: bool,
        prev_kv: bool,
    ) -> PhpResult<DeleteRangeResponse> {
        let (key, range_end) = key_range(key, prefix);
        let req = DeleteRangeRequest {
            key,
            range_end,
            prev_kv,
        };
        self.call(|c| async move { c.delete(req).await })
    }

    /// Deletes under a prefix the caller named. An empty prefix would be
    /// every key (a variable that happens to be empty): that takes
    /// deleteAll(), said on purpose.
    fn delete_under(&self, prefix: &[u8], prev_kv: bool) -> PhpResult<DeleteRangeResponse> {
        if prefix.is_empty() {
            return Err(value_error(
                "prefix must not be empty; to delete every key, call deleteAll()".into(),
            ));
        }
        self.delete_range(prefix, true, prev_kv)
    }

    /// A put guarded by one comparison; whether it happened.
    fn guarded_put(&self, cmp: Compare, put: PutRequest) -> PhpResult<bool> {
        let req = TxnRequest {
            compare: vec![cmp],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(put)),
            }],
            failure: vec![],
        };
        Ok(self.call(|c| async move { c.txn(req).await })?.succeeded)
    }
}

#[php_impl]
impl Client {
    /// Connects lazily: an unreachable server shows on the first call. `endpoints` is "host:port", a comma-separated list, or an array of them; timeouts are in seconds; username and password are for servers with authentication enabled.
    pub fn __construct(
        endpoints: &Zval,
        connect_timeout: Option<f64>,
        request_timeout: Option<f64>,
        username: Option<String>,
        password: Option<String>,
    ) -> PhpResult<Self> {
        let endpoints = endpoint_list(endpoints)?;
        let defaults = synod_client::Options::default();
        let credentials = match (username, password) {
            (None, None) => None,
            (Some(u), p) if !u.is_empty() => Some((u, p.unwrap_or_default())),
            _ => return Err(value_error("a password needs a username".into())),
        };
        let opts = synod_client::Options {
            connect_timeout: seconds("connect_timeout", connect_timeout, defaults.connect_timeout)?,
            request_timeout: seconds("request_timeout", request_timeout, defaults.request_timeout)?,
            credentials,
        };
        // Validate the endpoint syntax now rather than on first use.
        synod_client::Client::new(&endpoints, opts.clone()).map_err(errors::to_php)?;
        Ok(Client {
            conn: Conn { endpoints, opts },
            last: LastRevision::default(),
        })
    }

    /// The store revision the last answer to this Client was served at (any call that reached the server, and commit() of a Txn it made; not calls on a Lease or Watch, nor exists(), children() or createSequential()); null before any, unchanged by a failed call. After a read, watching from lastRevision() + 1 misses no change and repeats none.
    pub fn last_revision(&self) -> Option<i64> {
        self.last.get()
    }

    /// The value of `key`, or null when it does not exist. With `serializable`, the member answers from its own copy without asking the leader: faster, possibly stale.
    #[php(defaults(serializable = false))]
    pub fn get(&self, key: Bytes, serializable: bool) -> PhpResult<Option<Binary<u8>>> {
        let req = RangeRequest {
            key: key.to_vec(),
            serializable,
            ..Default::default()
        };
        Ok(self
            .range(req)?
            .into_iter()
            .next()
            .map(|kv| Binary::from(kv.value)))
    }

    /// The key with its metadata (at `revision` when given), or null when it does not exist. `serializable`: as for get().
    #[php(defaults(serializable = false))]
    pub fn get_key_value(
        &self,
        key: Bytes,
        revision: Option<i64>,
        serializable: bool,
    ) -> PhpResult<Option<KeyValue>> {
        let req = RangeRequest {
            key: key.to_vec(),
            revision: revision_arg("revision", revision)?,
            serializable,
            ..Default::default()
        };
        Ok(self.range(req)?.into_iter().next().map(KeyValue::from))
    }

    /// Every key under `prefix` as key => value, sorted by key ('asc' or 'desc'), at most `limit` (0: all). `serializable`: as for get().
    #[php(defaults(serializable = false))]
    pub fn get_prefix(
        &self,
        prefix: Bytes,
        limit: Option<i64>,
        sort: Option<&str>,
        revision: Option<i64>,
        serializable: bool,
    ) -> PhpResult<KeyMap> {
        let req = Self::prefix_request(&prefix, limit, sort, revision, serializable)?;
        let kvs = self.range(req)?;
        Ok(KeyMap(
            kvs.into_iter().map(|kv| (kv.key, kv.value)).collect(),
        ))
    }

    /// Every key under `prefix` as a list of KeyValue, sorted by key ('asc' or 'desc'), at most `limit` (0: all). `serializable`: as for get().
    #[php(defaults(serializable = false))]
    pub fn get_prefix_key_values(
        &self,
        prefix: Bytes,
        limit: Option<i64>,
        sort: Option<&str>,
        revision: Option<i64>,
        serializable: bool,
    ) -> PhpResult<Vec<KeyValue>> {
        let req = Self::prefix_request(&prefix, limit, sort, revision, serializable)?;
        Ok(self.range(req)?.into_iter().map(KeyValue::from).collect())
    }

    /// Number of keys under `prefix`. `serializable`: as for get().
    #[php(defaults(serializable = false))]
    pub fn count_prefix(&self, prefix: Bytes, serializable: bool) -> PhpResult<i64> {
        let (key, range_end) = key_range(&prefix, true);
        let req = RangeRequest {
            key,
            range_end,
            count_only: true,
            serializable,
            ..Default::default()
        };
        Ok(self.call(|c| async move { c.range(req).await })?.count)
    }

    /// Stores `value` under `key` (attached to `lease` when given) and returns the store revision of the write.
    pub fn put(&self, key: Bytes, value: Bytes, lease: Option<i64>) -> PhpResult<i64> {
        let req = Self::put_request(&key, &value, lease, false);
        let resp = self.call(|c| async move { c.put(req).await })?;
        Ok(header_revision(&resp.header))
    }

    /// Stores `value` under `key` and returns what it replaced, or null when the key was new.
    pub fn get_and_put(
        &self,
        key: Bytes,
        value: Bytes,
        lease: Option<i64>,
    ) -> PhpResult<Option<KeyValue>> {
        let req = Self::put_request(&key, &value, lease, true);
        let resp = self.call(|c| async move { c.put(req).await })?;
        Ok(resp.prev_kv.map(KeyValue::from))
    }

    /// Stores `value` only if `key` does not exist; whether it did.
    pub fn put_if_absent(&self, key: Bytes, value: Bytes, lease: Option<i64>) -> PhpResult<bool> {
        let cmp = Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Create as i32,
            key: key.to_vec(),
            range_end: vec![],
            target_union: Some(TargetUnion::CreateRevision(0)),
        };
        self.guarded_put(cmp, Self::put_request(&key, &value, lease, false))
    }

    /// Stores `value` only if the key's current value is `expected`; whether it did.
    pub fn compare_and_swap(
        &self,
        key: Bytes,
        expected: Bytes,
        value: Bytes,
        lease: Option<i64>,
    ) -> PhpResult<bool> {
        let cmp = Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Value as i32,
            key: key.to_vec(),
            range_end: vec![],
            target_union: Some(TargetUnion::Value(expected.to_vec())),
        };
        self.guarded_put(cmp, Self::put_request(&key, &value, lease, false))
    }

    /// Deletes `key` and returns how many keys were deleted (0 or 1).
    pub fn delete(&self, key: Bytes) -> PhpResult<i64> {
        Ok(self.delete_range(&key, false, false)?.deleted)
    }

    /// Deletes `key` and returns what it held, or null when it did not exist.
    pub fn get_and_delete(&self, key: Bytes) -> PhpResult<Option<KeyValue>> {
        let resp = self.delete_range(&key, false, true)?;
        Ok(resp.prev_kvs.into_iter().next().map(KeyValue::from))
    }

    /// Deletes every key under `prefix` and returns how many were deleted. An empty prefix raises ValueError and deletes nothing (deleteAll() deletes every key).
    pub fn delete_prefix(&self, prefix: Bytes) -> PhpResult<i64> {
        Ok(self.delete_under(&prefix, false)?.deleted)
    }

    /// Deletes every key under `prefix` and returns them as they were. An empty prefix raises ValueError and deletes nothing.
    pub fn get_and_delete_prefix(&self, prefix: Bytes) -> PhpResult<Vec<KeyValue>> {
        let resp = self.delete_under(&prefix, true)?;
        Ok(resp.prev_kvs.into_iter().map(KeyValue::from).collect())
    }

    /// Deletes every key in the store and returns how many were deleted.
    pub fn delete_all(&self) -> PhpResult<i64> {
        Ok(self.delete_range(b"", true, false)?.deleted)
    }

    /// Starts a transaction: add comparisons with if*(), operations with then() and else(), and send it with commit().
    pub fn txn(&self) -> Txn {
        Txn::new(self.conn.clone(), self.last.clone())
    }

    /// Discards history before `revision` (reads below it fail with CompactedException).
    #[php(defaults(physical = false))]
    pub fn compact(&self, revision: i64, physical: bool) -> PhpResult<()> {
        if revision <= 0 {
            return Err(value_error(format!(
                "revision must be positive, {revision} given"
            )));
        }
        self.call(|c| async move { c.compact(revision, physical).await })?;
        Ok(())
    }

    /// The server's status: version, dbSize, leader, memberId, clusterId (ids in hex, as etcdctl prints them), raftIndex, raftTerm, revision.
    pub fn status(&self) -> PhpResult<Vec<(&'static str, Zval)>> {
        let s = self.call(|c| async move { c.status().await })?;
        let h = s.header.unwrap_or_default();
        let int = |v: i64| -> PhpResult<Zval> { Ok(v.into_zval(false)?) };
        Ok(vec![
            ("version", s.version.into_zval(false)?),
            ("dbSize", int(s.db_size)?),
            ("leader", format!("{:x}", s.leader).into_zval(false)?),
            ("memberId", format!("{:x}", h.member_id).into_zval(false)?),
            ("clusterId", format!("{:x}", h.cluster_id).into_zval(false)?),
            ("raftIndex", int(s.raft_index as i64)?),
            ("raftTerm", int(s.raft_term as i64)?),
            ("revision", int(h.revision)?),
        ])
    }

    /// Grants a lease of `ttl` seconds (with a chosen `id` when given), kept alive in the background unless `keep_alive` is false.
    #[php(defaults(keep_alive = true, revoke_on_shutdown = false))]
    pub fn lease(
        &self,
        ttl: i64,
        id: Option<i64>,
        keep_alive: bool,
        revoke_on_shutdown: bool,
    ) -> PhpResult<Lease> {
        let id = id.unwrap_or(0);
        let resp = self.call(|c| async move { c.lease_grant(ttl, id).await })?;
        let lease = Lease::new(self.conn.clone(), resp.id, resp.ttl);
        if keep_alive {
            lease.start_keep_alive()?;
        }
        if revoke_on_shutdown {
            lease.revoke_on_shutdown(true)?;
        }
        Ok(lease)
    }

    /// A lease granted earlier (by this process or another), to keep alive, inspect or revoke; LeaseNotFoundException when it is gone. Its keep-alive is not started.
    pub fn lease_for(&self, id: i64) -> PhpResult<Lease> {
        let r = self.call(|c| async move { c.lease_time_to_live(id, false).await })?;
        if r.ttl < 0 {
            return Err(errors::to_php(synod_client::Error::LeaseNotFound(id)));
        }
        Ok(Lease::new(self.conn.clone(), id, r.granted_ttl))
    }

    /// Watches a key (or every key under it with `prefix`), from `start_revision` when given (replaying history), with previous values when `prev_kv`.
    #[php(defaults(prefix = false, prev_kv = false))]
    pub fn watch(
        &self,
        key: Bytes,
        prefix: bool,
        start_revision: Option<i64>,
        prev_kv: bool,
    ) -> PhpResult<Watch> {
        let c = self.core()?;
        let (key, range_end) = key_range(&key, prefix);
        let opts = synod_client::WatchOptions {
            key,
            range_end,
            start_revision: revision_arg("start_revision", start_revision)?,
            prev_kv,
            progress_notify: false,
        };
        let w = runtime::block_on(async move { c.watch(opts).await })?;
        self.last.set(w.created_revision);
        Ok(Watch::new(w))
    }

    /// This process's copy of every key under `prefix`, loaded at one revision and kept fresh by a background watch: reads without a server round trip. Loaded on the first call in the process; later calls, in this request or later ones, return the same copy.
    pub fn mirror(&self, prefix: Bytes) -> PhpResult<Mirror> {
        Mirror::new(&self.conn, &prefix)
    }

    /// The work queue `name`: ordered (higher priority first, then first in, first out), at-least-once, stored as plain keys under "$name/" (layout in the README). A job delivered `max_attempts` times without an ack goes to the dead-letter queue.
    #[php(defaults(max_attempts = 5))]
    pub fn queue(&self, name: Bytes, max_attempts: i64) -> PhpResult<Queue> {
        Queue::new(&self.conn, &name, max_attempts)
    }

    /// The instances of `service`: register() this process, instances(), pick() one (round-robin or random, skipping those marked down), watch() membership. Stored as plain keys "synod/services/$service/ID" with JSON values, so other languages take part with any etcd client (layout in the README). ValueError for an empty name or one with '/'.
    pub fn services(&self, service: Bytes) -> PhpResult<ServiceRegistry> {
        ServiceRegistry::new(&self.conn, &service)
    }

    /// Whether `key` exists (ZooKeeper's exists(); a key with keys under it but no value of its own does not).
    pub fn exists(&self, key: Bytes) -> PhpResult<bool> {
        let c = self.core()?;
        runtime::block_on(async move { recipes::exists(&c, &key).await })
    }

    /// The names of the direct children of `path` (ZooKeeper's getChildren()), sorted: 'x' for the key "$path/x", and also for keys under "$path/x/" when "$path/x" itself does not exist; never deeper names. Read at one revision.
    pub fn children(&self, path: Bytes) -> PhpResult<Vec<Binary<u8>>> {
        let c = self.core()?;
        let names = runtime::block_on(async move { recipes::children(&c, &path).await })?;
        Ok(names.into_iter().map(Binary::from).collect())
    }

    /// Creates "$prefix" followed by a ten-digit, zero-padded number (ZooKeeper's sequential nodes) with `value`, on `lease` when given, and returns the key. Numbers increase in creation order across all creators and are never reused.
    pub fn create_sequential(
        &self,
        prefix: Bytes,
        value: Bytes,
        lease: Option<i64>,
    ) -> PhpResult<Binary<u8>> {
        let lease = match lease {
            Some(0) => {
                return Err(value_error(
                    "lease 0 is no lease; pass null for none".into(),
                ))
            }
            l => l.unwrap_or(0),
        };
        let c = self.core()?;
        let key = runtime::block_on(async move {
            recipes::create_sequential(&c, &prefix, &value, lease).await
        })?;
        Ok(Binary::from(key))
    }

    /// A lock on `name` (not taken yet: call acquire() or tryAcquire()). Its lease of `ttl` seconds is granted at acquire and kept alive in the background while held; it is released by release(), when the object goes away, or when the request ends.
    #[php(defaults(ttl = 10))]
    pub fn lock(&self, name: Bytes, ttl: i64) -> PhpResult<Lock> {
        Lock::new(&self.conn, &name, ttl)
    }

    /// Runs `fn($lock)` holding the lock on `name` and returns what it returns; the lock is released afterwards, also when `fn` throws. TimeoutException when the lock was not acquired within `timeout` seconds (null: wait without limit; 0: only if free now). LockLostException when the lock was lost while `fn` ran.
    #[php(defaults(ttl = 10))]
    pub fn with_lock(
        &self,
        name: Bytes,
        r#fn: ZendCallable,
        timeout: Option<f64>,
        ttl: i64,
    ) -> PhpResult<Zval> {
        let wait = args::timeout(timeout)?;
        let lock = Lock::new(&self.conn, &name, ttl)?;
        if !lock.acquire_within(wait)? {
            return Err(errors::timeout(format!(
                "lock {:?} not acquired within {}s",
                lock.name_text(),
                wait.unwrap_or_default().as_secs_f64()
            )));
        }
        let held = ZendClassObject::new(lock).into_zval(false)?;
        let result = r#fn.try_call(vec![&held]);
        // `fn` may have released the lock itself; then this does nothing.
        let released = match held.extract::<&ZendClassObject<Lock>>() {
            Some(lock) => lock.release(),
            None => Ok(()),
        };
        // An exception `fn` threw is pending and wins over ours.
        let value = result?;
        released?;
        Ok(value)
    }

    /// This process's candidate in the election `name`, with a lease of `ttl` seconds granted at campaign and kept alive in the background. Leadership outlives the request and this object: it lasts until resign(), the loss of the lease, or the end of the process.
    #[php(defaults(ttl = 10))]
    pub fn election(&self, name: Bytes, ttl: i64) -> PhpResult<Election> {
        Election::new(&self.conn, &name, ttl)
    }
}
