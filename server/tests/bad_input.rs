//! Bad input gets etcd's error and changes nothing; the server keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::lease_client::LeaseClient;
use synod_proto::etcdserverpb::{
    request_op, CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseRevokeRequest,
    PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use tonic::transport::Channel;
use tonic::Code;

fn put_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.into(),
            ..Default::default()
        })),
    }
}

async fn revision(kv: &mut KvClient<Channel>) -> i64 {
    kv.range(RangeRequest {
        key: b"probe".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .header
    .unwrap()
    .revision
}

fn expect_err<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, msg: &str) {
    match r {
        Ok(v) => panic!("expected {code:?} {msg:?}, got {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "{}", s.message());
            assert_eq!(s.message(), msg);
        }
    }
}

#[test]
fn bad_requests_get_etcd_errors_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::synod(&tmp.path().join("data"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut kv = server.kv().await;
        let mut lease = LeaseClient::connect(server.url()).await.unwrap();
        for i in 0..5 {
            kv.put(PutRequest {
                key: b"k".to_vec(),
                value: format!("{i}").into_bytes(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        kv.compact(CompactionRequest {
            revision: 3,
            physical: true,
        })
        .await
        .unwrap();
        let before = revision(&mut kv).await;

        expect_err(
            kv.put(PutRequest::default()).await,
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        );
        expect_err(
            kv.range(RangeRequest::default()).await,
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        );
        expect_err(
            kv.delete_range(DeleteRangeRequest::default()).await,
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        );
        for (sort_order, sort_target) in [(99, 0), (0, 99)] {
            expect_err(
                kv.range(RangeRequest {
                    key: b"k".to_vec(),
                    sort_order,
                    sort_target,
                    ..Default::default()
                })
                .await,
                Code::InvalidArgument,
                "etcdserver: invalid sort option",
            );
        }
        expect_err(
            kv.put(PutRequest {
                key: b"missing".to_vec(),
                ignore_value: true,
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
            "etcdserver: key not found",
        );
        // Over etcd's 1.5 MiB request limit but under gRPC's receive limit.
        expect_err(
            kv.put(PutRequest {
                key: b"big".to_vec(),
                value: vec![b'x'; 1600 * 1024],
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
            "etcdserver: request is too large",
        );
        // Over the gRPC receive limit: refused before decoding.
        let err = kv
            .put(PutRequest {
                key: b"huge".to_vec(),
                value: vec![b'x'; 3 << 20],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
        expect_err(
            kv.put(PutRequest {
                key: b"k".to_vec(),
                lease: 12345,
                ..Default::default()
            })
            .await,
            Code::NotFound,
            "etcdserver: requested lease not found",
        );
        expect_err(
            kv.range(RangeRequest {
                key: b"k".to_vec(),
                revision: 2,
                ..Default::default()
            })
            .await,
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        );
        expect_err(
            kv.range(RangeRequest {
                key: b"k".to_vec(),
                revision: 1000,
                ..Default::default()
            })
            .await,
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        );
        expect_err(
            kv.compact(CompactionRequest {
                revision: 2,
                physical: false,
            })
            .await,
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        );
        expect_err(
            kv.txn(TxnRequest {
                success: (0..129).map(|i| put_op(&format!("t{i}"))).collect(),
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        );
        // Nesting deep enough to break decoding at apply time is refused.
        let mut deep = TxnRequest {
            success: vec![put_op("deep")],
            ..Default::default()
        };
        for _ in 0..40 {
            deep = TxnRequest {
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestTxn(deep)),
                }],
                ..Default::default()
            };
        }
        expect_err(
            kv.txn(deep).await,
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        );
        expect_err(
            kv.txn(TxnRequest {
                success: vec![put_op("d"), put_op("d")],
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        );
        expect_err(
            lease
                .lease_grant(LeaseGrantRequest {
                    ttl: 9_000_000_001,
                    id: 0,
                })
                .await,
            Code::OutOfRange,
            "etcdserver: too large lease TTL",
        );
        expect_err(
            lease.lease_revoke(LeaseRevokeRequest { id: 999 }).await,
            Code::NotFound,
            "etcdserver: requested lease not found",
        );
        lease
            .lease_grant(LeaseGrantRequest { ttl: 60, id: 5 })
            .await
            .unwrap();
        expect_err(
            lease
                .lease_grant(LeaseGrantRequest { ttl: 60, id: 5 })
                .await,
            Code::FailedPrecondition,
            "etcdserver: lease already exists",
        );
        assert_eq!(
            revision(&mut kv).await,
            before,
            "a refused request changed the store"
        );

        // A voter that could never join (one started member, two voters)
        // is refused at once rather than left to hang.
        let mut cluster =
            synod_proto::etcdserverpb::cluster_client::ClusterClient::connect(server.url())
                .await
                .unwrap();
        let err = tokio::time::timeout(
            Duration::from_secs(5),
            cluster.member_add(synod_proto::etcdserverpb::MemberAddRequest {
                peer_ur_ls: vec!["http://127.0.0.1:1".into()],
                is_learner: false,
            }),
        )
        .await
        .expect("MemberAdd hung")
        .unwrap_err();
        assert_eq!(
            err.message(),
            "etcdserver: re-configuration failed due to not enough started members"
        );
    });

    // Garbage on the client port: HTTP/1, random bytes, a half-open stream.
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 255, 254][..],
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\xff\xff\xff\xff"[..],
    ] {
        let mut s = TcpStream::connect(server.endpoint()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = s.write_all(junk);
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
    }
    rt.block_on(async {
        let mut kv = server.kv().await;
        kv.put(PutRequest {
            key: b"still".to_vec(),
            value: b"serving".to_vec(),
            ..Default::default()
        })
        .await
        .expect("server stopped serving after garbage input");
    });
}

/// Raft timing flags etcd refuses are refused the same way, before anything
/// is created.
#[test]
fn bad_timing_flags_are_refused_as_etcd_refuses_them() {
    let cases: [(&[&str], &str); 2] = [
        (
            &["--heartbeat-interval=300", "--election-timeout=1000"],
            "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]",
        ),
        (
            &["--election-timeout=60000"],
            "--election-timeout[60000ms] is too long, and should be set less than 50000ms",
        ),
    ];
    for program in ["etcd", env!("CARGO_BIN_EXE_synod")] {
        for (flags, message) in cases {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            let out = std::process::Command::new(program)
                .arg(format!("--data-dir={}", data.display()))
                .args(flags)
                .output()
                .unwrap_or_else(|e| panic!("start {program} (run scripts/setup): {e}"));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{program} {flags:?}: {err}");
            assert!(err.contains(message), "{program} {flags:?}: {err}");
            assert!(!data.exists(), "{program} {flags:?} created its data dir");
        }
    }
}

/// `--worker-threads` and `--idle-spin-us` are ours, not etcd's: a value
/// out of range or not a number is refused with the flag named, before
/// anything is created.
#[test]
fn bad_thread_flags_are_refused() {
    let cases: [(&str, &[&str]); 2] = [
        ("--worker-threads", &["0", "-1", "two", "100000"]),
        ("--idle-spin-us", &["-1", "soon", "1000001"]),
    ];
    for (flag, values) in cases {
        for value in values {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_synod"))
                .arg(format!("--data-dir={}", data.display()))
                .arg(format!("{flag}={value}"))
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{flag}={value}: {err}");
            assert!(err.contains(flag), "{flag}={value}: {err}");
            assert!(!data.exists(), "{flag}={value} created the data dir");
        }
    }
}
