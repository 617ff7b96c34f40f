//! `Synod\ServiceRegistry` and its values (`Registration`,
//! `ServiceInstance`, `ServiceEvent`, `ServiceWatch`): a face on the
//! client's service recipe. Registrations and pickers live in the runtime's
//! registry, not in these objects: an instance stays registered for the
//! life of the process (a long-running worker, every request of a php-fpm
//! worker) and round-robin and down marks are shared by all its requests.

use std::time::Duration;

use ext_php_rs::binary::Binary;
use ext_php_rs::convert::{FromZval, IntoZval, StubLiteral};
use ext_php_rs::flags::{ClassFlags, DataType};
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, Zval};
use ext_php_rs::zend::ce;
use serde_json::{Map, Number, Value};
use synod_client::recipes;

use crate::args::{entries, Bytes};
use crate::client::integer_key;
use crate::errors::to_php;
use crate::runtime::{self, Conn};
use crate::txn::value_error;
use crate::watch::{Feed, Stream};

/// The `array $meta` of register(): converted to a JSON object when the
/// call is made, the failure kept for a ValueError (not a TypeError: the
/// argument is an array, only its contents cannot be stored).
pub struct Meta(Result<Map<String, Value>, String>);

impl Default for Meta {
    fn default() -> Self {
        Meta(Ok(Map::new()))
    }
}

impl StubLiteral for Meta {
    fn stub_literal(&self) -> String {
        "[]".into()
    }
}

impl<'a> FromZval<'a> for Meta {
    const TYPE: DataType = DataType::Array;

    fn from_zval(zval: &'a Zval) -> Option<Self> {
        let meta = object(zval.array()?, 1).map_err(|b| match b.path.is_empty() {
            true => format!("meta {}", b.why),
            false => format!("meta{}: {}", b.path, b.why),
        });
        Some(Meta(meta))
    }
}

/// Why a value cannot be JSON, and where in the metadata it is.
struct Bad {
    /// `["a"][0]`; empty for nesting too deep (the path would be as long).
    path: String,
    why: String,
}

impl Bad {
    fn new(why: String) -> Bad {
        Bad {
            path: String::new(),
            why,
        }
    }

    /// The same failure one level further out, at `key`.
    fn at(mut self, key: impl std::fmt::Debug) -> Bad {
        if !self.why.starts_with("nests") {
            self.path = format!("[{key:?}]{}", self.path);
        }
        self
    }
}

fn key_text(k: &Zval) -> Result<String, Bad> {
    if let Some(i) = k.long() {
        return Ok(i.to_string());
    }
    let bytes = k.zend_str().map(|s| s.as_bytes()).unwrap_or_default();
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| Bad::new("has a key that is not UTF-8, which JSON cannot hold".into()))
}

/// Whether the array's keys are 0, 1, 2, ... in order: a JSON array.
fn is_list(arr: &ZendHashTable) -> bool {
    entries(arr)
        .enumerate()
        .all(|(i, (k, _))| k.long() == i64::try_from(i).ok())
}

/// A PHP array as a JSON object (keys as strings), as json_encode() makes
/// one with JSON_FORCE_OBJECT at the top.
fn object(arr: &ZendHashTable, depth: usize) -> Result<Map<String, Value>, Bad> {
    let mut m = Map::new();
    for (k, v) in entries(arr) {
        let k = key_text(&k)?;
        let v = json(v, depth + 1).map_err(|b| b.at(&k))?;
        m.insert(k, v);
    }
    Ok(m)
}

/// A PHP value as JSON, as json_encode() would encode it; objects,
/// resources, NAN, INF and strings that are not UTF-8 are refused.
fn json(z: &Zval, depth: usize) -> Result<Value, Bad> {
    let z = z.dereference();
    if depth > recipes::MAX_DEPTH {
        return Err(Bad::new(format!(
            "nests deeper than {} levels",
            recipes::MAX_DEPTH
        )));
    }
    if z.is_null() {
        return Ok(Value::Null);
    }
    if let Some(b) = z.bool() {
        return Ok(Value::Bool(b));
    }
    if let Some(i) = z.long() {
        return Ok(Value::from(i));
    }
    if let Some(d) = z.double() {
        return Number::from_f64(d)
            .map(Value::Number)
            .ok_or_else(|| Bad::new(format!("is {d}, which JSON cannot hold")));
    }
    if let Some(s) = z.zend_str() {
        return std::str::from_utf8(s.as_bytes())
            .map(Value::from)
            .map_err(|_| Bad::new("is a string that is not UTF-8, which JSON cannot hold".into()));
    }
    if let Some(arr) = z.array() {
        if is_list(arr) {
            let mut list = Vec::with_capacity(arr.len());
            for (i, (_, v)) in entries(arr).enumerate() {
                list.push(json(v, depth + 1).map_err(|b| b.at(i))?);
            }
            return Ok(Value::Array(list));
        }
        return object(arr, depth).map(Value::Object);
    }
    Err(Bad::new(format!(
        "is of type {}; only null, bool, int, float, string and array can be stored",
        z.get_type()
    )))
}

/// JSON as a PHP value: objects become arrays (integer-like keys as
/// integers, as PHP makes them).
pub struct Json(Value);

impl IntoZval for Json {
    const TYPE: DataType = DataType::Mixed;
    const NULLABLE: bool = true;

    fn set_zval(self, zv: &mut Zval, persistent: bool) -> ext_php_rs::error::Result<()> {
        match self.0 {
            Value::Null => zv.set_null(),
            Value::Bool(b) => zv.set_bool(b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => zv.set_long(i),
                None => zv.set_double(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => zv.set_string(&s, persistent)?,
            Value::Array(list) => {
                let mut ht = ZendHashTable::with_capacity(u32::try_from(list.len()).unwrap_or(0));
                for v in list {
                    ht.push(Json(v))?;
                }
                zv.set_hashtable(ht);
            }
            Value::Object(m) => JsonObject(m).set_zval(zv, persistent)?,
        }
        Ok(())
    }
}

/// A JSON object as a PHP array.
pub struct JsonObject(Map<String, Value>);

impl IntoZval for JsonObject {
    const TYPE: DataType = DataType::Array;
    const NULLABLE: bool = false;

    fn set_zval(self, zv: &mut Zval, _persistent: bool) -> ext_php_rs::error::Result<()> {
        let mut ht = ZendHashTable::with_capacity(u32::try_from(self.0.len()).unwrap_or(0));
        for (k, v) in self.0 {
            match integer_key(k.as_bytes()) {
                Some(i) => ht.insert_at_index(i, Json(v))?,
                None => ht.insert(k.as_str(), Json(v))?,
            }
        }
        zv.set_hashtable(ht);
        Ok(())
    }
}

/// A name, id or address: UTF-8, since it goes into JSON.
fn text(what: &str, b: &[u8]) -> PhpResult<String> {
    std::str::from_utf8(b)
        .map(str::to_string)
        .map_err(|_| value_error(format!("the {what} must be UTF-8")))
}

/// Registers instances of one service and finds them. Instances are plain keys "synod/services/SERVICE/ID" with JSON values {"id", "address", "port", "meta"} (layout in the README), so any etcd client registers and discovers too. Made by Client::services().
#[php_class]
#[php(name = "Synod\\ServiceRegistry")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Default)]
pub struct ServiceRegistry {
    conn: Option<Conn>,
    service: String,
}

impl ServiceRegistry {
    pub fn new(conn: &Conn, service: &[u8]) -> PhpResult<ServiceRegistry> {
        let service = text("service name", service)?;
        recipes::service_prefix(&service).map_err(to_php)?;
        Ok(ServiceRegistry {
            conn: Some(conn.clone()),
            service,
        })
    }

    fn conn(&self) -> PhpResult<&Conn> {
        self.conn
            .as_ref()
            .ok_or_else(|| value_error("a ServiceRegistry is made with Client::services()".into()))
    }

    fn list(&self) -> PhpResult<Vec<recipes::Instance>> {
        let c = self.conn()?.client()?;
        let service = self.service.clone();
        let (list, _) = runtime::block_on(async move { recipes::instances(&c, &service).await })?;
        Ok(list)
    }
}

#[php_impl]
impl ServiceRegistry {
    /// The service's name.
    #[php(getter)]
    pub fn get_service(&self) -> String {
        self.service.clone()
    }

    /// Registers this process as instance `id` at `address`:`port` with `meta` (anything json_encode() takes: strings, numbers, bools, null, arrays). Its key lives on a lease of `ttl` seconds kept alive in the background for the life of the process (across requests), registered again by itself if the lease is lost, and revoked when the process exits or deregister() is called; a process killed with kill -9 is gone after the TTL. Registering the same id again updates it in place (with the same values and ttl: nothing to do, no request). ValueError for an empty service or id, an id with '/', a port outside 1..65535, a ttl outside 1..86400 or meta that cannot be JSON; nothing is written then.
    #[php(defaults(meta = Meta::default(), ttl = 10))]
    pub fn register(
        &self,
        id: Bytes,
        address: Bytes,
        port: i64,
        meta: Meta,
        ttl: i64,
    ) -> PhpResult<Registration> {
        let conn = self.conn()?;
        let id = text("instance id", &id)?;
        let address = text("address", &address)?;
        let key = recipes::instance_key(&self.service, &id).map_err(to_php)?;
        let meta = meta.0.map_err(value_error)?;
        recipes::check_service_ttl(ttl).map_err(to_php)?;
        let value = recipes::encode_instance(&id, &address, port, meta).map_err(to_php)?;
        let granted = runtime::register(conn, key.clone(), value, ttl)?;
        Ok(Registration {
            conn: Some(conn.clone()),
            service: self.service.clone(),
            id,
            key,
            ttl: granted,
        })
    }

    /// Every registered instance, sorted by id, as the server has them now. Keys under the prefix whose value is not an instance (not JSON, no address or port) are skipped.
    pub fn instances(&self) -> PhpResult<Vec<ServiceInstance>> {
        Ok(self
            .list()?
            .into_iter()
            .map(ServiceInstance::from)
            .collect())
    }

    /// One instance, read from the server now, skipping those marked down: 'round-robin' (in turn, across the requests of this process) or 'random'. Null when there is none (none registered, or all marked down). ValueError for another strategy.
    #[php(defaults(strategy = "round-robin".to_string()))]
    pub fn pick(&self, strategy: String) -> PhpResult<Option<ServiceInstance>> {
        let strategy = recipes::Strategy::parse(&strategy).map_err(to_php)?;
        let list = self.list()?;
        let picked = runtime::with_picker(self.conn()?, &self.service, |p| p.pick(list, strategy))?;
        Ok(picked.map(ServiceInstance::from))
    }

    /// Makes pick() skip `instance` for `seconds` (up to 86400; 0 lifts the mark), in this process only, as Curator's down-instance policy does for an instance that failed.
    pub fn mark_down(&self, instance: &ServiceInstance, seconds: f64) -> PhpResult<()> {
        let conn = self.conn()?;
        if instance.inner.service != self.service {
            return Err(value_error(format!(
                "the instance belongs to service {:?}, not {:?}",
                instance.inner.service, self.service
            )));
        }
        let id = instance.inner.id.clone();
        runtime::with_picker(conn, &self.service, |p| p.mark_down(&id, seconds))?.map_err(to_php)
    }

    /// Membership changes from now on (ServiceEvent: added, updated, removed), in the server's order; wait() with a timeout, or foreach. A removal carries the instance as it was.
    pub fn watch(&self) -> PhpResult<ServiceWatch> {
        let c = self.conn()?.client()?;
        let service = self.service.clone();
        let w = runtime::block_on(async move { recipes::ServiceWatch::start(&c, &service).await })?;
        let revision = w.revision();
        Ok(ServiceWatch {
            feed: Feed::new(w, revision),
        })
    }
}

/// This process's registration of an instance: kept alive in the background until deregister() or the end of the process, not the end of the request or of this object. Made by ServiceRegistry::register().
#[php_class]
#[php(name = "Synod\\Registration")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Default)]
pub struct Registration {
    conn: Option<Conn>,
    service: String,
    id: String,
    key: Vec<u8>,
    ttl: i64,
}

impl Registration {
    fn conn(&self) -> PhpResult<&Conn> {
        self.conn.as_ref().ok_or_else(|| {
            value_error("a Registration is made by ServiceRegistry::register()".into())
        })
    }
}

#[php_impl]
impl Registration {
    /// The service's name.
    #[php(getter)]
    pub fn get_service(&self) -> String {
        self.service.clone()
    }

    /// The instance's id.
    #[php(getter)]
    pub fn get_id(&self) -> String {
        self.id.clone()
    }

    /// The instance's key: "synod/services/SERVICE/ID".
    #[php(getter)]
    pub fn get_key(&self) -> Binary<u8> {
        Binary::from(self.key.clone())
    }

    /// The TTL in seconds the server granted.
    #[php(getter)]
    pub fn get_ttl(&self) -> i64 {
        self.ttl
    }

    /// The lease the key is on now (a new one after the registration had to be made again); null once deregistered, or in a forked child.
    pub fn lease(&self) -> PhpResult<Option<i64>> {
        runtime::view_registration(self.conn()?, &self.key, |r| r.lease())
    }

    /// Whether the key is being kept alive: false after deregister(), while it is being registered again after its lease was lost or its key deleted, once another process registered the same id, and in a forked child.
    pub fn is_active(&self) -> PhpResult<bool> {
        let state = runtime::view_registration(self.conn()?, &self.key, |r| r.state())?;
        Ok(state == Some(recipes::RegState::Active))
    }

    /// Removes the instance now (revokes its lease) and stops keeping it alive; nothing to do when not registered by this process.
    pub fn deregister(&self) -> PhpResult<()> {
        runtime::deregister(self.conn()?, &self.key)
    }
}

/// A registered instance as read from the server. Read-only.
#[php_class]
#[php(name = "Synod\\ServiceInstance")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Clone)]
pub struct ServiceInstance {
    inner: recipes::Instance,
}

impl Default for ServiceInstance {
    fn default() -> Self {
        ServiceInstance {
            inner: recipes::Instance {
                service: String::new(),
                id: String::new(),
                address: String::new(),
                port: 0,
                meta: Map::new(),
                revision: 0,
                lease: 0,
            },
        }
    }
}

impl From<recipes::Instance> for ServiceInstance {
    fn from(inner: recipes::Instance) -> Self {
        ServiceInstance { inner }
    }
}

#[php_impl]
impl ServiceInstance {
    /// The service's name.
    #[php(getter)]
    pub fn get_service(&self) -> String {
        self.inner.service.clone()
    }

    /// The instance's id (the last part of its key).
    #[php(getter)]
    pub fn get_id(&self) -> String {
        self.inner.id.clone()
    }

    /// Where to reach it: a host name or IP address.
    #[php(getter)]
    pub fn get_address(&self) -> String {
        self.inner.address.clone()
    }

    /// Its port, 1..65535.
    #[php(getter)]
    pub fn get_port(&self) -> i64 {
        i64::from(self.inner.port)
    }

    /// The metadata given at registration, as an array.
    #[php(getter)]
    pub fn get_meta(&self) -> JsonObject {
        JsonObject(self.inner.meta.clone())
    }

    /// The store revision of the instance's last write (its registration or update).
    #[php(getter)]
    pub fn get_revision(&self) -> i64 {
        self.inner.revision
    }
}

/// One membership change of a service. Read-only.
#[php_class]
#[php(name = "Synod\\ServiceEvent")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Clone, Default)]
pub struct ServiceEvent {
    kind: &'static str,
    instance: ServiceInstance,
    revision: i64,
}

impl From<recipes::Change> for ServiceEvent {
    fn from(c: recipes::Change) -> Self {
        let kind = match c.kind {
            recipes::ChangeKind::Added => Self::ADDED,
            recipes::ChangeKind::Updated => Self::UPDATED,
            recipes::ChangeKind::Removed => Self::REMOVED,
        };
        ServiceEvent {
            kind,
            instance: c.instance.into(),
            revision: c.revision,
        }
    }
}

#[php_impl]
impl ServiceEvent {
    pub const ADDED: &'static str = "added";
    pub const UPDATED: &'static str = "updated";
    pub const REMOVED: &'static str = "removed";

    /// ServiceEvent::ADDED, UPDATED (address, port or meta changed) or REMOVED (deregistered, expired, deleted, or its value no longer an instance).
    #[php(getter)]
    pub fn get_type(&self) -> &'static str {
        self.kind
    }

    /// The instance as it is now; for a removal, as it was last.
    #[php(getter)]
    pub fn get_instance(&self) -> ServiceInstance {
        self.instance.clone()
    }

    /// The store revision of the change.
    #[php(getter)]
    pub fn get_revision(&self) -> i64 {
        self.revision
    }
}

/// Membership changes of a service. Made by ServiceRegistry::watch(); iterate it with foreach, or call wait().
#[php_class]
#[php(name = "Synod\\ServiceWatch")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[php(implements(ce = ce::iterator, stub = "\\Iterator"))]
#[derive(Default)]
pub struct ServiceWatch {
    feed: Feed<recipes::ServiceWatch>,
}

impl Stream for recipes::ServiceWatch {
    type Event = ServiceEvent;
    const MADE_BY: &'static str = "a ServiceWatch is made with ServiceRegistry::watch()";
    const WHAT: &'static str = "a service watch";

    async fn pull(
        &mut self,
        left: Option<Duration>,
    ) -> Result<Vec<ServiceEvent>, synod_client::Error> {
        let changes = self.next(left).await?;
        Ok(changes.into_iter().map(ServiceEvent::from).collect())
    }

    fn revision(e: &ServiceEvent) -> i64 {
        e.revision
    }

    fn cancel(&mut self) {
        recipes::ServiceWatch::cancel(self);
    }
}

#[php_impl]
impl ServiceWatch {
    /// Waits up to `timeout` seconds (forever when null) for changes and returns them; [] when none came in time. PHP signal handlers run only between calls, so a loop that must react to signals passes a timeout.
    pub fn wait(&mut self, timeout: Option<f64>) -> PhpResult<Vec<ServiceEvent>> {
        self.feed.wait(timeout)
    }

    /// The instances as this watch knows them: as of its start, with every change it has received applied (also those not handed out yet).
    pub fn instances(&mut self) -> PhpResult<Vec<ServiceInstance>> {
        let w = self.feed.live()?;
        let list = w.instances().into_iter();
        Ok(list.map(ServiceInstance::from).collect())
    }

    /// Stops the watch; later waits return [] and foreach ends.
    pub fn cancel(&mut self) {
        self.feed.cancel();
    }

    /// The revision of the last event handed out (before any: the store revision the watch started at).
    #[php(getter)]
    pub fn get_revision(&self) -> i64 {
        self.feed.revision()
    }

    /// The current event of a foreach.
    pub fn current(&self) -> Option<ServiceEvent> {
        self.feed.current()
    }

    /// The position of the current event in this foreach, from 0.
    pub fn key(&self) -> i64 {
        self.feed.key()
    }

    /// Waits (without limit) for the next event of a foreach.
    pub fn next(&mut self) -> PhpResult<()> {
        self.feed.next()
    }

    /// Starts a foreach: waits for the next event not handed out yet.
    pub fn rewind(&mut self) -> PhpResult<()> {
        self.feed.rewind()
    }

    /// Whether a foreach has an event; false once the watch was cancelled.
    pub fn valid(&self) -> bool {
        self.feed.valid()
    }
}
