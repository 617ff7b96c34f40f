//! Watch fan-out: one writer putting keys under a prefix one after another,
//! many watchers each with its own Watch stream on that prefix. Measures the
//! events delivered per second over all watchers, the lag from a put being
//! sent to its event arriving, and checks that every watcher saw each of
//! the writer's revisions exactly once, in order.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use synod_proto::etcdserverpb::watch_client::WatchClient;
use synod_proto::etcdserverpb::watch_request::RequestUnion;
use synod_proto::etcdserverpb::{PutRequest, RangeRequest, WatchCreateRequest, WatchRequest};
use tokio::sync::{mpsc, watch};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

use crate::compare::{Figure, Unit};
use crate::load::{self, Error};
use crate::server::{CpuMeter, Server};

const PREFIX: &[u8] = b"fanout/";
/// Keys the writer cycles through; the watchers see every put either way.
const KEYS: u64 = 1000;
const VALUE_SIZE: usize = 256;
/// How long the watchers may take, after the writer's last put, to receive
/// everything before the missing events are counted as missed.
const DRAIN: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Writing,
    /// The writer's last revision: a watcher past it is done.
    Done(i64),
    /// Waited long enough: watchers stop and count what they lack.
    GiveUp(i64),
}

#[derive(Default)]
struct Seen {
    events: u64,
    missed: u64,
    duplicates: u64,
    /// Streams that ended, failed or were cancelled before the last event.
    broken: u64,
    /// Microseconds from each put being sent to its event arriving here.
    lag: Vec<u32>,
    finished: Option<Instant>,
}

pub async fn run(
    server: &Server,
    watchers: usize,
    conns: usize,
    duration: Duration,
) -> Result<Vec<Figure>, Error> {
    let channels = load::channels(&server.endpoint, conns).await?;
    // Put times are written into the values as offsets from this instant,
    // so a watcher computes the lag of any event it receives.
    let epoch = Instant::now();
    let first = Arc::new(AtomicI64::new(0));
    let (phase_tx, phase_rx) = watch::channel(Phase::Writing);
    let (created_tx, mut created_rx) = mpsc::channel::<Result<(), Error>>(watchers.max(1));
    let mut tasks = Vec::with_capacity(watchers);
    for i in 0..watchers {
        let client = WatchClient::new(channels[i % channels.len()].clone())
            .max_decoding_message_size(usize::MAX);
        let (first, phase, created) = (first.clone(), phase_rx.clone(), created_tx.clone());
        tasks.push(tokio::spawn(watcher(client, epoch, first, phase, created)));
    }
    drop(created_tx);
    for _ in 0..watchers {
        created_rx.recv().await.ok_or("a watcher ended early")??;
    }

    let mut kv = load::connect(&server.endpoint, 1).await?.remove(0);
    let head = kv.range(RangeRequest {
        key: b"ready".to_vec(),
        ..Default::default()
    });
    let head = head.await?.into_inner().header.map_or(0, |h| h.revision);
    // Nothing else writes, so the writer's puts are revisions head+1 on.
    first.store(head + 1, Ordering::SeqCst);
    let cpu = CpuMeter::start(server)?;
    let started = Instant::now();
    let w = writer(server.endpoint.clone(), epoch, started + duration).await?;
    let last = w.last;
    let wrote = started.elapsed();
    phase_tx.send_replace(Phase::Done(last));

    let mut seen = Vec::with_capacity(watchers);
    let give_up = tokio::time::sleep(DRAIN);
    tokio::pin!(give_up);
    let mut tasks = tasks.into_iter();
    let mut next = tasks.next();
    while let Some(t) = next.as_mut() {
        tokio::select! {
            s = t => {
                seen.push(s?);
                next = tasks.next();
            }
            _ = &mut give_up, if !matches!(*phase_tx.borrow(), Phase::GiveUp(_)) => {
                phase_tx.send_replace(Phase::GiveUp(last));
            }
        }
    }

    let end = seen
        .iter()
        .filter_map(|s| s.finished)
        .max()
        .unwrap_or_else(Instant::now);
    let events: u64 = seen.iter().map(|s| s.events).sum();
    let mut lag: Vec<u32> = seen.iter_mut().flat_map(|s| s.lag.drain(..)).collect();
    lag.sort_unstable();
    let sum = |f: fn(&Seen) -> u64| seen.iter().map(f).sum::<u64>() as f64;
    let cpu = cpu.stop(server, started.elapsed())?;
    let elapsed = end.duration_since(started).as_secs_f64();
    Ok(vec![
        Figure::new("events delivered", Unit::PerSec, events as f64 / elapsed),
        Figure::new("lag p50", Unit::Ms, load::percentile(&lag, 0.5)),
        Figure::new("lag p99", Unit::Ms, load::percentile(&lag, 0.99)),
        Figure::new(
            "writer puts",
            Unit::PerSec,
            w.puts as f64 / wrote.as_secs_f64(),
        ),
        Figure::new("server CPU", Unit::CpuPerSec, cpu.server),
        Figure::new("of it spinning idle", Unit::CpuPerSec, cpu.spinning),
        Figure::new("bench CPU", Unit::CpuPerSec, cpu.bench),
        Figure::new("missed events", Unit::Count, sum(|s| s.missed)),
        Figure::new("duplicate events", Unit::Count, sum(|s| s.duplicates)),
        Figure::new("broken watches", Unit::Count, sum(|s| s.broken)),
        Figure::new("put errors", Unit::Count, w.errors as f64),
    ])
}

struct Written {
    puts: u64,
    errors: u64,
    last: i64,
}

/// Puts until `deadline`, one at a time, each value starting with its send
/// time. It runs on a thread and runtime of its own, with its own
/// connection: on the shared runtime each response would wait behind the
/// watchers' tasks, and the writer's pace would be the bench's, not the
/// server's.
async fn writer(endpoint: String, epoch: Instant, deadline: Instant) -> Result<Written, Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("watch-writer".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let r = match rt {
                Ok(rt) => rt.block_on(write(&endpoint, epoch, deadline)),
                Err(e) => Err(e.into()),
            };
            let _ = tx.send(r);
        })?;
    rx.await?
}

async fn write(endpoint: &str, epoch: Instant, deadline: Instant) -> Result<Written, Error> {
    let mut kv = load::connect(endpoint, 1).await?.remove(0);
    let mut w = Written {
        puts: 0,
        errors: 0,
        last: 0,
    };
    let mut value = vec![b'v'; VALUE_SIZE];
    while Instant::now() < deadline {
        let mut key = PREFIX.to_vec();
        key.extend_from_slice(format!("{:04}", w.puts % KEYS).as_bytes());
        let sent = epoch.elapsed().as_micros() as u64;
        value[..8].copy_from_slice(&sent.to_le_bytes());
        let r = kv.put(PutRequest {
            key,
            value: value.clone(),
            ..Default::default()
        });
        match r.await {
            Ok(r) => {
                w.puts += 1;
                w.last = r.into_inner().header.map_or(w.last, |h| h.revision);
            }
            Err(_) => w.errors += 1,
        }
    }
    Ok(w)
}

async fn watcher(
    mut client: WatchClient<tonic::transport::Channel>,
    epoch: Instant,
    first: Arc<AtomicI64>,
    mut phase: watch::Receiver<Phase>,
    created: mpsc::Sender<Result<(), Error>>,
) -> Seen {
    let mut seen = Seen::default();
    // The request side stays open as long as the watch: a closed one ends
    // the stream on etcd.
    let (req_tx, req_rx) = mpsc::channel(1);
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: PREFIX.to_vec(),
            range_end: synod_proto::prefix_end(PREFIX),
            ..Default::default()
        })),
    };
    let _ = req_tx.send(create).await;
    let stream = client.watch(ReceiverStream::new(req_rx)).await;
    let mut stream = match stream {
        Ok(s) => s.into_inner(),
        Err(e) => {
            let _ = created.send(Err(e.into())).await;
            return seen;
        }
    };
    match stream.message().await {
        Ok(Some(r)) if r.created => {
            let _ = created.send(Ok(())).await;
        }
        other => {
            let _ = created
                .send(Err(format!("watch not created: {other:?}").into()))
                .await;
            return seen;
        }
    }
    // The next revision this watcher should see; 0 until the writer starts.
    let mut expect = 0i64;
    let next = |expect: i64| expect.max(first.load(Ordering::SeqCst));
    loop {
        let last = match *phase.borrow_and_update() {
            Phase::Writing => None,
            Phase::Done(last) => Some(last),
            Phase::GiveUp(last) => {
                seen.missed += (last + 1 - next(expect)).max(0) as u64;
                seen.finished = Some(Instant::now());
                return seen;
            }
        };
        if last.is_some_and(|l| next(expect) > l) {
            seen.finished = Some(Instant::now());
            return seen;
        }
        let msg = tokio::select! {
            m = stream.message() => m,
            changed = phase.changed() => match changed {
                Ok(()) => continue,
                // The run is over (it failed elsewhere).
                Err(_) => return seen,
            },
        };
        let Ok(Some(resp)) = msg.as_ref().map(|m| m.as_ref().filter(|r| !r.canceled)) else {
            // The stream is gone: wait for the writer's last revision to
            // count what was never delivered.
            seen.broken += 1;
            let Ok(p) = phase.wait_for(|p| *p != Phase::Writing).await else {
                return seen;
            };
            if let Phase::Done(l) | Phase::GiveUp(l) = *p {
                seen.missed += (l + 1 - next(expect)).max(0) as u64;
            }
            seen.finished = Some(Instant::now());
            return seen;
        };
        let now = epoch.elapsed().as_micros() as u64;
        for ev in &resp.events {
            let Some(kv) = &ev.kv else { continue };
            expect = next(expect);
            let rev = kv.mod_revision;
            if rev < expect {
                seen.duplicates += 1;
            } else {
                seen.missed += (rev - expect) as u64;
                expect = rev + 1;
            }
            seen.events += 1;
            if let Some(sent) = kv.value.get(..8) {
                let sent = u64::from_le_bytes(sent.try_into().expect("8 bytes"));
                seen.lag.push(now.saturating_sub(sent) as u32);
            }
        }
    }
}
