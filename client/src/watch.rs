//! Watches: one gRPC stream per watch, owned by a background task that
//! queues event batches for the caller. When the connection breaks, the
//! task reconnects (to the next endpoint if there is one) and resumes from
//! the revision after the last one it delivered, so the caller sees every
//! event once and in order. It gives up, with a `Connection` error, when no
//! endpoint takes the watch back within the request timeout.

use std::time::Duration;

use synod_proto::etcdserverpb::watch_request::RequestUnion;
use synod_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use synod_proto::mvccpb;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::{Client, Error};

/// Batches queued ahead of the caller. A caller that stops reading makes
/// the stream stall here, and gRPC flow control pushes back on the server.
const QUEUE: usize = 256;

#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    pub key: Vec<u8>,
    /// Empty for a single key; see `prefix_end` for a prefix.
    pub range_end: Vec<u8>,
    /// 0 watches from now on; otherwise replays history from this revision.
    pub start_revision: i64,
    pub prev_kv: bool,
    pub progress_notify: bool,
}

/// Events of one watch response, all at or below `revision`.
#[derive(Debug, Clone)]
pub struct WatchBatch {
    pub events: Vec<mvccpb::Event>,
    /// The store revision when the response was sent.
    pub revision: i64,
}

/// A live watch. Dropping it (or `cancel`) ends the stream.
pub struct Watch {
    rx: mpsc::Receiver<Result<WatchBatch, Error>>,
    task: JoinHandle<()>,
    /// The error that ended the watch, repeated to every later call.
    ended: Option<Error>,
    /// The revision the watch was created at (header of the created reply).
    pub created_revision: i64,
}

impl Watch {
    /// The next batch of events; `Ok(None)` when `timeout` passed first.
    pub async fn next(&mut self, timeout: Option<Duration>) -> Result<Option<WatchBatch>, Error> {
        next_queued(
            &mut self.rx,
            &mut self.ended,
            timeout,
            "the watch was cancelled",
        )
        .await
    }

    /// Batches already queued, without waiting.
    pub fn try_next(&mut self) -> Option<WatchBatch> {
        match self.rx.try_recv() {
            Ok(Ok(b)) => Some(b),
            Ok(Err(e)) => {
                self.ended = Some(e);
                None
            }
            Err(_) => None,
        }
    }

    pub fn cancel(&mut self) {
        self.task.abort();
        self.rx.close();
        if self.ended.is_none() {
            self.ended = Some(Error::InvalidArgument("the watch was cancelled".into()));
        }
    }

    pub fn is_ended(&self) -> bool {
        self.ended.is_some()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next item a background task queued: `Ok(None)` when `timeout`
/// passed first. The error that ended the queue (or `cancelled` once the
/// task is gone) is kept in `ended` and repeated to every later call.
pub(crate) async fn next_queued<T>(
    rx: &mut mpsc::Receiver<Result<T, Error>>,
    ended: &mut Option<Error>,
    timeout: Option<Duration>,
    cancelled: &str,
) -> Result<Option<T>, Error> {
    if let Some(e) = ended {
        return Err(e.clone());
    }
    let item = match timeout {
        Some(t) => match tokio::time::timeout(t, rx.recv()).await {
            Ok(item) => item,
            Err(_) => return Ok(None),
        },
        None => rx.recv().await,
    };
    let err = match item {
        Some(Ok(x)) => return Ok(Some(x)),
        Some(Err(e)) => e,
        None => Error::InvalidArgument(cancelled.into()),
    };
    *ended = Some(err.clone());
    Err(err)
}

struct Stream {
    idx: usize,
    // Kept so the request half stays open; dropping it half-closes the stream.
    _requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
}

impl Client {
    /// Starts a watch and returns once the server has confirmed it. Must be
    /// called inside the tokio runtime that will drive it.
    pub async fn watch(&self, opts: WatchOptions) -> Result<Watch, Error> {
        let timeout = self.options().request_timeout;
        let (stream, created) = match tokio::time::timeout(
            timeout,
            self.open_watch(&opts, opts.start_revision),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => return Err(Error::Timeout(timeout)),
        };
        // Events at or below the creation revision were asked for
        // explicitly (start_revision) or are history the caller did not want.
        let next = if opts.start_revision > 0 {
            opts.start_revision
        } else {
            created + 1
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(self.clone(), opts, next, stream, tx));
        Ok(Watch {
            rx,
            task,
            ended: None,
            created_revision: created,
        })
    }

    /// Opens a stream and creates the watch on it; returns the stream and
    /// the revision in the created reply's header.
    async fn open_watch(&self, opts: &WatchOptions, start: i64) -> Result<(Stream, i64), Error> {
        let conn = self.channel().await?;
        let idx = conn.idx;
        let (tx, rx) = mpsc::channel(4);
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: opts.key.clone(),
                range_end: opts.range_end.clone(),
                start_revision: start,
                prev_kv: opts.prev_kv,
                progress_notify: opts.progress_notify,
                ..Default::default()
            })),
        };
        // Queued before the call: grpc-go servers send no headers until the
        // first response, so awaiting the call first would wait forever.
        let _ = tx.send(create).await;
        let broken = |status: tonic::Status| self.note_failure(idx, &status);
        let mut responses = conn
            .watch()
            .watch(conn.req(ReceiverStream::new(rx)))
            .await
            .map_err(broken)?
            .into_inner();
        loop {
            match responses.message().await.map_err(broken)? {
                Some(r) if r.created => {
                    if r.canceled {
                        return Err(cancel_error(&r));
                    }
                    let rev = r.header.map_or(0, |h| h.revision);
                    let stream = Stream {
                        idx,
                        _requests: tx,
                        responses,
                    };
                    return Ok((stream, rev));
                }
                Some(_) => continue,
                None => {
                    self.fail_over(idx);
                    return Err(Error::Connection(
                        "watch stream closed by the server".into(),
                    ));
                }
            }
        }
    }
}

fn cancel_error(r: &WatchResponse) -> Error {
    if r.compact_revision > 0 {
        return Error::Compacted {
            compact_revision: r.compact_revision,
        };
    }
    let message = if r.cancel_reason.is_empty() {
        "etcdserver: watch canceled by the server".to_string()
    } else {
        r.cancel_reason.clone()
    };
    Error::Server {
        code: tonic::Code::Cancelled,
        message,
    }
}

async fn run(
    client: Client,
    opts: WatchOptions,
    mut next: i64,
    mut stream: Stream,
    tx: mpsc::Sender<Result<WatchBatch, Error>>,
) {
    loop {
        let lost = match stream.responses.message().await {
            Ok(Some(r)) => {
                if r.canceled || r.compact_revision > 0 {
                    let _ = tx.send(Err(cancel_error(&r))).await;
                    return;
                }
                let revision = r.header.as_ref().map_or(0, |h| h.revision);
                if let Some(last) = r.events.last().and_then(|e| e.kv.as_ref()) {
                    next = next.max(last.mod_revision + 1);
                } else if revision >= next {
                    // A progress notification: nothing below it is pending.
                    next = revision + 1;
                }
                let batch = WatchBatch {
                    events: r.events,
                    revision,
                };
                if tx.send(Ok(batch)).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(None) => Error::Connection("watch stream closed by the server".into()),
            Err(status) => Error::from_status(&status),
        };
        if !matches!(lost, Error::Connection(_)) && lost.code() != tonic::Code::Unavailable {
            let _ = tx.send(Err(lost)).await;
            return;
        }
        client.fail_over(stream.idx);
        match reopen(&client, &opts, next, lost).await {
            Ok(s) => stream = s,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

/// Re-creates the watch from `next`, trying endpoints with backoff until
/// the request timeout has passed without success.
async fn reopen(
    client: &Client,
    opts: &WatchOptions,
    next: i64,
    mut last: Error,
) -> Result<Stream, Error> {
    let deadline = Instant::now() + client.options().request_timeout;
    let mut backoff = Duration::from_millis(50);
    loop {
        if Instant::now() >= deadline {
            return Err(Error::Connection(format!("watch lost: {last}")));
        }
        match tokio::time::timeout_at(deadline, client.open_watch(opts, next)).await {
            Ok(Ok((s, _))) => return Ok(s),
            // Worth another try: the connection, or a member that cannot
            // serve right now. Anything else (compacted, denied) is final.
            Ok(Err(e @ (Error::Connection(_) | Error::Timeout(_)))) => last = e,
            Ok(Err(e)) if e.code() == tonic::Code::Unavailable => last = e,
            Ok(Err(e)) => return Err(e),
            Err(_) => {}
        }
        tokio::time::sleep(backoff.min(deadline.saturating_duration_since(Instant::now()))).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
