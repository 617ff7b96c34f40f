//! Starts real servers (synod, etcd) on free loopback ports for end-to-end
//! tests, and stops them when dropped.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use synod_proto::etcdserverpb::watch_client::WatchClient;
use synod_proto::etcdserverpb::watch_request::RequestUnion;
use synod_proto::etcdserverpb::{StatusRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use tonic::transport::Channel;

pub mod cluster;
pub mod proxy;

/// A port nothing listens on, below Linux's ephemeral range (32768 and up):
/// a port the kernel handed out as free could be taken by an outgoing
/// connection of a test before the server binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id() * 7919;
    for _ in 0..10_000 {
        let n = start.wrapping_add(NEXT.fetch_add(1, Ordering::SeqCst));
        let port = 20_000 + (n % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port")
}

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub peer_port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    kind: &'static str,
}

impl Server {
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts synod with its data in `dir` (kept across restarts).
    pub fn synod(dir: &Path) -> Server {
        Self::synod_on(dir, free_port(), free_port())
    }

    /// Starts synod on given ports: a restart reuses the ports it had.
    pub fn synod_on(dir: &Path, port: u16, peer_port: u16) -> Server {
        Self::synod_with(dir, port, peer_port, &[])
    }

    /// Starts synod with extra flags.
    pub fn synod_with(dir: &Path, port: u16, peer_port: u16, extra: &[&str]) -> Server {
        Self::synod_env(dir, port, peer_port, extra, &[])
    }

    /// Starts `program` (a wrapper that execs synod) with synod's flags.
    pub fn synod_program(program: &Path, dir: &Path, extra: &[&str]) -> Server {
        Self::spawn(
            "synod",
            &program.display().to_string(),
            dir,
            free_port(),
            free_port(),
            extra,
            &[],
        )
    }

    /// Starts synod with extra flags and environment variables.
    pub fn synod_env(
        dir: &Path,
        port: u16,
        peer_port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Self::spawn(
            "synod",
            env!("CARGO_BIN_EXE_synod"),
            dir,
            port,
            peer_port,
            extra,
            env,
        )
    }

    /// Starts a real etcd with the same flags.
    pub fn etcd(dir: &Path) -> Server {
        Self::etcd_with(dir, &[])
    }

    /// Starts a real etcd with extra flags.
    pub fn etcd_with(dir: &Path, extra: &[&str]) -> Server {
        Self::spawn("etcd", "etcd", dir, free_port(), free_port(), extra, &[])
    }

    fn spawn(
        kind: &'static str,
        program: &str,
        dir: &Path,
        port: u16,
        peer_port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut flags = Self::flags("n1", dir, port, peer_port, peer_port);
        flags.push(format!("--initial-cluster=n1=http://127.0.0.1:{peer_port}"));
        Self::ready(Self::launch(
            kind, program, dir, port, peer_port, &flags, extra, env,
        ))
    }

    /// Starts one member of a cluster without waiting for it (etcd members
    /// answer only once a quorum is up; see `ready`): `initial_cluster` is
    /// etcd's `name=peer-url,...`.
    pub fn member(
        kind: &'static str,
        name: &str,
        dir: &Path,
        (port, peer_port): (u16, u16),
        initial_cluster: &str,
        extra: &[&str],
    ) -> Server {
        Self::member_behind(
            kind,
            name,
            dir,
            (port, peer_port),
            peer_port,
            initial_cluster,
            extra,
        )
    }

    /// Like `member`, but it advertises `advertised_peer` (where a proxy
    /// listens) as its peer port while it listens on `ports.1`.
    pub fn member_behind(
        kind: &'static str,
        name: &str,
        dir: &Path,
        (port, peer_port): (u16, u16),
        advertised_peer: u16,
        initial_cluster: &str,
        extra: &[&str],
    ) -> Server {
        let program = match kind {
            "etcd" => "etcd",
            _ => env!("CARGO_BIN_EXE_synod"),
        };
        let mut flags = Self::flags(name, dir, port, peer_port, advertised_peer);
        flags.push(format!("--initial-cluster={initial_cluster}"));
        Self::launch(kind, program, dir, port, peer_port, &flags, extra, &[])
    }

    #[allow(clippy::too_many_arguments)]
    fn launch(
        kind: &'static str,
        program: &str,
        dir: &Path,
        port: u16,
        peer_port: u16,
        flags: &[String],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let log = dir.with_extension("log");
        let child = Command::new(program)
            .args(flags)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file(&log))
            .spawn()
            .unwrap_or_else(|e| panic!("start {kind} (run scripts/setup): {e}"));
        Server {
            child,
            port,
            peer_port,
            dir: dir.to_path_buf(),
            log,
            kind,
        }
    }

    fn flags(
        name: &str,
        dir: &Path,
        port: u16,
        peer_port: u16,
        advertised_peer: u16,
    ) -> Vec<String> {
        let client = format!("http://127.0.0.1:{port}");
        vec![
            format!("--name={name}"),
            format!("--data-dir={}", dir.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{advertised_peer}"),
        ]
    }

    /// Waits until the server answers a Status call (a cluster member
    /// answers it before a leader is elected).
    pub fn ready(mut s: Server) -> Server {
        let deadline = Instant::now() + Duration::from_secs(20);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("{} exited with {status}: {}", s.kind, s.log_text());
            }
            let url = s.url();
            let ok = rt.block_on(async {
                let Ok(mut c) = MaintenanceClient::connect(url).await else {
                    return false;
                };
                c.status(StatusRequest {}).await.is_ok()
            });
            if ok {
                return s;
            }
            if Instant::now() > deadline {
                panic!("{} did not become ready: {}", s.kind, s.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits for the process to end: a clean shutdown.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    pub async fn kv(&self) -> KvClient<Channel> {
        KvClient::connect(self.url()).await.expect("connect")
    }

    pub fn etcdctl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        etcdctl(&self.endpoint(), args, stdin)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        // A failed test shows what the server logged last, so a failure in
        // CI can be read without running it again.
        if std::thread::panicking() {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL)..];
            eprintln!(
                "--- last {} lines of {} ({}) ---\n{}",
                tail.len(),
                self.kind,
                self.log.display(),
                tail.join("\n")
            );
        }
    }
}

/// How many of a server's last log lines a failed test prints.
const LOG_TAIL: usize = 80;

fn log_file(path: &Path) -> Stdio {
    std::fs::File::create(path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

pub fn etcdctl(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=5s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdctl (run scripts/setup)");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("etcdctl output")
}

/// Opens a watch stream with one create request; the sender keeps the
/// stream open while it lives.
pub async fn open_watch(
    url: String,
    create: WatchCreateRequest,
) -> (
    tokio::sync::mpsc::Sender<WatchRequest>,
    tonic::Streaming<WatchResponse>,
) {
    // etcd replays history in responses of up to 1,000 revisions, far past
    // gRPC's default 4 MiB; its own client lifts the limit, so this does.
    let mut client = WatchClient::connect(url)
        .await
        .unwrap()
        .max_decoding_message_size(usize::MAX);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(create)),
    })
    .await
    .unwrap();
    let stream = client
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, stream)
}
