//! Peer transport: openraft's messages between members over gRPC on the peer
//! URL (`synodpb.Peer`, served by `api/peer.rs`).
//!
//! openraft's request and response types are serde, not protobuf, so each
//! travels as bincode inside a `RaftMessage`; the reply carries openraft's
//! whole `Result`, so a remote refusal comes back as the same `RaftError`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use synod_proto::synodpb::peer_client::PeerClient;
use synod_proto::synodpb::RaftMessage;
use tonic::transport::{Channel, Endpoint};

use super::types::{NodeId, TypeConfig};

/// How long a connection attempt to a peer may take before it counts as
/// unreachable; a dead member must not hold up heartbeats to the others.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// One lazily connected channel per peer URL, shared by Raft's replication
/// streams and by write forwarding, so a member keeps one HTTP/2 connection
/// to each other member.
/// What a member's peers answer once it has been removed from the cluster.
pub const REMOVED: &str = "the member has been permanently removed from the cluster";

#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<String, Channel>>,
    /// Told when a peer answered `REMOVED`: this member must stop.
    pub removed: tokio::sync::Notify,
    /// When each peer last answered one of openraft's messages.
    answered: Mutex<HashMap<NodeId, std::time::Instant>>,
}

impl Peers {
    /// Whether a majority of `voters` (this member, if a voter, counting as
    /// heard) answered within `within`: what etcd's CheckQuorum asks of a
    /// leader before it keeps calling itself one.
    pub fn heard_from_quorum(
        &self,
        me: NodeId,
        voters: impl Iterator<Item = NodeId>,
        within: Duration,
    ) -> bool {
        let answered = self.answered.lock().unwrap_or_else(|e| e.into_inner());
        let (mut heard, mut all) = (0, 0);
        for v in voters {
            all += 1;
            if v == me || answered.get(&v).is_some_and(|t| t.elapsed() <= within) {
                heard += 1;
            }
        }
        heard * 2 > all
    }

    /// A client for the member at `addr` (its peer URLs, comma-separated, as
    /// stored in the membership; the first is used).
    pub fn client(&self, addr: &str) -> Result<PeerClient<Channel>, tonic::transport::Error> {
        let url = addr.split(',').next().unwrap_or(addr).trim().to_string();
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let channel = match channels.get(&url) {
            Some(c) => c.clone(),
            None => {
                let c = Endpoint::from_shared(url.clone())?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_while_idle(true)
                    .connect_lazy();
                channels.insert(url, c.clone());
                c
            }
        };
        Ok(PeerClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }
}

#[derive(Clone)]
pub struct Network {
    pub peers: Arc<Peers>,
}

pub struct Peer {
    target: NodeId,
    client: Result<PeerClient<Channel>, String>,
    peers: Arc<Peers>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;
    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            client: self.peers.client(&node.addr).map_err(|e| e.to_string()),
            peers: self.peers.clone(),
        }
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

type PeerError<E> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

fn unreachable<E: std::error::Error>(msg: impl Into<String>) -> PeerError<E> {
    let e = std::io::Error::new(std::io::ErrorKind::NotConnected, msg.into());
    RPCError::Unreachable(Unreachable::new(&e))
}

fn network<E: std::error::Error>(e: impl std::error::Error + 'static) -> PeerError<E> {
    RPCError::Network(NetworkError::new(&e))
}

impl Peer {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, PeerError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let mut client = self.client.clone().map_err(unreachable)?;
        let data = bincode::serialize(req).map_err(network)?;
        let mut request = tonic::Request::new(RaftMessage { data });
        request.set_timeout(option.hard_ttl());
        let reply = match rpc {
            Rpc::AppendEntries => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::InstallSnapshot => client.install_snapshot(request).await,
        };
        let reply = match reply {
            Ok(r) => r.into_inner(),
            // A member that is down or not listening yet: openraft backs off
            // instead of retrying at once.
            Err(s) if s.code() == tonic::Code::Unavailable => {
                return Err(unreachable(s.message().to_string()))
            }
            Err(s) if s.message() == REMOVED => {
                self.peers.removed.notify_one();
                return Err(unreachable(REMOVED));
            }
            Err(s) => return Err(network(s)),
        };
        self.peers
            .answered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.target, std::time::Instant::now());
        let res: Result<Resp, RaftError<NodeId, E>> =
            bincode::deserialize(&reply.data).map_err(network)?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, PeerError<openraft::error::Infallible>> {
        self.call(Rpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, PeerError<InstallSnapshotError>> {
        self.call(Rpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, PeerError<openraft::error::Infallible>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}
