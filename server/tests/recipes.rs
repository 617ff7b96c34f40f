//! The recipes against real servers: the same code on synod and on etcd.
//! Locks and elections also against etcd's own `etcdctl lock`, which shares
//! the key layout and so must exclude us and be excluded by us; then the
//! ZooKeeper-style helpers, the mirror and the work queue.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use synod_client::pb::{
    request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use synod_client::recipes::{
    self, Election, Job, LeaderChange, Lock, Mirror, Observer, Queue, Released, Stats, JOB_LOST,
    MAX_PAYLOAD, NOT_LEADER, SESSION_EXPIRED,
};
use synod_client::{prefix_end, Client, Error, Options};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Runs `check` against a fresh synod, then a fresh etcd.
fn on_synod_and_etcd<F, Fut>(check: F)
where
    F: Fn(Client, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for kind in ["synod", "etcd"] {
        let dir = tmp.path().join(kind);
        let server = if kind == "synod" {
            Server::synod(&dir)
        } else {
            Server::etcd(&dir)
        };
        eprintln!("--- on {kind}");
        let c = client(&server.endpoint());
        rt.block_on(check(c, server.endpoint()));
    }
}

fn client(endpoint: &str) -> Client {
    Client::new(&[endpoint], Options::default()).unwrap()
}

/// How many keys wait or hold under `name/`.
async fn in_line(c: &Client, name: &str) -> i64 {
    let prefix = format!("{name}/").into_bytes();
    c.range(RangeRequest {
        range_end: prefix_end(&prefix),
        key: prefix,
        count_only: true,
        ..Default::default()
    })
    .await
    .unwrap()
    .count
}

/// Waits for `task` to finish within `within`.
async fn finishes<T>(task: JoinHandle<T>, within: Duration) -> T {
    tokio::time::timeout(within, task)
        .await
        .expect("did not finish in time")
        .expect("task panicked")
}

/// `lock` waiting for the lock in the background, until it gets it.
fn waiting(mut lock: Lock) -> JoinHandle<(Result<bool, Error>, Lock)> {
    tokio::spawn(async move { (lock.acquire(None).await, lock) })
}

/// `candidate` campaigning with `value` in the background, until it leads.
fn standing(
    mut candidate: Election,
    value: &'static str,
) -> JoinHandle<(Result<bool, Error>, Election)> {
    tokio::spawn(async move { (candidate.campaign(value, None).await, candidate) })
}

/// The next leader change, which must come within 5 s.
async fn next_change(observer: &mut Observer) -> LeaderChange {
    let change = observer.next(Some(Duration::from_secs(5))).await.unwrap();
    change.expect("no leader change within 5 s")
}

fn put(key: &[u8], value: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            ..Default::default()
        })),
    }
}

#[test]
fn lock_excludes_under_contention() {
    on_synod_and_etcd(|_, endpoint| async move {
        const TASKS: usize = 8;
        const ROUNDS: usize = 20;
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            // A client each, as separate processes would have.
            let c = client(&endpoint);
            tasks.push(tokio::spawn(async move {
                let mut lock = Lock::new(c.clone(), "counter-lock", 10).unwrap();
                for _ in 0..ROUNDS {
                    assert!(lock.acquire(None).await.unwrap());
                    // Read, pause, write: without the lock, others' updates
                    // made during the pause are lost.
                    let n: u64 = match c.get("counter").await.unwrap() {
                        Some(kv) => String::from_utf8(kv.value).unwrap().parse().unwrap(),
                        None => 0,
                    };
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    c.put(PutRequest {
                        key: b"counter".to_vec(),
                        value: (n + 1).to_string().into_bytes(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                    assert!(
                        lock.release().await.unwrap(),
                        "lost the lock while holding it"
                    );
                }
            }));
        }
        for t in tasks {
            finishes(t, Duration::from_secs(120)).await;
        }
        let c = client(&endpoint);
        let n = c.get("counter").await.unwrap().unwrap().value;
        let n: usize = String::from_utf8(n).unwrap().parse().unwrap();
        assert_eq!(n, TASKS * ROUNDS, "updates were lost");
        assert_eq!(in_line(&c, "counter-lock").await, 0);
    });
}

#[test]
fn waiter_acquires_after_release_and_try_acquire_does_not_wait() {
    on_synod_and_etcd(|c, _| async move {
        let mut a = Lock::new(c.clone(), "l", 10).unwrap();
        assert!(a.try_acquire().await.unwrap());
        let token_a = a.fencing_token().unwrap();
        assert!(a.is_held().await.unwrap());
        let key = a.key().unwrap().to_vec();
        let expected = format!("l/{:x}", a.lease_id().unwrap());
        assert_eq!(key, expected.into_bytes(), "etcd's key layout");
        // Acquiring again while holding: the same grant.
        assert!(a.acquire(None).await.unwrap());
        assert_eq!(a.fencing_token(), Some(token_a));

        // Not first: try_acquire gives up at once and leaves no key.
        let mut b = Lock::new(c.clone(), "l", 10).unwrap();
        assert!(!b.try_acquire().await.unwrap());
        assert_eq!(in_line(&c, "l").await, 1);
        assert_eq!(b.fencing_token(), None);

        let waiter = waiting(b);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiter.is_finished(), "acquired while the lock was held");
        assert_eq!(in_line(&c, "l").await, 2);

        assert!(a.release().await.unwrap());
        let (got, b) = finishes(waiter, Duration::from_secs(5)).await;
        assert!(got.unwrap());
        assert!(b.is_held().await.unwrap());
        assert!(!a.is_held().await.unwrap());
        assert!(b.fencing_token().unwrap() > token_a);
        // Releasing twice: nothing held the second time.
        assert!(!a.release().await.unwrap());
    });
}

#[test]
fn revoked_lease_frees_the_lock_and_fences_the_old_holder() {
    on_synod_and_etcd(|c, _| async move {
        let mut a = Lock::new(c.clone(), "fenced", 10).unwrap();
        assert!(a.acquire(Some(Duration::from_secs(1))).await.unwrap());
        let b = Lock::new(c.clone(), "fenced", 10).unwrap();
        let waiter = waiting(b);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished());

        // A holder paused past its TTL: its lease is gone, it does not know.
        c.lease_revoke(a.lease_id().unwrap()).await.unwrap();
        let (got, b) = finishes(waiter, Duration::from_secs(5)).await;
        assert!(got.unwrap());
        assert!(!a.is_held().await.unwrap());

        let write = |guard| TxnRequest {
            compare: vec![guard],
            success: vec![put(b"protected", b"x")],
            failure: vec![],
        };
        let stale = c.txn(write(a.guard().unwrap())).await.unwrap();
        assert!(!stale.succeeded, "the old holder's write went through");
        let fresh = c.txn(write(b.guard().unwrap())).await.unwrap();
        assert!(fresh.succeeded);
        assert!(b.fencing_token() > a.fencing_token());
        // The old holder learns it had lost the lock.
        assert!(!a.release().await.unwrap());
    });
}

#[test]
fn acquire_times_out_and_leaves_no_key() {
    on_synod_and_etcd(|c, _| async move {
        let mut a = Lock::new(c.clone(), "t", 10).unwrap();
        assert!(a.acquire(None).await.unwrap());
        let mut b = Lock::new(c.clone(), "t", 10).unwrap();
        let start = Instant::now();
        assert!(!b.acquire(Some(Duration::from_millis(400))).await.unwrap());
        assert!(start.elapsed() >= Duration::from_millis(400));
        assert_eq!(in_line(&c, "t").await, 1);
        assert_eq!(b.key(), None);
        // The timed-out waiter's own lease went with it.
        let lease = b.lease_id();
        assert_eq!(lease, None);

        // A waiter whose own lease goes while it waits does not get the
        // lock later: it fails (etcd #11456).
        let mut w = Lock::new(c.clone(), "t", 2).unwrap();
        let waiter = tokio::spawn(async move { w.acquire(None).await });
        let mut theirs = None;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let prefix = b"t/".to_vec();
            let keys = c
                .range(RangeRequest {
                    range_end: prefix_end(&prefix),
                    key: prefix,
                    ..Default::default()
                })
                .await
                .unwrap()
                .kvs;
            theirs = keys
                .iter()
                .map(|kv| kv.lease)
                .find(|&l| Some(l) != a.lease_id());
            if theirs.is_some() {
                break;
            }
        }
        c.lease_revoke(theirs.expect("the waiter's key"))
            .await
            .unwrap();
        let err = finishes(waiter, Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(err.to_string(), SESSION_EXPIRED);
        assert!(a.is_held().await.unwrap());

        // Dropping a future that waits takes its key back too.
        let mut d = Lock::new(c.clone(), "t", 10).unwrap();
        let r = tokio::time::timeout(Duration::from_millis(300), d.acquire(None)).await;
        assert!(r.is_err());
        let mut gone = false;
        for _ in 0..50 {
            if in_line(&c, "t").await == 1 {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(gone, "a cancelled acquire left its key in line");
        assert!(a.release().await.unwrap());
    });
}

#[test]
fn lock_on_a_callers_lease() {
    on_synod_and_etcd(|c, _| async move {
        let lease = c.lease_grant(30, 0).await.unwrap().id;
        let mut a = Lock::with_lease(c.clone(), "shared", lease).unwrap();
        assert!(a.acquire(None).await.unwrap());
        // The same lease again is the same place in line, as with etcd's
        // Lock RPC.
        let mut again = Lock::with_lease(c.clone(), "shared", lease).unwrap();
        assert!(again.try_acquire().await.unwrap());
        assert_eq!(again.fencing_token(), a.fencing_token());
        assert!(a.release().await.unwrap());
        // The caller's lease outlives the release.
        assert_eq!(c.lease_keep_alive_once(lease).await.unwrap(), 30);
        assert_eq!(in_line(&c, "shared").await, 0);
        assert!(matches!(
            Lock::with_lease(c.clone(), "", lease),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Lock::new(c.clone(), "x", 0),
            Err(Error::InvalidArgument(_))
        ));
    });
}

/// `etcdctl lock NAME`, holding until it is told to stop; returns once it
/// holds the lock (it then prints the lock key).
fn etcdctl_lock(endpoint: &str, name: &str) -> Child {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["lock", name])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run etcdctl (run scripts/setup)");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with(&format!("{name}/")),
        "etcdctl said {line:?}"
    );
    // Read on: a closed pipe would kill etcdctl with SIGPIPE on its next
    // line, before it could unlock.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    child
}

/// SIGTERM, on which etcdctl unlocks and revokes its session.
fn terminate(child: &mut Child) {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    child.wait().unwrap();
}

#[test]
fn excludes_etcdctl_lock_both_ways() {
    on_synod_and_etcd(|c, endpoint| async move {
        let ep = endpoint.clone();
        let mut theirs = tokio::task::spawn_blocking(move || etcdctl_lock(&ep, "shared-lock"))
            .await
            .unwrap();
        let mut ours = Lock::new(c.clone(), "shared-lock", 10).unwrap();
        assert!(!ours.try_acquire().await.unwrap(), "etcdctl holds the lock");
        assert!(!ours
            .acquire(Some(Duration::from_millis(300)))
            .await
            .unwrap());
        tokio::task::spawn_blocking(move || terminate(&mut theirs))
            .await
            .unwrap();
        assert!(ours.acquire(Some(Duration::from_secs(5))).await.unwrap());

        // Now we hold it: etcdctl waits until we release.
        let mut waiting = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(["lock", "shared-lock", "echo", "got it"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            waiting.try_wait().unwrap().is_none(),
            "etcdctl got the lock we hold"
        );
        assert!(ours.release().await.unwrap());
        let out = tokio::task::spawn_blocking(move || waiting.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "got it");
        assert_eq!(in_line(&c, "shared-lock").await, 0);
    });
}

#[test]
fn election_campaign_proclaim_observe_resign() {
    on_synod_and_etcd(|c, _| async move {
        let mut one = Election::new(c.clone(), "svc", 10).unwrap();
        let mut two = Election::new(c.clone(), "svc", 10).unwrap();
        assert_eq!(one.leader().await.unwrap(), None);
        let mut observer = one.observe().await.unwrap();
        let first = next_change(&mut observer).await;
        assert_eq!(first.leader, None, "observe reports that no one leads");

        assert!(one.campaign("a", None).await.unwrap());
        assert!(one.is_leader().await.unwrap());
        let leader = one.leader().await.unwrap().unwrap();
        assert_eq!(leader.value, b"a");
        assert_eq!(Some(leader.key.as_slice()), one.key());
        let seen = next_change(&mut observer).await;
        assert_eq!(
            seen.leader.as_ref().map(|kv| kv.value.as_slice()),
            Some(&b"a"[..])
        );
        assert!(seen.revision > first.revision);

        // A second candidate waits, and withdraws when its time runs out.
        assert!(!two
            .campaign("b", Some(Duration::from_millis(300)))
            .await
            .unwrap());
        assert!(!two.is_leader().await.unwrap());
        assert_eq!(in_line(&c, "svc").await, 1);
        assert!(matches!(two.proclaim("b").await, Err(e) if e.to_string() == NOT_LEADER));

        one.proclaim("a2").await.unwrap();
        let seen = next_change(&mut observer).await;
        assert_eq!(seen.leader.unwrap().value, b"a2");
        // Standing again with another value only updates it.
        assert!(one.campaign("a3", None).await.unwrap());
        let seen = next_change(&mut observer).await;
        assert_eq!(seen.leader.unwrap().value, b"a3");

        // A candidate that is not leader is not reported.
        let challenger = standing(two, "b");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!challenger.is_finished());
        assert!(observer
            .next(Some(Duration::from_millis(200)))
            .await
            .unwrap()
            .is_none());

        // The leader steps down: the waiting candidate takes over.
        assert!(one.resign().await.unwrap());
        let (won, mut two) = finishes(challenger, Duration::from_secs(5)).await;
        assert!(won.unwrap());
        assert!(two.is_leader().await.unwrap());
        assert!(!one.is_leader().await.unwrap());
        let seen = next_change(&mut observer).await;
        let now = seen.leader.unwrap();
        assert_eq!(now.value, b"b");
        assert_eq!(Some(now.key.as_slice()), two.key());
        let err = one.proclaim("x").await.unwrap_err();
        assert_eq!(err.to_string(), NOT_LEADER);

        // The last one leaves: observe says no one leads.
        assert!(two.resign().await.unwrap());
        let seen = next_change(&mut observer).await;
        assert_eq!(seen.leader, None);
        assert_eq!(two.leader().await.unwrap(), None);
        assert!(!two.resign().await.unwrap());
    });
}

#[test]
fn election_leader_lost_with_its_lease() {
    on_synod_and_etcd(|c, _| async move {
        let mut one = Election::new(c.clone(), "lost", 10).unwrap();
        let two = Election::new(c.clone(), "lost", 10).unwrap();
        assert!(one.campaign("one", None).await.unwrap());
        let mut observer = two.observe().await.unwrap();
        let seen = next_change(&mut observer).await;
        assert_eq!(seen.leader.unwrap().value, b"one");
        let challenger = standing(two, "two");
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.lease_revoke(one.lease_id().unwrap()).await.unwrap();
        let (won, two) = finishes(challenger, Duration::from_secs(5)).await;
        assert!(won.unwrap());
        assert!(two.is_leader().await.unwrap());
        let seen = next_change(&mut observer).await;
        assert_eq!(seen.leader.unwrap().value, b"two");
        assert!(!one.is_leader().await.unwrap());
        assert_eq!(
            one.proclaim("again").await.unwrap_err().to_string(),
            NOT_LEADER
        );
        assert!(!one.resign().await.unwrap());
        // Dropping the leader gives leadership up at once, not after the TTL.
        drop(two);
        let seen = next_change(&mut observer).await;
        assert_eq!(seen.leader, None);
    });
}

#[test]
fn sequential_keys_follow_creation_order_across_creators() {
    on_synod_and_etcd(|_, endpoint| async move {
        const TASKS: usize = 8;
        const EACH: usize = 20;
        let prefix = b"seq/job-".to_vec();
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let (c, prefix) = (client(&endpoint), prefix.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..EACH {
                    recipes::create_sequential(&c, &prefix, b"v", 0)
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            finishes(t, Duration::from_secs(60)).await;
        }
        let c = client(&endpoint);
        let resp = c
            .range(RangeRequest {
                key: prefix.clone(),
                range_end: prefix_end(&prefix),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(resp.kvs.len(), TASKS * EACH);
        // The order the server created them in is the order of their names:
        // what ZooKeeper's "lowest number first" recipes rely on.
        let mut by_creation = resp.kvs.clone();
        by_creation.sort_by_key(|kv| kv.create_revision);
        let names: Vec<_> = by_creation.iter().map(|kv| kv.key.clone()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        // Ten digits after the prefix.
        let suffix = &names[0][prefix.len()..];
        assert_eq!(suffix.len(), 10);
        assert!(suffix.iter().all(u8::is_ascii_digit));
    });
}

#[test]
fn children_skip_subtrees_and_see_one_revision() {
    on_synod_and_etcd(|c, _| async move {
        let mut ops = Vec::new();
        for k in ["a", "b/1", "b/2/3", "c-1", "c"] {
            ops.push(put(format!("tree/{k}").as_bytes(), b"v"));
        }
        txn(&c, ops).await;
        // Subtrees bigger than a page, around a plain child.
        for sub in ["big", "huge"] {
            for chunk in 0..10 {
                let ops = (0..100)
                    .map(|i| put(format!("tree/{sub}/{chunk}/{i}").as_bytes(), b"v"))
                    .collect();
                txn(&c, ops).await;
            }
        }
        txn(&c, vec![put(b"tree/d", b"v"), put(b"treetop", b"v")]).await;
        let names = recipes::children(&c, b"tree").await.unwrap();
        let names: Vec<_> = names.iter().map(|n| String::from_utf8_lossy(n)).collect();
        assert_eq!(names, ["a", "b", "big", "c", "c-1", "d", "huge"]);
        assert!(recipes::exists(&c, b"tree/a").await.unwrap());
        assert!(!recipes::exists(&c, b"tree/b").await.unwrap());
        assert!(matches!(
            recipes::children(&c, b"").await,
            Err(Error::InvalidArgument(_))
        ));
    });
}

async fn txn(c: &Client, success: Vec<RequestOp>) {
    let resp = c
        .txn(TxnRequest {
            compare: vec![],
            success,
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(resp.succeeded);
}

fn client_with(endpoint: &str, request_timeout: Duration) -> Client {
    let opts = Options {
        request_timeout,
        connect_timeout: Duration::from_millis(500),
        ..Options::default()
    };
    Client::new(&[endpoint], opts).unwrap()
}

async fn put_kv(c: &Client, key: &str, value: &str) -> i64 {
    let resp = c
        .put(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    resp.header.unwrap().revision
}

async fn delete_key(c: &Client, key: &str) -> i64 {
    let resp = c
        .delete(DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    resp.header.unwrap().revision
}

// The mirror: it follows changes, waits for one's own writes (also writes
// outside the prefix), and loads itself again after a connection loss it
// could not bridge and after the history it needed was compacted. `Proxy`
// stands between the mirror and the server so a test can cut the connection.

/// What the server holds under `prefix`, sorted by key.
async fn server_copy(c: &Client, prefix: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let resp = c
        .range(RangeRequest {
            key: prefix.into(),
            range_end: prefix_end(prefix.as_bytes()),
            ..Default::default()
        })
        .await
        .unwrap();
    resp.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

const SOON: Option<Duration> = Some(Duration::from_secs(10));

#[test]
fn mirror_loads_follows_and_reads_own_writes() {
    on_synod_and_etcd(|c, _| async move {
        // More than a page, so the load pages at one revision.
        for i in 0..1500 {
            put_kv(&c, &format!("cfg/{i:04}"), &format!("v{i}")).await;
        }
        put_kv(&c, "cfh/outside", "not mirrored").await;
        let m = Mirror::start(c.clone(), "cfg/").await.unwrap();
        assert_eq!(m.len(), 1500);
        assert_eq!(m.get(b"cfg/0042").unwrap(), Some(b"v42".to_vec()));
        assert!(matches!(
            m.get(b"cfh/outside"),
            Err(Error::InvalidArgument(_))
        ));

        let rev = put_kv(&c, "cfg/0042", "changed").await;
        assert!(m.wait_for(rev, SOON).await);
        assert_eq!(m.get(b"cfg/0042").unwrap(), Some(b"changed".to_vec()));
        assert_eq!(m.revision(), rev);
        let rev = delete_key(&c, "cfg/0000").await;
        assert!(m.wait_for(rev, SOON).await);
        assert_eq!(m.get(b"cfg/0000").unwrap(), None);

        // A write elsewhere moves no event here; the mirror asks the server
        // whether anything under the prefix changed up to it.
        let rev = put_kv(&c, "elsewhere", "x").await;
        assert!(m.wait_for(rev, SOON).await);
        assert!(m.revision() >= rev);
        // A revision no one wrote yet: false after the timeout.
        let ahead = m.revision() + 100;
        assert!(!m.wait_for(ahead, Some(Duration::from_millis(300))).await);

        assert_eq!(m.all(), server_copy(&c, "cfg/").await);
        assert_eq!(m.loads(), 1);
        assert!(matches!(
            Mirror::start(c.clone(), "").await,
            Err(Error::InvalidArgument(_))
        ));
    });
}

#[test]
fn mirror_reloads_after_a_compaction_it_missed() {
    on_synod_and_etcd(|c, endpoint| async move {
        let proxy = Proxy::start(&endpoint).await;
        // A request timeout long enough for the watch to come back through
        // the proxy after the cut, and find its history compacted.
        let through = client_with(&proxy.endpoint(), Duration::from_secs(10));
        put_kv(&c, "cmp/a", "1").await;
        put_kv(&c, "cmp/b", "1").await;
        let m = Mirror::start(through, "cmp/").await.unwrap();

        proxy.cut();
        put_kv(&c, "cmp/a", "2").await;
        delete_key(&c, "cmp/b").await;
        let rev = put_kv(&c, "cmp/c", "3").await;
        c.compact(rev, true).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.restore().await;

        assert!(m.wait_for(rev, SOON).await, "the mirror did not catch up");
        assert_eq!(m.all(), server_copy(&c, "cmp/").await);
        assert_eq!(m.loads(), 2, "a compacted watch must reload the copy");
        // And it follows changes again afterwards.
        let rev = put_kv(&c, "cmp/d", "4").await;
        assert!(m.wait_for(rev, SOON).await);
        assert_eq!(m.get(b"cmp/d").unwrap(), Some(b"4".to_vec()));
    });
}

#[test]
fn mirror_reloads_after_a_connection_loss_it_could_not_bridge() {
    on_synod_and_etcd(|c, endpoint| async move {
        let proxy = Proxy::start(&endpoint).await;
        // The watch gives up after one second without a server.
        let through = client_with(&proxy.endpoint(), Duration::from_secs(1));
        put_kv(&c, "lost/a", "1").await;
        let m = Mirror::start(through, "lost/").await.unwrap();

        proxy.cut();
        let rev = put_kv(&c, "lost/a", "2").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        // Meanwhile the last copy is served, not an error.
        assert_eq!(m.get(b"lost/a").unwrap(), Some(b"1".to_vec()));
        assert!(!m.wait_for(rev, Some(Duration::from_millis(100))).await);
        proxy.restore().await;

        assert!(m.wait_for(rev, SOON).await, "the mirror did not reload");
        assert_eq!(m.get(b"lost/a").unwrap(), Some(b"2".to_vec()));
        assert!(m.loads() >= 2);
        let rev = delete_key(&c, "lost/a").await;
        assert!(m.wait_for(rev, SOON).await);
        assert!(m.is_empty());
    });
}

/// A TCP proxy to a server whose connections a test can cut (and refuse
/// new ones) and then restore, on the same port.
struct Proxy {
    port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = Proxy {
            port,
            upstream: upstream.to_string(),
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        p.serve(listener);
        p
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Closes the listener and every connection through it.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    async fn restore(&self) {
        // The aborted listener's socket closes as its task is dropped.
        for _ in 0..50 {
            if let Ok(l) = TcpListener::bind(("127.0.0.1", self.port)).await {
                return self.serve(l);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot listen on port {} again", self.port);
    }
}

// The work queue: order, delays, exactly one claimer per delivery, a claim
// that runs out, the dead-letter queue, and jobs written by another etcd
// client.

fn queue(c: &Client, name: &str) -> Queue {
    Queue::new(c.clone(), name, 5).unwrap()
}

async fn claim_now(q: &Queue) -> Option<Job> {
    q.claim(Some(Duration::ZERO), 30).await.unwrap()
}

/// The next job, which must come within `secs` seconds.
async fn claim_within(q: &Queue, secs: u64) -> Job {
    let job = q.claim(Some(Duration::from_secs(secs)), 30).await.unwrap();
    job.expect("no job came in time")
}

fn text(job: &Job) -> &str {
    std::str::from_utf8(&job.payload).unwrap()
}

fn is_lost(e: &Error) -> bool {
    matches!(e, Error::Server { message, .. } if message.starts_with(JOB_LOST))
}

#[test]
fn higher_priority_first_then_fifo_and_delayed_jobs_wake_a_waiting_claimer() {
    on_synod_and_etcd(|c, _| async move {
        let q = queue(&c, "orders");
        for (payload, priority) in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -1)] {
            q.push(payload.as_bytes(), priority, Duration::ZERO)
                .await
                .unwrap();
        }
        q.push(b"later", 10, Duration::from_millis(1500))
            .await
            .unwrap();
        assert_eq!(q.size().await.unwrap(), 6);
        let mut order = Vec::new();
        while let Some(mut job) = claim_now(&q).await {
            order.push(text(&job).to_string());
            assert_eq!(job.attempts, 1);
            q.ack(&mut job).await.unwrap();
        }
        assert_eq!(order, ["b", "d", "a", "c", "e"]);
        // The delayed job is not due yet: a claimer waits for it on a
        // timer, with nothing else happening in the queue.
        let t = Instant::now();
        let mut job = claim_within(&q, 10).await;
        let waited = t.elapsed();
        assert_eq!(text(&job), "later");
        assert_eq!(job.priority, 10);
        assert!(waited >= Duration::from_millis(1000), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        q.ack(&mut job).await.unwrap();
        assert_eq!(q.stats().await.unwrap(), Stats::default());

        // A waiting claimer is woken by a push, not by polling.
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.claim(Some(Duration::from_secs(10)), 30).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        q.push(b"now", 0, Duration::ZERO).await.unwrap();
        let mut job = waiter.await.unwrap().unwrap().unwrap();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(text(&job), "now");
        q.ack(&mut job).await.unwrap();
    });
}

#[test]
fn every_job_goes_to_exactly_one_of_many_claimers() {
    on_synod_and_etcd(|_, endpoint| async move {
        const JOBS: usize = 300;
        const WORKERS: usize = 6;
        let producer = queue(&client(&endpoint), "contended");
        let mut ids = Vec::new();
        for i in 0..JOBS {
            let id = producer
                .push(
                    format!("job {i}").as_bytes(),
                    (i % 3) as i64,
                    Duration::ZERO,
                )
                .await
                .unwrap();
            ids.push(id);
        }
        let mut tasks = Vec::new();
        for _ in 0..WORKERS {
            let q = queue(&client(&endpoint), "contended");
            tasks.push(tokio::spawn(async move {
                let mut done = Vec::new();
                while let Some(mut job) =
                    q.claim(Some(Duration::from_millis(500)), 30).await.unwrap()
                {
                    q.ack(&mut job).await.unwrap();
                    done.push(job.id);
                }
                done
            }));
        }
        let mut acked: HashMap<String, usize> = HashMap::new();
        let mut busy = 0;
        for t in tasks {
            let done = t.await.unwrap();
            busy += usize::from(!done.is_empty());
            for id in done {
                *acked.entry(id).or_default() += 1;
            }
        }
        assert_eq!(acked.len(), JOBS);
        assert!(acked.values().all(|&n| n == 1), "a job acked twice");
        assert!(ids.iter().all(|id| acked.contains_key(id)));
        assert!(busy > 1, "one worker did everything");
        assert_eq!(producer.size().await.unwrap(), 0);
    });
}

#[test]
fn a_claim_that_runs_out_comes_back_and_dead_letters_after_max_attempts() {
    on_synod_and_etcd(|c, _| async move {
        let q = Queue::new(c.clone(), "flaky", 2).unwrap();
        let id = q.push(b"poison", 3, Duration::ZERO).await.unwrap();
        let mut first = q.claim(Some(Duration::ZERO), 1).await.unwrap().unwrap();
        assert_eq!((first.id.as_str(), first.attempts), (id.as_str(), 1));
        // Claimed: nobody else gets it meanwhile.
        assert!(claim_now(&q).await.is_none());
        // The worker "dies": its claim's lease runs out (etcd grants at
        // least 2 s) and a waiting claimer gets the job again.
        let t = Instant::now();
        let mut second = q
            .claim(Some(Duration::from_secs(10)), 1)
            .await
            .unwrap()
            .expect("the job came back");
        assert!(t.elapsed() >= Duration::from_millis(500));
        assert_eq!((second.id.as_str(), second.attempts), (id.as_str(), 2));
        // The first worker's ack comes too late: someone else has it.
        let err = q.ack(&mut first).await.unwrap_err();
        assert!(is_lost(&err), "{err:?}");
        // Its attempts are used up: released, it goes to the dead letters.
        assert_eq!(
            q.release(&mut second, Duration::ZERO).await.unwrap(),
            Released::Dead
        );
        assert!(claim_now(&q).await.is_none());
        let dead = q.dead(0).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (dead[0].id.as_str(), &dead[0].payload[..], dead[0].priority),
            (id.as_str(), &b"poison"[..], 3)
        );
        assert_eq!(q.size().await.unwrap(), 0);
        // Requeued, it starts its attempts again.
        assert!(q.requeue(&id).await.unwrap());
        assert!(!q.requeue(&id).await.unwrap());
        let mut again = q.claim(Some(Duration::ZERO), 1).await.unwrap().unwrap();
        assert_eq!(again.attempts, 1);
        // Left to run out twice more, the next claimer buries it.
        let mut third = q
            .claim(Some(Duration::from_secs(10)), 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(third.attempts, 2);
        assert!(q
            .claim(Some(Duration::from_secs(6)), 1)
            .await
            .unwrap()
            .is_none());
        let s = q.stats().await.unwrap();
        assert_eq!((s.ready, s.claimed, s.dead), (0, 0, 1));
        assert!(is_lost(&q.ack(&mut third).await.unwrap_err()));
        assert!(is_lost(&q.ack(&mut again).await.unwrap_err()));
    });
}

#[test]
fn release_extend_and_a_finished_job() {
    on_synod_and_etcd(|c, _| async move {
        let q = queue(&c, "handled");
        q.push(b"one", 0, Duration::ZERO).await.unwrap();
        q.push(b"two", 0, Duration::ZERO).await.unwrap();
        let mut one = claim_now(&q).await.unwrap();
        assert_eq!(text(&one), "one");
        // Released at once, it is first in line again.
        assert_eq!(
            q.release(&mut one, Duration::ZERO).await.unwrap(),
            Released::Ready
        );
        let mut one = claim_now(&q).await.unwrap();
        assert_eq!((text(&one), one.attempts), ("one", 2));
        // Released with a delay, it waits while "two" goes first.
        assert_eq!(
            q.release(&mut one, Duration::from_millis(800))
                .await
                .unwrap(),
            Released::Delayed
        );
        let s = q.stats().await.unwrap();
        assert_eq!((s.ready, s.claimed, s.delayed), (1, 0, 1));
        let mut two = claim_now(&q).await.unwrap();
        assert_eq!(text(&two), "two");
        assert!(claim_now(&q).await.is_none());
        let mut one = claim_within(&q, 5).await;
        assert_eq!((text(&one), one.attempts), ("one", 3));
        q.ack(&mut one).await.unwrap();

        // Extended, a claim outlives its first visibility timeout.
        q.extend(&mut two, 5).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(claim_now(&q).await.is_none());
        q.ack(&mut two).await.unwrap();

        // A finished job cannot be used again, and nothing changes.
        let err = q.ack(&mut two).await.unwrap_err();
        assert!(err.to_string().contains("already acknowledged"), "{err}");
        assert!(q.release(&mut two, Duration::ZERO).await.is_err());
        assert!(q.extend(&mut two, 5).await.is_err());
        assert_eq!(q.stats().await.unwrap(), Stats::default());
    });
}

#[test]
fn jobs_written_by_any_etcd_client_and_bad_input() {
    on_synod_and_etcd(|c, endpoint| async move {
        // The documented layout: priority 7, ready since 1 µs after the
        // epoch (so before anything pushed now), id "ext-1".
        let prio = format!("{:016x}", i64::MAX - 7);
        let key = format!("mixed/ready/{prio}/0000000000000001/ext-1");
        let out = common::etcdctl(&endpoint, &["put", &key, "from etcdctl"], None);
        assert!(out.status.success());
        let q = queue(&c, "mixed");
        q.push(b"from rust", 7, Duration::ZERO).await.unwrap();
        let mut job = claim_now(&q).await.unwrap();
        assert_eq!((job.id.as_str(), text(&job)), ("ext-1", "from etcdctl"));
        q.ack(&mut job).await.unwrap();
        // Keys that do not follow the layout are left alone.
        put_kv(&c, "mixed/ready/junk", "?").await;
        let mut job = claim_now(&q).await.unwrap();
        assert_eq!(text(&job), "from rust");
        q.ack(&mut job).await.unwrap();
        assert!(claim_now(&q).await.is_none());
        // Nor do they hide the delayed jobs behind them.
        for junk in ["mixed/delayed/0", "mixed/delayed/0000000000000001/x/y"] {
            put_kv(&c, junk, "?").await;
        }
        q.push(b"delayed", 0, Duration::from_millis(300))
            .await
            .unwrap();
        let mut job = claim_within(&q, 5).await;
        assert_eq!(text(&job), "delayed");
        q.ack(&mut job).await.unwrap();

        // Bad input changes nothing.
        let bad = |r: Result<Queue, Error>| matches!(r, Err(Error::InvalidArgument(_)));
        assert!(bad(Queue::new(c.clone(), "", 5)));
        assert!(bad(Queue::new(c.clone(), "q", 0)));
        assert!(bad(Queue::new(c.clone(), "x".repeat(300), 5)));
        let q = queue(&c, "strict");
        let big = vec![b'x'; MAX_PAYLOAD + 1];
        assert!(matches!(
            q.push(&big, 0, Duration::ZERO).await,
            Err(Error::InvalidArgument(_))
        ));
        for visibility in [0, -1] {
            assert!(matches!(
                q.claim(Some(Duration::ZERO), visibility).await,
                Err(Error::InvalidArgument(_))
            ));
        }
        assert_eq!(q.stats().await.unwrap(), Stats::default());
        // The largest payload goes through etcd's request limit, also
        // when released with a delay (a txn carrying it again).
        let max = vec![b'y'; MAX_PAYLOAD];
        q.push(&max, 0, Duration::ZERO).await.unwrap();
        let mut job = claim_now(&q).await.unwrap();
        assert_eq!(job.payload.len(), MAX_PAYLOAD);
        q.release(&mut job, Duration::from_millis(10))
            .await
            .unwrap();
        let mut job = claim_within(&q, 5).await;
        assert_eq!(job.payload, max);
        q.ack(&mut job).await.unwrap();
    });
}
