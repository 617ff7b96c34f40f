//! One tokio runtime per PHP process, made on first use, and the client
//! cores cached per endpoint set. Fork-safe: tokio does not survive fork, so
//! a child (different pid) builds its own runtime and connections; the
//! inherited ones are forgotten, never dropped (dropping would wait for
//! threads that do not exist in the child).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use ext_php_rs::exception::PhpException;
use ext_php_rs::prelude::PhpResult;
use tokio::runtime::Runtime;

use crate::errors::{to_php, SynodException};

struct State {
    pid: u32,
    runtime: Arc<Runtime>,
    clients: HashMap<String, synod_client::Client>,
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
            .enable_all()
            .build()
            .map_err(|e| {
                PhpException::from_class::<SynodException>(format!("cannot start I/O runtime: {e}"))
            })?;
        *guard = Some(State {
            pid,
            runtime: Arc::new(runtime),
            clients: HashMap::new(),
        });
    }
    match guard.as_mut() {
        Some(s) => f(s),
        None => Err(PhpException::from_class::<SynodException>(
            "no runtime".into(),
        )),
    }
}

/// The shared client core for these endpoints and options. Built inside the
/// runtime so its connections belong to it.
pub fn client(
    endpoints: &[String],
    opts: &synod_client::Options,
) -> PhpResult<synod_client::Client> {
    let key = format!("{endpoints:?}{opts:?}");
    with_state(|s| {
        if let Some(c) = s.clients.get(&key) {
            return Ok(c.clone());
        }
        let _enter = s.runtime.enter();
        let c = synod_client::Client::new(endpoints, opts.clone()).map_err(to_php)?;
        s.clients.insert(key, c.clone());
        Ok(c)
    })
}

/// Runs a client call to completion on the runtime, from the PHP thread.
pub fn block_on<T, F>(fut: F) -> PhpResult<T>
where
    F: Future<Output = Result<T, synod_client::Error>> + Send + 'static,
    T: Send + 'static,
{
    let rt = with_state(|s| Ok(s.runtime.clone()))?;
    rt.block_on(fut).map_err(to_php)
}
