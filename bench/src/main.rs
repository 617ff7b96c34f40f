//! Drives an etcd v3 endpoint with concurrent puts or gets and prints
//! throughput and latency percentiles, like etcd's own `benchmark` tool.
//! `scripts/bench` runs it against synod and etcd side by side.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::{PutRequest, RangeRequest};
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq)]
enum Op {
    Put,
    Get,
}

#[derive(Debug, Parser)]
#[command(
    name = "synod-bench",
    about = "put/get load against an etcd v3 endpoint"
)]
struct Args {
    /// host:port of the server.
    #[arg(long, default_value = "127.0.0.1:2379")]
    endpoint: String,
    #[arg(long, value_enum, default_value = "put")]
    op: Op,
    /// Concurrent clients (requests in flight).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// gRPC connections the clients share.
    #[arg(long, default_value_t = 8)]
    conns: usize,
    /// Total requests.
    #[arg(long, default_value_t = 50_000)]
    requests: u64,
    /// Distinct keys written or read.
    #[arg(long, default_value_t = 10_000)]
    keyspace: u64,
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Serializable gets (no read-index round).
    #[arg(long)]
    serializable: bool,
    /// Label printed with the result line.
    #[arg(long, default_value = "")]
    label: String,
}

fn key(i: u64) -> Vec<u8> {
    format!("bench/{i:08}").into_bytes()
}

async fn connect(
    endpoint: &str,
    n: usize,
) -> Result<Vec<KvClient<Channel>>, tonic::transport::Error> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let ch = Endpoint::from_shared(format!("http://{endpoint}"))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await?;
        out.push(KvClient::new(ch));
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let clients = connect(&args.endpoint, args.conns.max(1)).await?;
    let value = vec![b'v'; args.value_size];

    if args.op == Op::Get {
        // Make sure every key read exists.
        let mut kv = clients[0].clone();
        for i in 0..args.keyspace {
            kv.put(PutRequest {
                key: key(i),
                value: value.clone(),
                ..Default::default()
            })
            .await?;
        }
    }

    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(args.clients);
    for c in 0..args.clients {
        let mut kv = clients[c % clients.len()].clone();
        let issued = issued.clone();
        let errors = errors.clone();
        let value = value.clone();
        let (op, total, keyspace, serializable) = (
            args.op,
            args.requests,
            args.keyspace.max(1),
            args.serializable,
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                // A cheap scramble so clients do not walk keys in lockstep.
                let k = key(n.wrapping_mul(2_654_435_761) % keyspace);
                let t = Instant::now();
                let ok = match op {
                    Op::Put => kv
                        .put(PutRequest {
                            key: k,
                            value: value.clone(),
                            ..Default::default()
                        })
                        .await
                        .is_ok(),
                    Op::Get => kv
                        .range(RangeRequest {
                            key: k,
                            serializable,
                            ..Default::default()
                        })
                        .await
                        .is_ok(),
                };
                lat.push(t.elapsed().as_micros() as u32);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut lat: Vec<u32> = Vec::with_capacity(args.requests as usize);
    for t in tasks {
        lat.extend(t.await?);
    }
    let elapsed = start.elapsed();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i] as f64 / 1000.0
    };
    let rate = lat.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{label}op={op:?} clients={clients} conns={conns} requests={n} errors={err} \
         rate={rate:.0}/s p50={p50:.2}ms p90={p90:.2}ms p99={p99:.2}ms max={max:.2}ms",
        label = if args.label.is_empty() {
            String::new()
        } else {
            format!("{} ", args.label)
        },
        op = args.op,
        clients = args.clients,
        conns = args.conns,
        n = lat.len(),
        err = errors.load(Ordering::Relaxed),
        p50 = pct(0.5),
        p90 = pct(0.9),
        p99 = pct(0.99),
        max = pct(1.0),
    );
    Ok(())
}
