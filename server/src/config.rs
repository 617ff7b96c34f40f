//! Command-line flags. Names and meanings follow etcd's, so an etcd start
//! line (a systemd unit, a test script) starts Synod unchanged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "synod",
    version,
    about = "Synod: an etcd-v3-compatible, Raft-replicated key-value store"
)]
pub struct Config {
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,

    /// Path to the data directory.
    #[arg(long, default_value = "synod.data")]
    pub data_dir: PathBuf,

    /// Comma-separated URLs to listen on for client traffic.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    pub listen_client_urls: String,

    /// Comma-separated client URLs to advertise to the cluster.
    #[arg(long)]
    pub advertise_client_urls: Option<String>,

    /// Comma-separated URLs to listen on for peer traffic.
    #[arg(long, default_value = "http://127.0.0.1:2380")]
    pub listen_peer_urls: String,

    /// Comma-separated peer URLs of this member to advertise to the cluster.
    #[arg(long)]
    pub initial_advertise_peer_urls: Option<String>,

    /// Initial cluster configuration: name1=http://host1:2380,name2=...
    #[arg(long)]
    pub initial_cluster: Option<String>,

    /// "new" for a new cluster, "existing" to join one.
    #[arg(long, default_value = "new")]
    pub initial_cluster_state: String,

    /// Initial cluster token, which keeps distinct clusters' ids apart.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,

    /// Raft log entries between snapshots; older entries are then purged.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_count: u64,

    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,

    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,

    /// Log level: debug, info, warn, error.
    #[arg(long, default_value = "info")]
    pub log_level: String,

    /// Accepted for etcd compatibility; Synod logs one line per event to stderr.
    #[arg(long, hide = true)]
    pub logger: Option<String>,

    /// Threads serving requests, and as many again running watchers
    /// [default: one fewer than the cores, at least one].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,

    /// Microseconds the idle CPUs spin (at the lowest priority) after the
    /// server last did something, instead of halting; 0 turns it off
    /// [default: 200, or 0 under a CPU quota smaller than the CPUs].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub idle_spin_us: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
}

fn split(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// FNV-1a: a stable hash for member and cluster ids, so the same flags give
/// the same ids on every start without storing them.
pub fn fnv64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Parses `http://host:port` into a socket address, resolving names.
pub async fn socket_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let hostport = rest.trim_end_matches('/');
    tokio::net::lookup_host(hostport)
        .await
        .map_err(|e| format!("bad URL {url:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("bad URL {url:?}: no address"))
}

impl Config {
    /// One core is left to the threads outside the runtime that writes use:
    /// the log's flush thread (its fdatasync) and the state machine's sled
    /// writer. A worker for every core made the serial write path hop
    /// between cores, which one client's puts paid for on 2 cores
    /// (BENCHMARKS.md, "The serving threads").
    pub fn worker_threads(&self) -> usize {
        match self.worker_threads {
            Some(n) => n as usize,
            None => std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1))
                .max(1),
        }
    }

    /// etcd's checks of the Raft timing flags, with its messages.
    pub fn check_timing(&self) -> Result<(), String> {
        let (h, e) = (self.heartbeat_interval, self.election_timeout);
        if h == 0 || e < 5 * h {
            return Err(format!(
                "--election-timeout[{e}ms] should be at least as 5 times as --heartbeat-interval[{h}ms]"
            ));
        }
        if e > 50_000 {
            return Err(format!(
                "--election-timeout[{e}ms] is too long, and should be set less than 50000ms"
            ));
        }
        Ok(())
    }

    pub fn client_urls(&self) -> Vec<String> {
        split(&self.listen_client_urls)
    }

    pub fn peer_urls(&self) -> Vec<String> {
        split(&self.listen_peer_urls)
    }

    pub fn advertised_client_urls(&self) -> Vec<String> {
        split(
            self.advertise_client_urls
                .as_deref()
                .unwrap_or(&self.listen_client_urls),
        )
    }

    pub fn advertised_peer_urls(&self) -> Vec<String> {
        split(
            self.initial_advertise_peer_urls
                .as_deref()
                .unwrap_or(&self.listen_peer_urls),
        )
    }

    /// The initial members with their ids; this member's entry comes from
    /// its own flags when --initial-cluster is not given.
    pub fn members(&self) -> Result<Vec<MemberSpec>, String> {
        let initial = match &self.initial_cluster {
            Some(s) => s.clone(),
            None => format!("{}={}", self.name, self.advertised_peer_urls().join(",")),
        };
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for part in split(&initial) {
            let (name, url) = part
                .split_once('=')
                .ok_or_else(|| format!("--initial-cluster: {part:?} is not name=url"))?;
            by_name
                .entry(name.to_string())
                .or_default()
                .push(url.to_string());
        }
        if !by_name.contains_key(&self.name) {
            return Err(format!(
                "--initial-cluster has no member named {:?} (this member's --name)",
                self.name
            ));
        }
        Ok(by_name
            .into_iter()
            .map(|(name, mut peer_urls)| {
                peer_urls.sort();
                let mut parts: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
                parts.push(&self.initial_cluster_token);
                MemberSpec {
                    id: fnv64(&parts),
                    name,
                    peer_urls,
                }
            })
            .collect())
    }

    pub fn cluster_id(&self, members: &[MemberSpec]) -> u64 {
        let ids: Vec<String> = members.iter().map(|m| format!("{:x}", m.id)).collect();
        let mut parts: Vec<&str> = ids.iter().map(String::as_str).collect();
        parts.push(&self.initial_cluster_token);
        fnv64(&parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_etcd_ports() {
        let c = Config::parse_from(["synod"]);
        assert_eq!(c.client_urls(), vec!["http://127.0.0.1:2379"]);
        assert_eq!(c.advertised_peer_urls(), vec!["http://127.0.0.1:2380"]);
        let m = c.members().unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "default");
        // Ids are stable across starts.
        assert_eq!(
            m[0].id,
            Config::parse_from(["synod"]).members().unwrap()[0].id
        );
    }

    #[test]
    fn initial_cluster_must_name_this_member() {
        let c = Config::parse_from([
            "synod",
            "--name",
            "a",
            "--initial-cluster",
            "b=http://h:2380",
        ]);
        assert!(c.members().is_err());
        let c = Config::parse_from([
            "synod",
            "--name",
            "a",
            "--initial-cluster",
            "a=http://h1:2380,b=http://h2:2380",
        ]);
        let m = c.members().unwrap();
        assert_eq!(m.len(), 2);
        assert_ne!(m[0].id, m[1].id);
    }
}
