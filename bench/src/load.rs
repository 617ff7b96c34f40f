//! One load run against one endpoint: concurrent clients issuing puts, gets
//! or compare-and-swap transactions until a request count or a duration is
//! reached, with throughput and latency percentiles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use synod_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::request_op::Request;
use synod_proto::etcdserverpb::response_op::Response;
use synod_proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use tonic::transport::{Channel, Endpoint};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq)]
pub enum Op {
    Put,
    Get,
    /// Compare-and-swap: a transaction that puts a client's own key only if
    /// its mod revision is still the one the client last saw.
    Txn,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub op: Op,
    pub clients: usize,
    pub conns: usize,
    /// Stop after this many requests...
    pub requests: Option<u64>,
    /// ...or after this long, whichever comes first.
    pub duration: Option<Duration>,
    pub keyspace: u64,
    pub value_size: usize,
    pub serializable: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub requests: u64,
    pub errors: u64,
    pub rate: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn key(i: u64) -> Vec<u8> {
    format!("bench/{i:08}").into_bytes()
}

/// `n` gRPC connections (at least one) to `endpoint`.
pub async fn channels(endpoint: &str, n: usize) -> Result<Vec<Channel>, Error> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        out.push(
            Endpoint::from_shared(format!("http://{endpoint}"))?
                .connect_timeout(Duration::from_secs(5))
                .connect()
                .await?,
        );
    }
    Ok(out)
}

pub async fn connect(endpoint: &str, n: usize) -> Result<Vec<KvClient<Channel>>, Error> {
    Ok(channels(endpoint, n)
        .await?
        .into_iter()
        // etcd's responses to large ranges exceed tonic's 4 MiB default.
        .map(|ch| KvClient::new(ch).max_decoding_message_size(usize::MAX))
        .collect())
}

/// Writes every key of the keyspace once, so that gets find them.
pub async fn prefill(endpoint: &str, keyspace: u64, value_size: usize) -> Result<(), Error> {
    write(endpoint, keyspace, keyspace, value_size, Arc::default()).await
}

/// `puts` puts from 64 clients over 8 connections, the i-th to key
/// `i % keys`, so that `keys` keys get `puts / keys` revisions each.
/// `issued` (starting at 0) counts the puts sent, for a caller showing
/// progress; it ends a little above `puts`.
pub async fn write(
    endpoint: &str,
    puts: u64,
    keys: u64,
    value_size: usize,
    issued: Arc<AtomicU64>,
) -> Result<(), Error> {
    let clients = connect(endpoint, 8).await?;
    let value = vec![b'v'; value_size];
    let mut tasks = Vec::new();
    for c in 0..64 {
        let mut kv = clients[c % clients.len()].clone();
        let (issued, value) = (issued.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= puts {
                    return Ok::<(), tonic::Status>(());
                }
                kv.put(PutRequest {
                    key: key(i % keys.max(1)),
                    value: value.clone(),
                    ..Default::default()
                })
                .await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// The `p` quantile (0..=1) of sorted microsecond latencies, in ms.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

struct Cas {
    key: Vec<u8>,
    rev: i64,
}

impl Cas {
    async fn start(kv: &mut KvClient<Channel>, id: usize, value: &[u8]) -> Result<Cas, Error> {
        let key = format!("bench/cas/{id:04}").into_bytes();
        let r = kv
            .put(PutRequest {
                key: key.clone(),
                value: value.to_vec(),
                ..Default::default()
            })
            .await?;
        let rev = r.into_inner().header.map_or(0, |h| h.revision);
        Ok(Cas { key, rev })
    }

    /// One transaction; on a lost race the failure branch reads the key back.
    async fn swap(&mut self, kv: &mut KvClient<Channel>, value: &[u8]) -> bool {
        let r = kv
            .txn(TxnRequest {
                compare: vec![Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Mod as i32,
                    key: self.key.clone(),
                    target_union: Some(TargetUnion::ModRevision(self.rev)),
                    ..Default::default()
                }],
                success: vec![RequestOp {
                    request: Some(Request::RequestPut(PutRequest {
                        key: self.key.clone(),
                        value: value.to_vec(),
                        ..Default::default()
                    })),
                }],
                failure: vec![RequestOp {
                    request: Some(Request::RequestRange(RangeRequest {
                        key: self.key.clone(),
                        ..Default::default()
                    })),
                }],
            })
            .await;
        let Ok(r) = r else { return false };
        let r = r.into_inner();
        if r.succeeded {
            self.rev = r.header.map_or(self.rev, |h| h.revision);
        } else if let Some(Response::ResponseRange(range)) =
            r.responses.into_iter().next().and_then(|o| o.response)
        {
            self.rev = range.kvs.first().map_or(0, |kv| kv.mod_revision);
        }
        true
    }
}

pub async fn run(endpoint: &str, spec: &Spec) -> Result<Outcome, Error> {
    let clients = connect(endpoint, spec.conns).await?;
    let value = vec![b'v'; spec.value_size];
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let total = spec.requests.unwrap_or(u64::MAX);
    let deadline = spec.duration.map(|d| Instant::now() + d);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(spec.clients);
    for c in 0..spec.clients {
        let mut kv = clients[c % clients.len()].clone();
        let (issued, errors, value, spec) =
            (issued.clone(), errors.clone(), value.clone(), spec.clone());
        tasks.push(tokio::spawn(async move {
            let mut cas = match spec.op {
                Op::Txn => Some(Cas::start(&mut kv, c, &value).await?),
                _ => None,
            };
            let keyspace = spec.keyspace.max(1);
            let mut lat = Vec::new();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= total || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                // A cheap scramble so clients do not walk keys in lockstep.
                let k = key(n.wrapping_mul(2_654_435_761) % keyspace);
                let t = Instant::now();
                let ok = match (spec.op, cas.as_mut()) {
                    (Op::Put, _) => kv
                        .put(PutRequest {
                            key: k,
                            value: value.clone(),
                            ..Default::default()
                        })
                        .await
                        .is_ok(),
                    (Op::Get, _) => kv
                        .range(RangeRequest {
                            key: k,
                            serializable: spec.serializable,
                            ..Default::default()
                        })
                        .await
                        .is_ok(),
                    (Op::Txn, Some(cas)) => cas.swap(&mut kv, &value).await,
                    (Op::Txn, None) => unreachable!("set up above"),
                };
                lat.push(t.elapsed().as_micros() as u32);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<Vec<u32>, Error>(lat)
        }));
    }
    let mut lat: Vec<u32> = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = start.elapsed();
    lat.sort_unstable();
    let pct = |p: f64| percentile(&lat, p);
    Ok(Outcome {
        requests: lat.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        rate: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.5),
        p90_ms: pct(0.9),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
    })
}
