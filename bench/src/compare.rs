//! `synod-bench compare`: the same workloads against synod and etcd, each run
//! on a freshly started server with the same flags, the two servers taking
//! turns (etcd first in odd runs, synod first in even ones) so that drift in
//! the machine's state does not favour either. Prints medians and ratios.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};

use crate::load::{self, Error, Op, Outcome, Spec};
use crate::server::Server;
use crate::{bulk, leases, watch};

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
    /// Workloads to run, comma-separated. The long ones (watch, leases,
    /// load1m, compact) run only when named.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "put1,put64,get64,sget64,txn16"
    )]
    workloads: Vec<Workload>,
    /// Keys loaded by `load1m`.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Revisions written (over 1,000 keys) before `compact` compacts them.
    #[arg(long, default_value_t = 1_000_000)]
    revisions: u64,
    /// Leases granted and kept alive by `leases`.
    #[arg(long, default_value_t = 100_000)]
    leases: u64,
    /// Watchers in `watch`, each with its own stream, over 16 connections.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Also write every run's figures and the medians to this file, as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
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
    /// One writer putting under a prefix, 1,000 watchers on it (one stream
    /// each): events delivered per second, put-to-event lag, and missed or
    /// repeated events.
    Watch,
    /// 100,000 leases granted, then kept alive over 64 LeaseKeepAlive
    /// streams: round trip and server CPU.
    Leases,
    /// 1,000,000 keys of 256 bytes loaded by 64 clients: load rate, peak
    /// RSS, data on disk, then restart time to the first answered get.
    Load1m,
    /// 1,000,000 revisions written, then one compaction while 16 clients
    /// read: the reads' p99 and max, and the Compact call's duration.
    Compact,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Put1 => "put/1",
            Workload::Put64 => "put/64",
            Workload::Get64 => "get/64",
            Workload::Sget64 => "sget/64",
            Workload::Txn16 => "txn/16",
            Workload::Watch => "watch",
            Workload::Leases => "leases",
            Workload::Load1m => "load1m",
            Workload::Compact => "compact",
        }
    }

    /// The load-generator settings of a throughput workload; None for
    /// those measured otherwise, whose figures go in the second table.
    fn spec(self, duration: Duration) -> Option<Spec> {
        let (op, clients, serializable) = match self {
            Workload::Put1 => (Op::Put, 1, false),
            Workload::Put64 => (Op::Put, 64, false),
            Workload::Get64 => (Op::Get, 64, false),
            Workload::Sget64 => (Op::Get, 64, true),
            Workload::Txn16 => (Op::Txn, 16, false),
            Workload::Watch | Workload::Leases | Workload::Load1m | Workload::Compact => {
                return None
            }
        };
        Some(Spec {
            op,
            clients,
            conns: clients.min(8),
            requests: None,
            duration: Some(duration),
            keyspace: 10_000,
            value_size: 256,
            serializable,
        })
    }

    /// Runs a workload of the second table on `server`.
    async fn measure(
        self,
        server: &mut Server,
        args: &Args,
        bar: &ProgressBar,
    ) -> Result<Vec<Figure>, Error> {
        let duration = Duration::from_secs_f64(args.seconds);
        match self {
            Workload::Watch => watch::run(server, args.watchers, 16, duration).await,
            Workload::Leases => leases::run(server, args.leases, duration).await,
            Workload::Load1m => bulk::load(server, args.keys, bar).await,
            Workload::Compact => bulk::compact(server, args.revisions, bar).await,
            _ => unreachable!("{self:?} is a throughput workload"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    PerSec,
    Ms,
    Secs,
    MB,
    /// CPU seconds used per second of wall time.
    CpuPerSec,
    Count,
}

/// One measured figure of a run, for the second table.
#[derive(Debug, Clone)]
pub struct Figure {
    name: &'static str,
    unit: Unit,
    value: f64,
}

impl Figure {
    pub fn new(name: &'static str, unit: Unit, value: f64) -> Figure {
        Figure { name, unit, value }
    }
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::PerSec => "per second",
        Unit::Ms => "ms",
        Unit::Secs => "s",
        Unit::MB => "MB",
        Unit::CpuPerSec => "CPU seconds per second",
        Unit::Count => "count",
    }
}

fn show(unit: Unit, v: f64) -> String {
    match unit {
        Unit::PerSec => format!("{}/s", thousands(v)),
        Unit::Ms if v >= 1000.0 => format!("{} ms", thousands(v)),
        Unit::Ms => format!("{v:.2} ms"),
        Unit::Secs => format!("{v:.2} s"),
        Unit::MB => format!("{} MB", thousands(v)),
        Unit::CpuPerSec => format!("{v:.2} CPU-s/s"),
        Unit::Count => thousands(v),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Synod,
    Etcd,
}

#[derive(Default)]
struct Runs {
    outcomes: Vec<Outcome>,
    /// Per run, for the workloads of the second table.
    figures: Vec<Vec<Figure>>,
    peak_rss: Vec<u64>,
    disk: Vec<u64>,
}

impl Runs {
    /// The figure called `name`, run by run.
    fn values(&self, name: &str) -> Vec<f64> {
        self.figures
            .iter()
            .flatten()
            .filter(|g| g.name == name)
            .map(|g| g.value)
            .collect()
    }
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
    let sizes: Vec<String> = args
        .workloads
        .iter()
        .filter_map(|w| match w {
            Workload::Watch => Some(format!("watch: {} watchers", args.watchers)),
            Workload::Leases => Some(format!("leases: {}", thousands(args.leases as f64))),
            Workload::Load1m => Some(format!("load1m: {} keys", thousands(args.keys as f64))),
            Workload::Compact => Some(format!(
                "compact: {} revisions",
                thousands(args.revisions as f64)
            )),
            _ => None,
        })
        .collect();
    if !sizes.is_empty() {
        println!("sizes:   {}", sizes.join(", "));
    }
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
                let mut server = Server::start(bin).await?;
                let line = match w.spec(duration) {
                    Some(spec) => {
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
                        runs.figures.push(vec![
                            Figure::new("rate", Unit::PerSec, o.rate),
                            Figure::new("p50", Unit::Ms, o.p50_ms),
                            Figure::new("p99", Unit::Ms, o.p99_ms),
                            Figure::new("errors", Unit::Count, o.errors as f64),
                            Figure::new("peak RSS", Unit::MB, {
                                server.peak_rss().unwrap_or(0) as f64 / 1e6
                            }),
                        ]);
                        runs.outcomes.push(o);
                        line
                    }
                    None => {
                        let figures = w.measure(&mut server, &args, &bar).await?;
                        let shown: Vec<String> = figures
                            .iter()
                            .map(|f| format!("{} {}", f.name, show(f.unit, f.value)))
                            .collect();
                        runs.figures.push(figures);
                        format!(
                            "{:8} {label:5} run {}: {}",
                            w.name(),
                            run + 1,
                            shown.join(", ")
                        )
                    }
                };
                // A hidden bar (output not a terminal) drops its println.
                if bar.is_hidden() {
                    println!("{line}");
                } else {
                    bar.println(line);
                }
                runs.peak_rss.extend(server.peak_rss());
                runs.disk.push(server.disk_usage());
                bar.inc(1);
            }
        }
        table.push((w, synod, etcd));
    }
    bar.finish_and_clear();
    let (first, second): (Vec<_>, Vec<_>) =
        table.iter().partition(|(w, ..)| w.spec(duration).is_some());
    if !first.is_empty() {
        println!();
        println!(
            "| workload | synod | etcd | synod/etcd | p99 synod | p99 etcd | peak RSS synod | peak RSS etcd |"
        );
        println!("|---|---|---|---|---|---|---|---|");
    }
    for (w, s, e) in first {
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
    if !second.is_empty() {
        println!();
        println!("| workload | figure | synod | etcd | synod/etcd |");
        println!("|---|---|---|---|---|");
    }
    for (w, s, e) in second {
        let Some(names) = s.figures.first().or(e.figures.first()) else {
            continue;
        };
        for f in names {
            let (vs, ve) = (median(s.values(f.name)), median(e.values(f.name)));
            // Counts of zero (errors, mostly) have no meaningful ratio.
            let ratio = if ve != 0.0 && vs.is_finite() && ve.is_finite() {
                format!("{:.2}", vs / ve)
            } else {
                "–".to_string()
            };
            println!(
                "| {} | {} | {} | {} | {ratio} |",
                w.name(),
                f.name,
                show(f.unit, vs),
                show(f.unit, ve)
            );
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, json(&args, &table))
            .map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The runs as JSON: one row per workload and figure, with each server's
/// values run by run and their medians.
fn json(args: &Args, table: &[(Workload, Runs, Runs)]) -> String {
    fn string(s: &str) -> String {
        let mut out = String::from('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
    fn number(v: f64) -> String {
        if v.is_finite() {
            format!("{v}")
        } else {
            "null".into()
        }
    }
    let mut rows = Vec::new();
    for (w, s, e) in table {
        let Some(names) = s.figures.first().or(e.figures.first()) else {
            continue;
        };
        for f in names {
            let list = |v: &[f64]| v.iter().map(|&x| number(x)).collect::<Vec<_>>().join(", ");
            let (vs, ve) = (s.values(f.name), e.values(f.name));
            rows.push(format!(
                "    {{\"workload\": {}, \"figure\": {}, \"unit\": {}, \"synod\": [{}], \"etcd\": [{}], \"synod_median\": {}, \"etcd_median\": {}}}",
                string(w.name()),
                string(f.name),
                string(unit_name(f.unit)),
                list(&vs),
                list(&ve),
                number(median(vs.clone())),
                number(median(ve.clone())),
            ));
        }
    }
    format!(
        "{{\n  \"machine\": {},\n  \"synod\": {},\n  \"etcd\": {},\n  \"runs\": {},\n  \"seconds\": {},\n  \"results\": [\n{}\n  ]\n}}\n",
        string(&machine()),
        string(&version(&args.synod)),
        string(&version(&args.etcd)),
        args.runs,
        number(args.seconds),
        rows.join(",\n")
    )
}
