//! The errors a client can get, with the gRPC codes and messages etcd uses,
//! so clients that match on them (etcdctl, clientv3, PHP clients) keep working.

use tonic::{Code, Status};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: not capable")]
    NotCapable,
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    #[error("etcdserver: not leader")]
    NotLeader,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    #[error("etcdserver: request timed out, leader transfer took too long")]
    TimeoutLeaderTransfer,
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExist,
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    MemberNotEnoughStarted,
    #[error("etcdserver: {0}")]
    Internal(String),
}

impl EtcdError {
    /// The error a message stands for: apply results cross the Raft log as
    /// text, and the exact variant (hence code) comes back from it.
    pub fn from_message(msg: &str) -> EtcdError {
        use EtcdError::*;
        [
            EmptyKey,
            KeyNotFound,
            ValueProvided,
            LeaseProvided,
            TooManyOps,
            DuplicateKey,
            RequestTooLarge,
            InvalidSortOption,
            Compacted,
            FutureRev,
            LeaseNotFound,
            LeaseExist,
            LeaseTtlTooLarge,
            NoLeader,
            Timeout,
            LeaderChanged,
            NotCapable,
            TooManyRequests,
            PeerUrlExist,
            MemberBadUrls,
            MemberNotFound,
            MemberNotLearner,
            LearnerNotReady,
            MemberNotEnoughStarted,
            NoSpace,
            Corrupt,
        ]
        .into_iter()
        .find(|e| e.to_string() == msg)
        .unwrap_or_else(|| Internal(msg.strip_prefix("etcdserver: ").unwrap_or(msg).to_string()))
    }

    pub fn code(&self) -> Code {
        use EtcdError::*;
        match self {
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey
            | RequestTooLarge | InvalidSortOption | MemberBadUrls => Code::InvalidArgument,
            Compacted | FutureRev | LeaseTtlTooLarge => Code::OutOfRange,
            LeaseNotFound | MemberNotFound => Code::NotFound,
            LeaseExist
            | RootUserNotExist
            | UserNotFound
            | RoleNotFound
            | AuthNotEnabled
            | BadLeaderTransferee
            | NotLeader
            | PeerUrlExist
            | MemberNotLearner
            | LearnerNotReady
            | MemberNotEnoughStarted => Code::FailedPrecondition,
            NoLeader | Timeout | LeaderChanged | TimeoutLeaderTransfer => Code::Unavailable,
            NotCapable => Code::Unimplemented,
            TooManyRequests | NoSpace => Code::ResourceExhausted,
            Corrupt => Code::DataLoss,
            Internal(_) => Code::Internal,
        }
    }

    pub fn status(&self) -> Status {
        Status::new(self.code(), self.to_string())
    }
}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Status {
        e.status()
    }
}

/// Storage failures are fatal to a request, never to the server.
impl From<sled::Error> for EtcdError {
    fn from(e: sled::Error) -> Self {
        EtcdError::Internal(format!("storage: {e}"))
    }
}
