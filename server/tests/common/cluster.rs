//! A cluster of real members (synod or etcd) on loopback ports, for the
//! replication tests: started with etcd's bootstrap flags, members killed,
//! paused, restarted and cut off from each other by index.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use synod_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use synod_proto::etcdserverpb::StatusRequest;

use super::proxy::Proxy;
use super::{free_port, Server};

pub struct Cluster {
    pub kind: &'static str,
    pub members: Vec<Option<Server>>,
    names: Vec<String>,
    dirs: Vec<PathBuf>,
    /// Each member's client port and advertised peer port.
    ports: Vec<(u16, u16)>,
    /// The port each member listens on for peers: its advertised one, or
    /// the one its proxy forwards to.
    listen_peers: Vec<u16>,
    proxy: Option<Proxy>,
    initial: String,
    extra: Vec<String>,
}

impl Cluster {
    /// Starts `n` members of a new cluster, data under `root`.
    pub fn start(kind: &'static str, n: usize, root: &Path) -> Cluster {
        Self::start_with(kind, n, root, &[])
    }

    /// Starts `n` members with extra flags for each.
    pub fn start_with(kind: &'static str, n: usize, root: &Path, extra: &[&str]) -> Cluster {
        Self::start_inner(kind, n, root, extra, false)
    }

    /// Starts `n` members whose peer traffic goes through proxies, so that
    /// `isolate` can cut one off from the others.
    pub fn start_proxied(kind: &'static str, n: usize, root: &Path) -> Cluster {
        Self::start_inner(kind, n, root, &[], true)
    }

    fn start_inner(
        kind: &'static str,
        n: usize,
        root: &Path,
        extra: &[&str],
        proxied: bool,
    ) -> Cluster {
        let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let listen_peers: Vec<u16> = if proxied {
            (0..n).map(|_| free_port()).collect()
        } else {
            ports.iter().map(|p| p.1).collect()
        };
        let proxy = proxied.then(|| {
            let routes: Vec<(u16, u16)> = ports
                .iter()
                .map(|p| p.1)
                .zip(listen_peers.clone())
                .collect();
            Proxy::start(&routes)
        });
        let initial = names
            .iter()
            .zip(&ports)
            .map(|(name, (_, peer))| format!("{name}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let dirs = names.iter().map(|n| root.join(n)).collect();
        let mut c = Cluster {
            kind,
            members: Vec::new(),
            names,
            dirs,
            ports,
            listen_peers,
            proxy,
            initial,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        // etcd's members wait for each other at start, so none may be
        // waited for alone: start all, then wait for each.
        let started: Vec<Server> = (0..n).map(|i| c.spawn(i)).collect();
        c.members = started
            .into_iter()
            .map(|s| Some(tokio::task::block_in_place(|| Server::ready(s))))
            .collect();
        c
    }

    /// Starts a member that `member add` added, with etcd's flags for
    /// joining a running cluster (not through a proxy); returns its index.
    pub fn join(&mut self, name: &str, ports: (u16, u16)) -> usize {
        self.names.push(name.to_string());
        self.dirs.push(self.dirs[0].with_file_name(name));
        self.ports.push(ports);
        self.listen_peers.push(ports.1);
        self.initial = format!("{},{name}=http://127.0.0.1:{}", self.initial, ports.1);
        let i = self.names.len() - 1;
        let extra: Vec<&str> = self
            .extra
            .iter()
            .map(String::as_str)
            .chain(["--initial-cluster-state=existing"])
            .collect();
        let s = Server::member(self.kind, name, &self.dirs[i], ports, &self.initial, &extra);
        self.members
            .push(Some(tokio::task::block_in_place(|| Server::ready(s))));
        i
    }

    /// Waits for member `i` to end by itself (as a removed member does).
    pub fn exited_within(&mut self, i: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(m) = self.members[i].as_mut() {
                if let Ok(Some(_)) = m.child.try_wait() {
                    self.members[i] = None;
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn spawn(&self, i: usize) -> Server {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let s = Server::member_behind(
            self.kind,
            &self.names[i],
            &self.dirs[i],
            (self.ports[i].0, self.listen_peers[i]),
            self.ports[i].1,
            &self.initial,
            &extra,
        );
        if let Some(proxy) = &self.proxy {
            proxy.started(i, s.child.id());
        }
        s
    }

    fn proxy(&self) -> &Proxy {
        self.proxy
            .as_ref()
            .expect("a cluster started with start_proxied")
    }

    /// Cuts member `i` off from every other member, both ways, as a network
    /// partition would: its peer connections drop, and new ones hang.
    pub fn isolate(&self, i: usize) {
        self.proxy().isolate(i);
    }

    /// Ends every cut: the members connect to each other again.
    pub fn heal(&self) {
        self.proxy().heal();
    }

    /// SIGSTOP (`cont` false) or SIGCONT: a member that hangs, then wakes.
    pub fn signal(&self, i: usize, cont: bool) {
        let pid = self.members[i].as_ref().expect("running").child.id();
        let sig = if cont { "-CONT" } else { "-STOP" };
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .map(|s| s.success());
        assert_eq!(ok.ok(), Some(true), "kill {sig} {pid}");
    }

    /// Starts member `i` again on its data and ports.
    pub fn restart(&mut self, i: usize) {
        self.members[i] = None;
        let s = self.spawn(i);
        self.members[i] = Some(tokio::task::block_in_place(|| Server::ready(s)));
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(mut m) = self.members[i].take() {
            m.kill9();
        }
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i].0)
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i].0)
    }

    /// Every member's client endpoint, comma-separated, as etcdctl takes them.
    pub fn endpoints(&self) -> String {
        (0..self.names.len())
            .map(|i| self.endpoint(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The index of the member that leads, once the running members agree
    /// on one; panics after `within`.
    pub async fn leader(&self, within: Duration) -> usize {
        let running: Vec<usize> = (0..self.len())
            .filter(|i| self.members[*i].is_some())
            .collect();
        self.leader_among(&running, within).await
    }

    /// The index of the member that leads, once `members` (running) agree
    /// on one of them; panics after `within`.
    pub async fn leader_among(&self, members: &[usize], within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let mut seen = Vec::new();
            for &i in members {
                let Ok(mut c) = MaintenanceClient::connect(self.url(i)).await else {
                    continue;
                };
                if let Ok(s) = c.status(StatusRequest {}).await {
                    let s = s.into_inner();
                    let me = s.header.map_or(0, |h| h.member_id);
                    seen.push((i, me, s.leader));
                }
            }
            let leaders: Vec<usize> = seen
                .iter()
                .filter(|(_, me, leader)| me == leader)
                .map(|(i, _, _)| *i)
                .collect();
            let agreed = seen
                .iter()
                .all(|(_, _, l)| seen.first().map(|f| f.2) == Some(*l) && *l != 0);
            if leaders.len() == 1 && agreed {
                return leaders[0];
            }
            assert!(
                Instant::now() < deadline,
                "{}: no agreed leader among members {members:?} within {within:?}: {seen:?}",
                self.kind
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
