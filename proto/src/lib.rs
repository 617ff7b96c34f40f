//! etcd's v3 API as Rust types and tonic services. Package and field names
//! match etcd's so gRPC paths such as `/etcdserverpb.KV/Range` are identical.
#![allow(clippy::all, missing_docs)]

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}
pub mod authpb {
    tonic::include_proto!("authpb");
}
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}
/// Synod's own Raft payloads: batches of etcd write requests and their results.
pub mod synodpb {
    tonic::include_proto!("synodpb");
}

/// The range end that makes a range cover every key starting with `prefix`
/// (etcd's `GetPrefixRangeEnd`); `\0` (all keys) for an empty prefix or
/// one made only of 0xff bytes.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
