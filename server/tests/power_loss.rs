//! A power cut: synod runs with a file layer (power_loss/shim.c, through
//! LD_PRELOAD) that copies each file to a shadow directory only when it is
//! fsync'ed, so the shadow holds exactly what a power cut would leave. After
//! kill -9, a random half of the WAL's sectors written since their last sync
//! are carried over too (a write torn by the cut; each sync is slowed so the
//! kill finds some). Then a new synod starts on the shadow: every
//! acknowledged write must be there, at its revision, and the store must
//! take writes again.
//!
//! The state machine (sled) is synced only at snapshots, so the shadow's copy
//! of it lags: the test passes only because the WAL keeps every entry the
//! durable state machine lacks and the restart replays them.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Server;
use synod_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use synod_proto::etcdserverpb::request_op::Request;
use synod_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

fn build_shim(out: &Path) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/power_loss/shim.c");
    let lib = out.join("shim.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .status()
        .expect("run cc (scripts/setup installs a C compiler)");
    assert!(status.success(), "building the file layer failed");
    lib
}

/// What a writer knows once its request was acknowledged.
#[derive(Clone, Debug)]
enum Acked {
    Put {
        key: String,
        rev: i64,
    },
    /// A delete was sent: unless acknowledged, it may or may not have happened.
    Deleting {
        key: String,
    },
    Deleted {
        key: String,
    },
}

#[test]
fn acknowledged_writes_survive_a_power_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let shadow = tmp.path().join("shadow");
    let lib = build_shim(tmp.path());
    let (port, peer) = (common::free_port(), common::free_port());
    let env = [
        ("LD_PRELOAD", lib.to_str().unwrap()),
        ("SHADOW_SRC", dir.to_str().unwrap()),
        ("SHADOW_DST", shadow.to_str().unwrap()),
        // The shim copies a whole file on each sync, and WAL chunks are
        // written full size up front; small ones keep the copies cheap and
        // make the run cross many chunk changes.
        ("SYNOD_TEST_WAL_CHUNK_SIZE", "262144"),
        ("SHADOW_SYNC_DELAY_US", "1000"),
    ];
    // Snapshots (a sled sync, then a purge of the WAL behind it) every 100
    // entries, so the run crosses many of them.
    let flags = ["--snapshot-count", "100"];
    let mut server = Server::synod_env(&dir, port, peer, &flags, &env);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();

    let writers = rt.block_on(async {
        let kv = server.kv().await;
        let mut handles = Vec::new();
        for w in 0..16 {
            let acked = acked.clone();
            let mut kv = kv.clone();
            handles.push(tokio::spawn(async move {
                for n in 0.. {
                    let key = format!("w{w:02}-{n:05}");
                    let put = kv.put(PutRequest {
                        key: key.clone().into_bytes(),
                        value: format!("value of {key}").into_bytes(),
                        ..Default::default()
                    });
                    let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(5), put).await
                    else {
                        break;
                    };
                    let rev = resp.into_inner().header.unwrap().revision;
                    acked.lock().unwrap().push(Acked::Put { key, rev });
                    // Every tenth key is deleted again in a transaction
                    // guarded on its revision: the delete must survive too.
                    if n % 10 == 0 {
                        let key = format!("w{w:02}-{n:05}");
                        acked
                            .lock()
                            .unwrap()
                            .push(Acked::Deleting { key: key.clone() });
                        let txn = kv.txn(TxnRequest {
                            compare: vec![Compare {
                                result: CompareResult::Equal as i32,
                                target: CompareTarget::Mod as i32,
                                key: key.clone().into_bytes(),
                                target_union: Some(TargetUnion::ModRevision(rev)),
                                ..Default::default()
                            }],
                            success: vec![RequestOp {
                                request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                                    key: key.clone().into_bytes(),
                                    ..Default::default()
                                })),
                            }],
                            failure: vec![],
                        });
                        match tokio::time::timeout(Duration::from_secs(5), txn).await {
                            Ok(Ok(r)) if r.get_ref().succeeded => {
                                acked.lock().unwrap().push(Acked::Deleted { key })
                            }
                            Ok(Ok(_)) => panic!("compare on {key}'s own revision failed"),
                            _ => break,
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        handles
    });
    server.kill9();
    rt.block_on(async {
        for h in writers {
            h.await.unwrap();
        }
    });
    let acked = acked.lock().unwrap().clone();
    let max_rev = acked
        .iter()
        .filter_map(|a| match a {
            Acked::Put { rev, .. } => Some(*rev),
            _ => None,
        })
        .max()
        .expect("no write acknowledged");
    eprintln!(
        "{} writes acknowledged before the power cut, up to revision {max_rev}",
        acked.len()
    );
    assert!(max_rev > 1_000, "too few writes to cross several snapshots");

    // A power cut also tears the write in flight: of the WAL's sectors
    // written since their file's last sync, any set may have reached the
    // disk. Half of them, picked at random, are carried into the shadow.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let (unsynced, kept) = tear_unsynced_sectors(&dir.join("wal"), &shadow.join("wal"), seed);
    eprintln!("seed {seed}: {kept} of {unsynced} unsynced WAL sectors reached the disk");

    // The shadow is the disk after the cut; the real directory is gone.
    std::fs::remove_dir_all(&dir).unwrap();
    let server = Server::synod_with(&shadow, port, peer, &flags);
    rt.block_on(async {
        let mut kv = server.kv().await;
        let all = kv
            .range(RangeRequest {
                key: b"w".to_vec(),
                range_end: b"x".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", server.log_text()))
            .into_inner();
        let current = all.header.as_ref().unwrap().revision;
        assert!(current >= max_rev, "revision went back to {current}");
        let found: std::collections::HashMap<Vec<u8>, i64> = all
            .kvs
            .iter()
            .map(|kv| (kv.key.clone(), kv.mod_revision))
            .collect();
        let deleting: std::collections::HashSet<&str> = acked
            .iter()
            .filter_map(|a| match a {
                Acked::Deleting { key } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        let mut lost = Vec::new();
        for a in &acked {
            match a {
                Acked::Put { key, rev } if !deleting.contains(key.as_str()) => {
                    match found.get(key.as_bytes()) {
                        Some(r) if r == rev => {}
                        Some(r) => lost.push(format!("{key} at revision {r}, not {rev}")),
                        None => lost.push(format!("{key} (revision {rev}) missing")),
                    }
                }
                Acked::Deleted { key } if found.contains_key(key.as_bytes()) => {
                    lost.push(format!("{key} deleted but back"))
                }
                _ => {}
            }
        }
        assert!(
            lost.is_empty(),
            "{} acknowledged writes lost, e.g. {:?}\nserver log:\n{}",
            lost.len(),
            &lost[..lost.len().min(5)],
            server.log_text()
        );
        let next = kv
            .put(PutRequest {
                key: b"after".to_vec(),
                value: b"the cut".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .revision;
        assert_eq!(next, current + 1, "revisions do not go on after the cut");
    });
}

/// Copies a random half of the 512-byte sectors in which each WAL file under
/// `real` differs from its synced copy under `shadow`. Returns how many
/// differed and how many were copied.
fn tear_unsynced_sectors(real: &Path, shadow: &Path, mut seed: u64) -> (usize, usize) {
    let (mut unsynced, mut kept) = (0, 0);
    for e in std::fs::read_dir(real).unwrap() {
        let path = e.unwrap().path();
        let copy = shadow.join(path.file_name().unwrap());
        if path.extension().is_none_or(|x| x != "wal") || !copy.exists() {
            continue;
        }
        let now = std::fs::read(&path).unwrap();
        let mut synced = std::fs::read(&copy).unwrap();
        let len = now.len().min(synced.len());
        for at in (0..len).step_by(512) {
            let end = (at + 512).min(len);
            if now[at..end] == synced[at..end] {
                continue;
            }
            unsynced += 1;
            // xorshift64: enough to pick sectors, and the seed is printed.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if seed & 1 == 1 {
                synced[at..end].copy_from_slice(&now[at..end]);
                kept += 1;
            }
        }
        std::fs::write(&copy, &synced).unwrap();
    }
    (unsynced, kept)
}
