//! A synod or etcd server started for one benchmark run: a fresh data
//! directory, free loopback ports, etcd's single-member flags (which synod
//! takes too), and what the workloads read from the outside: peak memory,
//! CPU time, bytes on disk, and the time a restart takes.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use synod_proto::etcdserverpb::RangeRequest;

use crate::load::{self, Error};

pub struct Server {
    child: Child,
    bin: PathBuf,
    args: Vec<String>,
    pub endpoint: String,
    dir: tempfile::TempDir,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Server {
    /// Starts a fresh server and waits until it answers a get.
    pub async fn start(bin: &Path) -> Result<Server, Error> {
        let dir = tempfile::Builder::new().prefix("synod-bench").tempdir()?;
        let (port, peer) = (free_port()?, free_port()?);
        let client = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer}");
        let args = vec![
            "--name=n1".to_string(),
            format!("--data-dir={}", dir.path().join("data").display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=n1={peer}"),
        ];
        let child = spawn(bin, &args, dir.path())?;
        let mut server = Server {
            child,
            bin: bin.to_path_buf(),
            args,
            endpoint: format!("127.0.0.1:{port}"),
            dir,
        };
        server.ready(Duration::from_secs(30)).await?;
        Ok(server)
    }

    /// Waits until the server answers a linearizable get.
    async fn ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("{} exited with {status}", self.bin.display()).into());
            }
            if let Ok(mut c) = load::connect(&self.endpoint, 1).await {
                let ready = c[0]
                    .range(RangeRequest {
                        key: b"ready".to_vec(),
                        ..Default::default()
                    })
                    .await;
                if ready.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not start", self.bin.display()).into());
            }
            // Short, since restart times are measured through this loop.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the server with SIGTERM, as an init system would, waits for it
    /// to exit, starts it again on the same data directory and returns the
    /// time from the spawn to its first answered linearizable get.
    pub async fn restart(&mut self) -> Result<Duration, Error> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status()?;
        if !status.success() {
            return Err(format!("kill -TERM {pid} failed").into());
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                return Err(format!("{} ignored SIGTERM for 120 s", self.bin.display()).into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let spawned = Instant::now();
        self.child = spawn(&self.bin, &self.args, self.dir.path())?;
        self.ready(Duration::from_secs(600)).await?;
        Ok(spawned.elapsed())
    }

    /// The server's peak resident memory so far, in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// CPU time (user and system, all threads) the server has used so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(&self.child.id().to_string())
    }

    /// CPU time synod's idle spinners (threads `synod-warm-N`, started by
    /// `--idle-spin-us`) have used so far: time the CPUs would otherwise have
    /// spent halted. Zero for etcd.
    pub fn spin_time(&self) -> Duration {
        let pid = self.child.id();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Duration::ZERO;
        };
        tasks
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.starts_with("synod-warm"))
            })
            .filter_map(|t| cpu_time(&format!("{pid}/task/{}", t.file_name().to_string_lossy())))
            .sum()
    }

    /// Bytes the data directory occupies on disk.
    pub fn disk_usage(&self) -> u64 {
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

/// CPU time (user and system, all threads) process `pid` (or "self") has
/// used so far.
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may contain spaces; the fields after
    // it start with the state (field 3), so utime (field 14) and stime (15)
    // are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / clock_ticks(),
    ))
}

/// CPU time used by the server and by this load generator from `start`
/// until `stop`, in CPU seconds per wall-clock second.
pub struct CpuMeter {
    server: Duration,
    spin: Duration,
    bench: Duration,
}

/// What a `CpuMeter` measured, in CPU seconds per second.
pub struct CpuUse {
    /// All the server's threads.
    pub server: f64,
    /// The part of `server` that synod's idle spinners used.
    pub spinning: f64,
    pub bench: f64,
}

impl CpuMeter {
    pub fn start(server: &Server) -> Result<CpuMeter, Error> {
        Ok(CpuMeter {
            server: server.cpu_time().ok_or("no CPU time in /proc")?,
            spin: server.spin_time(),
            bench: cpu_time("self").ok_or("no CPU time in /proc")?,
        })
    }

    /// CPU seconds per second over `elapsed`.
    pub fn stop(&self, server: &Server, elapsed: Duration) -> Result<CpuUse, Error> {
        let s = server.cpu_time().ok_or("no CPU time in /proc")? - self.server;
        let spin = server.spin_time().saturating_sub(self.spin);
        let b = cpu_time("self").ok_or("no CPU time in /proc")? - self.bench;
        let secs = elapsed.as_secs_f64();
        Ok(CpuUse {
            server: s.as_secs_f64() / secs,
            spinning: spin.as_secs_f64() / secs,
            bench: b.as_secs_f64() / secs,
        })
    }
}

fn spawn(bin: &Path, args: &[String], dir: &Path) -> Result<Child, Error> {
    // Appended to, so a restarted server's log follows the first one's.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))?;
    Ok(Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("start {}: {e}", bin.display()))?)
}

/// Clock ticks per second of /proc's CPU times (USER_HZ), asked of getconf
/// since the bench links no libc binding; 100 on every common Linux.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
