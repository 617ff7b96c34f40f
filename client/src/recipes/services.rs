//! Service discovery on plain etcd keys, so that a service written in any
//! language registers and discovers with any etcd client.
//!
//! An instance of service `S` with id `ID` is the key
//! `synod/services/S/ID`, whose value is a JSON object
//! `{"id": ID, "address": "10.0.0.5", "port": 8080, "meta": {..}}`, put on a
//! lease that its process keeps alive. When the process dies the lease
//! expires and the key goes; when it ends normally it revokes the lease.
//! Readers skip values that are not such an object (another client's
//! stray key), never fail on them.
//!
//! A registration re-registers by itself when its lease was lost (the
//! servers unreachable for longer than the TTL, or the lease revoked by
//! someone else), unless another process has put the key meanwhile: the
//! last writer of an id owns it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{first_kv, op_get, op_put, random, revoke_lease};
use crate::pb::{compare, Compare, PutRequest, RangeRequest, TxnRequest};
use crate::{mvccpb, prefix_end, Client, Error, KeepAlive, Watch, WatchOptions};

/// Where every service's instances are: `synod/services/SERVICE/ID`.
pub const SERVICES_PREFIX: &str = "synod/services/";
/// The longest service name or instance id, in bytes.
pub const MAX_SERVICE_NAME: usize = 128;
/// The longest registration TTL: a day.
pub const MAX_TTL: i64 = 86_400;
/// The longest time an instance can be marked down: a day.
pub const MAX_DOWN: f64 = 86_400.0;
/// The largest JSON value of an instance: etcd's request limit (1.5 MiB)
/// less 2 KiB for the key and the rest of the request.
pub const MAX_VALUE: usize = super::queue::MAX_PAYLOAD;
/// How deep arrays may nest in the metadata.
pub const MAX_DEPTH: usize = 64;

/// How often a registration looks at its keep-alive (a local check, no
/// request): a lost lease is noticed within this much of the keep-alive
/// giving up.
const CHECK: Duration = Duration::from_millis(250);
/// Longest pause between attempts to register again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// A registered instance as read from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub service: String,
    pub id: String,
    pub address: String,
    pub port: u16,
    pub meta: Map<String, Value>,
    /// The key's mod revision: the last write of this registration.
    pub revision: i64,
    /// The lease the key is on (0 for none: put by hand).
    pub lease: i64,
}

impl Instance {
    /// Whether address, port or metadata differ.
    fn differs(&self, other: &Instance) -> bool {
        self.address != other.address || self.port != other.port || self.meta != other.meta
    }
}

fn check_name(what: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(invalid(format!("the {what} must not be empty")));
    }
    if name.contains('/') {
        return Err(invalid(format!(
            "the {what} must not contain '/', {name:?} given"
        )));
    }
    if name.len() > MAX_SERVICE_NAME {
        return Err(invalid(format!(
            "the {what} has {} bytes, more than {MAX_SERVICE_NAME}",
            name.len()
        )));
    }
    Ok(())
}

/// `synod/services/SERVICE/`, after checking the name: not empty, no '/'
/// (one service's prefix must not hold another's instances), at most 128
/// bytes.
pub fn service_prefix(service: &str) -> Result<Vec<u8>, Error> {
    check_name("service name", service)?;
    Ok(format!("{SERVICES_PREFIX}{service}/").into_bytes())
}

/// `synod/services/SERVICE/ID`, after checking both.
pub fn instance_key(service: &str, id: &str) -> Result<Vec<u8>, Error> {
    let mut key = service_prefix(service)?;
    check_name("instance id", id)?;
    key.extend_from_slice(id.as_bytes());
    Ok(key)
}

/// A TTL in seconds, checked: 1 to a day.
pub fn check_ttl(ttl: i64) -> Result<(), Error> {
    if (1..=MAX_TTL).contains(&ttl) {
        return Ok(());
    }
    Err(invalid(format!(
        "the ttl must be a whole number of seconds in [1, {MAX_TTL}], {ttl} given"
    )))
}

/// The JSON value of an instance, after checking address, port and size.
pub fn encode(
    id: &str,
    address: &str,
    port: i64,
    meta: Map<String, Value>,
) -> Result<Vec<u8>, Error> {
    if address.is_empty() {
        return Err(invalid("the address must not be empty".into()));
    }
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid(format!("the port must be in [1, 65535], {port} given")))?;
    let mut obj = Map::new();
    obj.insert("id".into(), Value::from(id));
    obj.insert("address".into(), Value::from(address));
    obj.insert("port".into(), Value::from(port));
    obj.insert("meta".into(), Value::Object(meta));
    let value = serde_json::to_vec(&Value::Object(obj))
        .map_err(|e| invalid(format!("the metadata cannot be encoded as JSON: {e}")))?;
    if value.len() > MAX_VALUE {
        return Err(invalid(format!(
            "the instance's JSON has {} bytes, more than the {MAX_VALUE} that fit in one etcd request",
            value.len()
        )));
    }
    Ok(value)
}

/// The instance a key under `prefix` holds, or None for anything that is
/// not one: a deeper key, a value that is not a JSON object with a string
/// `address` and a `port` in 1..65535, or `meta` that is not an object.
/// The id is the key's last part; a different `id` in the value is ignored.
pub fn decode(service: &str, prefix: &[u8], kv: &mvccpb::KeyValue) -> Option<Instance> {
    let id = std::str::from_utf8(kv.key.strip_prefix(prefix)?).ok()?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    let Value::Object(mut obj) = serde_json::from_slice(&kv.value).ok()? else {
        return None;
    };
    let address = obj.get("address")?.as_str()?.to_string();
    let port = u16::try_from(obj.get("port")?.as_u64()?).ok()?;
    if address.is_empty() || port == 0 {
        return None;
    }
    let meta = match obj.remove("meta") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return None,
    };
    Some(Instance {
        service: service.to_string(),
        id: id.to_string(),
        address,
        port,
        meta,
        revision: kv.mod_revision,
        lease: kv.lease,
    })
}

fn under(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        ..Default::default()
    }
}

/// Every valid instance of `service`, sorted by id, and the revision they
/// were read at.
pub async fn instances(client: &Client, service: &str) -> Result<(Vec<Instance>, i64), Error> {
    let prefix = service_prefix(service)?;
    let resp = client.range(under(&prefix)).await?;
    let revision = resp.header.as_ref().map_or(0, |h| h.revision);
    let list = resp
        .kvs
        .iter()
        .filter_map(|kv| decode(service, &prefix, kv))
        .collect();
    Ok((list, revision))
}

/// How `Picker::pick` chooses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    RoundRobin,
    Random,
}

impl Strategy {
    pub fn parse(s: &str) -> Result<Strategy, Error> {
        match s {
            "round-robin" => Ok(Strategy::RoundRobin),
            "random" => Ok(Strategy::Random),
            _ => Err(invalid(format!(
                "the strategy must be 'round-robin' or 'random', {s:?} given"
            ))),
        }
    }
}

/// A process's choices among a service's instances: where round-robin is,
/// and which instances are marked down until when (Curator's
/// DownInstancePolicy). Lives in the process, not on the server.
#[derive(Debug, Default)]
pub struct Picker {
    next: u64,
    down: HashMap<String, Instant>,
}

impl Picker {
    /// One of `instances` (sorted by id) not marked down; None when there
    /// is none.
    pub fn pick(&mut self, instances: Vec<Instance>, strategy: Strategy) -> Option<Instance> {
        let now = Instant::now();
        self.down.retain(|_, until| *until > now);
        let mut up: Vec<Instance> = instances
            .into_iter()
            .filter(|i| !self.down.contains_key(&i.id))
            .collect();
        if up.is_empty() {
            return None;
        }
        let i = match strategy {
            Strategy::RoundRobin => {
                let i = self.next % up.len() as u64;
                self.next = self.next.wrapping_add(1);
                i
            }
            Strategy::Random => random() % up.len() as u64,
        };
        Some(up.swap_remove(i as usize))
    }

    /// Skips the instance `id` for `seconds` (0 to a day; 0 lifts a mark).
    pub fn mark_down(&mut self, id: &str, seconds: f64) -> Result<(), Error> {
        if !(seconds.is_finite() && (0.0..=MAX_DOWN).contains(&seconds)) {
            return Err(invalid(format!(
                "seconds must be in [0, {MAX_DOWN}], {seconds} given"
            )));
        }
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        self.down.insert(id.to_string(), until);
        Ok(())
    }
}

/// What a registration is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RegState {
    /// Its key is on a lease that is kept alive.
    Active = 0,
    /// Its lease was lost: registering again, with backoff.
    Renewing = 1,
    /// Another process put the key after our lease was lost: theirs now.
    Replaced = 2,
    Stopped = 3,
}

struct Shared {
    lease: AtomicI64,
    state: AtomicU8,
}

impl Shared {
    fn set(&self, s: RegState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    fn get(&self) -> RegState {
        match self.state.load(Ordering::Relaxed) {
            0 => RegState::Active,
            1 => RegState::Renewing,
            2 => RegState::Replaced,
            _ => RegState::Stopped,
        }
    }
}

/// An instance registered by this process: its key on a lease kept alive
/// by a background task, which registers again when the lease is lost.
pub struct Registration {
    client: Client,
    key: Vec<u8>,
    /// What was asked for: the value and the TTL.
    value: Vec<u8>,
    asked: i64,
    /// The TTL the server granted.
    ttl: i64,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Registration {
    /// Grants a lease of `ttl` seconds, puts `value` under `key` on it
    /// (replacing whatever was there: the last writer of an id owns it) and
    /// keeps it alive. Must be called inside the tokio runtime that will
    /// drive it.
    pub async fn start(
        client: Client,
        key: Vec<u8>,
        value: Vec<u8>,
        ttl: i64,
    ) -> Result<Registration, Error> {
        check_ttl(ttl)?;
        let (lease, granted) = grant(&client, ttl).await?;
        let put = client
            .put(PutRequest {
                key: key.clone(),
                value: value.clone(),
                lease,
                ..Default::default()
            })
            .await;
        if let Err(e) = put {
            let _ = revoke_lease(&client, lease).await;
            return Err(e);
        }
        let shared = Arc::new(Shared {
            lease: AtomicI64::new(lease),
            state: AtomicU8::new(RegState::Active as u8),
        });
        let task = tokio::spawn(keep(
            client.clone(),
            key.clone(),
            value.clone(),
            ttl,
            granted,
            shared.clone(),
        ));
        Ok(Registration {
            client,
            key,
            value,
            asked: ttl,
            ttl: granted,
            shared,
            task,
        })
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The lease the key is on now (it changes when the task registers
    /// again after a loss).
    pub fn lease(&self) -> i64 {
        self.shared.lease.load(Ordering::Relaxed)
    }

    /// The TTL the server granted.
    pub fn ttl(&self) -> i64 {
        self.ttl
    }

    pub fn state(&self) -> RegState {
        self.shared.get()
    }

    /// Whether registering `value` with `ttl` again would change nothing:
    /// the same value and TTL, and the key is being kept alive.
    pub fn is_same(&self, value: &[u8], ttl: i64) -> bool {
        self.value == value && self.asked == ttl && self.state() == RegState::Active
    }

    /// Stops keeping the key alive and revokes its lease, which deletes the
    /// key unless another process has put it since. A lease already gone is
    /// not an error.
    pub async fn deregister(&mut self) -> Result<(), Error> {
        self.task.abort();
        self.shared.set(RegState::Stopped);
        revoke_lease(&self.client, self.lease()).await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
        // Revoked from the runtime when there is one; otherwise the lease
        // expires by its TTL.
        if self.shared.get() != RegState::Stopped {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let (client, lease) = (self.client.clone(), self.lease());
                rt.spawn(async move {
                    let _ = revoke_lease(&client, lease).await;
                });
            }
        }
    }
}

/// A lease of `ttl` seconds: (id, granted TTL).
async fn grant(client: &Client, ttl: i64) -> Result<(i64, i64), Error> {
    let granted = client.lease_grant(ttl, 0).await?;
    if !granted.error.is_empty() {
        return Err(Error::Server {
            code: tonic::Code::Unknown,
            message: granted.error,
        });
    }
    Ok((granted.id, granted.ttl))
}

/// Why a registration stopped holding its key.
#[derive(Debug, PartialEq)]
enum Lost {
    /// The lease ran out or was revoked.
    Lease,
    /// The key was deleted while the lease lived.
    Deleted,
    /// Another process put the key: the last writer of an id owns it.
    Replaced,
}

/// Keeps the registration's lease alive and its key ours. When the lease
/// is lost or the key deleted, registers again (with backoff while the
/// servers do not answer), until another process owns the key.
async fn keep(
    client: Client,
    key: Vec<u8>,
    value: Vec<u8>,
    ttl: i64,
    mut granted: i64,
    shared: Arc<Shared>,
) {
    loop {
        let lease = shared.lease.load(Ordering::Relaxed);
        let alive = client.keep_alive(lease, granted);
        let lost = hold(&client, &key, lease, &alive).await;
        alive.stop();
        if lost == Lost::Replaced {
            // The lease carries nothing of ours now.
            let _ = revoke_lease(&client, lease).await;
            shared.set(RegState::Replaced);
            return;
        }
        shared.set(RegState::Renewing);
        let mut backoff = Duration::from_millis(100);
        loop {
            match renew(&client, &key, &value, ttl, lease).await {
                Ok(Some((new, new_ttl))) => {
                    shared.lease.store(new, Ordering::Relaxed);
                    shared.set(RegState::Active);
                    granted = new_ttl;
                    break;
                }
                Ok(None) => {
                    shared.set(RegState::Replaced);
                    return;
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Returns once the key stops being ours: the lease lost, the key deleted,
/// or the key put on another lease. Without this, a process whose id was
/// taken over would go on calling itself registered, and once the other
/// process left (deleting the key) nobody would put it back. The key is
/// read, then followed by a watch from the next revision; a watch that
/// breaks (the servers away past the request timeout) is started again
/// the same way.
async fn hold(client: &Client, key: &[u8], lease: i64, alive: &KeepAlive) -> Lost {
    let mut watch: Option<Watch> = None;
    loop {
        if !alive.status().running {
            return Lost::Lease;
        }
        let Some(w) = watch.as_mut().filter(|w| !w.is_ended()) else {
            let read = client
                .range(RangeRequest {
                    key: key.to_vec(),
                    ..Default::default()
                })
                .await;
            let Ok(read) = read else {
                tokio::time::sleep(CHECK).await;
                continue;
            };
            match read.kvs.first() {
                None => return Lost::Deleted,
                Some(kv) if kv.lease != lease => return Lost::Replaced,
                Some(_) => {}
            }
            let revision = read.header.map_or(0, |h| h.revision);
            let opts = WatchOptions {
                key: key.to_vec(),
                start_revision: revision + 1,
                ..Default::default()
            };
            watch = client.watch(opts).await.ok();
            if watch.is_none() {
                tokio::time::sleep(CHECK).await;
            }
            continue;
        };
        match w.next(Some(CHECK)).await {
            Ok(Some(batch)) => {
                for ev in batch.events {
                    if ev.r#type == mvccpb::event::EventType::Delete as i32 {
                        return Lost::Deleted;
                    }
                    if ev.kv.is_some_and(|kv| kv.lease != lease) {
                        return Lost::Replaced;
                    }
                }
            }
            Ok(None) => {}
            Err(_) => watch = None,
        }
    }
}

fn compare_on(key: &[u8], target: compare::CompareTarget, what: compare::TargetUnion) -> Compare {
    Compare {
        key: key.to_vec(),
        target: target as i32,
        result: compare::CompareResult::Equal as i32,
        target_union: Some(what),
        ..Default::default()
    }
}

/// Puts the key again on a new lease if it is still on our old lease or
/// gone; None (and nothing written) when another process put it meanwhile.
async fn renew(
    client: &Client,
    key: &[u8],
    value: &[u8],
    ttl: i64,
    old: i64,
) -> Result<Option<(i64, i64)>, Error> {
    let (lease, granted) = grant(client, ttl).await?;
    let put = || vec![op_put(key, value.to_vec(), lease)];
    let attempt = async {
        let ours = client
            .txn(TxnRequest {
                compare: vec![compare_on(
                    key,
                    compare::CompareTarget::Lease,
                    compare::TargetUnion::Lease(old),
                )],
                success: put(),
                failure: vec![op_get(key)],
            })
            .await?;
        if ours.succeeded {
            return Ok(true);
        }
        if first_kv(&ours, 0).is_some() {
            return Ok(false);
        }
        let gone = client
            .txn(TxnRequest {
                compare: vec![super::create_revision_is(key, 0)],
                success: put(),
                failure: vec![],
            })
            .await?;
        Ok(gone.succeeded)
    };
    match attempt.await {
        Ok(true) => {
            // The old lease may still exist (the servers were away): it
            // carries nothing of ours now.
            let _ = revoke_lease(client, old).await;
            Ok(Some((lease, granted)))
        }
        Ok(false) => {
            let _ = revoke_lease(client, lease).await;
            Ok(None)
        }
        Err(e) => {
            let _ = revoke_lease(client, lease).await;
            Err(e)
        }
    }
}

/// What happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChangeKind {
    /// A new instance (or one whose value became valid).
    Added,
    /// Its address, port or metadata changed.
    Updated,
    /// Deregistered, expired, deleted, or its value became invalid.
    Removed,
}

/// One membership change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: ChangeKind,
    /// The instance as it is now; for a removal, as it was last.
    pub instance: Instance,
    /// The store revision of the change.
    pub revision: i64,
}

/// Membership changes of a service from the moment it was started: the
/// instances are read at one revision and a watch follows from the next,
/// so every change after it is reported once, and a removal carries the
/// instance as it was.
pub struct ServiceWatch {
    service: String,
    prefix: Vec<u8>,
    known: BTreeMap<Vec<u8>, Instance>,
    watch: Watch,
    revision: i64,
}

impl ServiceWatch {
    pub async fn start(client: &Client, service: &str) -> Result<ServiceWatch, Error> {
        let prefix = service_prefix(service)?;
        let (list, revision) = instances(client, service).await?;
        let known = list
            .into_iter()
            .map(|i| ([prefix.as_slice(), i.id.as_bytes()].concat(), i))
            .collect();
        let watch = client
            .watch(WatchOptions {
                key: prefix.clone(),
                range_end: prefix_end(&prefix),
                start_revision: revision + 1,
                ..Default::default()
            })
            .await?;
        Ok(ServiceWatch {
            service: service.to_string(),
            prefix,
            known,
            watch,
            revision,
        })
    }

    /// The instances as of `revision()`, sorted by id.
    pub fn instances(&self) -> Vec<Instance> {
        self.known.values().cloned().collect()
    }

    /// The revision the membership is known at.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Waits up to `timeout` (without limit when None) for changes and
    /// returns them, in the server's order; empty when none came in time.
    pub async fn next(&mut self, timeout: Option<Duration>) -> Result<Vec<Change>, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut out = Vec::new();
        while out.is_empty() {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let Some(batch) = self.watch.next(left).await? else {
                break;
            };
            self.apply(batch.events, &mut out);
            while let Some(batch) = self.watch.try_next() {
                self.apply(batch.events, &mut out);
            }
        }
        Ok(out)
    }

    fn apply(&mut self, events: Vec<mvccpb::Event>, out: &mut Vec<Change>) {
        for ev in events {
            let Some(kv) = ev.kv else { continue };
            if kv.mod_revision <= self.revision {
                continue;
            }
            let revision = kv.mod_revision;
            self.revision = revision;
            let now = if ev.r#type == mvccpb::event::EventType::Delete as i32 {
                None
            } else {
                decode(&self.service, &self.prefix, &kv)
            };
            let before = self.known.remove(&kv.key);
            if let Some(n) = &now {
                self.known.insert(kv.key.clone(), n.clone());
            }
            let (kind, instance) = match (before, now) {
                (None, None) => continue,
                (None, Some(n)) => (ChangeKind::Added, n),
                (Some(b), None) => (ChangeKind::Removed, b),
                (Some(b), Some(n)) if b.differs(&n) => (ChangeKind::Updated, n),
                // Written again unchanged (a re-registration): no change.
                (Some(_), Some(_)) => continue,
            };
            out.push(Change {
                kind,
                instance,
                revision,
            });
        }
    }

    pub fn cancel(&mut self) {
        self.watch.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> mvccpb::KeyValue {
        mvccpb::KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            mod_revision: 7,
            ..Default::default()
        }
    }

    #[test]
    fn names_and_values_are_checked() {
        assert_eq!(
            instance_key("web", "a-1").unwrap(),
            b"synod/services/web/a-1"
        );
        assert!(instance_key("", "a").is_err());
        assert!(instance_key("web", "").is_err());
        assert!(instance_key("web", "a/b").is_err());
        assert!(instance_key("w/x", "a").is_err());
        assert!(check_ttl(0).is_err() && check_ttl(MAX_TTL + 1).is_err() && check_ttl(1).is_ok());
        assert!(encode("a", "h", 0, Map::new()).is_err());
        assert!(encode("a", "h", 65536, Map::new()).is_err());
        assert!(encode("a", "", 80, Map::new()).is_err());
        let v = encode("a", "10.0.0.5", 8080, Map::new()).unwrap();
        assert_eq!(
            String::from_utf8(v).unwrap(),
            r#"{"id":"a","address":"10.0.0.5","port":8080,"meta":{}}"#
        );
    }

    #[test]
    fn decode_skips_what_is_not_an_instance() {
        let p = service_prefix("web").unwrap();
        let ok = decode(
            "web",
            &p,
            &kv("synod/services/web/a", r#"{"address":"h","port":80}"#),
        );
        assert_eq!(ok.map(|i| (i.id, i.port)), Some(("a".into(), 80)));
        for (k, v) in [
            ("synod/services/web/a", "not json"),
            ("synod/services/web/a", "[1]"),
            ("synod/services/web/a", r#"{"address":"h","port":0}"#),
            ("synod/services/web/a", r#"{"address":"h","port":70000}"#),
            ("synod/services/web/a", r#"{"address":"h","port":"80"}"#),
            ("synod/services/web/a", r#"{"port":80}"#),
            (
                "synod/services/web/a",
                r#"{"address":"h","port":80,"meta":[]}"#,
            ),
            ("synod/services/web/a/b", r#"{"address":"h","port":80}"#),
            ("synod/services/web/", r#"{"address":"h","port":80}"#),
        ] {
            assert!(decode("web", &p, &kv(k, v)).is_none(), "{k} {v}");
        }
    }

    fn inst(id: &str) -> Instance {
        Instance {
            service: "web".into(),
            id: id.into(),
            address: "h".into(),
            port: 80,
            meta: Map::new(),
            revision: 1,
            lease: 0,
        }
    }

    #[test]
    fn round_robin_goes_around_and_skips_instances_marked_down() {
        let all = || vec![inst("a"), inst("b"), inst("c")];
        let mut p = Picker::default();
        let ids: Vec<String> = (0..6)
            .map(|_| p.pick(all(), Strategy::RoundRobin).unwrap().id)
            .collect();
        assert_eq!(ids, ["a", "b", "c", "a", "b", "c"]);
        p.mark_down("b", 60.0).unwrap();
        for _ in 0..10 {
            assert_ne!(p.pick(all(), Strategy::Random).unwrap().id, "b");
            assert_ne!(p.pick(all(), Strategy::RoundRobin).unwrap().id, "b");
        }
        p.mark_down("b", 0.0).unwrap();
        p.mark_down("a", 60.0).unwrap();
        p.mark_down("c", 60.0).unwrap();
        assert_eq!(p.pick(all(), Strategy::RoundRobin).unwrap().id, "b");
        p.mark_down("b", 60.0).unwrap();
        assert!(p.pick(all(), Strategy::RoundRobin).is_none());
        assert!(p.pick(vec![], Strategy::Random).is_none());
        assert!(p.mark_down("a", -1.0).is_err() && p.mark_down("a", f64::NAN).is_err());
        assert!(Strategy::parse("sticky").is_err());
    }
}
