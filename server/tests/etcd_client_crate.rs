//! The Rust `etcd-client` crate, a client nobody here wrote, using its lock
//! and election calls against synod and against a real etcd: the same
//! program must see the same answers from both.

mod common;

use std::time::Duration;

use common::Server;
use etcd_client::{Client, Error, LockOptions, ProclaimOptions, ResignOptions};
use tokio::time::timeout;

async fn both<F, Fut>(f: F) -> (Vec<String>, Vec<String>)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let dir = tempfile::tempdir().unwrap();
    // Starting a server blocks until it answers.
    let synod = tokio::task::block_in_place(|| Server::synod(&dir.path().join("synod")));
    let a = f(synod.endpoint()).await;
    drop(synod);
    let etcd = tokio::task::block_in_place(|| Server::etcd(&dir.path().join("etcd")));
    let b = f(etcd.endpoint()).await;
    (a, b)
}

fn message(e: Error) -> String {
    match e {
        Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_unlock() {
    let (s, e) = both(|ep| async move {
        let mut c = Client::connect([ep.as_str()], None).await.unwrap();
        let mut seen = Vec::new();
        let l1 = c.lease_grant(30, None).await.unwrap().id();
        let l2 = c.lease_grant(30, None).await.unwrap().id();
        let k1 = c
            .lock("job", Some(LockOptions::new().with_lease(l1)))
            .await
            .unwrap()
            .key()
            .to_vec();
        seen.push(format!("key {}", k1 == format!("job/{l1:x}").into_bytes()));
        let mut c2 = c.clone();
        let mut waiter = tokio::spawn(async move {
            c2.lock("job", Some(LockOptions::new().with_lease(l2)))
                .await
                .map(|r| r.key().to_vec())
        });
        seen.push(format!(
            "waits {}",
            timeout(Duration::from_millis(400), &mut waiter)
                .await
                .is_err()
        ));
        c.unlock(k1).await.unwrap();
        let k2 = timeout(Duration::from_secs(15), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(format!("next {}", k2 == format!("job/{l2:x}").into_bytes()));
        c.unlock(k2).await.unwrap();
        let err = c
            .lock("job", Some(LockOptions::new().with_lease(0x4242)))
            .await
            .unwrap_err();
        seen.push(message(err));
        seen
    })
    .await;
    assert_eq!(s, e);
    assert_eq!(
        s,
        [
            "key true",
            "waits true",
            "next true",
            "Unknown: etcdserver: requested lease not found"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_round() {
    let (s, e) = both(|ep| async move {
        let mut c = Client::connect([ep.as_str()], None).await.unwrap();
        let mut seen = Vec::new();
        seen.push(message(c.leader("pool").await.unwrap_err()));
        let l1 = c.lease_grant(30, None).await.unwrap().id();
        let l2 = c.lease_grant(30, None).await.unwrap().id();
        let first = c
            .campaign("pool", "one", l1)
            .await
            .unwrap()
            .leader()
            .cloned()
            .unwrap();
        // etcd answers Observe's headers only with a first leader, so the
        // stream is opened once someone leads.
        let mut observe = c.observe("pool").await.unwrap();
        let mut c2 = c.clone();
        let mut second = tokio::spawn(async move {
            c2.campaign("pool", "two", l2)
                .await
                .map(|mut r| r.take_leader())
        });
        seen.push(format!(
            "second waits {}",
            timeout(Duration::from_millis(400), &mut second)
                .await
                .is_err()
        ));
        c.proclaim(
            "one-b",
            Some(ProclaimOptions::new().with_leader(first.clone())),
        )
        .await
        .unwrap();
        let kv = c.leader("pool").await.unwrap();
        seen.push(format!(
            "leader {}",
            String::from_utf8_lossy(kv.kv().unwrap().value())
        ));
        c.resign(Some(ResignOptions::new().with_leader(first.clone())))
            .await
            .unwrap();
        let next = timeout(Duration::from_secs(15), second)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(format!(
            "second leads {}",
            next.key() == format!("pool/{l2:x}").as_bytes()
        ));
        for _ in 0..3 {
            let r = timeout(Duration::from_secs(15), observe.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            seen.push(format!(
                "observed {}",
                String::from_utf8_lossy(r.kv().unwrap().value())
            ));
        }
        // The first leader's key is gone: proclaiming with it is refused.
        let err = c
            .proclaim("stale", Some(ProclaimOptions::new().with_leader(first)))
            .await
            .unwrap_err();
        seen.push(message(err));
        seen
    })
    .await;
    assert_eq!(s, e);
    assert_eq!(
        s,
        [
            "Unknown: election: no leader",
            "second waits true",
            "leader one-b",
            "second leads true",
            "observed one",
            "observed one-b",
            "observed two",
            "Unknown: election: not leader"
        ]
    );
}
