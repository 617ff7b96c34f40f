use std::time::Duration;

use tonic::{Code, Status};

/// Failures a caller can act on; the PHP extension maps each to one
/// exception class.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("connection failed: {0}")]
    Connection(String),
    /// The client's deadline, or zero when the server gave up first.
    #[error("{}", timeout_text(*.0))]
    Timeout(Duration),
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted { compact_revision: i64 },
    /// The lease id, when the caller knows it (the server does not say).
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound(i64),
    /// Any other error the server returned, with its gRPC code and message.
    #[error("{message}")]
    Server { code: Code, message: String },
}

fn timeout_text(after: Duration) -> String {
    if after.is_zero() {
        "the server gave up on the request (deadline exceeded)".into()
    } else {
        format!("request timed out after {after:?}")
    }
}

impl Error {
    pub fn from_status(s: &Status) -> Error {
        let msg = s.message();
        match s.code() {
            Code::Unavailable if is_transport(s) => Error::Connection(msg.to_string()),
            // tonic reports a call cut off by a dying connection as
            // CANCELLED ("operation was canceled"); etcd never sends it.
            Code::Cancelled if !msg.starts_with("etcdserver:") => {
                Error::Connection(msg.to_string())
            }
            // A connection reset mid-stream surfaces as UNKNOWN carrying the
            // h2/hyper error ("h2 protocol error: error reading a body...").
            Code::Unknown if is_transport_source(s) || msg.starts_with("h2 protocol error") => {
                Error::Connection(msg.to_string())
            }
            Code::DeadlineExceeded => Error::Timeout(Duration::ZERO),
            Code::OutOfRange if msg.contains("required revision has been compacted") => {
                Error::Compacted {
                    compact_revision: 0,
                }
            }
            Code::NotFound if msg.contains("requested lease not found") => Error::LeaseNotFound(0),
            code => Error::Server {
                code,
                message: msg.to_string(),
            },
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::Connection(_) => Code::Unavailable,
            Error::Timeout(_) => Code::DeadlineExceeded,
            Error::Compacted { .. } => Code::OutOfRange,
            Error::LeaseNotFound(_) => Code::NotFound,
            Error::Server { code, .. } => *code,
        }
    }
}

/// tonic reports a connection it could not make or lost as UNAVAILABLE with
/// a transport error as source; a server's own UNAVAILABLE ("etcdserver: no
/// leader") has none.
fn is_transport(s: &Status) -> bool {
    is_transport_source(s) || !s.message().starts_with("etcdserver:")
}

fn is_transport_source(s: &Status) -> bool {
    use std::error::Error as _;
    s.source().is_some()
}

/// Whether the request surely never reached a server: the connection could
/// not be made at all.
pub(crate) fn never_sent(s: &Status) -> bool {
    let text = format!("{s:?}").to_lowercase();
    text.contains("connection refused") || text.contains("tcp connect error")
}

/// The server no longer accepts the token the call carried (or the call
/// carried none, because authentication was enabled after connecting):
/// rejected before anything was applied, so it is safe to authenticate
/// again and resend, as etcd's client does.
pub(crate) fn is_expired_token(s: &Status) -> bool {
    let m = s.message();
    s.code() == Code::Unauthenticated && m.contains("invalid auth token")
        || s.code() == Code::InvalidArgument
            && (m.contains("revision of auth store is old") || m.contains("user name is empty"))
}
