//! A write's answer means the write is there to read: every read that starts
//! after an answer, serializable or linearizable, must find that write, even
//! while the state machine is still writing the batch that held it (shown to
//! fail when writers were answered before the store's lock covered sled's
//! write). Many writers at once make the batches large, so sled's write of a
//! batch is still under way when its writers read.

mod common;

use common::Server;
use synod_proto::etcdserverpb::{PutRequest, RangeRequest};

const WRITERS: usize = 64;
const ROUNDS: usize = 150;

async fn each_read_finds_the_write_just_answered(server: &Server) {
    let mut conns = Vec::new();
    for _ in 0..8 {
        conns.push(server.kv().await);
    }
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let mut kv = conns[w % conns.len()].clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("raw/{w:02}").into_bytes();
            // Values large enough that a batch of them takes sled a while.
            let pad = "x".repeat(2048);
            for round in 0..ROUNDS {
                let value = format!("{round}/{pad}").into_bytes();
                let put = kv
                    .put(PutRequest {
                        key: key.clone(),
                        value: value.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let rev = put.header.unwrap().revision;
                let get = kv
                    .range(RangeRequest {
                        key: key.clone(),
                        serializable: round % 2 == 0,
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|s| panic!("writer {w}, round {round}: get failed: {s:?}"))
                    .into_inner();
                let kv = get.kvs.first().unwrap_or_else(|| {
                    panic!("writer {w}, round {round}: the key written at {rev} is missing")
                });
                assert_eq!(
                    (kv.mod_revision, kv.value == value),
                    (rev, true),
                    "writer {w}, round {round}: a read after the answer missed the write"
                );
                assert!(get.header.unwrap().revision >= rev);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn run(server: Server) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(each_read_finds_the_write_just_answered(&server));
}

#[test]
fn synod_reads_find_answered_writes() {
    let tmp = tempfile::tempdir().unwrap();
    run(Server::synod(&tmp.path().join("data")));
}

/// More workers than this machine's default (one fewer than the cores), so
/// a read and an apply really run at once even on a 2-core machine.
#[test]
fn synod_reads_find_answered_writes_with_four_workers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (port, peer) = (common::free_port(), common::free_port());
    run(Server::synod_with(
        &data,
        port,
        peer,
        &["--worker-threads=4"],
    ));
}

#[test]
fn etcd_reads_find_answered_writes() {
    let tmp = tempfile::tempdir().unwrap();
    run(Server::etcd(&tmp.path().join("data")));
}
