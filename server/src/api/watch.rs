//! Watch streams. Each watcher is a task that first catches up from storage
//! (history replay) and then follows the changes the apply path broadcasts.
//! A watcher that falls behind the broadcast catches up from storage again,
//! so apply never waits for a watcher and no event is lost or repeated.
//! The watchers run on a runtime of their own; new writes yield briefly
//! while they are far behind (mvcc/delivery.rs).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use synod_proto::etcdserverpb::watch_create_request::FilterType;
use synod_proto::etcdserverpb::watch_request::RequestUnion;
use synod_proto::etcdserverpb::watch_server::Watch;
use synod_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use synod_proto::mvccpb::{event::EventType, Event, KeyValue};
use tokio::runtime::Handle as Runtime;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::mvcc::KeyRange;
use crate::raft::Node;

/// How many revisions one history read covers while catching up.
const CATCH_UP_REVS: i64 = 512;
/// Events one live response gathers at most from changes already queued.
const MAX_GATHERED: usize = 512;
/// The encoded events of a response of several revisions, gathered live or
/// replayed: a client that keeps gRPC's default 4 MiB limit on received
/// messages must take it whenever it could take each revision alone.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// History reads at once, on the blocking pool: a stalled stream can make
/// hundreds of watchers fall behind together.
static HISTORY_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
/// etcd's progress-notify interval.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(600);

pub struct WatchService {
    node: Arc<Node>,
    /// Where the watchers run: a runtime apart from the one serving
    /// writes, so that writes need not wait behind every watcher's turn
    /// (see mvcc/delivery.rs).
    watchers: Runtime,
}

impl WatchService {
    pub fn new(node: Arc<Node>, watchers: Runtime) -> Self {
        node.store.delivery().attach(watchers.clone());
        WatchService { node, watchers }
    }
}

type Out = mpsc::Sender<Result<WatchResponse, Status>>;
type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(128);
        let node = self.node.clone();
        let watchers_rt = self.watchers.clone();
        tokio::spawn(async move {
            // Live watchers by id, with a generation so that a watcher that
            // ended on its own is forgotten without touching a newer one
            // that reuses its id.
            let mut watchers: HashMap<i64, Handle> = HashMap::new();
            let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(i64, u64)>();
            let mut generation = 0u64;
            let mut next_id = 0i64;
            loop {
                // Ends first: a watcher that ended reports it before its
                // last response can reach the client, so a create that
                // reuses its id finds the id free.
                let msg = tokio::select! {
                    biased;
                    Some((id, gen)) = done_rx.recv() => {
                        if watchers.get(&id).is_some_and(|h| h.generation == gen) {
                            watchers.remove(&id);
                        }
                        continue;
                    }
                    msg = inbound.next() => match msg {
                        Some(Ok(m)) => m,
                        _ => break,
                    },
                };
                match msg.request_union {
                    Some(RequestUnion::CreateRequest(c)) => {
                        let mut id = c.watch_id;
                        if id == 0 {
                            while watchers.contains_key(&next_id) {
                                next_id += 1;
                            }
                            id = next_id;
                            next_id += 1;
                        } else if watchers.contains_key(&id) {
                            let resp = WatchResponse {
                                header: Some(node.header(node.store.current_rev())),
                                watch_id: id,
                                created: true,
                                canceled: true,
                                cancel_reason:
                                    "mvcc: duplicate watch ID provided on the WatchStream".into(),
                                ..Default::default()
                            };
                            if tx.send(Ok(resp)).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        // Subscribe before reading the revision so nothing
                        // committed in between is missed.
                        let changes = node.store.subscribe();
                        let current = node.store.current_rev();
                        let created = WatchResponse {
                            header: Some(node.header(current)),
                            watch_id: id,
                            created: true,
                            ..Default::default()
                        };
                        if tx.send(Ok(created)).await.is_err() {
                            break;
                        }
                        let (cancel_tx, cancel_rx) = oneshot::channel();
                        let (flush_tx, flush_rx) = mpsc::unbounded_channel();
                        generation += 1;
                        watchers.insert(
                            id,
                            Handle {
                                generation,
                                cancel: cancel_tx,
                                flush: flush_tx,
                            },
                        );
                        let done = Done(id, generation, done_tx.clone());
                        let w = Watcher::new(node.clone(), id, c, current, tx.clone(), done);
                        watchers_rt.spawn(w.run(changes, cancel_rx, flush_rx));
                    }
                    // The watcher answers the cancel itself, after any event
                    // it was already sending. Cancelling an unknown watch is
                    // silently ignored, as in etcd.
                    Some(RequestUnion::CancelRequest(c)) => {
                        if let Some(h) = watchers.remove(&c.watch_id) {
                            let _ = h.cancel.send(());
                        }
                    }
                    // Progress at revision R promises that every event up to
                    // R was sent: answered once each watcher has sent
                    // through R, without holding up the stream meanwhile.
                    Some(RequestUnion::ProgressRequest(_)) => {
                        let rev = node.store.current_rev();
                        let acks: Vec<_> = watchers
                            .values()
                            .map(|h| {
                                let (ack_tx, ack_rx) = oneshot::channel();
                                let _ = h.flush.send((rev, ack_tx));
                                ack_rx
                            })
                            .collect();
                        let resp = WatchResponse {
                            header: Some(node.header(rev)),
                            watch_id: -1,
                            ..Default::default()
                        };
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            // A watcher that ended drops its ack: nothing to wait for.
                            for ack in acks {
                                let _ = ack.await;
                            }
                            let _ = tx.send(Ok(resp)).await;
                        });
                    }
                    None => {}
                }
            }
            // A client that half-closes its side still gets events, as with
            // etcd: the watchers stop only when the response stream closes.
            tx.closed().await;
            drop(watchers);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// How many of `events` go in one response: whole revisions (etcd splits
/// one only for a watcher that asks to), no more than
/// [`MAX_RESPONSE_BYTES`] encoded unless the first revision alone is.
fn response_cut(events: &[Event]) -> usize {
    let rev = |e: &Event| e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
    let (mut bytes, mut i) = (0, 0);
    while i < events.len() {
        let r = rev(&events[i]);
        let end = i + events[i..].iter().take_while(|e| rev(e) == r).count();
        let size: usize = events[i..end].iter().map(Message::encoded_len).sum();
        if i > 0 && bytes + size > MAX_RESPONSE_BYTES {
            return i;
        }
        bytes += size;
        i = end;
    }
    events.len()
}

/// The stream's side of a running watcher.
struct Handle {
    generation: u64,
    cancel: oneshot::Sender<()>,
    /// Asks the watcher to acknowledge once it has sent everything up to a revision.
    flush: mpsc::UnboundedSender<(i64, oneshot::Sender<()>)>,
}

/// Tells the stream a watcher has ended, however it ended.
struct Done(i64, u64, mpsc::UnboundedSender<(i64, u64)>);

impl Drop for Done {
    fn drop(&mut self) {
        let _ = self.2.send((self.0, self.1));
    }
}

struct Watcher {
    node: Arc<Node>,
    id: i64,
    key: Vec<u8>,
    range_end: Vec<u8>,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    progress: bool,
    /// The first revision this watcher has not delivered yet.
    next: i64,
    out: Out,
    /// Dropped before a watcher that ends on its own sends its last
    /// response, so the stream has freed its id by the time the client can
    /// reuse it.
    done: Option<Done>,
}

impl Watcher {
    fn new(
        node: Arc<Node>,
        id: i64,
        c: WatchCreateRequest,
        current: i64,
        out: Out,
        done: Done,
    ) -> Self {
        let key = if c.key.is_empty() { vec![0] } else { c.key };
        let has = |f: FilterType| c.filters.contains(&(f as i32));
        Watcher {
            node,
            id,
            key,
            range_end: c.range_end,
            no_put: has(FilterType::Noput),
            no_delete: has(FilterType::Nodelete),
            prev_kv: c.prev_kv,
            progress: c.progress_notify,
            next: if c.start_revision > 0 {
                c.start_revision
            } else {
                current + 1
            },
            out,
            done: Some(done),
        }
    }

    fn wants(&self, ev: &Event) -> bool {
        let Some(kv) = ev.kv.as_ref() else {
            return false;
        };
        if kv.mod_revision < self.next
            || !KeyRange::new(&self.key, &self.range_end).contains(&kv.key)
        {
            return false;
        }
        let put = ev.r#type == EventType::Put as i32;
        !(put && self.no_put || !put && self.no_delete)
    }

    /// An event's previous version: carried along when the write loaded
    /// it, read from storage otherwise (unless the write created the key).
    fn prev_of(&self, e: &Event) -> Option<KeyValue> {
        if e.prev_kv.is_some() {
            return e.prev_kv.clone();
        }
        let kv = e.kv.as_ref()?;
        let created = e.r#type == EventType::Put as i32 && kv.version == 1;
        if created {
            return None;
        }
        self.node.store.prev_of(&kv.key, kv.mod_revision)
    }

    /// Sends events (already filtered); false when the client is gone.
    async fn send(&mut self, mut events: Vec<Event>, through: i64) -> bool {
        self.next = self.next.max(through + 1);
        if !self.prev_kv {
            for e in &mut events {
                e.prev_kv = None;
            }
        }
        while !events.is_empty() {
            let rest = events.split_off(response_cut(&events));
            let rev = events
                .last()
                .and_then(|e| e.kv.as_ref())
                .map_or(through, |kv| kv.mod_revision);
            let resp = WatchResponse {
                header: Some(self.node.header(rev)),
                watch_id: self.id,
                events,
                ..Default::default()
            };
            if self.out.send(Ok(resp)).await.is_err() {
                return false;
            }
            events = rest;
        }
        true
    }

    /// This watcher's events from one broadcast change and every change
    /// already queued behind it, for one response: when the writes outrun
    /// delivery, a watcher pays its per-response costs (a wake, a header, a
    /// frame) once per batch rather than once per revision, as etcd's
    /// watchers do while they catch up. Returns the events, the revision
    /// they cover, and whether the broadcast dropped changes after it.
    fn gather(
        &self,
        first: Arc<crate::mvcc::Changes>,
        changes: &mut broadcast::Receiver<Arc<crate::mvcc::Changes>>,
    ) -> (Vec<Event>, i64, bool) {
        let mut events = Vec::new();
        let mut through = first.rev;
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(c) = next {
            // The previous value is copied only for a watcher that asked
            // for it: with many watchers on a prefix the copies add up. A
            // put does not load the value it replaces, so such a watcher
            // reads it here, as etcd's watch stream does.
            events.extend(c.events.iter().filter(|e| self.wants(e)).map(|e| Event {
                r#type: e.r#type,
                kv: e.kv.clone(),
                prev_kv: if self.prev_kv { self.prev_of(e) } else { None },
            }));
            through = c.rev;
            bytes += c.events.iter().map(Message::encoded_len).sum::<usize>();
            if events.len() >= MAX_GATHERED || bytes >= MAX_RESPONSE_BYTES {
                break;
            }
            next = match changes.try_recv() {
                Ok(c) if !c.restored => Some(c),
                Err(broadcast::error::TryRecvError::Empty) => None,
                // Skipped past changes it will never see, or the store was
                // replaced: the rest, from `through` on, comes from storage.
                Ok(_) | Err(_) => return (events, through, true),
            };
        }
        (events, through, false)
    }

    /// Replays history from `next` up to the current revision; false when
    /// the watch ended (client gone, or history compacted away).
    async fn catch_up(&mut self) -> bool {
        loop {
            let (current, compacted) = {
                let st = self.node.store.read();
                (st.rev, st.compact_rev)
            };
            if self.next > current {
                return true;
            }
            if self.next < compacted {
                drop(self.done.take());
                let resp = WatchResponse {
                    header: Some(self.node.header(current)),
                    watch_id: self.id,
                    compact_revision: compacted,
                    canceled: true,
                    ..Default::default()
                };
                let _ = self.out.send(Ok(resp)).await;
                return false;
            }
            let to = current.min(self.next + CATCH_UP_REVS - 1);
            // Off the watchers' threads: a long replay must not hold up the
            // live watchers, nor the writes that wait for them.
            let (node, from) = (self.node.clone(), self.next);
            let permit = HISTORY_READS.acquire().await.ok();
            let read = tokio::task::spawn_blocking(move || node.store.history(from, to)).await;
            drop(permit);
            let records = match read {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    let _ = self.out.send(Err(e.status())).await;
                    return false;
                }
                Err(e) => {
                    let status = Status::internal(format!("reading history: {e}"));
                    let _ = self.out.send(Err(status)).await;
                    return false;
                }
            };
            // A compaction that ran during the read may have removed some of
            // what it should have seen: go round again and cancel.
            if self.next < self.node.store.compact_rev() {
                continue;
            }
            let mut events = Vec::new();
            for (kv, tombstone) in records {
                let ev = Event {
                    r#type: if tombstone {
                        EventType::Delete
                    } else {
                        EventType::Put
                    } as i32,
                    prev_kv: None,
                    kv: Some(kv),
                };
                if self.wants(&ev) {
                    events.push(ev);
                }
            }
            if self.prev_kv {
                for e in &mut events {
                    e.prev_kv = self.prev_of(e);
                }
            }
            if !self.send(events, to).await {
                return false;
            }
        }
    }

    async fn run(
        mut self,
        mut changes: broadcast::Receiver<Arc<crate::mvcc::Changes>>,
        mut cancel: oneshot::Receiver<()>,
        mut flush: mpsc::UnboundedReceiver<(i64, oneshot::Sender<()>)>,
    ) {
        let mut progress = tokio::time::interval(PROGRESS_INTERVAL);
        progress.tick().await;
        let mut flushes: Vec<(i64, oneshot::Sender<()>)> = Vec::new();
        // Storage is read only where the broadcast cannot serve: at the
        // start (a start revision in the past), after falling behind the
        // broadcast, and to answer a progress request (a revision without
        // events is never broadcast). A watcher that merely trails the
        // writes by a few revisions takes them from the broadcast, where
        // they are already queued.
        let mut behind = true;
        loop {
            if behind || flushes.iter().any(|(rev, _)| *rev >= self.next) {
                if !self.catch_up().await {
                    return;
                }
                behind = false;
            }
            let next = self.next;
            for (_, ack) in flushes.extract_if(.., |(rev, _)| *rev < next) {
                let _ = ack.send(());
            }
            tokio::select! {
                Some(f) = flush.recv() => flushes.push(f),
                cancelled = &mut cancel => {
                    // Err: the stream itself is gone, nobody to answer.
                    if cancelled.is_ok() {
                        let resp = WatchResponse {
                            header: Some(self.node.header(self.node.store.current_rev())),
                            watch_id: self.id,
                            canceled: true,
                            ..Default::default()
                        };
                        let _ = self.out.send(Ok(resp)).await;
                    }
                    return;
                }
                msg = changes.recv() => match msg {
                    Ok(c) if c.restored => behind = true,
                    Ok(c) => {
                        let (events, through, lagged) = self.gather(c, &mut changes);
                        if !self.send(events, through).await {
                            return;
                        }
                        behind |= lagged;
                    }
                    // Fell behind the broadcast: catch up from storage.
                    Err(broadcast::error::RecvError::Lagged(_)) => behind = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                // Only what this watcher has sent through: events up to the
                // store's current revision may still be queued for it.
                _ = progress.tick(), if self.progress => {
                    let resp = WatchResponse {
                        header: Some(self.node.header(self.next - 1)),
                        watch_id: self.id,
                        ..Default::default()
                    };
                    if self.out.send(Ok(resp)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
