//! etcd's Lock and Election services, driven by the same gRPC client code
//! against synod and against a real etcd: mutual exclusion, waiting,
//! lease loss, cancellation, errors, and interplay with `etcdctl lock` and
//! `etcdctl elect` on the same names.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::Server;
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::lease_client::LeaseClient;
use synod_proto::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest};
use synod_proto::v3electionpb::election_client::ElectionClient;
use synod_proto::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest,
};
use synod_proto::v3lockpb::lock_client::LockClient;
use synod_proto::v3lockpb::{LockRequest, UnlockRequest};
use tokio::time::timeout;
use tonic::transport::Channel;
use tonic::Code;

#[derive(Clone)]
struct Conn {
    ch: Channel,
    endpoint: String,
}

impl Conn {
    async fn new(s: &Server) -> Conn {
        Conn {
            ch: Channel::from_shared(s.url())
                .unwrap()
                .connect()
                .await
                .unwrap(),
            endpoint: s.endpoint(),
        }
    }
    fn lock(&self) -> LockClient<Channel> {
        LockClient::new(self.ch.clone())
    }
    fn election(&self) -> ElectionClient<Channel> {
        ElectionClient::new(self.ch.clone())
    }
    fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.ch.clone())
    }
    async fn grant(&self, ttl: i64) -> i64 {
        LeaseClient::new(self.ch.clone())
            .lease_grant(LeaseGrantRequest { ttl, id: 0 })
            .await
            .unwrap()
            .into_inner()
            .id
    }
    async fn revoke(&self, id: i64) {
        LeaseClient::new(self.ch.clone())
            .lease_revoke(LeaseRevokeRequest { id })
            .await
            .unwrap();
    }
    async fn acquire(&self, name: &str, lease: i64) -> Vec<u8> {
        self.lock()
            .lock(LockRequest {
                name: name.into(),
                lease,
            })
            .await
            .unwrap()
            .into_inner()
            .key
    }
    async fn unlock(&self, key: &[u8]) {
        self.lock()
            .unlock(UnlockRequest { key: key.to_vec() })
            .await
            .unwrap();
    }
    async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().unwrap() += 1;
        self.kv()
            .range(RangeRequest {
                key: prefix.into(),
                range_end: end,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .kvs
            .into_iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect()
    }
}

/// Runs `f` against a fresh synod, then a fresh etcd, and returns what each
/// gave, for comparison.
async fn both<T, F, Fut>(f: F) -> (T, T)
where
    F: Fn(Conn) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let dir = tempfile::tempdir().unwrap();
    // Starting a server blocks until it answers.
    let synod = tokio::task::block_in_place(|| Server::synod(&dir.path().join("synod")));
    let a = f(Conn::new(&synod).await).await;
    drop(synod);
    let etcd = tokio::task::block_in_place(|| Server::etcd(&dir.path().join("etcd")));
    let b = f(Conn::new(&etcd).await).await;
    (a, b)
}

fn status_of<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> (Code, String) {
    let e = r.expect_err("expected an error");
    (e.code(), e.message().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_excludes_under_contention() {
    // Each worker reads the counter, pauses, and writes it back plus one:
    // without mutual exclusion updates are lost.
    const WORKERS: usize = 6;
    const ROUNDS: usize = 10;
    let (s, e) = both(|c| async move {
        let mut tasks = Vec::new();
        for _ in 0..WORKERS {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                let lease = c.grant(30).await;
                for _ in 0..ROUNDS {
                    let key = c.acquire("counter-lock", lease).await;
                    let n: usize = c
                        .kv()
                        .range(RangeRequest {
                            key: b"counter".to_vec(),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner()
                        .kvs
                        .first()
                        .map(|kv| String::from_utf8_lossy(&kv.value).parse().unwrap())
                        .unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    c.kv()
                        .put(PutRequest {
                            key: b"counter".to_vec(),
                            value: (n + 1).to_string().into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    c.unlock(&key).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let kvs = c
            .kv()
            .range(RangeRequest {
                key: b"counter".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .kvs;
        (
            String::from_utf8_lossy(&kvs[0].value).into_owned(),
            c.keys("counter-lock/").await,
        )
    })
    .await;
    let want = ((WORKERS * ROUNDS).to_string(), Vec::<String>::new());
    assert_eq!(s, want, "synod");
    assert_eq!(e, want, "etcd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_waits_wakes_and_ends_with_the_lease() {
    let (s, e) = both(|c| async move {
        let mut seen = Vec::new();
        let la = c.grant(30).await;
        let lb = c.grant(30).await;
        let key_a = c.acquire("L", la).await;
        seen.push(
            format!("a holds {}", String::from_utf8_lossy(&key_a)) == format!("a holds L/{la:x}"),
        );
        // Same lease again: the same acquisition, at once.
        let again = timeout(Duration::from_secs(10), c.acquire("L", la)).await;
        seen.push(again.as_deref() == Ok(&key_a[..]));

        // B waits while A holds, and gets the lock when A unlocks.
        let cb = c.clone();
        let mut b = tokio::spawn(async move { cb.acquire("L", lb).await });
        seen.push(timeout(Duration::from_millis(500), &mut b).await.is_err());
        c.unlock(&key_a).await;
        let key_b = timeout(Duration::from_secs(15), b).await.unwrap().unwrap();
        seen.push(key_b == format!("L/{lb:x}").into_bytes());

        // C waits behind B; revoking B's lease frees the lock for C.
        let lc = c.grant(30).await;
        let cc = c.clone();
        let mut waiter = tokio::spawn(async move { cc.acquire("L", lc).await });
        seen.push(
            timeout(Duration::from_millis(300), &mut waiter)
                .await
                .is_err(),
        );
        c.revoke(lb).await;
        let key_c = timeout(Duration::from_secs(15), waiter)
            .await
            .unwrap()
            .unwrap();
        seen.push(key_c == format!("L/{lc:x}").into_bytes());

        // A waiter that gives up (its call cancelled) leaves no key behind
        // to block the next one.
        let ld = c.grant(30).await;
        let gave_up = timeout(Duration::from_millis(300), c.acquire("L", ld)).await;
        seen.push(gave_up.is_err());
        tokio::time::sleep(Duration::from_millis(300)).await;
        seen.push(c.keys("L/").await == vec![format!("L/{lc:x}")]);
        c.unlock(&key_c).await;
        seen.push(c.keys("L/").await.is_empty());
        seen
    })
    .await;
    assert_eq!(s, vec![true; 9], "synod");
    assert_eq!(e, vec![true; 9], "etcd");
}

/// A waiter whose lease ends is never told it holds the lock, and its wait
/// ends at once rather than when the holder lets go. etcd 3.4 answers such a
/// waiter with the lock once the holder goes (etcd #11456, fixed in 3.5's
/// client only), so this runs on synod alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_lease_ends_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let synod = tokio::task::block_in_place(|| Server::synod(&dir.path().join("synod")));
    let c = Conn::new(&synod).await;
    let la = c.grant(30).await;
    let lb = c.grant(30).await;
    let key_a = c.acquire("W", la).await;
    let mut lock = c.lock();
    let mut b = tokio::spawn(async move {
        lock.lock(LockRequest {
            name: "W".into(),
            lease: lb,
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b.is_finished());
    c.revoke(lb).await;
    let r = timeout(Duration::from_secs(15), &mut b)
        .await
        .expect("the wait ends with the lease")
        .unwrap();
    assert_eq!(
        status_of(r),
        (Code::Unknown, "mutex: session is expired".to_string())
    );
    // The same for a candidate in an election.
    let lc = c.grant(30).await;
    let mut el = c.election();
    el.campaign(CampaignRequest {
        name: "W2".into(),
        lease: la,
        value: "a".into(),
    })
    .await
    .unwrap();
    let mut el2 = c.election();
    let mut cand = tokio::spawn(async move {
        el2.campaign(CampaignRequest {
            name: "W2".into(),
            lease: lc,
            value: "c".into(),
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!cand.is_finished());
    c.revoke(lc).await;
    let r = timeout(Duration::from_secs(15), &mut cand)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status_of(r).1, "mutex: session is expired");
    assert_eq!(c.keys("W/").await, vec![format!("W/{la:x}")]);
    assert_eq!(c.keys("W2/").await, vec![format!("W2/{la:x}")]);
    c.unlock(&key_a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_errors_match_etcd() {
    let (s, e) = both(|c| async move {
        let unknown = c
            .lock()
            .lock(LockRequest {
                name: "E".into(),
                lease: 0x1234_5678,
            })
            .await;
        let empty_unlock = c.lock().unlock(UnlockRequest { key: Vec::new() }).await;
        // Unlocking a key nobody holds is not an error.
        let unheld = c
            .lock()
            .unlock(UnlockRequest {
                key: b"E/nobody".to_vec(),
            })
            .await
            .is_ok();
        (
            status_of(unknown),
            status_of(empty_unlock),
            unheld,
            c.keys("E/").await,
        )
    })
    .await;
    assert_eq!(s, e);
    assert_eq!(
        s.0,
        (
            Code::Unknown,
            "etcdserver: requested lease not found".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_campaign_leader_proclaim_resign_observe() {
    let (s, e) = both(|c| async move {
        let mut seen: Vec<String> = Vec::new();
        let mut el = c.election();
        let no_leader = el.leader(LeaderRequest { name: "E1".into() }).await;
        seen.push(format!("{:?}", status_of(no_leader)));

        // etcd sends an Observe stream's headers with its first leader
        // only, so the call itself waits until someone leads.
        let mut eo = c.election();
        let (otx, mut observed) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut stream = eo
                .observe(LeaderRequest { name: "E1".into() })
                .await
                .unwrap()
                .into_inner();
            while let Ok(Some(r)) = stream.message().await {
                let _ = otx.send(String::from_utf8_lossy(&r.kv.unwrap().value).into_owned());
            }
        });

        let la = c.grant(30).await;
        let lb = c.grant(30).await;
        let a = el
            .campaign(CampaignRequest {
                name: "E1".into(),
                lease: la,
                value: "a".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let leader_a = a.leader.clone().unwrap();
        seen.push(format!(
            "a leads: key ok {} rev ok {}",
            leader_a.key == format!("E1/{la:x}").into_bytes(),
            leader_a.rev == a.header.unwrap().revision
        ));
        let leader = el
            .leader(LeaderRequest { name: "E1".into() })
            .await
            .unwrap()
            .into_inner()
            .kv
            .unwrap();
        seen.push(format!(
            "leader value {}",
            String::from_utf8_lossy(&leader.value)
        ));

        let mut eb = c.election();
        let mut b = tokio::spawn(async move {
            eb.campaign(CampaignRequest {
                name: "E1".into(),
                lease: lb,
                value: "b".into(),
            })
            .await
        });
        seen.push(format!(
            "b waits {}",
            timeout(Duration::from_millis(400), &mut b).await.is_err()
        ));
        el.proclaim(ProclaimRequest {
            leader: Some(leader_a.clone()),
            value: "a2".into(),
        })
        .await
        .unwrap();

        // Stale or missing leader keys.
        let stale = LeaderKey {
            rev: leader_a.rev + 1000,
            ..leader_a.clone()
        };
        let r = el
            .proclaim(ProclaimRequest {
                leader: Some(stale.clone()),
                value: "x".into(),
            })
            .await;
        seen.push(format!("{:?}", status_of(r)));
        let r = el
            .proclaim(ProclaimRequest {
                leader: None,
                value: "x".into(),
            })
            .await;
        seen.push(format!("{:?}", status_of(r)));
        let r = el.resign(ResignRequest { leader: None }).await;
        seen.push(format!("{:?}", status_of(r)));
        let r = el
            .resign(ResignRequest {
                leader: Some(stale),
            })
            .await;
        seen.push(format!("stale resign ok {}", r.is_ok()));

        el.resign(ResignRequest {
            leader: Some(leader_a),
        })
        .await
        .unwrap();
        let b = timeout(Duration::from_secs(15), b)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .into_inner();
        let leader_b = b.leader.unwrap();
        seen.push(format!(
            "b leads {}",
            leader_b.key == format!("E1/{lb:x}").into_bytes()
        ));

        // The observer saw a, a2, b in order.
        for _ in 0..3 {
            let v = timeout(Duration::from_secs(15), observed.recv())
                .await
                .unwrap()
                .unwrap();
            seen.push(format!("observed {v}"));
        }
        // Campaigning again with the same lease and another value
        // proclaims it and answers at once.
        let again = timeout(
            Duration::from_secs(10),
            el.campaign(CampaignRequest {
                name: "E1".into(),
                lease: lb,
                value: "b2".into(),
            }),
        )
        .await
        .unwrap()
        .unwrap()
        .into_inner();
        seen.push(format!(
            "again rev same {}",
            again.leader.unwrap().rev == leader_b.rev
        ));
        let v = timeout(Duration::from_secs(15), observed.recv())
            .await
            .unwrap()
            .unwrap();
        seen.push(format!("observed {v}"));
        // Revoking the leader's lease ends its leadership.
        c.revoke(lb).await;
        let r = el.leader(LeaderRequest { name: "E1".into() }).await;
        seen.push(format!("{:?}", status_of(r)));
        seen
    })
    .await;
    assert_eq!(s, e);
    assert!(s[0].contains("election: no leader"), "{s:?}");
    assert!(s.contains(&"observed a2".to_string()), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_unknown_lease_is_refused() {
    let (s, e) = both(|c| async move {
        let r = c
            .election()
            .campaign(CampaignRequest {
                name: "E2".into(),
                lease: 0x7777,
                value: "v".into(),
            })
            .await;
        (status_of(r), c.keys("E2/").await)
    })
    .await;
    assert_eq!(s, e);
    assert_eq!(
        s.0,
        (
            Code::Unknown,
            "etcdserver: requested lease not found".into()
        )
    );
}

fn etcdctl(endpoint: &str, args: &[&str]) -> Child {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run etcdctl (run scripts/setup)")
}

/// Waits until `child` has printed a first line on stdout and returns it.
/// The rest is read (and dropped) until the child ends: a closed pipe would
/// kill etcdctl with SIGPIPE on its next line, before it could unlock.
async fn first_line(child: &mut Child) -> String {
    use std::io::{BufRead, BufReader};
    let out = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines().map_while(Result::ok);
        let _ = tx.send(lines.next().unwrap_or_default().trim().to_string());
        lines.for_each(drop);
    });
    rx.await.unwrap_or_default()
}

fn interrupt(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_lock_and_our_lock_exclude_each_other() {
    let (s, e) = both(|c| async move {
        let mut seen = Vec::new();
        // etcdctl holds the lock: our Lock waits until it lets go.
        let mut held = etcdctl(&c.endpoint, &["lock", "shared"]);
        let key = first_line(&mut held).await;
        seen.push(key.starts_with("shared/"));
        let lease = c.grant(30).await;
        let c2 = c.clone();
        let mut ours = tokio::spawn(async move { c2.acquire("shared", lease).await });
        seen.push(
            timeout(Duration::from_millis(500), &mut ours)
                .await
                .is_err(),
        );
        interrupt(&mut held);
        let key = timeout(Duration::from_secs(15), ours)
            .await
            .unwrap()
            .unwrap();
        seen.push(key == format!("shared/{lease:x}").into_bytes());

        // We hold it: etcdctl's lock waits, then runs its command.
        let c3 = c.clone();
        let mut theirs = etcdctl(&c.endpoint, &["lock", "shared", "echo", "got-it"]);
        let line = tokio::spawn(async move { first_line(&mut theirs).await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        seen.push(!line.is_finished());
        c3.unlock(&key).await;
        let got = timeout(Duration::from_secs(15), line)
            .await
            .unwrap()
            .unwrap();
        seen.push(got == "got-it");
        seen
    })
    .await;
    assert_eq!(s, vec![true; 5], "synod");
    assert_eq!(e, vec![true; 5], "etcd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_elect_sees_our_leader() {
    let (s, e) = both(|c| async move {
        let mut seen = Vec::new();
        let lease = c.grant(30).await;
        let mut el = c.election();
        let ours = el
            .campaign(CampaignRequest {
                name: "boss".into(),
                lease,
                value: "php-1".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .leader
            .unwrap();
        // `etcdctl elect -l` prints the leader's key, then its value.
        let mut listener = etcdctl(&c.endpoint, &["elect", "-l", "boss"]);
        let out = listener.stdout.take().unwrap();
        let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            use std::io::{BufRead, BufReader};
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(line);
            }
        });
        // etcdctl campaigns with another value and waits behind us.
        let mut candidate = etcdctl(&c.endpoint, &["elect", "boss", "go-1"]);
        tokio::time::sleep(Duration::from_millis(700)).await;
        el.resign(ResignRequest { leader: Some(ours) })
            .await
            .unwrap();
        // Its campaign wins: the leader is now etcdctl's.
        let mut leader = String::new();
        for _ in 0..50 {
            if let Ok(r) = el
                .leader(LeaderRequest {
                    name: "boss".into(),
                })
                .await
            {
                leader = String::from_utf8_lossy(&r.into_inner().kv.unwrap().value).into_owned();
                if leader == "go-1" {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen.push(leader);
        tokio::time::sleep(Duration::from_millis(300)).await;
        interrupt(&mut candidate);
        interrupt(&mut listener);
        let values: Vec<String> = lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| !l.starts_with("boss/"))
            .cloned()
            .collect();
        seen.extend(values);
        seen
    })
    .await;
    assert_eq!(s, e);
    assert_eq!(s, vec!["go-1", "php-1", "go-1"]);
}

/// Without a lease, etcd's services grant one of 60 s for the caller
/// (nobody keeps it alive) and name the key after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lease_means_a_session_lease() {
    let (s, e) = both(|c| async move {
        let key = c.acquire("Z", 0).await;
        let leader = c
            .election()
            .campaign(CampaignRequest {
                name: "Z2".into(),
                lease: 0,
                value: "v".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .leader
            .unwrap();
        let mut seen = Vec::new();
        for (k, name) in [(key, "Z/"), (leader.key.clone(), "Z2/")] {
            let kv = c
                .kv()
                .range(RangeRequest {
                    key: k.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .kvs
                .remove(0);
            let ttl = LeaseClient::new(c.ch.clone())
                .lease_time_to_live(synod_proto::etcdserverpb::LeaseTimeToLiveRequest {
                    id: kv.lease,
                    keys: false,
                })
                .await
                .unwrap()
                .into_inner();
            seen.push((
                k == format!("{name}{:x}", kv.lease).into_bytes(),
                kv.lease != 0,
                ttl.granted_ttl,
            ));
        }
        seen.push((leader.lease != 0, true, 60));
        seen
    })
    .await;
    assert_eq!(s, e);
    assert_eq!(s, vec![(true, true, 60); 3]);
}
