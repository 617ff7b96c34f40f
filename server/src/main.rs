use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Parser;
use openraft::BasicNode;
use synod::api::{self, MAX_RECV_BYTES};
use synod::config::{socket_addr, Config};
use synod::raft::{Members, Node, Options};
use synod_proto::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use synod_proto::synodpb::peer_server::PeerServer;
use synod_proto::v3electionpb::election_server::ElectionServer;
use synod_proto::v3lockpb::lock_server::LockServer;
use tracing_subscriber::EnvFilter;

// Every request allocates (protobuf messages, sled nodes, h2 frames); glibc's
// malloc was a sixth of the server's CPU time under 64 concurrent writers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Streams a peer may open and reset before this member has read them: a
/// leader's heartbeats (every 100 ms by default) to a member paused for over
/// a minute, while still a bound against a rapid-reset flood on the peer
/// port.
const PEER_PENDING_RESETS: usize = 1_000;

fn main() -> ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,synod={}", config.log_level)));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(false)
        .init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(config.worker_threads()).enable_all();
    if let Some(warm) = synod::warm::Warm::start(config.idle_spin_us) {
        let w = warm.clone();
        builder
            .on_thread_park(move || w.parking())
            .on_thread_unpark(move || warm.woke());
    }
    // The watchers' own runtime: see mvcc/delivery.rs.
    let mut watch_builder = tokio::runtime::Builder::new_multi_thread();
    watch_builder
        .worker_threads(config.worker_threads())
        .thread_name("synod-watch")
        .enable_all();
    let (rt, watchers) = match builder
        .build()
        .and_then(|rt| Ok((rt, watch_builder.build()?)))
    {
        Ok(both) => both,
        Err(e) => {
            eprintln!("synod: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(config, watchers.handle().clone())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    config: Config,
    watchers: tokio::runtime::Handle,
) -> Result<(), Box<dyn std::error::Error>> {
    config.check_timing()?;
    let specs = config.members()?;
    let me = specs
        .iter()
        .find(|m| m.name == config.name)
        .ok_or("this member is missing from --initial-cluster")?;
    let bootstrap = match config.initial_cluster_state.as_str() {
        "new" => true,
        "existing" => false,
        other => {
            return Err(format!(
                "--initial-cluster-state must be \"new\" or \"existing\", not {other:?}"
            )
            .into())
        }
    };
    let nodes: BTreeMap<u64, BasicNode> = specs
        .iter()
        .map(|m| (m.id, BasicNode::new(m.peer_urls.join(","))))
        .collect();
    // A member joining a running cluster takes the id `member add` gave it,
    // found by its peer URLs in the cluster's member list (as etcd does);
    // once it has data, its stored identity rules.
    let (id, cluster_id) = if !bootstrap && !config.data_dir.join("db").exists() {
        join_identity(&config, &specs).await?
    } else {
        (me.id, config.cluster_id(&specs))
    };
    let members = Members {
        id,
        cluster_id,
        nodes,
    };
    let opts = Options {
        snapshot_count: config.snapshot_count,
        bootstrap,
        heartbeat_interval: config.heartbeat_interval,
        election_timeout: config.election_timeout,
    };
    let node = Node::start(&config.data_dir, members, opts).await?;
    let me_id = node.id;
    tokio::spawn(exit_when_removed(node.clone()));

    let lease_ids = std::sync::Arc::new(api::lease::LeaseIds::new(me_id));
    let mut servers = tokio::task::JoinSet::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for url in config.peer_urls() {
        let incoming = listen(&url).await?;
        let router = tonic::transport::Server::builder()
            // A member that was paused finds, on waking, every heartbeat the
            // leader gave up on meanwhile as a stream opened and then reset.
            // Past h2's default of 20 it answers GOAWAY, which also broke
            // the snapshot that was bringing it up to date.
            .http2_max_pending_accept_reset_streams(Some(PEER_PENDING_RESETS))
            .add_service(
                PeerServer::new(api::peer::PeerService::new(node.clone()))
                    .max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX),
            );
        tracing::info!(%url, "serving peers");
        let mut stop = stop_rx.clone();
        servers.spawn(router.serve_with_incoming_shutdown(incoming, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
    }
    // Like etcd, serve clients only once this member's name and client URLs
    // are published, which takes a leader: a member counts as started from
    // then on, and nothing it answers can change under a client because of
    // its own start.
    let attrs = synod_proto::synodpb::MemberAttributes {
        id: me_id,
        name: config.name.clone(),
        client_urls: config.advertised_client_urls(),
    };
    tokio::select! {
        _ = publish(&node, attrs) => {}
        _ = shutdown_signal() => {
            let _ = node.raft.shutdown().await;
            return Ok(());
        }
    }
    for url in config.client_urls() {
        let incoming = listen(&url).await?;
        let router = tonic::transport::Server::builder()
            .layer(tower::util::MapResponseLayer::new(api::etcd_limit_status))
            .add_service(
                KvServer::new(api::kv::KvService::new(node.clone()))
                    .max_decoding_message_size(MAX_RECV_BYTES),
            )
            .add_service(
                WatchServer::new(api::watch::WatchService::new(
                    node.clone(),
                    watchers.clone(),
                ))
                .max_decoding_message_size(MAX_RECV_BYTES),
            )
            .add_service(
                LeaseServer::new(api::lease::LeaseService::new(
                    node.clone(),
                    lease_ids.clone(),
                ))
                .max_decoding_message_size(MAX_RECV_BYTES),
            )
            .add_service(LockServer::new(api::lock::LockService::new(
                node.clone(),
                lease_ids.clone(),
            )))
            .add_service(ElectionServer::new(api::election::ElectionService::new(
                node.clone(),
                lease_ids.clone(),
            )))
            .add_service(AuthServer::new(api::auth::AuthService::new(node.clone())))
            .add_service(ClusterServer::new(api::cluster::ClusterService::new(
                node.clone(),
            )))
            .add_service(
                MaintenanceServer::new(api::maintenance::MaintenanceService::new(node.clone()))
                    .max_encoding_message_size(usize::MAX),
            );
        tracing::info!(%url, "serving client requests");
        let mut stop = stop_rx.clone();
        servers.spawn(router.serve_with_incoming_shutdown(incoming, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
    }
    tracing::info!(name = %config.name, member = format!("{:x}", me_id), data_dir = %config.data_dir.display(), "synod ready");
    tokio::select! {
        _ = shutdown_signal() => {}
        // A listener that ends on its own has failed.
        Some(res) = servers.join_next() => res??,
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    // Unary requests in flight finish; streams (watches, keep-alives,
    // observers) never end by themselves, so after a short grace they are
    // cut, as etcd closes them when it stops.
    let grace = tokio::time::sleep(SHUTDOWN_GRACE);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            res = servers.join_next() => match res {
                Some(res) => res??,
                None => break,
            },
            _ = &mut grace => {
                servers.abort_all();
                break;
            }
        }
    }
    let _ = node.raft.shutdown().await;
    node.db.flush_async().await?;
    Ok(())
}

/// Asks the members named in --initial-cluster for the member list and
/// finds this member in it by its advertised peer URLs.
async fn join_identity(
    config: &Config,
    specs: &[synod::config::MemberSpec],
) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    use synod_proto::etcdserverpb::MemberListRequest;
    use synod_proto::synodpb::peer_client::PeerClient;
    let mut mine = config.advertised_peer_urls();
    mine.sort();
    let others: Vec<&String> = specs
        .iter()
        .filter(|m| m.name != config.name)
        .flat_map(|m| &m.peer_urls)
        .collect();
    for _ in 0..20 {
        for url in &others {
            let Ok(mut peer) = PeerClient::connect(url.to_string()).await else {
                continue;
            };
            let Ok(list) = peer.member_list(MemberListRequest::default()).await else {
                continue;
            };
            let list = list.into_inner();
            let cluster_id = list.header.map_or(0, |h| h.cluster_id);
            let found = list.members.iter().find(|m| {
                let mut urls = m.peer_ur_ls.clone();
                urls.sort();
                urls == mine
            });
            return match found {
                Some(m) => Ok((m.id, cluster_id)),
                None => Err(format!(
                    "no member with peer URLs {mine:?} in the cluster at {url}: \
                     add it first (etcdctl member add {} --peer-urls={})",
                    config.name,
                    mine.join(",")
                )
                .into()),
            };
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(format!("--initial-cluster-state existing: no member reachable at {others:?}").into())
}

/// A member removed from the cluster stops, as etcd's does: it would
/// otherwise go on serving a copy nobody updates.
async fn exit_when_removed(node: std::sync::Arc<Node>) {
    let mut metrics = node.raft.metrics();
    loop {
        let removed = {
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            // Only a membership this member applied counts (so it is
            // committed): a leader removing itself still has to commit the
            // change, and an appended config may yet be replaced.
            let applied = m.membership_config.log_id() <= &m.last_applied;
            applied
                && membership.nodes().next().is_some()
                && membership.get_node(&node.id).is_none()
        };
        if removed {
            leave(&node).await;
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() {
                return;
            },
            _ = node.removed() => leave(&node).await,
        }
    }
}

async fn leave(node: &Node) {
    tracing::error!("{}; exiting", synod::raft::network::REMOVED);
    // The answer to the request that removed it may still be on its way
    // from here (a leader removing itself).
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let _ = node.raft.shutdown().await;
    std::process::exit(0);
}

async fn listen(
    url: &str,
) -> Result<tonic::transport::server::TcpIncoming, Box<dyn std::error::Error>> {
    let addr = socket_addr(url).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {url}: {e}"))?;
    // Without TCP_NODELAY small gRPC replies wait out delayed ACKs (~40 ms).
    Ok(tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(std::time::Duration::from_secs(60))))
}

/// Publishes this member's name and client URLs through Raft, as etcd does
/// once it has joined, retrying until a leader takes it. A restart with the
/// same attributes writes nothing: it first catches up with what is
/// committed, then finds them already there.
async fn publish(node: &Node, attrs: synod_proto::synodpb::MemberAttributes) {
    use synod_proto::synodpb::{request::Op, Request};
    loop {
        let res = async {
            node.read_index().await?;
            if node.store.members()?.get(&attrs.id) == Some(&attrs) {
                return Ok(());
            }
            let req = Request {
                op: Some(Op::Publish(attrs.clone())),
            };
            node.propose(req).await.map(|_| ())
        };
        match res.await {
            Ok(()) => return,
            Err(e) => {
                tracing::info!("publishing member attributes: {e}; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
}

/// How long a stopping server waits for requests in flight.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
