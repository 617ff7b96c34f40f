//! Kill -9 during a stream of acknowledged puts: after a restart every
//! acknowledged put is there, revisions continue, and leases still expire.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use synod_proto::etcdserverpb::lease_client::LeaseClient;
use synod_proto::etcdserverpb::{LeaseGrantRequest, PutRequest, RangeRequest};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn acknowledged_puts_survive_kill9() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut server = Server::synod(&dir);
    let (port, peer_port) = (server.port, server.peer_port);
    let url = server.url();
    let rt = runtime();
    let acked: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();

    let writers = rt.block_on(async {
        let mut leases = LeaseClient::connect(url.clone()).await.unwrap();
        leases
            .lease_grant(LeaseGrantRequest { ttl: 3, id: 77 })
            .await
            .unwrap();
        let mut kv = server.kv().await;
        kv.put(PutRequest {
            key: b"leased".to_vec(),
            value: b"v".to_vec(),
            lease: 77,
            ..Default::default()
        })
        .await
        .unwrap();

        let mut handles = Vec::new();
        for w in 0..32 {
            let acked = acked.clone();
            let mut kv = kv.clone();
            handles.push(tokio::spawn(async move {
                for n in 0.. {
                    let key = format!("w{w}-{n}");
                    let put = kv.put(PutRequest {
                        key: key.clone().into_bytes(),
                        value: key.clone().into_bytes(),
                        ..Default::default()
                    });
                    match tokio::time::timeout(Duration::from_secs(5), put).await {
                        Ok(Ok(resp)) => {
                            let rev = resp.into_inner().header.unwrap().revision;
                            acked.lock().unwrap().push((key, rev));
                        }
                        _ => break,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        handles
    });
    server.kill9();
    rt.block_on(async {
        for h in writers {
            h.await.unwrap();
        }
    });
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "only {} puts acknowledged before the kill",
        acked.len()
    );
    let max_rev = acked.iter().map(|(_, r)| *r).max().unwrap();
    eprintln!(
        "{} puts acknowledged before kill -9, up to revision {max_rev}",
        acked.len()
    );

    let server = Server::synod_on(&dir, port, peer_port);
    rt.block_on(async {
        let mut kv = server.kv().await;
        for (key, rev) in &acked {
            let r = kv
                .range(RangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", server.log_text()))
                .into_inner();
            assert_eq!(r.kvs.len(), 1, "acknowledged put of {key} lost");
            assert_eq!(
                r.kvs[0].mod_revision, *rev,
                "{key} has a different revision"
            );
            assert_eq!(r.kvs[0].value, key.as_bytes());
        }
        let current = kv
            .range(RangeRequest {
                key: b"w0-0".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .revision;
        assert!(current >= max_rev);
        let next = kv
            .put(PutRequest {
                key: b"after".to_vec(),
                value: b"restart".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .revision;
        assert_eq!(next, current + 1, "revisions do not continue after restart");

        // The lease survived the crash and still expires, taking its key.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = kv
                .range(RangeRequest {
                    key: b"leased".to_vec(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            if r.kvs.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "lease never expired after restart"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// With snapshots every 50 entries, the log is snapshotted and purged many
/// times; restarts (clean and kill -9) must still find every key, and keep
/// taking writes.
#[test]
fn restarts_after_snapshots_and_log_purges() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (port, peer) = (common::free_port(), common::free_port());
    let flags = ["--snapshot-count", "50"];
    let rt = runtime();
    let put_range = |server: &Server, from: usize, to: usize| {
        rt.block_on(async {
            let mut kv = server.kv().await;
            for i in from..to {
                kv.put(PutRequest {
                    key: format!("k{i:04}").into_bytes(),
                    value: format!("v{i}").into_bytes(),
                    ..Default::default()
                })
                .await
                .unwrap();
            }
        })
    };
    let check = |server: &Server, n: usize| {
        rt.block_on(async {
            let mut kv = server.kv().await;
            let r = kv
                .range(RangeRequest {
                    key: b"k".to_vec(),
                    range_end: b"l".to_vec(),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("{e}\n{}", server.log_text()))
                .into_inner();
            assert_eq!(r.count as usize, n, "keys lost across restart");
            // n puts plus the big value, from revision 1.
            assert_eq!(r.header.unwrap().revision, n as i64 + 2);
        })
    };
    let server = Server::synod_with(&dir, port, peer, &flags);
    put_range(&server, 0, 300);
    // Values past sled's inline limit (~128 KiB) live in files of their own.
    let big = vec![b'x'; 1400 * 1024];
    rt.block_on(async {
        let mut kv = server.kv().await;
        kv.put(PutRequest {
            key: b"big".to_vec(),
            value: big.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    });
    drop(server); // SIGKILL
    let server = Server::synod_with(&dir, port, peer, &flags);
    rt.block_on(async {
        let mut kv = server.kv().await;
        let r = kv
            .range(RangeRequest {
                key: b"big".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.kvs[0].value, big, "large value lost across kill -9");
    });
    check(&server, 300);
    put_range(&server, 300, 400);
    check(&server, 400);
    drop(server);
    let mut server = Server::synod_with(&dir, port, peer, &flags);
    check(&server, 400);
    // A clean shutdown keeps everything too (sled is opened `temporary`,
    // which would delete its directory if its last handle were dropped).
    server.terminate();
    assert!(dir.join("db").join("db").exists(), "sled's files are gone");
    let server = Server::synod_with(&dir, port, peer, &flags);
    check(&server, 400);
}
