//! gRPC services, one file each. They validate requests as etcd's v3rpc
//! layer does, hand writes to Raft and reads to the store, and map errors to
//! etcd's codes and messages. Nothing here touches sled.

pub mod auth;
pub mod cluster;
pub mod concurrency;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod peer;
pub mod watch;

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// gRPC's receive limit sits above the request limit, as in etcd, so an
/// oversized put gets etcd's own "request is too large" answer.
pub const MAX_RECV_BYTES: usize = MAX_REQUEST_BYTES + 512 * 1024;
pub const MAX_TXN_OPS: usize = 128;

/// Proposes `req` through Raft as `request::Op::$op` and answers with the
/// matching response, its header completed with this member's identity.
macro_rules! propose {
    ($node:expr, $op:ident, $req:expr) => {
        match $node
            .propose(synod_proto::synodpb::Request {
                op: Some(synod_proto::synodpb::request::Op::$op($req)),
            })
            .await?
        {
            synod_proto::synodpb::response::Op::$op(mut r) => {
                $node.fill(&mut r.header);
                Ok(tonic::Response::new(r))
            }
            _ => Err(crate::error::EtcdError::Internal("unexpected response kind".into()).status()),
        }
    };
}
pub(crate) use propose;

/// grpc-go (and so etcd) refuses an over-limit message with
/// RESOURCE_EXHAUSTED "grpc: received message larger than max (N vs. M)";
/// tonic says OUT_OF_RANGE with other words. Clients match on etcd's, so the
/// refusal is rewritten on its way out. It happens before any handler runs,
/// hence a response layer.
pub fn etcd_limit_status<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let h = resp.headers();
    let is_limit = h.get("grpc-status").is_some_and(|v| v == "11")
        && h.get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| {
                // tonic percent-encodes the spaces.
                m.replace("%20", " ")
                    .contains("decoded message length too large")
            });
    if !is_limit {
        return resp;
    }
    let msg = h
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let msg = msg.replace("%20", " ");
    let nums: Vec<&str> = msg
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    let text = match nums.as_slice() {
        [found, limit, ..] => {
            format!("grpc: received message larger than max ({found} vs. {limit})")
        }
        _ => "grpc: received message larger than max".to_string(),
    };
    let headers = resp.headers_mut();
    headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    if let Ok(v) = http::HeaderValue::from_str(&text) {
        headers.insert("grpc-message", v);
    }
    resp
}
