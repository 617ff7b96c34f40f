//! The Rust client core against real servers: the same calls behave the
//! same on synod and on etcd; dead, killed and silent servers give errors
//! within their deadlines; a list of endpoints fails over to a live one.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{free_port, Server};
use synod_client::pb::{compare, request_op, Compare, PutRequest, RequestOp, TxnRequest};
use synod_client::{Client, Error, Options};

fn opts(ms: u64) -> Options {
    Options {
        connect_timeout: Duration::from_millis(ms),
        request_timeout: Duration::from_millis(ms * 2),
    }
}

async fn exercise(c: &Client) {
    assert_eq!(c.get("missing").await.unwrap(), None);
    let put = c
        .put(PutRequest {
            key: b"k".to_vec(),
            value: b"v1".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let rev = put.header.unwrap().revision;
    let kv = c.get("k").await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision, kv.version),
        (&b"v1"[..], rev, 1)
    );

    // Compare-and-swap through a txn.
    let cas = |expect: &str, new: &str| TxnRequest {
        compare: vec![Compare {
            key: b"k".to_vec(),
            target: compare::CompareTarget::Value as i32,
            result: compare::CompareResult::Equal as i32,
            target_union: Some(compare::TargetUnion::Value(expect.into())),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"k".to_vec(),
                value: new.into(),
                ..Default::default()
            })),
        }],
        failure: vec![],
    };
    assert!(c.txn(cas("v1", "v2")).await.unwrap().succeeded);
    assert!(!c.txn(cas("v1", "v3")).await.unwrap().succeeded);
    assert_eq!(c.get("k").await.unwrap().unwrap().value, b"v2");

    let lease = c.lease_grant(30, 0).await.unwrap();
    assert_eq!(c.lease_keep_alive_once(lease.id).await.unwrap(), 30);
    c.lease_revoke(lease.id).await.unwrap();
    assert_eq!(
        c.lease_keep_alive_once(lease.id).await,
        Err(Error::LeaseNotFound(lease.id))
    );
    assert!(matches!(
        c.lease_revoke(lease.id).await,
        Err(Error::LeaseNotFound(_))
    ));

    let now = c.status().await.unwrap().header.unwrap().revision;
    c.compact(now, false).await.unwrap();
    let err = c
        .range(synod_client::pb::RangeRequest {
            key: b"k".to_vec(),
            revision: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Compacted { .. }), "{err:?}");
    let err = c.put(PutRequest::default()).await.unwrap_err();
    assert_eq!(err.to_string(), "etcdserver: key is not provided");
}

#[test]
fn same_behaviour_on_synod_and_etcd() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for server in [
        Server::synod(&tmp.path().join("s")),
        Server::etcd(&tmp.path().join("e")),
    ] {
        let c = Client::new(&[server.endpoint()], Options::default()).unwrap();
        rt.block_on(exercise(&c));
    }
}

#[test]
fn dead_silent_and_killed_servers_fail_within_deadlines() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Nothing listens: connection refused, at once.
    let dead = format!("127.0.0.1:{}", free_port());
    let c = Client::new(&[dead.as_str()], opts(500)).unwrap();
    let t = Instant::now();
    let err = rt.block_on(c.get("k")).unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(3));

    // Accepts TCP but never speaks HTTP/2: bounded by the deadlines.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let c = Client::new(&[addr.as_str()], opts(500)).unwrap();
    let t = Instant::now();
    let err = rt.block_on(c.get("k")).unwrap_err();
    assert!(
        matches!(err, Error::Connection(_) | Error::Timeout(_)),
        "{err:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );

    // A server killed under a connected client.
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::synod(&tmp.path().join("s"));
    let c = Client::new(&[server.endpoint()], opts(500)).unwrap();
    rt.block_on(c.get("k")).unwrap();
    server.kill9();
    let t = Instant::now();
    let err = rt.block_on(c.get("k")).unwrap_err();
    assert!(
        matches!(err, Error::Connection(_) | Error::Timeout(_)),
        "{err:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn fails_over_to_the_next_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::synod(&tmp.path().join("s"));
    let dead = format!("127.0.0.1:{}", free_port());
    let c = Client::new(&[dead.as_str(), server.endpoint().as_str()], opts(1000)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        c.put(PutRequest {
            key: b"f".to_vec(),
            value: b"1".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(c.get("f").await.unwrap().unwrap().value, b"1");
    });
    assert!(Client::new::<&str>(&[], Options::default()).is_err());
    assert!(Client::new(&["http://[bad"], Options::default()).is_err());
}
