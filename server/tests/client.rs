//! The Rust client core against real servers: the same calls behave the
//! same on synod and on etcd; dead, killed and silent servers give errors
//! within their deadlines; a list of endpoints fails over to a live one.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{free_port, Server};
use synod_client::pb::{compare, request_op, Compare, PutRequest, RequestOp, TxnRequest};
use synod_client::{Client, Error, Options, WatchOptions};

fn opts(ms: u64) -> Options {
    Options {
        connect_timeout: Duration::from_millis(ms),
        request_timeout: Duration::from_millis(ms * 2),
        credentials: None,
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

/// Runs `check` with a client of a fresh synod, then of a fresh etcd.
fn on_synod_and_etcd<F, Fut>(opts: Options, check: F)
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for server in [
        Server::synod(&tmp.path().join("s")),
        Server::etcd(&tmp.path().join("e")),
    ] {
        let c = Client::new(&[server.endpoint()], opts.clone()).unwrap();
        rt.block_on(check(c));
    }
}

#[test]
fn same_behaviour_on_synod_and_etcd() {
    on_synod_and_etcd(Options::default(), |c| async move { exercise(&c).await });
}

/// A get that fails with a Connection or Timeout error within 3 s.
fn fails_quickly(rt: &tokio::runtime::Runtime, c: &Client) {
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
    fails_quickly(&rt, &c);

    // A server killed under a connected client.
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::synod(&tmp.path().join("s"));
    let c = Client::new(&[server.endpoint()], opts(500)).unwrap();
    rt.block_on(c.get("k")).unwrap();
    server.kill9();
    fails_quickly(&rt, &c);
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

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

/// Collects events until `n` have arrived (or the deadline passes).
async fn events(w: &mut synod_client::Watch, n: usize) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let end = Instant::now() + Duration::from_secs(5);
    while out.len() < n && Instant::now() < end {
        if let Some(b) = w.next(Some(Duration::from_millis(200))).await.unwrap() {
            for e in b.events {
                let kv = e.kv.unwrap();
                out.push((String::from_utf8(kv.key).unwrap(), kv.mod_revision));
            }
        }
    }
    out
}

fn prefix_watch(prefix: &str, start_revision: i64) -> WatchOptions {
    WatchOptions {
        key: prefix.into(),
        range_end: synod_client::prefix_end(prefix.as_bytes()),
        start_revision,
        ..Default::default()
    }
}

#[test]
fn watches_deliver_in_order_and_report_compaction_on_synod_and_etcd() {
    on_synod_and_etcd(opts(1000), |c| async move {
        let mut w = c.watch(prefix_watch("w/", 0)).await.unwrap();
        assert!(w
            .next(Some(Duration::from_millis(100)))
            .await
            .unwrap()
            .is_none());
        let mut revs = Vec::new();
        for i in 0..20 {
            let r = c.put(put(&format!("w/{i}"), "v")).await.unwrap();
            revs.push((format!("w/{i}"), r.header.unwrap().revision));
        }
        c.put(put("other", "v")).await.unwrap();
        assert_eq!(events(&mut w, 20).await, revs);

        // History replay from a past revision, then compaction under it.
        let mut replay = c.watch(prefix_watch("w/", revs[10].1)).await.unwrap();
        assert_eq!(events(&mut replay, 10).await, revs[10..].to_vec());
        c.compact(revs[15].1, false).await.unwrap();
        let mut old = c.watch(prefix_watch("w/", revs[2].1)).await.unwrap();
        let err = old.next(Some(Duration::from_secs(5))).await.unwrap_err();
        assert_eq!(
            err,
            Error::Compacted {
                compact_revision: revs[15].1
            }
        );
        // The error stays: the watch is over.
        assert!(old.next(Some(Duration::ZERO)).await.is_err());
        w.cancel();
        assert!(w.next(Some(Duration::ZERO)).await.is_err());
    });
}

#[test]
fn a_watch_resumes_after_a_restart_and_gives_up_on_a_dead_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let (port, peer) = (free_port(), free_port());
    let mut server = Server::synod_on(&dir, port, peer);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = Client::new(&[server.endpoint()], opts(2500)).unwrap();
    let mut w = rt.block_on(async {
        let mut w = c.watch(prefix_watch("r/", 0)).await.unwrap();
        let a = c
            .put(put("r/a", "1"))
            .await
            .unwrap()
            .header
            .unwrap()
            .revision;
        assert_eq!(events(&mut w, 1).await, vec![("r/a".into(), a)]);
        w
    });

    // Killed and back within the request timeout: the watch carries on
    // from the next revision, with nothing lost or repeated.
    server.kill9();
    server = Server::synod_on(&dir, port, peer);
    rt.block_on(async {
        let b = c
            .put(put("r/b", "2"))
            .await
            .unwrap()
            .header
            .unwrap()
            .revision;
        assert_eq!(events(&mut w, 1).await, vec![("r/b".into(), b)]);
    });

    // Killed for good: a Connection error once the timeout has passed.
    server.kill9();
    rt.block_on(async {
        let t = Instant::now();
        let err = w.next(Some(Duration::from_secs(20))).await.unwrap_err();
        assert!(matches!(err, Error::Connection(_)), "{err:?}");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    });
}

#[test]
fn background_keep_alive_holds_a_lease_until_stopped_or_revoked() {
    on_synod_and_etcd(opts(1000), |c| async move {
        let kept = c.lease_grant(2, 0).await.unwrap();
        let left = c.lease_grant(2, 0).await.unwrap();
        let ka = c.keep_alive(kept.id, kept.ttl);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(c.lease_time_to_live(kept.id, false).await.unwrap().ttl > 0);
        assert_eq!(c.lease_time_to_live(left.id, false).await.unwrap().ttl, -1);
        assert!(ka.status().running);

        // Revoked elsewhere: the task notices and stops.
        c.lease_revoke(kept.id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let st = ka.status();
        assert!(!st.running);
        assert_eq!(st.error, Some(Error::LeaseNotFound(kept.id)));

        // Stopped: the lease runs out.
        let l = c.lease_grant(2, 0).await.unwrap();
        let ka = c.keep_alive(l.id, l.ttl);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        ka.stop();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(c.lease_time_to_live(l.id, false).await.unwrap().ttl, -1);
    });
}

#[test]
fn credentials_authenticate_and_renew_expired_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    // Tokens that expire after a second of disuse, to see them renewed.
    let etcd = Server::etcd_with(&tmp.path().join("e"), &["--auth-token-ttl=1"]);
    for args in [&["user", "add", "root:secret"][..], &["auth", "enable"]] {
        let out = etcd.etcdctl(args, None);
        assert!(out.status.success(), "{out:?}");
    }
    let with = |user: &str, pw: &str| Options {
        credentials: Some((user.into(), pw.into())),
        ..opts(2000)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Client::new(&[etcd.endpoint()], with("root", "secret")).unwrap();
        c.put(put("a", "1")).await.unwrap();
        let mut w = c.watch(prefix_watch("a", 0)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // The token has expired; the call renews it and succeeds.
        c.put(put("a", "2")).await.unwrap();
        assert_eq!(c.get("a").await.unwrap().unwrap().value, b"2");
        assert_eq!(events(&mut w, 1).await.len(), 1);

        let anon = Client::new(&[etcd.endpoint()], opts(2000)).unwrap();
        let err = anon.get("a").await.unwrap_err();
        assert_eq!(err.to_string(), "etcdserver: user name is empty");
        let wrong = Client::new(&[etcd.endpoint()], with("root", "nope")).unwrap();
        let err = wrong.get("a").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "etcdserver: authentication failed, invalid user ID or password"
        );
    });
    // Credentials given to a server without authentication are not needed
    // and not an error, as with etcd's own client.
    let synod = Server::synod(&tmp.path().join("s"));
    rt.block_on(async {
        let c = Client::new(&[synod.endpoint()], with("root", "secret")).unwrap();
        c.put(put("a", "1")).await.unwrap();
    });
}

#[test]
fn responses_over_four_mib_arrive_in_ranges_and_watch_replays() {
    on_synod_and_etcd(opts(5000), |c| async move {
        // Six values of 1 MiB: each write is under the request limit, the
        // range and the replay that return them all are not under tonic's
        // default 4 MiB response limit.
        let mut first = 0;
        for i in 0..6 {
            let r = c
                .put(put(&format!("big/{i}"), &"x".repeat(1 << 20)))
                .await
                .unwrap();
            if i == 0 {
                first = r.header.unwrap().revision;
            }
        }
        let r = c
            .range(synod_client::pb::RangeRequest {
                key: b"big/".to_vec(),
                range_end: synod_client::prefix_end(b"big/"),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(r.kvs.len(), 6);
        let mut w = c.watch(prefix_watch("big/", first)).await.unwrap();
        assert_eq!(events(&mut w, 6).await.len(), 6);
    });
}

#[test]
fn a_member_that_times_out_is_left_for_the_next() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = listener.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::synod(&tmp.path().join("s"));
    let c = Client::new(&[silent.as_str(), server.endpoint().as_str()], opts(500)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ok = 0;
        for _ in 0..3 {
            if c.put(put("f", "1")).await.is_ok() {
                ok += 1;
            }
        }
        // The first call may spend its time on the silent member; the
        // ones after it go to the live one.
        assert!(ok >= 2, "only {ok} of 3 calls reached the live member");
        assert!(c.get("f").await.unwrap().is_some());
    });
}
