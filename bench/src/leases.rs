//! Many leases kept alive: grants them, then sends keep-alives for all of
//! them over LeaseKeepAlive streams, each stream going round its share of
//! the leases with one request in flight, for the length of the run (and
//! longer if needed for every lease to be renewed once).
//! Measures the keep-alive round trip and the server's CPU time meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use synod_proto::etcdserverpb::lease_client::LeaseClient;
use synod_proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest};
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

use crate::compare::{Figure, Unit};
use crate::load::{self, Error};
use crate::server::{CpuMeter, Server};

const TTL: i64 = 60;
const STREAMS: usize = 64;
const CONNS: usize = 8;

pub async fn run(server: &Server, leases: u64, duration: Duration) -> Result<Vec<Figure>, Error> {
    let clients: Vec<_> = load::channels(&server.endpoint, CONNS)
        .await?
        .into_iter()
        .map(LeaseClient::new)
        .collect();

    let granted = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut grants = Vec::new();
    for s in 0..STREAMS {
        let (mut c, next) = (clients[s % clients.len()].clone(), next.clone());
        grants.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < leases {
                let r = c.lease_grant(LeaseGrantRequest { ttl: TTL, id: 0 }).await?;
                ids.push(r.into_inner().id);
            }
            Ok::<_, tonic::Status>(ids)
        }));
    }
    let mut shares = Vec::new();
    for g in grants {
        shares.push(g.await??);
    }
    let grant_rate = leases as f64 / granted.elapsed().as_secs_f64();

    let cpu = CpuMeter::start(server)?;
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for (s, ids) in shares.into_iter().enumerate() {
        let c = clients[s % clients.len()].clone();
        tasks.push(tokio::spawn(keep_alive(c, ids, deadline)));
    }
    let (mut rtt, mut errors) = (Vec::new(), 0u64);
    for t in tasks {
        let (r, e) = t.await??;
        rtt.extend(r);
        errors += e;
    }
    let cpu = cpu.stop(server, started.elapsed())?;
    let elapsed = started.elapsed().as_secs_f64();
    rtt.sort_unstable();
    Ok(vec![
        Figure::new("grants", Unit::PerSec, grant_rate),
        Figure::new("keep-alives", Unit::PerSec, rtt.len() as f64 / elapsed),
        Figure::new("keep-alive p50", Unit::Ms, load::percentile(&rtt, 0.5)),
        Figure::new("keep-alive p99", Unit::Ms, load::percentile(&rtt, 0.99)),
        Figure::new("server CPU", Unit::CpuPerSec, cpu.server),
        Figure::new("of it spinning idle", Unit::CpuPerSec, cpu.spinning),
        Figure::new("server CPU per 1,000 keep-alives", Unit::Ms, {
            cpu.server * elapsed * 1e6 / rtt.len().max(1) as f64
        }),
        Figure::new("bench CPU", Unit::CpuPerSec, cpu.bench),
        Figure::new("keep-alive errors", Unit::Count, errors as f64),
    ])
}

/// One LeaseKeepAlive stream going round `ids` until `deadline`, and at
/// least once round all of them even if that takes longer. Returns
/// the round trips in microseconds and the answers that were not a renewal
/// (TTL ≤ 0: the lease was gone).
async fn keep_alive(
    mut client: LeaseClient<tonic::transport::Channel>,
    ids: Vec<i64>,
    deadline: Instant,
) -> Result<(Vec<u32>, u64), Error> {
    let (mut rtt, mut errors) = (Vec::new(), 0u64);
    if ids.is_empty() {
        return Ok((rtt, errors));
    }
    // The first request is queued before the call is made: etcd answers
    // the call (sends its headers) only with its first response.
    let (tx, rx) = mpsc::channel(1);
    let share = ids.len();
    let mut ids = ids.iter().copied().cycle();
    let mut id = ids.next().expect("not empty");
    let mut sent = Instant::now();
    tx.send(LeaseKeepAliveRequest { id }).await?;
    let mut stream = client
        .lease_keep_alive(ReceiverStream::new(rx))
        .await?
        .into_inner();
    loop {
        let r = stream.message().await?.ok_or("keep-alive stream ended")?;
        rtt.push(sent.elapsed().as_micros() as u32);
        if r.id != id || r.ttl <= 0 {
            errors += 1;
        }
        sent = Instant::now();
        if sent >= deadline && rtt.len() >= share {
            break;
        }
        id = ids.next().expect("endless");
        tx.send(LeaseKeepAliveRequest { id }).await?;
    }
    Ok((rtt, errors))
}
