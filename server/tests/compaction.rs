//! Compaction of many revisions, synod against etcd: the compacted history is
//! refused at once, the latest values stay readable, a physical compaction
//! answers once storage is clean, and HashKV afterwards equals etcd's for the
//! same history (records still waiting for the background deletion never
//! count).

mod common;

use common::Server;
use synod_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use synod_proto::etcdserverpb::{CompactionRequest, HashKvRequest, PutRequest, RangeRequest};

async fn history_then_compact(server: &Server, physical: bool) -> (u32, i64) {
    let mut kv = server.kv().await;
    let mut last = 0;
    for i in 0..3_000 {
        last = kv
            .put(PutRequest {
                key: format!("key-{}", i % 7).into_bytes(),
                value: format!("value-{i}").into_bytes(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .revision;
    }
    kv.compact(CompactionRequest {
        revision: last - 5,
        physical,
    })
    .await
    .unwrap();
    let old = kv
        .range(RangeRequest {
            key: b"key-1".to_vec(),
            revision: last - 100,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(old.code(), tonic::Code::OutOfRange);
    assert_eq!(
        old.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let now = kv
        .range(RangeRequest {
            key: b"key-".to_vec(),
            range_end: b"key.".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.kvs.len(), 7);
    let at = kv
        .range(RangeRequest {
            key: b"key-".to_vec(),
            range_end: b"key.".to_vec(),
            revision: last - 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(at.kvs.len(), 7, "values visible at the compaction point");
    let mut m = MaintenanceClient::connect(server.url()).await.unwrap();
    let h = m
        .hash_kv(HashKvRequest { revision: 0 })
        .await
        .unwrap()
        .into_inner();
    (h.hash, h.compact_revision)
}

#[test]
fn compacting_thousands_of_revisions_matches_etcd() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for physical in [false, true] {
        let synod = Server::synod(&tmp.path().join(format!("synod-{physical}")));
        let etcd = Server::etcd(&tmp.path().join(format!("etcd-{physical}")));
        let s = rt.block_on(history_then_compact(&synod, physical));
        let e = rt.block_on(history_then_compact(&etcd, physical));
        assert_eq!(s, e, "HashKV after compaction (physical: {physical})");
    }
}
