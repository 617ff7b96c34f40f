//! Back-pressure: with more writes in flight than synod holds (5,000, etcd's
//! apply-lag limit), the excess is refused at once with etcd's
//! ResourceExhausted "etcdserver: too many requests" and changes nothing;
//! every write accepted is applied, and the server goes on serving.

mod common;

use std::time::Duration;

use common::Server;
use synod_proto::etcdserverpb::{PutRequest, RangeRequest};

#[test]
fn writes_beyond_the_pending_limit_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::synod(&tmp.path().join("data"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // 64 connections × 200 streams: 12,800 puts in flight at once.
        let mut clients = Vec::new();
        for _ in 0..64 {
            clients.push(server.kv().await);
        }
        let value = vec![b'x'; 4096];
        let mut tasks = Vec::new();
        for i in 0..12_800usize {
            let mut kv = clients[i % clients.len()].clone();
            let value = value.clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("bp/{i:05}").into_bytes();
                let r = kv
                    .put(PutRequest {
                        key: key.clone(),
                        value,
                        ..Default::default()
                    })
                    .await;
                (key, r.map(|_| ()))
            }));
        }
        let (mut accepted, mut refused) = (Vec::new(), Vec::new());
        for t in tasks {
            match t.await.unwrap() {
                (key, Ok(())) => accepted.push(key),
                (key, Err(s)) => {
                    assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                    assert_eq!(s.message(), "etcdserver: too many requests");
                    refused.push(key);
                }
            }
        }
        eprintln!(
            "{} puts accepted, {} refused with too many requests",
            accepted.len(),
            refused.len()
        );
        assert!(
            !refused.is_empty(),
            "12,800 puts in flight and none refused"
        );
        assert!(!accepted.is_empty());

        let mut kv = server.kv().await;
        let all = kv
            .range(RangeRequest {
                key: b"bp/".to_vec(),
                range_end: b"bp0".to_vec(),
                keys_only: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let stored: std::collections::HashSet<Vec<u8>> =
            all.kvs.into_iter().map(|kv| kv.key).collect();
        assert_eq!(
            stored.len(),
            accepted.len(),
            "stored keys differ from accepted puts"
        );
        assert!(accepted.iter().all(|k| stored.contains(k)));
        assert!(refused.iter().all(|k| !stored.contains(k)));

        // Nothing is stuck: the next write goes through at once.
        tokio::time::timeout(
            Duration::from_secs(5),
            kv.put(PutRequest {
                key: b"after".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            }),
        )
        .await
        .expect("write after the burst timed out")
        .expect("write after the burst failed");
    });
}
