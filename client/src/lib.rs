//! An async client for etcd's v3 API, used by the PHP extension and by
//! tests. It knows nothing of PHP. One `Client` holds a list of endpoints
//! and a lazily connected channel to the current one; when that endpoint
//! cannot be reached it moves on to the next, and every call has a deadline.

mod error;
mod lease;
pub mod recipes;
mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use error::Error;
pub use lease::{KeepAlive, KeepAliveStatus};
use synod_proto::etcdserverpb::auth_client::AuthClient;
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::lease_client::LeaseClient;
use synod_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use synod_proto::etcdserverpb::watch_client::WatchClient;
use synod_proto::etcdserverpb::AuthenticateRequest;
use synod_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, StatusRequest, StatusResponse, TxnRequest, TxnResponse,
};
pub use synod_proto::{etcdserverpb as pb, mvccpb, prefix_end};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
pub use tonic::Code;
pub use watch::{Watch, WatchBatch, WatchOptions};

#[derive(Debug, Clone)]
pub struct Options {
    /// How long establishing a connection to one endpoint may take.
    pub connect_timeout: Duration,
    /// Deadline of each call, retries included.
    pub request_timeout: Duration,
    /// User name and password for servers with authentication enabled.
    pub credentials: Option<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            credentials: None,
        }
    }
}

#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<Endpoint>,
    current: AtomicUsize,
    channel: Mutex<Option<Conn>>,
    opts: Options,
}

/// A connected channel to one endpoint, with the auth token obtained on it.
#[derive(Clone)]
pub(crate) struct Conn {
    pub idx: usize,
    pub ch: Channel,
    token: Option<MetadataValue<Ascii>>,
}

/// tonic refuses responses over 4 MiB by default; etcd's servers send
/// larger ones (a big range, a watch catching up), and etcd's own client
/// accepts them.
const MAX_RESPONSE: usize = i32::MAX as usize;

impl Conn {
    pub fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.ch.clone()).max_decoding_message_size(MAX_RESPONSE)
    }

    pub fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.ch.clone()).max_decoding_message_size(MAX_RESPONSE)
    }

    pub fn watch(&self) -> WatchClient<Channel> {
        WatchClient::new(self.ch.clone()).max_decoding_message_size(MAX_RESPONSE)
    }

    pub fn maintenance(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.ch.clone()).max_decoding_message_size(MAX_RESPONSE)
    }

    /// A request carrying the auth token, if there is one.
    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(t) = &self.token {
            r.metadata_mut().insert("token", t.clone());
        }
        r
    }
}

/// Whether a failed call may be sent again to another endpoint: only when
/// the request surely did not take effect, or it is a read.
#[derive(Clone, Copy, PartialEq)]
enum Retry {
    Safe,
    OnlyUnsent,
}

fn endpoint_url(s: &str) -> String {
    if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    }
}

impl Client {
    /// A client for `endpoints` ("host:port" or "http://host:port"). Connects
    /// lazily: an unreachable server shows up on the first call, as a
    /// `Connection` error within the connect timeout.
    pub fn new<S: AsRef<str>>(endpoints: &[S], opts: Options) -> Result<Client, Error> {
        if endpoints.is_empty() {
            return Err(Error::InvalidArgument(
                "at least one endpoint is required".into(),
            ));
        }
        let mut eps = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            let url = endpoint_url(e.as_ref().trim());
            let ep = Endpoint::from_shared(url.clone())
                .map_err(|err| Error::InvalidArgument(format!("bad endpoint {url:?}: {err}")))?
                .connect_timeout(opts.connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_while_idle(true);
            eps.push(ep);
        }
        Ok(Client {
            inner: Arc::new(Inner {
                endpoints: eps,
                current: AtomicUsize::new(0),
                channel: Mutex::new(None),
                opts,
            }),
        })
    }

    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    pub(crate) async fn channel(&self) -> Result<Conn, Error> {
        if let Some(c) = self
            .inner
            .channel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(c);
        }
        let n = self.inner.endpoints.len();
        let start = self.inner.current.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..n {
            let idx = (start + i) % n;
            // The next call starts after an endpoint that failed, so a dead
            // one at the head of the list is not paid for on every call.
            self.inner.current.store((idx + 1) % n, Ordering::Relaxed);
            match self.inner.endpoints[idx].connect().await {
                Ok(ch) => {
                    let token = match self.authenticate(&ch).await {
                        Ok(t) => t,
                        // That member cannot answer now: try the next one.
                        Err(e @ Error::Connection(_)) => {
                            last = format!("{}: {e}", self.inner.endpoints[idx].uri());
                            continue;
                        }
                        Err(e) if e.code() == tonic::Code::Unavailable => {
                            last = format!("{}: {e}", self.inner.endpoints[idx].uri());
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let conn = Conn { idx, ch, token };
                    self.inner.current.store(idx, Ordering::Relaxed);
                    *self.inner.channel.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) => {
                    last = format!("{}: {}", self.inner.endpoints[idx].uri(), source_text(&e))
                }
            }
        }
        Err(Error::Connection(format!("no endpoint reachable ({last})")))
    }

    /// Gets a token when credentials are set. A server without
    /// authentication says so, and is then used without a token, as etcd's
    /// own client does.
    async fn authenticate(&self, ch: &Channel) -> Result<Option<MetadataValue<Ascii>>, Error> {
        let Some((name, password)) = &self.inner.opts.credentials else {
            return Ok(None);
        };
        let req = AuthenticateRequest {
            name: name.clone(),
            password: password.clone(),
        };
        let mut ac = AuthClient::new(ch.clone());
        let auth = ac.authenticate(req);
        let answer = match tokio::time::timeout(self.inner.opts.connect_timeout, auth).await {
            Ok(a) => a,
            Err(_) => return Err(Error::Connection("authentication timed out".into())),
        };
        match answer {
            Ok(r) => {
                let token = r.into_inner().token;
                MetadataValue::try_from(token.as_str())
                    .map(Some)
                    .map_err(|_| {
                        Error::InvalidArgument("the server sent an unusable auth token".into())
                    })
            }
            Err(s)
                if s.code() == tonic::Code::FailedPrecondition
                    && s.message().contains("authentication is not enabled") =>
            {
                Ok(None)
            }
            Err(s) => Err(Error::from_status(&s)),
        }
    }

    /// Forgets the channel to `idx`, so the next call connects anew.
    /// Whether it was still the cached one.
    fn forget_channel(&self, idx: usize) -> bool {
        let mut ch = self.inner.channel.lock().unwrap_or_else(|e| e.into_inner());
        let cached = ch.as_ref().is_some_and(|c| c.idx == idx);
        if cached {
            *ch = None;
        }
        cached
    }

    /// What a failed call on `idx` means for the connection: an unreachable
    /// endpoint is left for the next one, an expired token is renewed by
    /// connecting again.
    pub(crate) fn note_failure(&self, idx: usize, status: &tonic::Status) -> Error {
        let err = Error::from_status(status);
        // "no leader" and the like: another member may do better.
        if matches!(err, Error::Connection(_)) || status.code() == tonic::Code::Unavailable {
            self.fail_over(idx);
        } else if error::is_expired_token(status) {
            self.forget_channel(idx);
        }
        err
    }

    /// Forgets a channel that failed, so the next call tries the next endpoint.
    pub(crate) fn fail_over(&self, idx: usize) {
        if self.forget_channel(idx) {
            let n = self.inner.endpoints.len();
            self.inner.current.store((idx + 1) % n, Ordering::Relaxed);
        }
    }

    async fn call<T, F, Fut>(&self, retry: Retry, f: F) -> Result<T, Error>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let attempts = self.inner.endpoints.len().max(1) + 1;
        let stuck_on = AtomicUsize::new(usize::MAX);
        let work = async {
            let mut last = None;
            for _ in 0..attempts {
                let conn = self.channel().await?;
                let idx = conn.idx;
                stuck_on.store(idx, Ordering::Relaxed);
                match f(conn).await {
                    Ok(r) => return Ok(r.into_inner()),
                    Err(status) => {
                        let err = self.note_failure(idx, &status);
                        let unreachable = matches!(err, Error::Connection(_));
                        // Tokens expire (etcd's simple tokens after 5 idle
                        // minutes); the next attempt authenticates again.
                        let again = error::is_expired_token(&status)
                            && self.inner.opts.credentials.is_some()
                            || unreachable && (retry == Retry::Safe || error::never_sent(&status))
                            || retry == Retry::Safe && status.code() == tonic::Code::Unavailable;
                        if !again {
                            return Err(err);
                        }
                        last = Some(err);
                    }
                }
            }
            Err(last.unwrap_or_else(|| Error::Connection("no endpoint reachable".into())))
        };
        match tokio::time::timeout(self.inner.opts.request_timeout, work).await {
            Ok(r) => r,
            Err(_) => {
                // A member that does not answer in time may be cut off:
                // the next call tries another one.
                let idx = stuck_on.load(Ordering::Relaxed);
                if idx != usize::MAX {
                    self.fail_over(idx);
                }
                Err(Error::Timeout(self.inner.opts.request_timeout))
            }
        }
    }

    pub async fn range(&self, req: RangeRequest) -> Result<RangeResponse, Error> {
        self.call(Retry::Safe, |c| {
            let req = req.clone();
            async move { c.kv().range(c.req(req)).await }
        })
        .await
    }

    /// The current value of `key`, or None.
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<mvccpb::KeyValue>, Error> {
        let resp = self
            .range(RangeRequest {
                key: key.into(),
                ..Default::default()
            })
            .await?;
        Ok(resp.kvs.into_iter().next())
    }

    pub async fn put(&self, req: PutRequest) -> Result<PutResponse, Error> {
        self.call(Retry::OnlyUnsent, |c| {
            let req = req.clone();
            async move { c.kv().put(c.req(req)).await }
        })
        .await
    }

    pub async fn delete(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse, Error> {
        self.call(Retry::OnlyUnsent, |c| {
            let req = req.clone();
            async move { c.kv().delete_range(c.req(req)).await }
        })
        .await
    }

    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, Error> {
        self.call(Retry::OnlyUnsent, |c| {
            let req = req.clone();
            async move { c.kv().txn(c.req(req)).await }
        })
        .await
    }

    pub async fn compact(
        &self,
        revision: i64,
        physical: bool,
    ) -> Result<CompactionResponse, Error> {
        // Not resent after it may have been applied: a second compaction
        // at the same revision would report "compacted" for one that worked.
        self.call(Retry::OnlyUnsent, |c| async move {
            c.kv()
                .compact(c.req(CompactionRequest { revision, physical }))
                .await
        })
        .await
    }

    pub async fn status(&self) -> Result<StatusResponse, Error> {
        self.call(Retry::Safe, |c| async move {
            c.maintenance().status(c.req(StatusRequest {})).await
        })
        .await
    }

    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrantResponse, Error> {
        self.call(Retry::OnlyUnsent, |c| async move {
            c.lease()
                .lease_grant(c.req(LeaseGrantRequest { ttl, id }))
                .await
        })
        .await
    }

    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, Error> {
        self.call(Retry::OnlyUnsent, |c| async move {
            c.lease()
                .lease_revoke(c.req(LeaseRevokeRequest { id }))
                .await
        })
        .await
    }

    pub async fn lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<LeaseTimeToLiveResponse, Error> {
        self.call(Retry::Safe, |c| async move {
            c.lease()
                .lease_time_to_live(c.req(LeaseTimeToLiveRequest { id, keys }))
                .await
        })
        .await
    }

    /// Refreshes a lease once and returns its TTL; `LeaseNotFound` when it
    /// has expired or was revoked.
    pub async fn lease_keep_alive_once(&self, id: i64) -> Result<i64, Error> {
        let ttl = self
            .call(Retry::Safe, |c| async move {
                let mut lc = c.lease();
                let req = c.req(tokio_stream::iter([LeaseKeepAliveRequest { id }]));
                let mut stream = lc.lease_keep_alive(req).await?.into_inner();
                match stream.message().await? {
                    Some(r) => Ok(tonic::Response::new(r.ttl)),
                    None => Err(tonic::Status::unavailable("keep-alive stream closed")),
                }
            })
            .await?;
        if ttl <= 0 {
            return Err(Error::LeaseNotFound(id));
        }
        Ok(ttl)
    }
}

fn source_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
