//! Synod's Raft type configuration. A log entry's payload is a batch of etcd
//! write requests (group commit above Raft); its response is their results.
// openraft's trait methods return its own (large) StorageError; helpers follow suit.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use synod_proto::synodpb;

/// A protobuf message carried through openraft, which wants serde: it is
/// serialized as its protobuf bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Proto<T>(pub T);

impl<T: prost::Message> Serialize for Proto<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0.encode_to_vec())
    }
}

impl<'de, T: prost::Message + Default> Deserialize<'de> for Proto<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T: prost::Message + Default> Visitor<'_> for V<T> {
            type Value = Proto<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("protobuf bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Proto<T>, E> {
                T::decode(b).map(Proto).map_err(E::custom)
            }
        }
        d.deserialize_bytes(V(PhantomData))
    }
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Proto<synodpb::Batch>,
        R = Proto<synodpb::BatchResponse>,
        SnapshotData = tokio::fs::File,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;

pub fn io_err<E: std::error::Error + 'static>(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: E,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_bincode() {
        let batch = synodpb::Batch {
            requests: vec![synodpb::Request {
                op: Some(synodpb::request::Op::Put(
                    synod_proto::etcdserverpb::PutRequest {
                        key: b"k".to_vec(),
                        value: vec![0, 1, 2, 255],
                        ..Default::default()
                    },
                )),
            }],
        };
        let entry = Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), 7),
            payload: openraft::EntryPayload::Normal(Proto(batch.clone())),
        };
        let bytes = bincode::serialize(&entry).unwrap();
        let back: Entry = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back.log_id, entry.log_id);
        match back.payload {
            openraft::EntryPayload::Normal(p) => assert_eq!(p.0, batch),
            _ => panic!("payload kind changed"),
        }
    }
}
