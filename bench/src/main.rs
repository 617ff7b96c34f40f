//! Drives an etcd v3 endpoint with concurrent puts, gets or transactions and
//! prints throughput and latency percentiles, like etcd's own `benchmark`
//! tool; `synod-bench compare` runs the same workloads against fresh synod
//! and etcd servers, alternating, and prints medians and ratios.

mod bulk;
mod compare;
mod leases;
mod load;
mod server;
mod watch;

use std::time::Duration;

use clap::{Parser, Subcommand};
use load::Op;

#[derive(Debug, Parser)]
#[command(
    name = "synod-bench",
    about = "load against an etcd v3 endpoint, or synod against etcd"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    one: OneArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Starts synod and etcd with the same flags, alternates runs of each
    /// workload on fresh servers, and prints medians and ratios.
    Compare(compare::Args),
}

/// One load run against a running server.
#[derive(Debug, clap::Args)]
struct OneArgs {
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
    /// Stop after this many seconds instead, if sooner.
    #[arg(long)]
    seconds: Option<f64>,
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

#[tokio::main]
async fn main() -> Result<(), load::Error> {
    let cli = Cli::parse();
    if let Some(Command::Compare(args)) = cli.command {
        return compare::run(args).await;
    }
    let args = cli.one;
    if args.op == Op::Get {
        load::prefill(&args.endpoint, args.keyspace, args.value_size).await?;
    }
    let spec = load::Spec {
        op: args.op,
        clients: args.clients,
        conns: args.conns,
        requests: Some(args.requests),
        duration: args.seconds.map(Duration::from_secs_f64),
        keyspace: args.keyspace,
        value_size: args.value_size,
        serializable: args.serializable,
    };
    let o = load::run(&args.endpoint, &spec).await?;
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
        n = o.requests,
        err = o.errors,
        rate = o.rate,
        p50 = o.p50_ms,
        p90 = o.p90_ms,
        p99 = o.p99_ms,
        max = o.max_ms,
    );
    Ok(())
}
