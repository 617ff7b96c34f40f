//! The consensus layer: openraft with its log in a dedicated WAL and its
//! state machine in sled, plus the two paths that decide throughput: group
//! commit of writes above Raft, and shared read-index rounds for
//! linearizable reads.

mod migrate;
pub mod network;
pub mod sled_sync;
pub mod state_machine;
pub mod types;
pub mod wal_store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use synod_proto::etcdserverpb::ResponseHeader;
use synod_proto::synodpb::peer_client::PeerClient;
use synod_proto::synodpb::{self, response};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use crate::error::EtcdError;
use crate::mvcc::Store;
pub use types::{NodeId, Raft, TypeConfig};

/// Most requests one log entry carries. Bounded so one entry stays a
/// reasonable size to append, replicate and apply.
const MAX_BATCH: usize = 1024;
const MAX_BATCH_BYTES: usize = 8 << 20;
/// Entries proposed but not yet on disk (or not yet applied, when few writes
/// wait: see `Waiting`). One keeps batches largest: with two,
/// batches halved and 64-writer throughput fell (the server is CPU-bound on
/// two cores, not waiting on the disk). Measured again on the WAL: 20.3k
/// puts/s with one, 18.4k with two, 64 clients.
const MAX_INFLIGHT: usize = 1;
/// Batches a follower may have forwarded to the leader and not yet had
/// answered. With one, each batch waited for the leader's commit and the
/// follower's own apply before the next left (3 members on this 2-core
/// machine, 64 writers through a follower: 5.8-8.0k puts/s; with four,
/// 7.7-8.0k; etcd 7.1-8.7k).
const MAX_FORWARDS: usize = 4;
/// Writes accepted but not yet applied beyond which new ones are refused with
/// "too many requests": etcd's limit on committed entries its apply lags
/// behind (one write per entry there; here a write waits in the proposer or
/// in a batch). It bounds the memory that writers can pile up.
const MAX_PENDING_WRITES: usize = 5_000;
/// etcd's request timeout: 5 s plus twice the election timeout (1 s).
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(7);
/// How long a leadership transfer may take before it is given up.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a write's result goes. It counts in `Node::pending` until the
/// proposer is done with it, even if its caller gave up waiting.
struct Reply {
    tx: oneshot::Sender<Result<synodpb::Response, EtcdError>>,
    _pending: Pending,
}

impl Reply {
    fn send(self, res: Result<synodpb::Response, EtcdError>) {
        // The caller may have timed out or gone away: nobody to tell.
        let _ = self.tx.send(res);
    }
}

pub struct Node {
    pub raft: Raft,
    pub store: Arc<Store>,
    pub id: NodeId,
    pub cluster_id: u64,
    pub db: sled::Db,
    proposals: mpsc::UnboundedSender<(synodpb::Request, Reply)>,
    /// Writes proposed and not yet answered.
    pending: Arc<std::sync::atomic::AtomicUsize>,
    reads: mpsc::UnboundedSender<oneshot::Sender<Result<(), EtcdError>>>,
    peers: Arc<network::Peers>,
    /// Holds new entries back while leadership is handed over.
    hold: Arc<Hold>,
    /// This member's Raft log (shared with Raft).
    log: wal_store::WalStore,
    /// When a leader's append last reached this member.
    leader_contact: Mutex<Instant>,
    /// etcd's --election-timeout.
    election_timeout: Duration,
}

/// Set while leadership is being handed over, so the transferee can catch
/// up with a log that has stopped growing. Entries are appended under
/// `gate` after a look at `paused`: once a hand-over has set `paused` and
/// taken the gate once, no append it cannot see is still on its way. (A
/// flag alone let a batch that had looked just before slip in after the
/// transferee caught up; this leader then refused its campaign as a
/// shorter log and took leadership back.)
struct Hold {
    paused: tokio::sync::watch::Sender<bool>,
    gate: tokio::sync::Mutex<()>,
    /// One hand-over at a time (the first to end would lift the other's
    /// pause), and no membership change during one.
    transfer: tokio::sync::Mutex<()>,
}

/// The pause of one hand-over, lifted when dropped: however the hand-over
/// ends, a client that gives up on MoveLeader included (its handler is
/// dropped mid-way), writes must not stay held back.
struct Pause<'a>(&'a Hold);

impl Drop for Pause<'_> {
    fn drop(&mut self) {
        self.0.paused.send_replace(false);
    }
}

impl Hold {
    fn pause(&self) -> Pause<'_> {
        self.paused.send_replace(true);
        Pause(self)
    }

    /// Queues `batch` in Raft, holding the gate until it is queued, unless
    /// a hand-over is under way: then the batch is handed back.
    async fn append(
        &self,
        raft: &Raft,
        batch: synodpb::Batch,
    ) -> Result<Result<Appended, EtcdError>, synodpb::Batch> {
        let _gate = self.gate.lock().await;
        if *self.paused.borrow() {
            return Err(batch);
        }
        Ok(raft
            .client_write_ff(types::Proto(batch))
            .await
            .map_err(|e| EtcdError::Internal(format!("raft stopped: {e}"))))
    }

    async fn unpaused(&self) {
        let _ = self.paused.subscribe().wait_for(|p| !*p).await;
    }
}

/// What Raft hands back for a queued write: its outcome, once applied.
type Appended =
    <<TypeConfig as openraft::RaftTypeConfig>::Responder as openraft::raft::responder::Responder<
        TypeConfig,
    >>::Receiver;

/// Who serves writes and linearizable reads right now, as this member sees it.
enum Leadership {
    Me,
    Other(NodeId, PeerClient<Channel>),
    Unknown,
}

fn leadership(raft: &Raft, peers: &network::Peers) -> Leadership {
    let m = raft.metrics();
    let m = m.borrow();
    match m.current_leader {
        Some(l) if l == m.id && m.state == ServerState::Leader => Leadership::Me,
        Some(l) if l != m.id => match m.membership_config.membership().get_node(&l) {
            Some(n) => peers
                .client(&n.addr)
                .map_or(Leadership::Unknown, |c| Leadership::Other(l, c)),
            None => Leadership::Unknown,
        },
        _ => Leadership::Unknown,
    }
}

pub struct Members {
    pub id: NodeId,
    pub cluster_id: u64,
    pub nodes: BTreeMap<NodeId, BasicNode>,
}

pub struct Options {
    /// Log entries between snapshots (etcd's --snapshot-count).
    pub snapshot_count: u64,
    /// Form a new cluster of the initial members (etcd's
    /// `--initial-cluster-state new`) rather than wait to be added to one.
    pub bootstrap: bool,
    /// etcd's --heartbeat-interval, in milliseconds.
    pub heartbeat_interval: u64,
    /// etcd's --election-timeout, in milliseconds.
    pub election_timeout: u64,
}

impl Node {
    /// Opens the data directory, recovers log and state, starts Raft and,
    /// on first boot only, initializes the cluster.
    pub async fn start(
        data_dir: &Path,
        members: Members,
        opts: Options,
    ) -> Result<Arc<Node>, Box<dyn std::error::Error>> {
        std::fs::create_dir_all(data_dir)?;
        let config = sled::Config::new()
            .path(data_dir.join("db"))
            // sled's default cache is 1 GiB; peak memory is measured against
            // etcd. With 1M keys of 256 bytes, 256 MiB put peak RSS at 1.12x
            // etcd's; 128 MiB keeps it under while the working sets of the
            // benchmarks still fit.
            .cache_capacity(128 << 20)
            // The WAL makes writes durable; sled is synced at snapshots
            // (see state_machine.rs), and flushing it in between would only
            // compete with the WAL's fdatasync for the disk.
            .flush_every_ms(None)
            // sled 0.34 writes out its buffer at every write batch and waits
            // for the disk (sync_file_range with WAIT_AFTER), which put each
            // apply behind a disk write. `temporary` is its only switch for
            // that wait; durability does not depend on it (SledSync
            // fdatasyncs the file itself). It also makes sled delete its
            // directory when the last handle to its config is dropped, so
            // one handle is leaked here on purpose: that drop never happens,
            // not even while a panic unwinds.
            .temporary(true);
        std::mem::forget(config.clone());
        let db = config.open()?;
        // A new data directory's entries must be durable too, as etcd
        // fsyncs its directories on creation.
        for dir in [data_dir.to_path_buf(), data_dir.join("db")] {
            std::fs::File::open(&dir)?.sync_all()?;
        }
        let durable = Arc::new(sled_sync::SledSync::new(db.clone(), &data_dir.join("db"))?);
        // Recovery may have rewritten parts of the file (sled zeroes torn
        // segments), and with `temporary` it does not sync them itself.
        durable.sync()?;
        // Identity is fixed at first boot, as etcd keeps it in its WAL:
        // flags that would derive another id later are ignored.
        let identity = db.open_tree("identity")?;
        let members = match (identity.get("member_id")?, identity.get("cluster_id")?) {
            (Some(m), Some(c)) if m.len() == 8 && c.len() == 8 => Members {
                id: u64::from_be_bytes(m.as_ref().try_into()?),
                cluster_id: u64::from_be_bytes(c.as_ref().try_into()?),
                nodes: members.nodes,
            },
            _ => {
                identity.insert("member_id", &members.id.to_be_bytes())?;
                identity.insert("cluster_id", &members.cluster_id.to_be_bytes())?;
                // Nothing else holds it, and no snapshot may come for a while.
                durable.sync()?;
                members
            }
        };
        let wal_dir = data_dir.join("wal");
        if migrate::sled_log_to_wal(&db, &wal_dir).await? {
            durable.sync()?;
        }
        let log = wal_store::WalStore::open(&wal_dir)?;
        let syncs = log.syncs();
        let log_handle = log.clone();
        let pending: Arc<std::sync::atomic::AtomicUsize> = Default::default();
        let store = Arc::new(Store::open(db.open_tree("sm")?)?);
        let sm = state_machine::StateMachine::open(store.clone(), durable, data_dir)?;

        let config = Config {
            cluster_name: "synod".into(),
            heartbeat_interval: opts.heartbeat_interval,
            // An openraft follower campaigns once its leader lease (the
            // maximum timeout) and then a random timeout have passed without
            // a heartbeat: with these, after 1.2-1.6 election timeouts, close
            // to etcd's 1-2 (which pre-vote lengthens in practice).
            election_timeout_min: opts.election_timeout * 2 / 5,
            election_timeout_max: opts.election_timeout * 4 / 5,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(opts.snapshot_count.max(1)),
            max_in_snapshot_log_to_keep: (opts.snapshot_count / 10).min(1_000),
            // A snapshot goes to a lagging follower in chunks of this size,
            // each with this long to arrive and be written.
            snapshot_max_chunk_size: 1 << 20,
            install_snapshot_timeout: 5_000,
            ..Default::default()
        }
        .validate()?;
        let peers = Arc::new(network::Peers::default());
        let net = network::Network {
            peers: peers.clone(),
        };
        let raft = Raft::new(members.id, Arc::new(config), net, log, sm).await?;
        // Every initial member initializes with the same membership, which
        // openraft allows; whichever starts first then wins an election. A
        // member that already holds a log or a vote never initializes again.
        if opts.bootstrap && !raft.is_initialized().await? {
            tracing::info!(
                member = format!("{:x}", members.id),
                "initializing new cluster"
            );
            match raft.initialize(members.nodes.clone()).await {
                // Another member's leader reached us first.
                Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
                res => res?,
            }
        }

        let (ptx, prx) = mpsc::unbounded_channel();
        let hold = Arc::new(Hold {
            paused: tokio::sync::watch::channel(false).0,
            gate: tokio::sync::Mutex::new(()),
            transfer: tokio::sync::Mutex::new(()),
        });
        let (rtx, rrx) = mpsc::unbounded_channel();
        let node = Arc::new(Node {
            raft: raft.clone(),
            store: store.clone(),
            id: members.id,
            cluster_id: members.cluster_id,
            db,
            proposals: ptx,
            pending: pending.clone(),
            reads: rtx,
            peers: peers.clone(),
            hold: hold.clone(),
            log: log_handle,
            leader_contact: Mutex::new(Instant::now()),
            election_timeout: Duration::from_millis(opts.election_timeout),
        });
        let waiting = Waiting { syncs, pending };
        let delivery = store.delivery().clone();
        tokio::spawn(proposer(
            raft.clone(),
            peers.clone(),
            waiting,
            prx,
            hold,
            delivery,
        ));
        tokio::spawn(read_rounds(raft.clone(), peers, rrx));
        tokio::spawn(lease_expiry(node.clone()));
        tokio::spawn(snapshot_ticker(raft.clone()));
        Ok(node)
    }

    /// How long a follower refuses votes after hearing from its leader
    /// (openraft's leader lease: the maximum election timeout).
    fn lease(&self) -> Duration {
        Duration::from_millis(self.raft.config().election_timeout_max)
    }

    /// The leader as Status reports it. openraft 0.9 has no CheckQuorum: a
    /// leader cut off from the others goes on calling itself leader, while
    /// the rest elect another. etcd's steps down once it has not heard from
    /// a quorum for an election timeout; here such a leader reports none,
    /// so tools that find the leader through Status are not misled.
    pub fn status_leader(&self) -> NodeId {
        let m = self.raft.metrics();
        let m = m.borrow();
        match m.current_leader {
            Some(l) if l == self.id => {
                let voters = m.membership_config.membership().voter_ids();
                if self.peers.heard_from_quorum(self.id, voters, self.lease()) {
                    l
                } else {
                    0
                }
            }
            other => other.unwrap_or(0),
        }
    }

    /// Notes that a leader's append reached this member.
    pub fn heard_from_leader(&self) {
        *self
            .leader_contact
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Called when this member refused a candidate whose log is behind its
    /// own. openraft makes a candidate that once saw a longer log wait two
    /// more election timeouts before its next campaign, and keeps that
    /// penalty until the campaign happens, possibly an election later; so
    /// the member best placed to win may sit out while shorter logs are
    /// refused (a 3.7 s failover here instead of 1.5 s). Once its leader
    /// is silent past the lease, it campaigns at once instead.
    ///
    /// openraft refuses the shorter log without taking the candidate's term,
    /// as Raft's rules would have it, so a campaign started from our own
    /// term can land in the very term the candidate voted itself in: both
    /// lose, and the next round can go the same way (once 10 s without a
    /// leader under load). So this member first takes that term with a vote
    /// for itself (it granted no other in it), then campaigns above it.
    ///
    /// A leader that still hears from a quorum does nothing: the candidate
    /// cannot win, and abdicating to campaign again would drop the very
    /// replication stream that is bringing the candidate up to date (a
    /// member resumed after a pause campaigned every two seconds, and the
    /// leader abdicated each time, for over ten seconds without a leader).
    pub async fn outran_candidate(&self, candidate_term: u64, mine: Option<types::LogId>) {
        if self.status_leader() == self.id {
            return;
        }
        let silent = self
            .leader_contact
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        // A leader handing over refuses only a transferee that has not caught
        // up; taking leadership back then would defeat the hand-over.
        if silent > self.lease() && !*self.hold.paused.borrow() {
            tracing::info!(
                candidate_term,
                "a candidate with a shorter log asked for a vote: campaigning above its term"
            );
            let own = openraft::raft::VoteRequest {
                vote: openraft::Vote::new(candidate_term, self.id),
                last_log_id: mine,
            };
            // Refused: this member voted for another candidate in that term
            // meanwhile (one whose log is not behind), which may win.
            if matches!(self.raft.vote(own).await, Ok(r) if r.vote_granted) {
                let _ = self.raft.trigger().elect().await;
            }
        }
    }

    /// Changes the membership, never while leadership is handed over: its
    /// entries do not pass the proposer's gate, and one appended after the
    /// transferee caught up would leave its log too short to win with.
    pub async fn change_membership(
        &self,
        changes: openraft::ChangeMembers<NodeId, BasicNode>,
        retain: bool,
    ) -> Result<
        openraft::raft::ClientWriteResponse<TypeConfig>,
        RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
    > {
        let _one = self.hold.transfer.lock().await;
        self.raft.change_membership(changes, retain).await
    }

    /// Hands leadership to `target` as etcd's MoveLeader does: new entries
    /// wait while the target catches up with the log, then it campaigns at
    /// once. It wins with this member's vote, which a leader grants (its
    /// followers refuse while their leader lease runs).
    pub async fn move_leader(&self, target: NodeId) -> Result<(), EtcdError> {
        let deadline = tokio::time::Instant::now() + TRANSFER_TIMEOUT;
        let _one = tokio::time::timeout_at(deadline, self.hold.transfer.lock())
            .await
            .map_err(|_| EtcdError::TimeoutLeaderTransfer)?;
        if !matches!(leadership(&self.raft, &self.peers), Leadership::Me) {
            return Err(EtcdError::NotLeader);
        }
        let addr = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            if !membership.voter_ids().any(|v| v == target) {
                return Err(EtcdError::BadLeaderTransferee);
            }
            if target == self.id {
                return Ok(());
            }
            membership
                .get_node(&target)
                .map(|n| n.addr.clone())
                .ok_or(EtcdError::BadLeaderTransferee)?
        };
        let _paused = self.hold.pause();
        tokio::time::timeout_at(deadline, self.hand_over(target, &addr, deadline))
            .await
            .unwrap_or(Err(EtcdError::TimeoutLeaderTransfer))
    }

    async fn hand_over(
        &self,
        target: NodeId,
        addr: &str,
        deadline: tokio::time::Instant,
    ) -> Result<(), EtcdError> {
        let left = || Some(deadline.saturating_duration_since(tokio::time::Instant::now()));
        // Appends that looked before the pause have been queued in Raft
        // once the gate is free. A call through the same queue returns after
        // Raft has handed each of them to the log (it runs an append's
        // storage command before its next message); its metrics may lag.
        drop(self.hold.gate.lock().await);
        self.raft
            .with_raft_state(|_| ())
            .await
            .map_err(|_| EtcdError::TimeoutLeaderTransfer)?;
        let last = self.log.last_index();
        let caught_up = move |m: &openraft::RaftMetrics<NodeId, BasicNode>| {
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&target).cloned().flatten())
                .map(|l| l.index);
            m.current_leader != Some(m.id) || matched >= last.max(m.last_log_index)
        };
        self.raft
            .wait(left())
            .metrics(caught_up, "the transferee caught up")
            .await
            .map_err(|_| EtcdError::TimeoutLeaderTransfer)?;
        let mut client = self
            .peers
            .client(addr)
            .map_err(|_| EtcdError::TimeoutLeaderTransfer)?;
        let campaign = client.timeout_now(synodpb::TimeoutNowRequest {});
        match tokio::time::timeout_at(deadline, campaign).await {
            Ok(Ok(_)) => {}
            _ => return Err(EtcdError::TimeoutLeaderTransfer),
        }
        self.raft
            .wait(left())
            .metrics(|m| m.current_leader == Some(target), "the transferee leads")
            .await
            .map(|_| ())
            .map_err(|_| EtcdError::TimeoutLeaderTransfer)
    }

    /// Proposes one write and waits until it is committed and applied.
    pub async fn propose(&self, req: synodpb::Request) -> Result<response::Op, EtcdError> {
        match self.propose_response(req).await?.op {
            Some(response::Op::Error(e)) => Err(EtcdError::from_message(&e.message)),
            Some(op) => Ok(op),
            None => Err(EtcdError::Internal("empty response".into())),
        }
    }

    /// Proposes one write and returns its result as applied, an apply-time
    /// error included as `response::Op::Error`.
    pub async fn propose_response(
        &self,
        req: synodpb::Request,
    ) -> Result<synodpb::Response, EtcdError> {
        use prost::Message;
        // etcd checks the encoded request against --max-request-bytes.
        if req.encoded_len() > crate::api::MAX_REQUEST_BYTES {
            return Err(EtcdError::RequestTooLarge);
        }
        let pending = Pending::enter(&self.pending)?;
        let (tx, rx) = oneshot::channel();
        let reply = Reply {
            tx,
            _pending: pending,
        };
        self.proposals
            .send((req, reply))
            .map_err(|_| EtcdError::Internal("server is stopping".into()))?;
        // etcd gives up waiting after its request timeout (the write may
        // still be applied later, as there).
        tokio::time::timeout(PROPOSAL_TIMEOUT, rx)
            .await
            .map_err(|_| EtcdError::Timeout)?
            .map_err(|_| EtcdError::Internal("server is stopping".into()))?
    }

    /// None while this member leads, else a client of the leader's peer
    /// service; waits for an election first, as etcd holds requests.
    pub async fn leader_peer(&self) -> Result<Option<(NodeId, PeerClient<Channel>)>, EtcdError> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            wait_for_leader(&self.raft).await;
            match leadership(&self.raft, &self.peers) {
                Leadership::Me => return Ok(None),
                Leadership::Other(id, leader) => return Ok(Some((id, leader))),
                // E.g. the leader just removed itself: the next one is coming.
                Leadership::Unknown if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Leadership::Unknown => return Err(EtcdError::NoLeader),
            }
        }
    }

    /// Renews a lease where deadlines are kept, on the leader; the lease's
    /// granted TTL, or 0 if it is gone (clients read that as expired).
    pub async fn keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        use synod_proto::etcdserverpb::LeaseKeepAliveRequest;
        // A renewal changes nothing but a deadline, so it is safe to repeat:
        // while the leader is lost it is held for the next one, as etcd
        // holds requests through an election, rather than answered "no
        // leader" and the lease left to run out meanwhile.
        let deadline = tokio::time::Instant::now() + PROPOSAL_TIMEOUT;
        loop {
            let res = match self.leader_peer().await? {
                None => {
                    self.read_index().await?;
                    return Ok(self.store.keep_alive(id).unwrap_or(0));
                }
                Some((leader_id, mut leader)) => {
                    let mut req = tonic::Request::new(LeaseKeepAliveRequest { id });
                    req.set_timeout(PROPOSAL_TIMEOUT);
                    let res = self
                        .until_leader_changes(leader_id, leader.lease_keep_alive(req))
                        .await;
                    if matches!(res, Err(EtcdError::NoLeader)) {
                        // Out of reach: wait for another leader.
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        let _ =
                            tokio::time::timeout(left, leader_changed(&self.raft, leader_id)).await;
                    }
                    res
                }
            };
            match res {
                Err(EtcdError::NoLeader | EtcdError::LeaderChanged)
                    if tokio::time::Instant::now() < deadline => {}
                res => return res.map(|r| r.ttl),
            }
        }
    }

    /// A call to the leader `leader_id`, given up with "leader changed" if
    /// another member takes over meanwhile.
    pub async fn until_leader_changes<T>(
        &self,
        leader_id: NodeId,
        call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, EtcdError> {
        tokio::select! {
            r = call => r.map(tonic::Response::into_inner).map_err(peer_status),
            _ = leader_changed(&self.raft, leader_id) => Err(EtcdError::LeaderChanged),
        }
    }

    /// Resolves when a peer said this member was removed from the cluster.
    pub async fn removed(&self) {
        self.peers.removed.notified().await
    }

    /// The last log index this member has applied.
    pub fn applied_index(&self) -> u64 {
        self.raft
            .metrics()
            .borrow()
            .last_applied
            .map_or(0, |l| l.index)
    }

    /// As leader, the index a follower must apply before a linearizable
    /// read: the commit index, once a quorum confirmed this leadership.
    pub async fn leader_read_index(&self) -> Result<u64, EtcdError> {
        let (read, applied) = self.raft.get_read_log_id().await.map_err(raft_error)?;
        Ok(read.max(applied).map_or(0, |l| l.index))
    }

    /// Waits until this node has applied everything committed before the
    /// call, sharing one leadership check with all reads that came meanwhile.
    pub async fn read_index(&self) -> Result<(), EtcdError> {
        let (tx, rx) = oneshot::channel();
        self.reads
            .send(tx)
            .map_err(|_| EtcdError::Internal("server is stopping".into()))?;
        rx.await
            .map_err(|_| EtcdError::Internal("server is stopping".into()))?
    }

    pub fn header(&self, revision: i64) -> ResponseHeader {
        let term = self.raft.metrics().borrow().current_term;
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.id,
            revision,
            raft_term: term,
        }
    }

    /// Fills in the identity fields of a header the store left with only a revision.
    pub fn fill(&self, header: &mut Option<ResponseHeader>) {
        let rev = header
            .as_ref()
            .map_or_else(|| self.store.current_rev(), |h| h.revision);
        *header = Some(self.header(rev));
    }
}

/// One write counted in `Node::pending`.
struct Pending(Arc<std::sync::atomic::AtomicUsize>);

impl Pending {
    fn enter(count: &Arc<std::sync::atomic::AtomicUsize>) -> Result<Self, EtcdError> {
        use std::sync::atomic::Ordering;
        if count.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING_WRITES {
            count.fetch_sub(1, Ordering::SeqCst);
            return Err(EtcdError::TooManyRequests);
        }
        Ok(Pending(count.clone()))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn raft_error<E: std::fmt::Display>(e: RaftError<NodeId, E>) -> EtcdError {
    match e {
        RaftError::APIError(e) => {
            tracing::debug!("raft refused request: {e}");
            EtcdError::NoLeader
        }
        RaftError::Fatal(e) => EtcdError::Internal(format!("raft stopped: {e}")),
    }
}

/// When the next batch may leave while this one is still being applied.
#[derive(Clone)]
struct Waiting {
    syncs: Arc<wal_store::Syncs>,
    /// `Node::pending`: writes not yet answered, this batch's included.
    pending: Arc<std::sync::atomic::AtomicUsize>,
}

/// Writes that must be waiting behind a durable batch for the next one to
/// leave before that batch is applied.
const EARLY_BATCH: usize = 16;

impl Waiting {
    /// Returns once the batch appended after `before` is on disk (the first
    /// append after it is that batch, or an earlier one at worst), if by
    /// then enough writes wait for the next batch. The next sync then
    /// overlaps this batch's apply: under put/64 waiting for the apply kept
    /// one core idle through every apply. With few writers it is better to
    /// let the next batch grow while this one applies, so otherwise this
    /// never returns and the batch's answer lets the next one go.
    async fn next_may_go(&self, before: u64, size: usize) {
        self.syncs.synced_past(before).await;
        let waiting = self
            .pending
            .load(std::sync::atomic::Ordering::SeqCst)
            .saturating_sub(size);
        if waiting < EARLY_BATCH {
            std::future::pending::<()>().await;
        }
    }
}

/// Group commit: everything that queued while the previous entry was being
/// made durable goes into the next entry, so one fdatasync serves many writes.
async fn proposer(
    raft: Raft,
    peers: Arc<network::Peers>,
    waiting: Waiting,
    mut rx: mpsc::UnboundedReceiver<(synodpb::Request, Reply)>,
    hold: Arc<Hold>,
    delivery: Arc<crate::mvcc::delivery::Delivery>,
) {
    use prost::Message;
    let inflight = Arc::new(tokio::sync::Semaphore::new(MAX_INFLIGHT));
    let forwards = Arc::new(tokio::sync::Semaphore::new(MAX_FORWARDS));
    loop {
        let Ok(mut permit) = inflight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        // Writes queued meanwhile join this batch.
        delivery.wait().await;
        // etcd's raft drops proposals during a leadership transfer; these
        // wait instead, and go to the new leader once it leads.
        hold.unpaused().await;
        wait_for_leader(&raft).await;
        if let Leadership::Other(..) = leadership(&raft, &peers) {
            // A follower's batches wait for the leader's whole round trip,
            // so several go at once (the leader merges them into its own);
            // each forms while the others are in flight.
            let Ok(slot) = forwards.clone().acquire_owned().await else {
                return;
            };
            drop(permit);
            permit = slot;
        }
        let mut bytes = first.0.encoded_len();
        let mut reqs = vec![first.0];
        let mut replies = vec![first.1];
        while reqs.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok((req, reply)) => {
                    bytes += req.encoded_len();
                    reqs.push(req);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let batch = synodpb::Batch { requests: reqs };
        let batch = if let Leadership::Me = leadership(&raft, &peers) {
            // The common case, kept free of extra hops: append right here,
            // and let a task wait for the result. Leadership lost just now
            // answers "no leader", which clients retry.
            let before = waiting.syncs.appended();
            let size = replies.len();
            match hold.append(&raft, batch).await {
                Ok(Ok(pending)) => {
                    let waiting = waiting.clone();
                    tokio::spawn(async move {
                        let mut permit = Some(permit);
                        tokio::pin!(pending);
                        let res = tokio::select! {
                            res = &mut pending => res,
                            _ = waiting.next_may_go(before, size) => {
                                permit = None;
                                pending.await
                            }
                        };
                        drop(permit);
                        fan_out(replies, written(res).map_err(SubmitError::error));
                    });
                    continue;
                }
                Ok(Err(e)) => {
                    fan_out(replies, Err(e));
                    continue;
                }
                Err(batch) => batch,
            }
        } else {
            batch
        };
        // Not leading, or a hand-over began while this batch formed: it
        // goes the way that waits and retries.
        let (raft, peers, hold) = (raft.clone(), peers.clone(), hold.clone());
        tokio::spawn(async move {
            let res = submit(&raft, &peers, &hold, batch).await;
            drop(permit);
            fan_out(replies, res);
        });
    }
}

/// Why a batch did not reach a leader. Only `Unsent` may be retried: the
/// batch surely was not appended anywhere.
enum SubmitError {
    Unsent(EtcdError),
    Failed(EtcdError),
}

impl SubmitError {
    fn error(self) -> EtcdError {
        match self {
            SubmitError::Unsent(e) | SubmitError::Failed(e) => e,
        }
    }
}

/// A local append's outcome, as Raft's responder gives it.
fn written<E>(
    res: Result<openraft::raft::ClientWriteResult<TypeConfig>, E>,
) -> Result<Vec<synodpb::Response>, SubmitError> {
    match res {
        Ok(Ok(resp)) => Ok(resp.data.0.responses),
        // Lost leadership before appending: the batch goes to the next leader.
        Ok(Err(ClientWriteError::ForwardToLeader(_))) => {
            Err(SubmitError::Unsent(EtcdError::NoLeader))
        }
        Ok(Err(e)) => Err(SubmitError::Failed(EtcdError::Internal(e.to_string()))),
        Err(_) => Err(SubmitError::Failed(EtcdError::Internal(
            "raft stopped".into(),
        ))),
    }
}

/// Appends a batch through the leader: this member's Raft when it leads,
/// otherwise the leader's peer service. While there is no leader, or the
/// leader is out of reach before the batch left, it waits for the next one,
/// as etcd holds requests through an election.
async fn submit(
    raft: &Raft,
    peers: &network::Peers,
    hold: &Hold,
    batch: synodpb::Batch,
) -> Result<Vec<synodpb::Response>, EtcdError> {
    let deadline = tokio::time::Instant::now() + PROPOSAL_TIMEOUT;
    loop {
        let (old, res) = match leadership(raft, peers) {
            Leadership::Me => (None, write_local(raft, hold, batch.clone()).await),
            Leadership::Other(id, leader) => {
                (Some(id), forward(raft, id, leader, batch.clone()).await)
            }
            Leadership::Unknown => (None, Err(SubmitError::Unsent(EtcdError::NoLeader))),
        };
        let err = match res {
            Ok(r) => return Ok(r),
            Err(SubmitError::Failed(e)) => return Err(e),
            Err(SubmitError::Unsent(e)) => e,
        };
        let changed = move |m: &openraft::RaftMetrics<NodeId, BasicNode>| {
            has_leader(m) && m.current_leader != old
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero()
            || raft
                .wait(Some(left))
                .metrics(changed, "a new leader")
                .await
                .is_err()
        {
            return Err(err);
        }
    }
}

async fn write_local(
    raft: &Raft,
    hold: &Hold,
    mut batch: synodpb::Batch,
) -> Result<Vec<synodpb::Response>, SubmitError> {
    let appended = loop {
        match hold.append(raft, batch).await {
            Ok(appended) => break appended,
            Err(back) => {
                batch = back;
                hold.unpaused().await;
            }
        }
    };
    match appended {
        Ok(pending) => written(pending.await),
        Err(e) => Err(SubmitError::Failed(e)),
    }
}

/// Hands a follower's batch to the leader, then waits until this member has
/// applied it too, so the writer finds its write here (etcd answers a
/// forwarded write once the member it reached has applied it).
async fn forward(
    raft: &Raft,
    leader_id: NodeId,
    mut leader: PeerClient<Channel>,
    batch: synodpb::Batch,
) -> Result<Vec<synodpb::Response>, SubmitError> {
    let mut req = tonic::Request::new(batch);
    req.set_timeout(PROPOSAL_TIMEOUT);
    let resp = tokio::select! {
        r = leader.forward(req) => r,
        _ = leader_changed(raft, leader_id) => {
            return Err(SubmitError::Failed(EtcdError::LeaderChanged))
        }
    };
    let resp = match resp {
        Ok(r) => r.into_inner(),
        // No connection was made, so nothing was sent.
        Err(s) if s.code() == tonic::Code::Unavailable && s.message().contains("connect") => {
            return Err(SubmitError::Unsent(EtcdError::NoLeader))
        }
        Err(s) => return Err(SubmitError::Failed(peer_status(s))),
    };
    wait_applied(raft, resp.applied)
        .await
        .map_err(SubmitError::Failed)?;
    Ok(resp.responses.unwrap_or_default().responses)
}

/// A peer call's failure as the client should see it: the leader's own
/// etcd error when it sent one, otherwise the leader is out of reach.
fn peer_status(s: tonic::Status) -> EtcdError {
    match s.code() {
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => EtcdError::Timeout,
        _ if s.message().starts_with("etcdserver: ") => EtcdError::from_message(s.message()),
        _ => EtcdError::NoLeader,
    }
}

/// Resolves once this member follows another leader than `old` (or none):
/// a call to `old` still pending then may never be answered, as when the old
/// leader hangs, and the outcome of what it carried is unknown.
async fn leader_changed(raft: &Raft, old: NodeId) {
    let _ = raft
        .wait(None)
        .metrics(|m| m.current_leader != Some(old), "leader changed")
        .await;
}

async fn wait_applied(raft: &Raft, index: u64) -> Result<(), EtcdError> {
    raft.wait(Some(PROPOSAL_TIMEOUT))
        .applied_index_at_least(Some(index), "caught up with the leader")
        .await
        .map(|_| ())
        .map_err(|_| EtcdError::Timeout)
}

fn fan_out(replies: Vec<Reply>, res: Result<Vec<synodpb::Response>, EtcdError>) {
    match res {
        Ok(responses) => {
            let mut results = responses.into_iter();
            for reply in replies {
                let r = results
                    .next()
                    .ok_or_else(|| EtcdError::Internal("missing response".into()));
                reply.send(r);
            }
        }
        Err(err) => {
            for reply in replies {
                reply.send(Err(err.clone()));
            }
        }
    }
}

/// How long a request waits for an election before giving up with "no
/// leader", as etcd holds requests while it elects.
const LEADER_WAIT: Duration = Duration::from_secs(5);

/// A restarted node remembers the vote it granted itself, so openraft can
/// report it as leader before it has won an election; only a node in the
/// leader state (or one following another leader) can serve.
fn has_leader(m: &openraft::RaftMetrics<NodeId, BasicNode>) -> bool {
    match m.current_leader {
        Some(l) if l == m.id => m.state == ServerState::Leader,
        Some(_) => true,
        None => false,
    }
}

async fn wait_for_leader(raft: &Raft) {
    if has_leader(&raft.metrics().borrow()) {
        return;
    }
    let _ = raft
        .wait(Some(LEADER_WAIT))
        .metrics(has_leader, "leader elected")
        .await;
}

async fn read_rounds(
    raft: Raft,
    peers: Arc<network::Peers>,
    mut rx: mpsc::UnboundedReceiver<oneshot::Sender<Result<(), EtcdError>>>,
) {
    while let Some(first) = rx.recv().await {
        wait_for_leader(&raft).await;
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let res = match leadership(&raft, &peers) {
            Leadership::Other(id, leader) => follower_read(&raft, id, leader).await,
            _ => raft
                .ensure_linearizable()
                .await
                .map(|_| ())
                .map_err(raft_error),
        };
        for w in waiters {
            let _ = w.send(res.clone());
        }
    }
}

/// A follower's read index: the leader's, then this member's apply up to it.
async fn follower_read(
    raft: &Raft,
    leader_id: NodeId,
    mut leader: PeerClient<Channel>,
) -> Result<(), EtcdError> {
    let mut req = tonic::Request::new(synodpb::ReadIndexRequest {});
    req.set_timeout(PROPOSAL_TIMEOUT);
    let index = tokio::select! {
        r = leader.read_index(req) => r.map_err(peer_status)?.into_inner().index,
        _ = leader_changed(raft, leader_id) => return Err(EtcdError::LeaderChanged),
    };
    wait_applied(raft, index).await
}

/// Longest the state machine goes without being made durable while writes
/// come in (besides every `--snapshot-count` entries).
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(10);

/// Snapshots after a quiet spell too, so that a restart replays at most a few
/// seconds of log and the WAL behind the snapshot is freed even when fewer
/// than `--snapshot-count` entries came.
async fn snapshot_ticker(raft: Raft) {
    let mut tick = tokio::time::interval(SNAPSHOT_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (applied, snapshot) = {
            let m = raft.metrics();
            let m = m.borrow();
            (m.last_applied, m.snapshot)
        };
        if applied > snapshot && raft.trigger().snapshot().await.is_err() {
            return;
        }
    }
}

/// The leader expires leases and commits the expiry as a revoke, so every
/// member deletes the same keys at the same revision.
async fn lease_expiry(node: Arc<Node>) {
    let mut was_leader = false;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let leader = node.raft.metrics().borrow().state == ServerState::Leader;
        if leader && !was_leader {
            node.store.refresh_leases(node.election_timeout);
        }
        was_leader = leader;
        if !leader {
            continue;
        }
        let ids = node.store.expired_leases(1000);
        if ids.is_empty() {
            continue;
        }
        tracing::debug!(count = ids.len(), "expiring leases");
        let req = synodpb::Request {
            op: Some(synodpb::request::Op::LeaseExpire(synodpb::LeaseExpire {
                ids,
            })),
        };
        if let Err(e) = node.propose(req).await {
            tracing::warn!("lease expiry failed: {e}");
        }
    }
}
