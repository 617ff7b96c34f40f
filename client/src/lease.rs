//! Background lease keep-alive: a task that refreshes a lease every third
//! of its TTL over one LeaseKeepAlive stream, reconnecting (to the next
//! endpoint if there is one) when the stream breaks. It stops when the lease
//! is gone, when the lease's TTL runs out without a successful refresh, or
//! when the handle is dropped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use synod_proto::etcdserverpb::LeaseKeepAliveRequest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::{Client, Error};

/// What the keep-alive task last saw.
#[derive(Debug, Clone)]
pub struct KeepAliveStatus {
    /// TTL granted by the last successful refresh.
    pub ttl: i64,
    /// When that refresh was answered.
    pub refreshed: Instant,
    /// Why the task stopped, if it has.
    pub error: Option<Error>,
    pub running: bool,
}

impl KeepAliveStatus {
    /// When the lease runs out unless refreshed again.
    pub fn expires(&self) -> Instant {
        self.refreshed + Duration::from_secs(self.ttl.max(0) as u64)
    }
}

pub struct KeepAlive {
    status: Arc<Mutex<KeepAliveStatus>>,
    task: JoinHandle<()>,
}

impl KeepAlive {
    /// The task's view; `running` is false once the lease's TTL has run
    /// out since the last refresh, even while the task is still retrying.
    pub fn status(&self) -> KeepAliveStatus {
        let mut st = update(&self.status, |s| s.clone());
        if st.expires() <= Instant::now() {
            st.running = false;
        }
        st
    }

    pub fn stop(&self) {
        self.task.abort();
        update(&self.status, |s| s.running = false);
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    /// Keeps lease `id` (granted with `ttl` seconds) alive in the background.
    /// Must be called inside the tokio runtime that will drive it.
    pub fn keep_alive(&self, id: i64, ttl: i64) -> KeepAlive {
        let status = Arc::new(Mutex::new(KeepAliveStatus {
            ttl,
            refreshed: Instant::now(),
            error: None,
            running: true,
        }));
        let task = tokio::spawn(keep_alive_loop(self.clone(), id, status.clone()));
        KeepAlive { status, task }
    }
}

fn period(ttl: i64) -> Duration {
    Duration::from_millis((ttl.max(1) as u64 * 1000 / 3).max(500))
}

async fn keep_alive_loop(client: Client, id: i64, status: Arc<Mutex<KeepAliveStatus>>) {
    let timeout = client.options().request_timeout;
    let mut backoff = Duration::from_millis(100);
    loop {
        let failure = match session(&client, id, timeout, &status).await {
            Err(e @ Error::LeaseNotFound(_)) => {
                update(&status, |s| {
                    s.error = Some(e);
                    s.running = false
                });
                return;
            }
            Err(e) => e,
            Ok(()) => Error::Connection("keep-alive stream closed by the server".into()),
        };
        if update(&status, |s| s.expires()) <= Instant::now() {
            // The lease has expired on the server by now, whatever happens next.
            update(&status, |s| {
                s.error = Some(Error::Connection(format!(
                    "lease {id:x} could not be kept alive: {failure}"
                )));
                s.running = false
            });
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

fn update<T>(status: &Mutex<KeepAliveStatus>, f: impl FnOnce(&mut KeepAliveStatus) -> T) -> T {
    f(&mut status.lock().unwrap_or_else(|e| e.into_inner()))
}

/// One stream: refreshes until it breaks. Returns `LeaseNotFound` when the
/// server says the lease is gone.
async fn session(
    client: &Client,
    id: i64,
    timeout: Duration,
    status: &Mutex<KeepAliveStatus>,
) -> Result<(), Error> {
    let conn = match tokio::time::timeout(timeout, client.channel()).await {
        Ok(c) => c?,
        Err(_) => return Err(Error::Timeout(timeout)),
    };
    let idx = conn.idx;
    // A member that does not answer within the time the lease has left
    // (or the request timeout) is left for the next endpoint.
    let patience = || {
        let left = update(status, |s| s.expires()).saturating_duration_since(Instant::now());
        timeout.min(left.max(Duration::from_millis(200)))
    };
    let stuck = || {
        client.fail_over(idx);
        Error::Timeout(timeout)
    };
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.send(LeaseKeepAliveRequest { id }).await;
    let broken = |status: tonic::Status| client.note_failure(idx, &status);
    let mut lc = conn.lease();
    let call = lc.lease_keep_alive(conn.req(ReceiverStream::new(rx)));
    let mut responses = match tokio::time::timeout(patience(), call).await {
        Ok(r) => r.map_err(broken)?.into_inner(),
        Err(_) => return Err(stuck()),
    };
    loop {
        let resp = match tokio::time::timeout(patience(), responses.message()).await {
            Ok(r) => r.map_err(broken)?,
            Err(_) => return Err(stuck()),
        };
        let Some(resp) = resp else { return Ok(()) };
        if resp.ttl <= 0 {
            return Err(Error::LeaseNotFound(id));
        }
        let now = Instant::now();
        update(status, |s| {
            s.ttl = resp.ttl;
            s.refreshed = now;
        });
        tokio::time::sleep(period(resp.ttl)).await;
        if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
            return Ok(());
        }
    }
}
