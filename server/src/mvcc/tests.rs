//! The MVCC store against etcd's semantics, on a real sled database.

use synod_proto::etcdserverpb::{
    compare, request_op, CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest,
    LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use synod_proto::synodpb::{self, request, response};

use super::*;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .temporary(true)
        .open()
        .unwrap();
    let store = Store::open(db.open_tree("sm").unwrap()).unwrap();
    (dir, store)
}

fn apply(store: &Store, op: request::Op) -> response::Op {
    let batch = synodpb::Batch {
        requests: vec![synodpb::Request { op: Some(op) }],
    };
    let mut out = store.apply([Some(&batch)], Vec::new()).unwrap();
    out.remove(0).responses.remove(0).op.unwrap()
}

fn put(store: &Store, k: &str, v: &str) -> response::Op {
    apply(
        store,
        request::Op::Put(PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        }),
    )
}

fn get(store: &Store, k: &str, rev: i64) -> Result<Option<KeyValue>, EtcdError> {
    let r = store.range(&RangeRequest {
        key: k.into(),
        revision: rev,
        ..Default::default()
    })?;
    Ok(r.kvs.into_iter().next())
}

fn error_message(op: response::Op) -> String {
    match op {
        response::Op::Error(e) => e.message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn revisions_versions_and_history() {
    let (_d, s) = open();
    put(&s, "a", "1");
    put(&s, "a", "2");
    put(&s, "b", "x");
    let a = get(&s, "a", 0).unwrap().unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 3, 2));
    assert_eq!(get(&s, "a", 2).unwrap().unwrap().value, b"1");
    assert!(get(&s, "a", 1).unwrap().is_none());
    apply(
        &s,
        request::Op::DeleteRange(DeleteRangeRequest {
            key: "a".into(),
            ..Default::default()
        }),
    );
    assert_eq!(s.current_rev(), 5);
    assert!(get(&s, "a", 0).unwrap().is_none());
    put(&s, "a", "3");
    let a = get(&s, "a", 0).unwrap().unwrap();
    // A new generation starts over.
    assert_eq!((a.create_revision, a.version), (6, 1));
    assert_eq!(get(&s, "a", 10), Err(EtcdError::FutureRev));
}

#[test]
fn deleting_nothing_keeps_the_revision() {
    let (_d, s) = open();
    put(&s, "a", "1");
    let r = apply(
        &s,
        request::Op::DeleteRange(DeleteRangeRequest {
            key: "zzz".into(),
            ..Default::default()
        }),
    );
    match r {
        response::Op::DeleteRange(d) => assert_eq!(d.deleted, 0),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.current_rev(), 2);
}

#[test]
fn range_limit_sort_and_count() {
    use synod_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
    let (_d, s) = open();
    for (k, v) in [("k1", "c"), ("k2", "a"), ("k3", "b"), ("l", "z")] {
        put(&s, k, v);
    }
    let r = s
        .range(&RangeRequest {
            key: "k".into(),
            range_end: "l".into(),
            limit: 2,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.kvs.len(), 2);
    assert!(r.more);
    assert_eq!(r.count, 3);
    let r = s
        .range(&RangeRequest {
            key: "k".into(),
            range_end: "l".into(),
            sort_target: SortTarget::Value as i32,
            sort_order: SortOrder::Descend as i32,
            ..Default::default()
        })
        .unwrap();
    let keys: Vec<_> = r.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec![b"k1".to_vec(), b"k3".to_vec(), b"k2".to_vec()]);
    let r = s
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            count_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((r.count, r.kvs.len()), (4, 0));
    let r = s
        .range(&RangeRequest {
            key: "k".into(),
            range_end: "l".into(),
            min_mod_revision: 3,
            keys_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.kvs.len(), 2);
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
}

#[test]
fn txn_compares_and_sees_its_own_writes() {
    let (_d, s) = open();
    put(&s, "a", "1");
    let txn = TxnRequest {
        compare: vec![Compare {
            key: "a".into(),
            target: compare::CompareTarget::Value as i32,
            result: compare::CompareResult::Equal as i32,
            target_union: Some(compare::TargetUnion::Value("1".into())),
            ..Default::default()
        }],
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: "a".into(),
                    value: "2".into(),
                    ..Default::default()
                })),
            },
            RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: "b".into(),
                    value: "2".into(),
                    ..Default::default()
                })),
            },
            RequestOp {
                request: Some(request_op::Request::RequestRange(RangeRequest {
                    key: "a".into(),
                    ..Default::default()
                })),
            },
        ],
        failure: vec![],
    };
    let r = match apply(&s, request::Op::Txn(txn.clone())) {
        response::Op::Txn(t) => t,
        other => panic!("{other:?}"),
    };
    assert!(r.succeeded);
    // Both puts share one main revision.
    assert_eq!(s.current_rev(), 3);
    assert_eq!(get(&s, "b", 0).unwrap().unwrap().mod_revision, 3);
    match &r.responses[2].response {
        Some(synod_proto::etcdserverpb::response_op::Response::ResponseRange(rr)) => {
            assert_eq!(rr.kvs[0].value, b"2")
        }
        other => panic!("{other:?}"),
    }
    // Now the compare fails and the empty failure branch changes nothing.
    let r = match apply(&s, request::Op::Txn(txn)) {
        response::Op::Txn(t) => t,
        other => panic!("{other:?}"),
    };
    assert!(!r.succeeded);
    assert_eq!(s.current_rev(), 3);
}

#[test]
fn failing_txn_changes_nothing() {
    let (_d, s) = open();
    let txn = TxnRequest {
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: "a".into(),
                    ..Default::default()
                })),
            },
            RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: "b".into(),
                    lease: 42,
                    ..Default::default()
                })),
            },
        ],
        ..Default::default()
    };
    let msg = error_message(apply(&s, request::Op::Txn(txn)));
    assert_eq!(msg, "etcdserver: requested lease not found");
    // A fresh store is at revision 1, as etcd's is.
    assert_eq!(s.current_rev(), 1);
    assert!(get(&s, "a", 0).unwrap().is_none());
}

#[test]
fn compaction_and_errors() {
    let (_d, s) = open();
    for i in 0..5 {
        put(&s, "a", &i.to_string());
    }
    let compact = |rev| {
        apply(
            &s,
            request::Op::Compaction(CompactionRequest {
                revision: rev,
                physical: false,
            }),
        )
    };
    assert_eq!(
        error_message(compact(9)),
        "etcdserver: mvcc: required revision is a future revision"
    );
    compact(4);
    assert_eq!(get(&s, "a", 3), Err(EtcdError::Compacted));
    assert_eq!(get(&s, "a", 4).unwrap().unwrap().value, b"2");
    assert_eq!(
        error_message(compact(4)),
        "etcdserver: mvcc: required revision has been compacted"
    );
    // Old revisions are gone from storage once the background deletion is
    // done; the visible ones stay.
    block_on(s.compaction_done());
    assert!(s.history(1, 3).unwrap().is_empty());
    assert_eq!(s.history(4, 6).unwrap().len(), 3);
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn grant(store: &Store, id: i64, ttl: i64) {
    apply(
        store,
        request::Op::LeaseGrant(LeaseGrantRequest { ttl, id }),
    );
}

fn compact(store: &Store, rev: i64) {
    apply(
        store,
        request::Op::Compaction(CompactionRequest {
            revision: rev,
            physical: false,
        }),
    );
}

/// Compaction drops revisions from the index at once (reads there are
/// refused) and deletes their records in the background; records a stopped
/// process left behind are found and deleted at the next open.
#[test]
fn compacted_records_are_deleted_in_the_background_even_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let stored_revs = |s: &Store| s.tree().unwrap().scan_prefix([REV_PREFIX]).count();
    let latest;
    {
        let db = sled::open(dir.path()).unwrap();
        let s = Store::open(db.open_tree("sm").unwrap()).unwrap();
        for i in 0..6_000 {
            put(&s, &format!("k{}", i % 10), &i.to_string());
        }
        latest = s.current_rev();
        compact(&s, latest);
        // The index answers at once, whatever storage still holds.
        assert_eq!(get(&s, "k3", latest - 20), Err(EtcdError::Compacted));
        assert_eq!(get(&s, "k9", 0).unwrap().unwrap().value, b"5999");
        // Stop before the worker (1,000 records per batch, 10 ms apart) can
        // have deleted all 5,990 dropped records.
        let left = stored_revs(&s);
        assert!(left > 10, "nothing left to find after a restart");
        db.flush().unwrap();
    }
    let db = sled::open(dir.path()).unwrap();
    let s = Store::open(db.open_tree("sm").unwrap()).unwrap();
    assert_eq!(s.compact_rev(), latest);
    block_on(s.compaction_done());
    assert_eq!(stored_revs(&s), 10, "compacted records left in storage");
    for k in 0..10 {
        let kv = get(&s, &format!("k{k}"), 0).unwrap().unwrap();
        assert_eq!(kv.value, (5990 + k).to_string().as_bytes());
    }
}

#[test]
fn leases_attach_and_revoke_in_one_revision() {
    let (_d, s) = open();
    grant(&s, 7, 10);
    for k in ["x", "y"] {
        apply(
            &s,
            request::Op::Put(PutRequest {
                key: k.into(),
                lease: 7,
                ..Default::default()
            }),
        );
    }
    assert_eq!(s.lease_info(7).unwrap().2.len(), 2);
    let before = s.current_rev();
    apply(&s, request::Op::LeaseRevoke(LeaseRevokeRequest { id: 7 }));
    assert_eq!(s.current_rev(), before + 1);
    assert!(get(&s, "x", 0).unwrap().is_none());
    assert!(s.lease_info(7).is_none());
    assert_eq!(
        error_message(apply(
            &s,
            request::Op::LeaseRevoke(LeaseRevokeRequest { id: 7 })
        )),
        "etcdserver: requested lease not found"
    );
}

#[test]
fn reopening_rebuilds_index_and_leases() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        let s = Store::open(db.open_tree("sm").unwrap()).unwrap();
        grant(&s, 9, 30);
        apply(
            &s,
            request::Op::Put(PutRequest {
                key: "k".into(),
                value: "v".into(),
                lease: 9,
                ..Default::default()
            }),
        );
        put(&s, "j", "w");
        put(&s, "j", "w2");
        db.flush().unwrap();
    }
    let db = sled::open(dir.path()).unwrap();
    let s = Store::open(db.open_tree("sm").unwrap()).unwrap();
    assert_eq!(s.current_rev(), 4);
    assert_eq!(get(&s, "k", 0).unwrap().unwrap().lease, 9);
    assert_eq!(s.lease_info(9).unwrap().2, vec![b"k".to_vec()]);
    // A put after the restart counts on from what the index rebuilt: the
    // version, creation revision and (with ignore_lease) the lease.
    apply(
        &s,
        request::Op::Put(PutRequest {
            key: "k".into(),
            value: "v2".into(),
            ignore_lease: true,
            ..Default::default()
        }),
    );
    put(&s, "j", "w3");
    let k = get(&s, "k", 0).unwrap().unwrap();
    assert_eq!((k.create_revision, k.version, k.lease), (2, 2, 9));
    let j = get(&s, "j", 0).unwrap().unwrap();
    assert_eq!((j.create_revision, j.mod_revision, j.version), (3, 6, 3));
    // Compares on metadata are answered from the index, on values from
    // the record; both must agree with what a range returns.
    use compare::{CompareResult, CompareTarget, TargetUnion};
    let cmp = |target: CompareTarget, union: TargetUnion| Compare {
        key: "j".into(),
        target: target as i32,
        result: CompareResult::Equal as i32,
        target_union: Some(union),
        ..Default::default()
    };
    for c in [
        cmp(CompareTarget::Version, TargetUnion::Version(3)),
        cmp(CompareTarget::Create, TargetUnion::CreateRevision(3)),
        cmp(CompareTarget::Mod, TargetUnion::ModRevision(6)),
        cmp(CompareTarget::Lease, TargetUnion::Lease(0)),
        value_is("j", "w3"),
    ] {
        let r = apply(
            &s,
            request::Op::Txn(TxnRequest {
                compare: vec![c.clone()],
                ..Default::default()
            }),
        );
        match r {
            response::Op::Txn(t) => assert!(t.succeeded, "{c:?}"),
            other => panic!("{other:?}"),
        }
    }
}

fn op_put(k: &str, v: &str, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: k.into(),
            value: v.into(),
            lease,
            ..Default::default()
        })),
    }
}

fn value_is(k: &str, v: &str) -> Compare {
    Compare {
        key: k.into(),
        target: compare::CompareTarget::Value as i32,
        result: compare::CompareResult::Equal as i32,
        target_union: Some(compare::TargetUnion::Value(v.into())),
        ..Default::default()
    }
}

#[test]
fn nested_compares_see_the_state_before_the_txn() {
    let (_d, s) = open();
    // The inner compare is false before the txn (a is unset) and would be
    // true after the outer put; etcd decides on the state before the txn,
    // so the inner failure branch runs.
    let txn = TxnRequest {
        success: vec![
            op_put("a", "1", 0),
            RequestOp {
                request: Some(request_op::Request::RequestTxn(TxnRequest {
                    compare: vec![value_is("a", "1")],
                    success: vec![op_put("b", "then", 0)],
                    failure: vec![op_put("b", "else", 0)],
                })),
            },
        ],
        ..Default::default()
    };
    match apply(&s, request::Op::Txn(txn)) {
        response::Op::Txn(t) => assert!(t.succeeded),
        other => panic!("{other:?}"),
    }
    assert_eq!(get(&s, "b", 0).unwrap().unwrap().value, b"else");

    // A nested op that fails validation fails the whole txn, unchanged.
    let before = s.current_rev();
    let txn = TxnRequest {
        success: vec![
            op_put("c", "1", 0),
            RequestOp {
                request: Some(request_op::Request::RequestTxn(TxnRequest {
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestRange(RangeRequest {
                            key: "a".into(),
                            revision: 1_000_000,
                            ..Default::default()
                        })),
                    }],
                    ..Default::default()
                })),
            },
        ],
        ..Default::default()
    };
    assert_eq!(
        error_message(apply(&s, request::Op::Txn(txn))),
        "etcdserver: mvcc: required revision is a future revision"
    );
    assert_eq!(s.current_rev(), before);
    assert!(get(&s, "c", 0).unwrap().is_none());
}

#[test]
fn an_expired_lease_is_not_renewed() {
    let (_d, s) = open();
    grant(&s, 3, 0);
    assert_eq!(s.keep_alive(3), None);
    grant(&s, 4, 60);
    assert_eq!(s.keep_alive(4), Some(60));
}

#[test]
fn expired_leases_are_revoked_one_revision_each() {
    let (_d, s) = open();
    for id in [1, 2, 3] {
        grant(&s, id, 10);
    }
    // Lease 2 has no keys: revoking it writes nothing and takes no revision.
    for (k, lease) in [("a", 1), ("b", 1), ("c", 3)] {
        apply(
            &s,
            request::Op::Put(PutRequest {
                key: k.into(),
                lease,
                ..Default::default()
            }),
        );
    }
    let before = s.current_rev();
    apply(
        &s,
        request::Op::LeaseExpire(synodpb::LeaseExpire {
            ids: vec![1, 2, 3, 99],
        }),
    );
    assert_eq!(s.current_rev(), before + 2);
    let deleted_at = |k: &str| {
        s.history(before + 1, before + 2)
            .unwrap()
            .into_iter()
            .find(|(kv, tombstone)| *tombstone && kv.key == k.as_bytes())
            .map(|(kv, _)| kv.mod_revision)
    };
    assert_eq!(deleted_at("a"), Some(before + 1));
    assert_eq!(deleted_at("b"), Some(before + 1));
    assert_eq!(deleted_at("c"), Some(before + 2));
    for id in [1, 2, 3] {
        assert!(s.lease_info(id).is_none());
    }
}

#[test]
fn a_failed_apply_stops_serving_rather_than_serve_memory_ahead_of_disk() {
    let (_d, s) = open();
    put(&s, "k", "v");
    let rev = s.read().index.get(b"k", s.current_rev()).unwrap();
    // A record that no longer decodes: reading it for prev_kv fails mid-apply.
    // `tree()` waits until the put is written, so the garbage stays.
    s.tree()
        .unwrap()
        .insert(rev_key(rev), &b"garbage"[..])
        .unwrap();
    let batch = synodpb::Batch {
        requests: vec![synodpb::Request {
            op: Some(request::Op::Put(PutRequest {
                key: "k".into(),
                value: "w".into(),
                prev_kv: true,
                ..Default::default()
            })),
        }],
    };
    assert!(s.apply([Some(&batch)], Vec::new()).is_err());
    let err = get(&s, "other", 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "etcdserver: storage failed while applying; restart this member"
    );
    assert!(s.apply([Some(&batch)], Vec::new()).is_err());
}

#[test]
fn a_streamed_dump_reads_back_as_the_dump() {
    let (_d, s) = open();
    grant(&s, 5, 30);
    for i in 0..300 {
        put(&s, &format!("k{}", i % 40), &"v".repeat(i));
    }
    let mut file = std::io::Cursor::new(Vec::new());
    let rev = s.write_dump(&mut file, |_, _| {}).unwrap();
    assert_eq!(rev, s.current_rev());
    let back: Pairs = bincode::deserialize(file.get_ref()).unwrap();
    assert_eq!(back, s.dump().unwrap());
}

#[test]
fn opening_reads_index_fields_as_the_full_decoder_does() {
    for (kv, tombstone) in [
        (
            KeyValue {
                key: b"some/key".to_vec(),
                create_revision: 3,
                mod_revision: 9,
                version: 4,
                value: vec![7; 3000],
                lease: 0x1234_5678_9abc,
            },
            false,
        ),
        (
            KeyValue {
                key: b"gone".to_vec(),
                mod_revision: 12,
                ..Default::default()
            },
            true,
        ),
    ] {
        let rec = encode_record(&kv, tombstone);
        let (light, t) = decode_index_fields(&rec).unwrap();
        assert_eq!(
            (
                light.key,
                light.create_revision,
                light.version,
                light.lease,
                t
            ),
            (kv.key, kv.create_revision, kv.version, kv.lease, tombstone)
        );
    }
}

/// The revision and the compaction point are stored only by batches that
/// change them; batches that change neither (a lease grant, a txn that
/// only reads, a delete that finds nothing) must leave both as they were
/// across a restart, and a batch that changes one must store it.
#[test]
fn revision_and_compaction_point_survive_batches_that_keep_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        let s = Store::open(db.open_tree("sm").unwrap()).unwrap();
        put(&s, "a", "1");
        put(&s, "b", "2");
        compact(&s, 2);
        grant(&s, 7, 30);
        apply(
            &s,
            request::Op::Txn(TxnRequest {
                compare: vec![value_is("a", "not 1")],
                failure: vec![RequestOp {
                    request: Some(request_op::Request::RequestRange(RangeRequest {
                        key: "a".into(),
                        ..Default::default()
                    })),
                }],
                ..Default::default()
            }),
        );
        apply(
            &s,
            request::Op::DeleteRange(DeleteRangeRequest {
                key: "missing".into(),
                ..Default::default()
            }),
        );
        assert_eq!((s.current_rev(), s.compact_rev()), (3, 2));
        db.flush().unwrap();
    }
    let db = sled::open(dir.path()).unwrap();
    let s = Store::open(db.open_tree("sm").unwrap()).unwrap();
    assert_eq!((s.current_rev(), s.compact_rev()), (3, 2));
    assert!(matches!(get(&s, "a", 1), Err(EtcdError::Compacted)));
    put(&s, "c", "3");
    assert_eq!(get(&s, "c", 0).unwrap().unwrap().mod_revision, 4);
}

/// A snapshot install empties the tree before refilling it, under the state
/// lock; history, ranges and previous values read storage outside it. Each
/// read here overlaps installs of the same content, and must still find
/// every record: a partial history would be events a watcher never gets.
#[test]
fn reads_outside_the_lock_see_every_record_through_snapshot_installs() {
    let (_d, source) = open();
    for i in 0..3_000 {
        put(&source, &format!("k{:03}", i % 300), &format!("v{i}"));
    }
    let rev = source.current_rev();
    let mut dump = std::io::Cursor::new(Vec::new());
    source.write_dump(&mut dump, |_, _| {}).unwrap();
    let dump = dump.into_inner();
    let (_d2, s) = open();
    s.restore_from(&dump[..]).unwrap();
    let installing = std::sync::atomic::AtomicBool::new(true);
    let mut reads = 0;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..100 {
                s.restore_from(&dump[..]).unwrap();
                // Room between installs for a read to run whole.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            installing.store(false, std::sync::atomic::Ordering::SeqCst);
        });
        while installing.load(std::sync::atomic::Ordering::SeqCst) {
            reads += 1;
            assert_eq!(s.history(1, rev).unwrap().len(), 3_000, "history");
            let all = s
                .range(&RangeRequest {
                    key: vec![0],
                    range_end: vec![0],
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(all.kvs.len(), 300, "range");
            let prev = s.prev_of(b"k123", rev);
            assert_eq!(prev.map(|kv| kv.value), Some(b"v2823".to_vec()), "prev");
        }
    });
    assert!(reads > 10, "only {reads} reads overlapped the installs");
}
