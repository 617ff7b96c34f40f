//! gRPC services, one file each. They validate requests as etcd's v3rpc
//! layer does, hand writes to Raft and reads to the store, and map errors to
//! etcd's codes and messages. Nothing here touches sled.

pub mod cluster;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod watch;

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// gRPC's receive limit sits above the request limit, as in etcd, so an
/// oversized put gets etcd's own "request is too large" answer.
pub const MAX_RECV_BYTES: usize = MAX_REQUEST_BYTES + 512 * 1024;
pub const MAX_TXN_OPS: usize = 128;
