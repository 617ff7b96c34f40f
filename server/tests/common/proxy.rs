//! TCP proxies in front of the members' peer ports, so a test can cut
//! members off from each other as a network partition would.
//!
//! Member `i` listens for peers on a port of its own but advertises the
//! proxy's port for it, so every peer connection to it goes through the
//! proxy. All connections come from 127.0.0.1, so the proxy tells which
//! member opened one by the process that owns the other end of it
//! (/proc/net/tcp, then /proc/PID/fd). A cut pair's connections are dropped,
//! and new ones are accepted and then held without a byte forwarded, so
//! requests hang as they do across a real partition, rather than fail fast;
//! once healed they are closed and the members connect again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

pub struct Proxy {
    shared: Arc<Shared>,
    accepting: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Bumped whenever cuts are lifted: held connections look again.
    healed: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// Each member's process id, once started.
    pids: Vec<Option<u32>>,
    /// The port each member's proxy listens on (its advertised peer port).
    ports: Vec<u16>,
    /// Pairs of members that cannot reach each other, smaller index first.
    cut: BTreeSet<(usize, usize)>,
    /// Connections being forwarded.
    links: Vec<Link>,
}

/// A forwarded connection from member `from` (if known; the connection
/// came from 127.0.0.1:`port`) to member `to`.
struct Link {
    from: Option<usize>,
    port: u16,
    to: usize,
    task: AbortHandle,
}

impl State {
    fn is_cut(&self, from: Option<usize>, to: usize) -> bool {
        from.is_some_and(|f| self.cut.contains(&(f.min(to), f.max(to))))
    }

    /// The member that owns the connecting end of a connection from
    /// 127.0.0.1:`port` to member `to`'s proxy, or why none was found.
    fn source(&self, port: u16, to: usize) -> Result<usize, String> {
        let inode = socket_inode(port, self.ports[to]).ok_or("no such socket")?;
        let link = format!("socket:[{inode}]");
        self.pids
            .iter()
            .position(|pid| pid.is_some_and(|pid| owns(pid, &link)))
            .ok_or_else(|| format!("no member has {link} open"))
    }
}

impl Proxy {
    /// One proxy per member: `routes[i]` is (the port advertised for member
    /// `i`, the port it listens on for peers).
    pub fn start(routes: &[(u16, u16)]) -> Proxy {
        let state = State {
            pids: vec![None; routes.len()],
            ports: routes.iter().map(|r| r.0).collect(),
            ..Default::default()
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            healed: tokio::sync::watch::channel(0).0,
        });
        let accepting = routes
            .iter()
            .enumerate()
            .map(|(to, &(port, target))| {
                let listener = std::net::TcpListener::bind(("127.0.0.1", port))
                    .unwrap_or_else(|e| panic!("proxy on port {port}: {e}"));
                listener.set_nonblocking(true).unwrap();
                let listener = TcpListener::from_std(listener).unwrap();
                tokio::spawn(accept(listener, to, target, shared.clone()))
            })
            .collect();
        Proxy { shared, accepting }
    }

    /// Member `i` runs as process `pid`.
    pub fn started(&self, i: usize, pid: u32) {
        self.shared.state.lock().unwrap().pids[i] = Some(pid);
    }

    /// Cuts member `i` off from every other member, both ways.
    pub fn isolate(&self, i: usize) {
        let mut state = self.shared.state.lock().unwrap();
        for j in (0..state.ports.len()).filter(|j| *j != i) {
            state.cut.insert((i.min(j), i.max(j)));
        }
        let mut links = std::mem::take(&mut state.links);
        for link in &mut links {
            if link.from.is_none() && !link.task.is_finished() {
                // Opened before its member's process id was known?
                link.from = state
                    .source(link.port, link.to)
                    .map_err(|e| eprintln!("proxy: a link to member {}: {e}", link.to))
                    .ok();
            }
        }
        links.retain(|link| {
            let cut = state.is_cut(link.from, link.to);
            if cut {
                link.task.abort();
            }
            !cut && !link.task.is_finished()
        });
        state.links = links;
    }

    /// Every member reaches every other again.
    pub fn heal(&self) {
        self.shared.state.lock().unwrap().cut.clear();
        self.shared.healed.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for task in &self.accepting {
            task.abort();
        }
        for link in self.shared.state.lock().unwrap().links.drain(..) {
            link.task.abort();
        }
        self.heal();
    }
}

async fn accept(listener: TcpListener, to: usize, target: u16, shared: Arc<Shared>) {
    while let Ok((inbound, addr)) = listener.accept().await {
        let mut state = shared.state.lock().unwrap();
        // Who opened it matters only across a cut (and one opened by a
        // member that is being stopped may be gone already).
        let from = state
            .source(addr.port(), to)
            .map_err(|e| {
                if !state.cut.is_empty() {
                    eprintln!("proxy: connection from {addr} to member {to}: {e}")
                }
            })
            .ok();
        if state.is_cut(from, to) {
            tokio::spawn(hold(inbound, from, to, shared.clone()));
            continue;
        }
        let task = tokio::spawn(forward(inbound, target)).abort_handle();
        state.links.retain(|link| !link.task.is_finished());
        state.links.push(Link {
            from,
            port: addr.port(),
            to,
            task,
        });
    }
}

async fn forward(mut inbound: TcpStream, target: u16) {
    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await {
        // Without these, Nagle's algorithm holds small messages back for
        // the other side's delayed acknowledgement, tens of milliseconds.
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    }
}

/// Keeps a connection across a cut open, unread, until the cut is healed.
async fn hold(inbound: TcpStream, from: Option<usize>, to: usize, shared: Arc<Shared>) {
    let mut healed = shared.healed.subscribe();
    loop {
        let cut = shared.state.lock().unwrap().is_cut(from, to);
        if !cut || healed.changed().await.is_err() {
            break;
        }
    }
    drop(inbound);
}

/// The inode of the socket connected from 127.0.0.1:`local` to
/// 127.0.0.1:`remote`, from the kernel's table of IPv4 TCP sockets (which
/// prints an address as its 32 bits in host order, then the port, in hex).
fn socket_inode(local: u16, remote: u16) -> Option<u64> {
    let ip = u32::from_ne_bytes([127, 0, 0, 1]);
    let (local, remote) = (
        format!("{ip:08X}:{local:04X}"),
        format!("{ip:08X}:{remote:04X}"),
    );
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()) {
            // 0: closed by its process already.
            fields.get(9)?.parse().ok().filter(|inode| *inode != 0)
        } else {
            None
        }
    })
}

/// Whether process `pid` has the socket `link` (`socket:[INODE]`) open.
fn owns(pid: u32, link: &str) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == link))
}
