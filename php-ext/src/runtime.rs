//! One tokio runtime per PHP process, made on first use, and the client
//! cores cached per endpoint set. Fork-safe: tokio does not survive fork, so
//! a child (different pid) builds its own runtime and connections; the
//! inherited ones are forgotten, never dropped (dropping would wait for
//! threads that do not exist in the child).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use ext_php_rs::prelude::PhpResult;
use synod_client::recipes;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use crate::errors::{self, to_php};

struct State {
    pid: u32,
    runtime: Arc<Runtime>,
    clients: HashMap<String, synod_client::Client>,
    /// Background keep-alives by (client key, lease id). They outlive the
    /// PHP objects and the request: a lease stays alive while the process
    /// runs, until it is stopped, revoked or lost.
    keep_alives: HashMap<(String, i64), synod_client::KeepAlive>,
    /// Leases to revoke when the current request ends.
    revoke_at_shutdown: Vec<(String, i64)>,
    /// Locks made in the current request, by id: the request's end
    /// releases them, so php-fpm never carries a lock into the next one.
    locks: HashMap<u64, recipes::Lock>,
    next_lock: u64,
    /// Elections by (client key, name). Unlike locks they outlive the PHP
    /// objects and the request: a long-running worker leads until it
    /// resigns or exits.
    elections: HashMap<(String, Vec<u8>), recipes::Election>,
    /// Mirrors by (client key, prefix): loaded once, then read by every
    /// request of the process without a server round trip.
    mirrors: HashMap<MirrorKey, Arc<recipes::Mirror>>,
    /// Service registrations by (client key, instance key): kept alive for
    /// the life of the process, revoked when it ends.
    registrations: HashMap<(String, Vec<u8>), recipes::Registration>,
    /// Round-robin positions and instances marked down, by (client key,
    /// service): process-local, shared by every request.
    pickers: HashMap<(String, String), recipes::Picker>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with_state<T>(f: impl FnOnce(&mut State) -> PhpResult<T>) -> PhpResult<T> {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if guard.as_ref().is_some_and(|s| s.pid != pid) {
        std::mem::forget(guard.take());
    }
    if guard.is_none() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("synod-io")
            .on_thread_start(block_signals)
            .enable_all()
            .build()
            .map_err(|e| errors::synod(format!("cannot start I/O runtime: {e}")))?;
        *guard = Some(State {
            pid,
            runtime: Arc::new(runtime),
            clients: HashMap::new(),
            keep_alives: HashMap::new(),
            revoke_at_shutdown: Vec::new(),
            locks: HashMap::new(),
            next_lock: 0,
            elections: HashMap::new(),
            mirrors: HashMap::new(),
            registrations: HashMap::new(),
            pickers: HashMap::new(),
        });
    }
    match guard.as_mut() {
        Some(s) => f(s),
        None => Err(errors::synod("no runtime".into())),
    }
}

/// Runs first on every runtime thread (workers and blocking pool alike).
/// A process-directed signal goes to any thread that does not block it, and
/// PHP's handlers (pcntl, the max_execution_time timer) touch the engine's
/// non-thread-safe state: they must only ever run on the PHP thread.
fn block_signals() {
    // SAFETY: sigfillset fills a sigset_t we own; pthread_sigmask only
    // changes the calling thread's mask. Neither can fail with these
    // arguments (SIGKILL and SIGSTOP are silently left out by the kernel).
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

/// A runtime-bound value (a watch, an observer) held by a PHP object. It
/// belongs to the runtime of the process that made it: a child of fork must
/// not touch it, not even to drop it (that would reach for threads the
/// child does not have), so there it is forgotten.
pub struct ForkLocal<T> {
    value: Option<T>,
    pid: u32,
}

impl<T> Default for ForkLocal<T> {
    fn default() -> Self {
        ForkLocal {
            value: None,
            pid: 0,
        }
    }
}

impl<T> ForkLocal<T> {
    pub fn new(value: T) -> Self {
        ForkLocal {
            value: Some(value),
            pid: std::process::id(),
        }
    }

    /// The value; `made_by` names the factory when the object was made
    /// without one, `what` the kind of value when this is a child of fork.
    pub fn live(&mut self, made_by: &str, what: &str) -> PhpResult<&mut T> {
        let pid = self.pid;
        match &mut self.value {
            None => Err(crate::txn::value_error(made_by.into())),
            Some(_) if pid != std::process::id() => Err(errors::synod(format!(
                "{what} does not survive fork: start a new one in this process"
            ))),
            Some(v) => Ok(v),
        }
    }

    /// Runs `f` on the value, unless this is a child of fork, which lets
    /// go of it instead.
    pub fn cancel(&mut self, f: impl FnOnce(&mut T)) {
        if self.pid != std::process::id() {
            std::mem::forget(self.value.take());
        }
        if let Some(v) = &mut self.value {
            f(v);
        }
    }
}

impl<T> Drop for ForkLocal<T> {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            std::mem::forget(self.value.take());
        }
    }
}

/// What a PHP object needs to reach its servers. Objects keep this, not a
/// client core, so that after a fork they use the child's connections.
#[derive(Clone, Default)]
pub struct Conn {
    pub endpoints: Vec<String>,
    pub opts: synod_client::Options,
}

impl Conn {
    /// Identifies the client core: one per endpoint list and options.
    pub fn key(&self) -> String {
        format!("{:?}{:?}", self.endpoints, self.opts)
    }

    /// The shared client core for these endpoints and options. Built inside
    /// the runtime so its connections belong to it.
    pub fn client(&self) -> PhpResult<synod_client::Client> {
        let key = self.key();
        with_state(|s| {
            if let Some(c) = s.clients.get(&key) {
                return Ok(c.clone());
            }
            let _enter = s.runtime.enter();
            let c =
                synod_client::Client::new(&self.endpoints, self.opts.clone()).map_err(to_php)?;
            s.clients.insert(key, c.clone());
            Ok(c)
        })
    }
}

/// Runs a client call to completion on the runtime, from the PHP thread.
pub fn block_on<T, F>(fut: F) -> PhpResult<T>
where
    F: Future<Output = Result<T, synod_client::Error>>,
{
    run(fut)?.map_err(to_php)
}

/// Like `block_on`, leaving the client's error to the caller.
pub fn run<T, F: Future<Output = T>>(fut: F) -> PhpResult<T> {
    let rt = with_state(|s| Ok(s.runtime.clone()))?;
    Ok(rt.block_on(fut))
}

/// Starts keeping a lease alive in the background (replacing any earlier
/// keep-alive of the same lease).
pub fn start_keep_alive(
    key: &str,
    client: &synod_client::Client,
    id: i64,
    ttl: i64,
) -> PhpResult<()> {
    with_state(|s| {
        // Forget keep-alives that ended (lease gone or lost), so a
        // long-lived worker does not collect them.
        s.keep_alives.retain(|_, k| k.status().running);
        let _enter = s.runtime.enter();
        let ka = client.keep_alive(id, ttl);
        s.keep_alives.insert((key.to_string(), id), ka);
        Ok(())
    })
}

/// Stops the background keep-alive of a lease, if there is one.
pub fn stop_keep_alive(key: &str, id: i64) -> PhpResult<()> {
    with_state(|s| {
        if let Some(ka) = s.keep_alives.remove(&(key.to_string(), id)) {
            ka.stop();
        }
        Ok(())
    })
}

/// The state of a lease's background keep-alive, if one was started.
pub fn keep_alive_status(key: &str, id: i64) -> PhpResult<Option<synod_client::KeepAliveStatus>> {
    with_state(|s| {
        Ok(s.keep_alives
            .get(&(key.to_string(), id))
            .map(|k| k.status()))
    })
}

pub fn revoke_at_shutdown(key: &str, id: i64, on: bool) -> PhpResult<()> {
    with_state(|s| {
        s.revoke_at_shutdown
            .retain(|(k, i)| !(k == key && *i == id));
        if on {
            s.revoke_at_shutdown.push((key.to_string(), id));
        }
        Ok(())
    })
}

/// Runs `op` on a recipe kept in the registry, to completion on the
/// runtime. The recipe is taken out meanwhile: the registry's mutex must not
/// be held across a wait (a PHP thread is the only user, so nothing else
/// looks for it then). `make` stands in when there is none yet.
fn with_recipe<K: Eq + Hash, R, T>(
    slot: fn(&mut State) -> &mut HashMap<K, R>,
    key: K,
    make: impl FnOnce() -> PhpResult<R>,
    op: impl AsyncFnOnce(&mut R) -> T,
) -> PhpResult<T> {
    let (runtime, taken) = with_state(|s| Ok((s.runtime.clone(), slot(s).remove(&key))))?;
    let mut recipe = match taken {
        Some(r) => r,
        None => make()?,
    };
    let out = runtime.block_on(op(&mut recipe));
    with_state(|s| {
        slot(s).insert(key, recipe);
        Ok(())
    })?;
    Ok(out)
}

fn locks(s: &mut State) -> &mut HashMap<u64, recipes::Lock> {
    &mut s.locks
}

fn elections(s: &mut State) -> &mut HashMap<(String, Vec<u8>), recipes::Election> {
    &mut s.elections
}

/// Keeps a lock for the rest of the request; its id for the calls below.
pub fn add_lock(lock: recipes::Lock) -> PhpResult<u64> {
    with_state(|s| {
        s.next_lock += 1;
        s.locks.insert(s.next_lock, lock);
        Ok(s.next_lock)
    })
}

fn lock_gone() -> ext_php_rs::exception::PhpException {
    errors::synod("the lock was released when the request ended".into())
}

pub fn with_lock<T>(id: u64, op: impl AsyncFnOnce(&mut recipes::Lock) -> T) -> PhpResult<T> {
    with_recipe(locks, id, || Err(lock_gone()), op)
}

/// Reads a lock's local state without waiting.
pub fn view_lock<T>(id: u64, f: impl FnOnce(&recipes::Lock) -> T) -> PhpResult<T> {
    with_state(|s| s.locks.get(&id).map(f).ok_or_else(lock_gone))
}

/// Forgets a lock whose PHP object went away, releasing it first if held,
/// within the shutdown deadline: a dropped lock frees its name at once, as
/// the end of the request would.
pub fn drop_lock(id: u64) {
    let Ok((runtime, Some(mut lock))) =
        with_state(|s| Ok((s.runtime.clone(), s.locks.remove(&id))))
    else {
        return;
    };
    if lock.fencing_token().is_some() {
        // The timer must be made inside the runtime.
        let release = async { tokio::time::timeout(SHUTDOWN_DEADLINE, lock.release()).await };
        let _ = runtime.block_on(release);
    }
    // Inside the runtime, so what the recipe still owns is cleaned up by it.
    let _enter = runtime.enter();
    drop(lock);
}

/// Runs `op` on this process's candidate in election `name`, made (with
/// `make`) on first use.
pub fn with_election<T>(
    conn: &Conn,
    name: &[u8],
    make: impl FnOnce() -> PhpResult<recipes::Election>,
    op: impl AsyncFnOnce(&mut recipes::Election) -> T,
) -> PhpResult<T> {
    with_recipe(elections, (conn.key(), name.to_vec()), make, op)
}

/// Identifies a mirror in the registry: the client core's key and the prefix.
pub type MirrorKey = (String, Vec<u8>);

/// This process's mirror `key` (see `MirrorKey`), loaded (blocking) on
/// first use. A child of fork loads its own.
pub fn mirror(conn: &Conn, key: &MirrorKey) -> PhpResult<Arc<recipes::Mirror>> {
    let (runtime, found) = with_state(|s| Ok((s.runtime.clone(), s.mirrors.get(key).cloned())))?;
    if let Some(m) = found {
        return Ok(m);
    }
    let client = conn.client()?;
    // Not under the state's lock: loading waits for the server.
    let loaded = runtime.block_on(recipes::Mirror::start(client, key.1.clone()));
    let m = Arc::new(loaded.map_err(to_php)?);
    with_state(|s| Ok(s.mirrors.entry(key.clone()).or_insert(m).clone()))
}

/// Registers an instance under `key` (see `recipes::Registration`) for the
/// rest of the process, replacing this process's earlier registration of
/// the same key only once the new one is in place, so the key never goes
/// away meanwhile; an identical one still kept alive is left as it is. The
/// TTL the server granted.
pub fn register(conn: &Conn, key: Vec<u8>, value: Vec<u8>, ttl: i64) -> PhpResult<i64> {
    // The same registration again (say, at the start of every request of a
    // php-fpm worker) costs nothing.
    let same = with_state(|s| {
        let found = s.registrations.get(&(conn.key(), key.clone()));
        Ok(found.filter(|r| r.is_same(&value, ttl)).map(|r| r.ttl()))
    })?;
    if let Some(granted) = same {
        return Ok(granted);
    }
    let client = conn.client()?;
    let runtime = with_state(|s| Ok(s.runtime.clone()))?;
    let started = runtime.block_on(recipes::Registration::start(
        client,
        key.clone(),
        value,
        ttl,
    ));
    let reg = started.map_err(to_php)?;
    let granted = reg.ttl();
    let old = with_state(|s| Ok(s.registrations.insert((conn.key(), key), reg)))?;
    // Inside the runtime, so the old lease (which no longer carries the
    // key) is revoked by it.
    let _enter = runtime.enter();
    drop(old);
    Ok(granted)
}

/// Reads this process's registration of `key`, if it has one.
pub fn view_registration<T>(
    conn: &Conn,
    key: &[u8],
    f: impl FnOnce(&recipes::Registration) -> T,
) -> PhpResult<Option<T>> {
    with_state(|s| Ok(s.registrations.get(&(conn.key(), key.to_vec())).map(f)))
}

/// Ends this process's registration of `key` (nothing to do without one).
pub fn deregister(conn: &Conn, key: &[u8]) -> PhpResult<()> {
    let (runtime, found) = with_state(|s| {
        let found = s.registrations.remove(&(conn.key(), key.to_vec()));
        Ok((s.runtime.clone(), found))
    })?;
    let Some(mut reg) = found else {
        return Ok(());
    };
    let done = runtime.block_on(async { reg.deregister().await });
    let _enter = runtime.enter();
    drop(reg);
    done.map_err(to_php)
}

/// Runs `f` on this process's picker for `service`.
pub fn with_picker<T>(
    conn: &Conn,
    service: &str,
    f: impl FnOnce(&mut recipes::Picker) -> T,
) -> PhpResult<T> {
    with_state(|s| {
        let picker = s
            .pickers
            .entry((conn.key(), service.to_string()))
            .or_default();
        Ok(f(picker))
    })
}

/// How long request shutdown may spend revoking leases, all of them together.
const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Request shutdown: releases the request's locks and revokes the leases it
/// asked to have revoked.
pub extern "C" fn request_shutdown(_type: i32, _module: i32) -> i32 {
    at_shutdown(|s, tasks| {
        for (key, id) in std::mem::take(&mut s.revoke_at_shutdown) {
            if let Some(ka) = s.keep_alives.remove(&(key.clone(), id)) {
                ka.stop();
            }
            if let Some(c) = s.clients.get(&key).cloned() {
                tasks.spawn(async move {
                    let _ = c.lease_revoke(id).await;
                });
            }
        }
        for (_, mut lock) in std::mem::take(&mut s.locks) {
            tasks.spawn(async move {
                let _ = lock.release().await;
            });
        }
    })
}

/// Module shutdown (the process ends): a leader steps down, so the next
/// candidate takes over now rather than after the TTL, and registered
/// instances go now rather than when their leases expire.
pub extern "C" fn module_shutdown(_type: i32, _module: i32) -> i32 {
    at_shutdown(|s, tasks| {
        for (_, mut r) in std::mem::take(&mut s.registrations) {
            tasks.spawn(async move {
                let _ = r.deregister().await;
            });
        }
        for (_, mut e) in std::mem::take(&mut s.elections) {
            tasks.spawn(async move {
                let _ = e.resign().await;
            });
        }
    })
}

/// Runs the clean-up tasks `add` spawns from this process's state, all of
/// them under one deadline: a request that held many leases or locks must
/// not keep a php-fpm worker busy for seconds each when the server is
/// unreachable. What is not done in time expires by its TTL. Called from
/// the engine's hooks, so nothing here may unwind.
fn at_shutdown(add: impl FnOnce(&mut State, &mut JoinSet<()>)) -> i32 {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = guard.as_mut().filter(|s| s.pid == std::process::id()) else {
            return;
        };
        let runtime = s.runtime.clone();
        // Spawning needs the runtime's context.
        let enter = runtime.enter();
        let mut tasks = JoinSet::new();
        add(s, &mut tasks);
        drop(guard);
        if tasks.is_empty() {
            return;
        }
        drop(enter);
        runtime.block_on(async move {
            let all = async { while tasks.join_next().await.is_some() {} };
            let _ = tokio::time::timeout(SHUTDOWN_DEADLINE, all).await;
            // Dropping the set aborts what is still waiting.
        });
    }));
    0
}
