//! Workloads on a big store: loading many keys (memory, disk, restart
//! time) and compacting many revisions while clients read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use synod_proto::etcdserverpb::{CompactionRequest, RangeRequest};

use crate::compare::{Figure, Unit};
use crate::load::{self, Error};
use crate::server::Server;

const VALUE_SIZE: usize = 256;

/// Writes `puts` puts over `keys` keys, showing the count on the bar.
/// Returns the puts per second.
async fn write(
    server: &Server,
    puts: u64,
    keys: u64,
    bar: &ProgressBar,
    what: &str,
) -> Result<f64, Error> {
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let write = load::write(&server.endpoint, puts, keys, VALUE_SIZE, issued.clone());
    tokio::pin!(write);
    let msg = bar.message();
    loop {
        tokio::select! {
            r = &mut write => {
                r?;
                break;
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                let n = issued.load(Ordering::Relaxed).min(puts);
                bar.set_message(format!("{msg}: {n}/{puts} {what}"));
            }
        }
    }
    bar.set_message(msg);
    Ok(puts as f64 / started.elapsed().as_secs_f64())
}

/// Loads `keys` keys of 256-byte values, then reads the server's peak RSS
/// and bytes on disk, restarts it and times the restart.
pub async fn load(server: &mut Server, keys: u64, bar: &ProgressBar) -> Result<Vec<Figure>, Error> {
    let rate = write(server, keys, keys, bar, "keys").await?;
    let rss = server.peak_rss().ok_or("no VmHWM in /proc")?;
    let disk = server.disk_usage();
    let restart = server.restart().await?;
    let rss_after = server.peak_rss().ok_or("no VmHWM in /proc")?;
    Ok(vec![
        Figure::new("load", Unit::PerSec, rate),
        Figure::new("peak RSS", Unit::MB, rss as f64 / 1e6),
        Figure::new("data on disk", Unit::MB, disk as f64 / 1e6),
        Figure::new("restart to first get", Unit::Secs, restart.as_secs_f64()),
        Figure::new("peak RSS after restart", Unit::MB, rss_after as f64 / 1e6),
    ])
}

/// Readers running during the compaction, and the keys they read.
const READERS: usize = 16;
const KEYS: u64 = 1000;

/// Writes `revisions` puts over 1,000 keys, then, with 16 clients doing
/// linearizable gets throughout, compacts to the latest revision
/// (`physical`, so the call returns once the old revisions are deleted on
/// both servers). Reports the gets that were in flight at any time from
/// sending the Compact until 1 s after it returned.
pub async fn compact(
    server: &Server,
    revisions: u64,
    bar: &ProgressBar,
) -> Result<Vec<Figure>, Error> {
    let write_rate = write(server, revisions, KEYS, bar, "revisions").await?;
    let clients = load::connect(&server.endpoint, READERS).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let mut readers = Vec::new();
    for (r, mut kv) in clients.into_iter().enumerate() {
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            // (start, end) of each get in µs since `epoch`, and failures.
            let (mut gets, mut errors) = (Vec::new(), 0u64);
            let mut i = r as u64;
            while !stop.load(Ordering::Relaxed) {
                let start = epoch.elapsed().as_micros() as u64;
                let ok = kv
                    .range(RangeRequest {
                        key: load::key(i % KEYS),
                        ..Default::default()
                    })
                    .await
                    .is_ok();
                gets.push((start, epoch.elapsed().as_micros() as u64));
                errors += u64::from(!ok);
                i += READERS as u64;
            }
            (gets, errors)
        }));
    }
    // A second of reads before, for comparison.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut kv = load::connect(&server.endpoint, 1).await?.remove(0);
    let head = kv.range(RangeRequest {
        key: load::key(0),
        ..Default::default()
    });
    let head = head.await?.into_inner().header.map_or(0, |h| h.revision);
    let sent = epoch.elapsed().as_micros() as u64;
    let compacted = kv.compact(CompactionRequest {
        revision: head,
        physical: true,
    });
    let compact_error = u64::from(compacted.await.is_err());
    let returned = epoch.elapsed().as_micros() as u64;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);

    let (mut during, mut before, mut errors) = (Vec::new(), Vec::new(), 0u64);
    let window_end = returned + 1_000_000;
    for r in readers {
        let (gets, e) = r.await?;
        errors += e;
        for (start, end) in gets {
            let lat = (end - start) as u32;
            if end < sent {
                before.push(lat);
            } else if start <= window_end {
                during.push(lat);
            }
        }
    }
    during.sort_unstable();
    before.sort_unstable();
    Ok(vec![
        Figure::new("write", Unit::PerSec, write_rate),
        Figure::new("compact call", Unit::Ms, (returned - sent) as f64 / 1000.0),
        Figure::new("get p99 during", Unit::Ms, load::percentile(&during, 0.99)),
        Figure::new("get max during", Unit::Ms, load::percentile(&during, 1.0)),
        Figure::new("get p99 before", Unit::Ms, load::percentile(&before, 0.99)),
        Figure::new("gets during", Unit::Count, during.len() as f64),
        Figure::new("errors", Unit::Count, (errors + compact_error) as f64),
    ])
}
