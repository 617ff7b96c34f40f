//! `synod-bench compare`: the same workloads against synod and etcd, each run
//! on a freshly started server with the same flags, the two servers taking
//! turns (etcd first in odd runs, synod first in even ones) so that drift in
//! the machine's state does not favour either. Prints medians and ratios.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use synod_proto::etcdserverpb::RangeRequest;

use crate::load::{self, Error, Op, Outcome, Spec};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The synod binary (build it with `cargo build --release -p synod`).
    #[arg(long, default_value = "target/release/synod")]
    synod: PathBuf,
    /// The etcd binary.
    #[arg(long, default_value = "etcd")]
    etcd: PathBuf,
    /// Runs of each workload on each server; medians are printed.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Length of one run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Workloads to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "put1,put64,get64,sget64,txn16"
    )]
    workloads: Vec<Workload>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq)]
pub enum Workload {
    /// One client putting 256-byte values over 10,000 keys.
    Put1,
    /// 64 clients putting, over 8 connections.
    Put64,
    /// 64 clients, linearizable gets of 10,000 existing keys.
    Get64,
    /// 64 clients, serializable gets.
    Sget64,
    /// 16 clients, each a compare-and-swap loop on its own key.
    Txn16,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Put1 => "put/1",
            Workload::Put64 => "put/64",
            Workload::Get64 => "get/64",
            Workload::Sget64 => "sget/64",
            Workload::Txn16 => "txn/16",
        }
    }

    fn spec(self, duration: Duration) -> Spec {
        let (op, clients, serializable) = match self {
            Workload::Put1 => (Op::Put, 1, false),
            Workload::Put64 => (Op::Put, 64, false),
            Workload::Get64 => (Op::Get, 64, false),
            Workload::Sget64 => (Op::Get, 64, true),
            Workload::Txn16 => (Op::Txn, 16, false),
        };
        Spec {
            op,
            clients,
            conns: clients.min(8),
            requests: None,
            duration: Some(duration),
            keyspace: 10_000,
            value_size: 256,
            serializable,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Synod,
    Etcd,
}

struct Server {
    child: Child,
    endpoint: String,
    dir: tempfile::TempDir,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Server {
    /// Starts a fresh server with etcd's single-member flags and waits
    /// until it answers a get.
    async fn start(bin: &Path) -> Result<Server, Error> {
        let dir = tempfile::Builder::new().prefix("synod-bench").tempdir()?;
        let (port, peer) = (free_port()?, free_port()?);
        let client = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let child = Command::new(bin)
            .arg("--name=n1")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=n1={peer}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start {}: {e}", bin.display()))?;
        let mut server = Server {
            child,
            endpoint: format!("127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = server.child.try_wait()? {
                return Err(format!("{} exited with {status}", bin.display()).into());
            }
            if let Ok(mut c) = load::connect(&server.endpoint, 1).await {
                let ready = c[0]
                    .range(RangeRequest {
                        key: b"ready".to_vec(),
                        ..Default::default()
                    })
                    .await;
                if ready.is_ok() {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not start", bin.display()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's peak resident memory so far, in bytes.
    fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Bytes the data directory occupies on disk.
    fn disk_usage(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(p) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.blocks() * 512,
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.dir.path().join("data"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Runs {
    outcomes: Vec<Outcome>,
    peak_rss: Vec<u64>,
    disk: Vec<u64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if !n.is_multiple_of(2) {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / (1 << 20));
    format!("{cores} cores ({cpu}), {mem_gib} GiB")
}

pub async fn run(args: Args) -> Result<(), Error> {
    let duration = Duration::from_secs_f64(args.seconds);
    let total = (args.workloads.len() * args.runs * 2) as u64;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}, ~{eta} left]")
            .expect("valid template"),
    );
    println!("machine: {}", machine());
    println!("synod:   {}", version(&args.synod));
    println!("etcd:    {}", version(&args.etcd));
    println!(
        "each figure: median of {} runs of {} s, fresh server per run, runs alternated",
        args.runs, args.seconds
    );
    let mut table: Vec<(Workload, Runs, Runs)> = Vec::new();
    for &w in &args.workloads {
        let (mut synod, mut etcd) = (Runs::default(), Runs::default());
        for run in 0..args.runs {
            let order = if run % 2 == 0 {
                [Kind::Etcd, Kind::Synod]
            } else {
                [Kind::Synod, Kind::Etcd]
            };
            for kind in order {
                let (bin, runs, label) = match kind {
                    Kind::Synod => (&args.synod, &mut synod, "synod"),
                    Kind::Etcd => (&args.etcd, &mut etcd, "etcd"),
                };
                bar.set_message(format!(
                    "{} run {}/{} {label}",
                    w.name(),
                    run + 1,
                    args.runs
                ));
                let server = Server::start(bin).await?;
                let spec = w.spec(duration);
                if spec.op == Op::Get {
                    load::prefill(&server.endpoint, spec.keyspace, spec.value_size).await?;
                }
                let o = load::run(&server.endpoint, &spec).await?;
                let line = format!(
                    "{:8} {label:5} run {}: {:>8}/s p50 {:.2} ms p99 {:.2} ms errors {}",
                    w.name(),
                    run + 1,
                    thousands(o.rate),
                    o.p50_ms,
                    o.p99_ms,
                    o.errors
                );
                // A hidden bar (output not a terminal) drops its println.
                if bar.is_hidden() {
                    println!("{line}");
                } else {
                    bar.println(line);
                }
                runs.peak_rss.extend(server.peak_rss());
                runs.disk.push(server.disk_usage());
                runs.outcomes.push(o);
                bar.inc(1);
            }
        }
        table.push((w, synod, etcd));
    }
    bar.finish_and_clear();
    println!();
    println!(
        "| workload | synod | etcd | synod/etcd | p99 synod | p99 etcd | peak RSS synod | peak RSS etcd |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (w, s, e) in &table {
        let rate = |r: &Runs| median(r.outcomes.iter().map(|o| o.rate).collect());
        let p99 = |r: &Runs| median(r.outcomes.iter().map(|o| o.p99_ms).collect());
        let rss = |r: &Runs| median(r.peak_rss.iter().map(|&b| b as f64 / 1e6).collect());
        println!(
            "| {} | {}/s | {}/s | {:.2} | {:.2} ms | {:.2} ms | {:.0} MB | {:.0} MB |",
            w.name(),
            thousands(rate(s)),
            thousands(rate(e)),
            rate(s) / rate(e),
            p99(s),
            p99(e),
            rss(s),
            rss(e)
        );
    }
    Ok(())
}
