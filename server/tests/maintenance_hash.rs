//! Maintenance.Hash (python-etcd3's `hash()`): served by synod as by etcd,
//! stable while nothing changes, different after a write, and the same
//! after a restart of synod on the same data.

mod common;

use common::Server;
use synod_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use synod_proto::etcdserverpb::{HashRequest, PutRequest};

async fn hash(url: String) -> (u32, i64) {
    let r = MaintenanceClient::connect(url)
        .await
        .unwrap()
        .hash(HashRequest {})
        .await
        .unwrap()
        .into_inner();
    (r.hash, r.header.unwrap().revision)
}

/// Hash twice, then after a put; what each step showed.
async fn exercise(s: &Server) -> (u32, Vec<bool>) {
    let (h1, r1) = hash(s.url()).await;
    let (h2, r2) = hash(s.url()).await;
    s.kv()
        .await
        .put(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (h3, r3) = hash(s.url()).await;
    (h3, vec![h1 == h2, r1 == r2, h3 != h2, r3 == r2 + 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_is_served_and_follows_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = tokio::task::block_in_place(|| Server::etcd(&dir.path().join("etcd")));
    let (_, seen) = exercise(&etcd).await;
    assert_eq!(seen, vec![true; 4], "etcd");
    drop(etcd);

    let data = dir.path().join("synod");
    let mut synod = tokio::task::block_in_place(|| Server::synod(&data));
    let (h, seen) = exercise(&synod).await;
    assert_eq!(seen, vec![true; 4], "synod");
    let (port, peer) = (synod.port, synod.peer_port);
    synod.kill9();
    drop(synod);
    let synod = tokio::task::block_in_place(|| Server::synod_on(&data, port, peer));
    assert_eq!(hash(synod.url()).await.0, h, "same data after a restart");
}
