//! Replication end to end: 3-member clusters of real synod processes, and of
//! real etcd processes for the same scenarios, driven by etcdctl and gRPC.

mod common;
#[path = "common/linearizability.rs"]
mod linearizability;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::etcdctl;
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::{PutRequest, RangeRequest};
use tonic::transport::{Channel, Endpoint};

/// One cluster at a time: several clusters' elections and writers on two
/// cores would measure the machine rather than the failover.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn text(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "etcdctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn channel(url: String) -> Channel {
    Endpoint::from_shared(url)
        .unwrap()
        .connect_timeout(Duration::from_millis(300))
        .connect_lazy()
}

/// Every key under `prefix` on member `i`, read locally (serializable), so
/// it shows what that member itself has applied.
async fn local_keys(c: &Cluster, i: usize, prefix: &str) -> Option<BTreeMap<String, String>> {
    // Past 4 MiB (tonic's default limit) the range would fail and read as
    // "holds nothing": a fast run acknowledges over 130,000 writes.
    let mut kv = KvClient::new(channel(c.url(i))).max_decoding_message_size(1 << 30);
    let resp = kv
        .range(RangeRequest {
            key: prefix.into(),
            range_end: synod_proto::prefix_end(prefix.as_bytes()),
            serializable: true,
            ..Default::default()
        })
        .await
        .ok()?
        .into_inner();
    Some(
        resp.kvs
            .into_iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    String::from_utf8_lossy(&kv.value).into_owned(),
                )
            })
            .collect(),
    )
}

/// Waits until every member holds every pair of `want`. More may be there:
/// puts whose answer was lost with the member that took them may still
/// have been committed.
async fn all_members_hold(c: &Cluster, prefix: &str, want: &BTreeMap<String, String>) {
    for i in (0..c.len()).filter(|i| c.members[*i].is_some()) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = local_keys(c, i, prefix).await;
            if let Some(got) = &got {
                if want.iter().all(|(k, v)| got.get(k) == Some(v)) {
                    break;
                }
            }
            if Instant::now() > deadline {
                let got = got.unwrap_or_default();
                let missing: Vec<_> = want
                    .iter()
                    .filter(|(k, v)| got.get(*k) != Some(*v))
                    .map(|(k, _)| k)
                    .collect();
                panic!(
                    "{}: member {i} lacks {} of {} acknowledged writes, e.g. {:?}",
                    c.kind,
                    missing.len(),
                    want.len(),
                    &missing[..missing.len().min(5)]
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn forms_and_replicates(kind: &'static str) {
    let _one = ONE_AT_A_TIME.lock().await;
    let root = tempfile::tempdir().unwrap();
    let c = Cluster::start(kind, 3, root.path());
    c.leader(Duration::from_secs(10)).await;

    // etcdctl member list: every member started, with its name and URLs.
    let list = text(etcdctl(&c.endpoint(0), &["member", "list"], None));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{kind}: {list}");
    for i in 0..3 {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!(", m{i}, ")))
            .unwrap_or_else(|| panic!("{kind}: m{i} missing: {list}"));
        assert!(line.contains(", started, "), "{kind}: {line}");
        assert!(line.contains(&c.url(i)), "{kind}: client URL: {line}");
    }
    // Every member lists the same members.
    for i in 1..3 {
        let other = text(etcdctl(&c.endpoint(i), &["member", "list"], None));
        let mut a: Vec<&str> = other.lines().collect();
        let mut b = lines.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{kind}: member {i} lists other members");
    }

    // One leader, the same one for all.
    let status = text(etcdctl(&c.endpoints(), &["endpoint", "status"], None));
    let leaders = status
        .lines()
        .filter(|l| l.split(", ").nth(4) == Some("true"))
        .count();
    assert_eq!(leaders, 1, "{kind}: {status}");

    // Writes through every member land on every member.
    let mut want = BTreeMap::new();
    for n in 0..30 {
        let (k, v) = (format!("r/{n:02}"), format!("v{n}"));
        text(etcdctl(&c.endpoint(n % 3), &["put", &k, &v], None));
        want.insert(k, v);
    }
    // A member answers a write it forwarded only once it applied it itself.
    for i in 0..3 {
        let out = text(etcdctl(
            &c.endpoint(i),
            &["put", "mine", &i.to_string()],
            None,
        ));
        assert_eq!(out.trim(), "OK");
        let got = text(etcdctl(
            &c.endpoint(i),
            &["get", "mine", "--consistency=s", "--print-value-only"],
            None,
        ));
        assert_eq!(
            got.trim(),
            i.to_string(),
            "{kind}: read-your-write on member {i}"
        );
        // Linearizable reads on every member see it too.
        for j in 0..3 {
            let got = text(etcdctl(
                &c.endpoint(j),
                &["get", "mine", "--print-value-only"],
                None,
            ));
            assert_eq!(
                got.trim(),
                i.to_string(),
                "{kind}: linearizable read on {j}"
            );
        }
    }
    all_members_hold(&c, "r/", &want).await;
    one_hash(&c).await;
}

/// Waits until `etcdctl endpoint hashkv` gives one hash for all members.
async fn one_hash(c: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = tokio::task::block_in_place(|| {
            text(etcdctl(&c.endpoints(), &["endpoint", "hashkv"], None))
        });
        let hashes: std::collections::BTreeSet<&str> =
            out.lines().filter_map(|l| l.split(", ").nth(1)).collect();
        if hashes.len() == 1 && out.lines().count() == c.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: hashes differ: {out}",
            c.kind
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synod_three_members_form_and_replicate() {
    forms_and_replicates("synod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_three_members_form_and_replicate() {
    forms_and_replicates("etcd").await;
}

/// What the writers saw: each acknowledged put (key, value), and when each
/// put started and was acknowledged.
#[derive(Default)]
struct Log {
    acked: BTreeMap<String, String>,
    times: Vec<(Instant, Instant)>,
}

impl Log {
    /// Every acknowledged write, and how long after `t` the first write
    /// started after `t` was acknowledged.
    fn since(&self, t: Instant) -> (BTreeMap<String, String>, Option<Duration>) {
        let resumed = self
            .times
            .iter()
            .filter(|(started, _)| *started > t)
            .map(|(_, done)| done.duration_since(t))
            .min();
        (self.acked.clone(), resumed)
    }
}

/// 64 writers spread over the members; a writer whose member fails moves to
/// the next one and goes on with a new key (the outcome of the failed put is
/// unknown, so it is neither counted nor retried).
fn start_writers(
    c: &Cluster,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let all: Vec<usize> = (0..c.len()).collect();
    start_writers_on(c, &all, 64, stop, log)
}

/// `writers` writers spread over `members`, as `start_writers`.
fn start_writers_on(
    c: &Cluster,
    members: &[usize],
    writers: usize,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let channels: Vec<Channel> = members.iter().map(|&i| channel(c.url(i))).collect();
    (0..writers)
        .map(|w| {
            let (stop, log, channels) = (stop.clone(), log.clone(), channels.clone());
            tokio::spawn(async move {
                let mut member = w % channels.len();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let (key, value) = (format!("w/{w:02}/{n:05}"), format!("{w}.{n}"));
                    let mut kv = KvClient::new(channels[member].clone());
                    let mut req = tonic::Request::new(PutRequest {
                        key: key.clone().into(),
                        value: value.clone().into(),
                        ..Default::default()
                    });
                    req.set_timeout(Duration::from_secs(3));
                    let started = Instant::now();
                    match kv.put(req).await {
                        Ok(_) => {
                            let mut l = log.lock().unwrap();
                            l.acked.insert(key, value);
                            l.times.push((started, Instant::now()));
                        }
                        Err(_) => {
                            member = (member + 1) % channels.len();
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect()
}

/// One scenario's members, with 64 writers going.
struct Writing {
    _one: tokio::sync::MutexGuard<'static, ()>,
    _root: tempfile::TempDir,
    c: Cluster,
    leader: usize,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Writing {
    /// Starts `n` members, waits for a leader, then starts the writers and
    /// lets them run for a moment.
    async fn start(kind: &'static str, n: usize) -> Writing {
        let one = ONE_AT_A_TIME.lock().await;
        let root = tempfile::tempdir().unwrap();
        let c = Cluster::start(kind, n, root.path());
        let leader = c.leader(Duration::from_secs(10)).await;
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Log::default()));
        let writers = start_writers(&c, stop.clone(), log.clone());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Writing {
            _one: one,
            _root: root,
            c,
            leader,
            stop,
            log,
            writers,
        }
    }

    /// Stops the writers: every acknowledged write, and how soon after `t`
    /// writes went on (see `Log::since`).
    async fn finish(&mut self, t: Instant) -> (BTreeMap<String, String>, Option<Duration>) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.writers.drain(..) {
            w.await.unwrap();
        }
        self.log.lock().unwrap().since(t)
    }
}

/// How soon writes must go on after the leader is lost: the replication
/// issue's 3 s for synod (1.3-2.2 s in 18 runs here, with a cargo build
/// beside). etcd (1 s election timeout, pre-vote) took 1.1-3.0 s, so it only
/// has to resume within its request timeout.
fn failover_bound(kind: &str) -> Duration {
    Duration::from_secs(if kind == "synod" { 3 } else { 7 })
}

async fn leader_killed_under_writers(kind: &'static str) {
    let mut w = Writing::start(kind, 3).await;
    let leader = w.leader;
    let before = w.log.lock().unwrap().acked.len();
    assert!(before > 0, "{kind}: no write acknowledged before the kill");
    w.c.kill9(leader);
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (acked, resumed) = w.finish(killed).await;
    let resumed = resumed.unwrap_or_else(|| panic!("{kind}: no write acknowledged after the kill"));
    eprintln!(
        "{kind}: {} writes acknowledged ({before} before the kill); first new write {:?} after it",
        acked.len(),
        resumed
    );
    let bound = failover_bound(kind);
    assert!(
        resumed <= bound,
        "{kind}: writes resumed only {resumed:?} after the leader died"
    );
    let new_leader = w.c.leader(Duration::from_secs(5)).await;
    assert_ne!(new_leader, leader, "{kind}");

    // The old leader comes back and catches up: every acknowledged write is
    // on every member.
    w.c.restart(leader);
    w.c.leader(Duration::from_secs(10)).await;
    all_members_hold(&w.c, "w/", &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synod_leader_killed_under_writers() {
    leader_killed_under_writers("synod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_leader_killed_under_writers() {
    leader_killed_under_writers("etcd").await;
}

/// Five members lose the leader and another member under 64 writers and
/// go on; losing a third takes the quorum, and with it writes and
/// linearizable reads, until the three come back with every write.
async fn five_members_lose_two(kind: &'static str) {
    let mut w = Writing::start(kind, 5).await;
    let leader = w.leader;
    let other = (leader + 1) % 5;
    w.c.kill9(leader);
    w.c.kill9(other);
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (acked, resumed) = w.finish(killed).await;
    let resumed = resumed.unwrap_or_else(|| panic!("{kind}: no write after losing two"));
    eprintln!(
        "{kind}: 5 members, leader and one more killed: first new write {resumed:?} after; {} acknowledged",
        acked.len()
    );
    assert!(
        resumed <= failover_bound(kind),
        "{kind}: resumed after {resumed:?}"
    );

    let third = (leader + 2) % 5;
    w.c.kill9(third);
    let survivor = (leader + 3) % 5;
    let ep = w.c.endpoint(survivor);
    let timeout = ["--command-timeout=3s"];
    let put = etcdctl(&ep, &[&timeout[..], &["put", "lost", "x"]].concat(), None);
    assert!(
        !put.status.success(),
        "{kind}: a put without quorum: {put:?}"
    );
    let get = etcdctl(
        &ep,
        &[&timeout[..], &["get", "w/", "--prefix", "--limit=1"]].concat(),
        None,
    );
    assert!(
        !get.status.success(),
        "{kind}: a linearizable read without quorum: {get:?}"
    );

    for i in [leader, other, third] {
        w.c.restart(i);
    }
    w.c.leader(Duration::from_secs(15)).await;
    all_members_hold(&w.c, "w/", &acked).await;
    one_hash(&w.c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synod_five_members_lose_two() {
    five_members_lose_two("synod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_five_members_lose_two() {
    five_members_lose_two("etcd").await;
}

/// A lease granted and kept alive through followers stays alive (only the
/// leader keeps deadlines and expires leases), and expires once nobody
/// keeps it alive.
async fn lease_kept_alive_through_a_follower(kind: &'static str) {
    let _one = ONE_AT_A_TIME.lock().await;
    let root = tempfile::tempdir().unwrap();
    let c = Cluster::start(kind, 3, root.path());
    let leader = c.leader(Duration::from_secs(10)).await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let (f1, f2) = (c.endpoint(followers[0]), c.endpoint(followers[1]));

    let granted = text(etcdctl(&f1, &["lease", "grant", "2"], None));
    let id = granted
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{kind}: {granted}"))
        .to_string();
    text(etcdctl(&f1, &["put", "--lease", &id, "leased", "x"], None));
    let mut keeper = std::process::Command::new("etcdctl")
        .args([&format!("--endpoints={f1}"), "lease", "keep-alive", &id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("etcdctl");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ttl = text(etcdctl(&f2, &["lease", "timetolive", &id], None));
    // Without the keep-alives reaching the leader it would have expired
    // 3 s ago.
    assert!(
        ttl.contains("remaining(") && !ttl.contains("expired"),
        "{kind}: {ttl}"
    );
    for i in 0..3 {
        let got = text(etcdctl(
            &c.endpoint(i),
            &["get", "leased", "--print-value-only"],
            None,
        ));
        assert_eq!(got.trim(), "x", "{kind}: the kept-alive key on member {i}");
    }
    let _ = keeper.kill();
    let _ = keeper.wait();
    tokio::time::sleep(Duration::from_secs(4)).await;
    for i in 0..3 {
        let got = text(etcdctl(
            &c.endpoint(i),
            &["get", "leased", "--consistency=s"],
            None,
        ));
        assert_eq!(got.trim(), "", "{kind}: the expired key on member {i}");
    }
    let ttl = text(etcdctl(&f2, &["lease", "timetolive", &id], None));
    assert!(ttl.contains("already expired"), "{kind}: {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synod_lease_kept_alive_through_a_follower() {
    lease_kept_alive_through_a_follower("synod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_lease_kept_alive_through_a_follower() {
    lease_kept_alive_through_a_follower("etcd").await;
}

/// `n` puts under `prefix`, 8 at a time, each acknowledged; returns them.
async fn put_many(c: &Cluster, member: usize, prefix: &str, n: usize) -> BTreeMap<String, String> {
    let kv = KvClient::new(channel(c.url(member)));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let mut kv = kv.clone();
        let prefix = prefix.to_string();
        tasks.spawn(async move {
            let mut done = Vec::new();
            for i in (w..n).step_by(8) {
                let (k, v) = (format!("{prefix}{i:05}"), format!("v{i}"));
                kv.put(PutRequest {
                    key: k.clone().into(),
                    value: v.clone().into(),
                    ..Default::default()
                })
                .await
                .expect("put");
                done.push((k, v));
            }
            done
        });
    }
    let mut all = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.unwrap());
    }
    all
}

fn assert_caught_up_by_snapshot(c: &Cluster, member: usize, kind: &str) {
    let log = c.members[member].as_ref().unwrap().log_text();
    let snapshot_line = if kind == "synod" {
        "installed a snapshot from the leader"
    } else {
        "applied incoming snapshot"
    };
    assert!(
        log.contains(snapshot_line),
        "{kind}: the member did not catch up by snapshot: {log}"
    );
}

/// A member that was down while the others wrote far past their snapshot
/// point (the log it missed is purged) catches up from a snapshot.
async fn catches_up_by_snapshot(kind: &'static str) {
    let _one = ONE_AT_A_TIME.lock().await;
    let root = tempfile::tempdir().unwrap();
    let mut c = Cluster::start_with(kind, 3, root.path(), &["--snapshot-count=100"]);
    let leader = c.leader(Duration::from_secs(10)).await;
    let down = (leader + 1) % 3;
    let mut want = put_many(&c, leader, "before/", 100).await;
    all_members_hold(&c, "before/", &want).await;
    c.kill9(down);
    // etcd keeps 5,000 entries behind a snapshot for slow followers; go
    // well past that (each put is one entry there, fewer here).
    want.extend(put_many(&c, leader, "during/", 6_000).await);
    c.restart(down);
    let got = put_many(&c, leader, "after/", 10).await;
    all_members_hold(&c, "after/", &got).await;
    all_members_hold(
        &c,
        "before/",
        &want
            .clone()
            .into_iter()
            .filter(|(k, _)| k.starts_with("before/"))
            .collect(),
    )
    .await;
    all_members_hold(
        &c,
        "during/",
        &want
            .into_iter()
            .filter(|(k, _)| k.starts_with("during/"))
            .collect(),
    )
    .await;
    assert_caught_up_by_snapshot(&c, down, kind);
    let out = text(etcdctl(&c.endpoints(), &["endpoint", "hashkv"], None));
    let hashes: std::collections::BTreeSet<&str> =
        out.lines().filter_map(|l| l.split(", ").nth(1)).collect();
    assert_eq!(hashes.len(), 1, "{kind}: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synod_member_catches_up_by_snapshot() {
    catches_up_by_snapshot("synod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_member_catches_up_by_snapshot() {
    catches_up_by_snapshot("etcd").await;
}

/// A watch open on a member that hangs while the others write far past
/// their snapshot point, and then catches up from a snapshot, still gets
/// every event: etcd's watchers resync from the restored store rather than
/// skip what the snapshot brought. Synod's get each event once, in order;
/// etcd 3.4's send again everything from the revision the watch started
/// at (its synced watchers' start revision is not advanced as they send),
/// so there only nothing lost is checked.
async fn watch_through_a_snapshot(kind: &'static str) {
    use synod_proto::etcdserverpb::WatchCreateRequest;

    let _one = ONE_AT_A_TIME.lock().await;
    let root = tempfile::tempdir().unwrap();
    let c = Cluster::start_with(kind, 3, root.path(), &["--snapshot-count=100"]);
    let leader = c.leader(Duration::from_secs(10)).await;
    let slow = (leader + 1) % 3;
    let create = WatchCreateRequest {
        key: b"w/".to_vec(),
        range_end: b"w0".to_vec(),
        ..Default::default()
    };
    let (_requests, mut stream) = common::open_watch(c.url(slow), create).await;
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created, "{kind}: {created:?}");
    let mut want = put_many(&c, leader, "w/a", 50).await;
    c.signal(slow, false);
    want.extend(put_many(&c, leader, "w/b", 6_000).await);
    c.signal(slow, true);
    // The woken member may call an election (no pre-vote), so these puts
    // retry, through whoever leads then.
    for i in 0..10 {
        let (k, v) = (format!("w/c{i:05}"), format!("v{i}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let leader = c.leader(Duration::from_secs(10)).await;
            let put = KvClient::new(channel(c.url(leader)))
                .put(PutRequest {
                    key: k.clone().into(),
                    value: v.clone().into(),
                    ..Default::default()
                })
                .await;
            match put {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("{kind}: put {k}: {e}; again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("{kind}: put {k}: {e}"),
            }
        }
        want.insert(k, v);
    }
    let mut got = BTreeMap::new();
    let mut last = 0;
    while got.len() < want.len() {
        let resp = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{kind}: events stopped after {} of {}",
                    got.len(),
                    want.len()
                )
            })
            .unwrap()
            .unwrap();
        assert!(!resp.canceled, "{kind}: watch cancelled: {resp:?}");
        for ev in resp.events {
            let kv = ev.kv.unwrap();
            assert!(
                kv.mod_revision > last || kind == "etcd",
                "{kind}: revision {} after {last}",
                kv.mod_revision
            );
            last = kv.mod_revision;
            got.insert(
                String::from_utf8(kv.key).unwrap(),
                String::from_utf8(kv.value).unwrap(),
            );
        }
    }
    assert!(
        got == want,
        "{kind}: the watch saw other events than were put"
    );
    assert_caught_up_by_snapshot(&c, slow, kind);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synod_watch_through_a_snapshot() {
    watch_through_a_snapshot("synod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watch_through_a_snapshot() {
    watch_through_a_snapshot("etcd").await;
}

/// Who claimed leadership in which term, from polling every member's Status
/// (a paused member simply does not answer).
fn watch_leaders(
    c: &Cluster,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<BTreeMap<u64, std::collections::BTreeSet<u64>>> {
    use synod_proto::etcdserverpb::maintenance_client::MaintenanceClient;
    use synod_proto::etcdserverpb::StatusRequest;
    let channels: Vec<Channel> = (0..c.len()).map(|i| channel(c.url(i))).collect();
    tokio::spawn(async move {
        let mut claims: BTreeMap<u64, std::collections::BTreeSet<u64>> = BTreeMap::new();
        while !stop.load(Ordering::SeqCst) {
            for ch in &channels {
                let mut m = MaintenanceClient::new(ch.clone());
                let mut req = tonic::Request::new(StatusRequest {});
                req.set_timeout(Duration::from_millis(200));
                if let Ok(s) = m.status(req).await {
                    let s = s.into_inner();
                    let me = s.header.map_or(0, |h| h.member_id);
                    if s.leader == me {
                        claims.entry(s.raft_term).or_default().insert(me);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        claims
    })
}

/// The leader hangs (SIGSTOP) for 10 s under 64 writers, then wakes: a new
/// leader serves meanwhile, the old one steps down, no acknowledged write
/// is lost, and no term ever has two leaders.
async fn leader_paused_under_writers(kind: &'static str) {
    let mut w = Writing::start(kind, 3).await;
    let leader = w.leader;
    let monitor = watch_leaders(&w.c, w.stop.clone());
    // The monitor sees the first leader's term before it hangs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.c.signal(leader, false);
    let paused = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = w.log.lock().unwrap().acked.len();
    w.c.signal(leader, true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (acked, resumed) = w.finish(paused).await;
    let claims = monitor.await.unwrap();
    let resumed =
        resumed.unwrap_or_else(|| panic!("{kind}: nothing written while the leader hung"));
    eprintln!(
        "{kind}: {} writes acknowledged ({during} by the wake-up); first new write {resumed:?} after the pause; leaders by term {claims:?}",
        acked.len()
    );
    let bound = failover_bound(kind);
    assert!(
        resumed <= bound,
        "{kind}: writes resumed only {resumed:?} after the pause"
    );
    for (term, leaders) in &claims {
        assert!(
            leaders.len() <= 1,
            "{kind}: term {term} had leaders {leaders:?}"
        );
    }
    assert!(
        claims.len() >= 2,
        "{kind}: no new term after the pause: {claims:?}"
    );
    let now = w.c.leader(Duration::from_secs(10)).await;
    eprintln!("{kind}: leader was member {leader}, now member {now}");
    all_members_hold(&w.c, "w/", &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synod_leader_paused_under_writers() {
    leader_paused_under_writers("synod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_leader_paused_under_writers() {
    leader_paused_under_writers("etcd").await;
}

/// etcd's MoveLeader under 64 writers: leadership goes to the member
/// named, writes go on and none acknowledged is lost. A stranger is refused,
/// and so is the request when it reaches a member that does not lead.
async fn leadership_moved_under_writers(kind: &'static str) {
    use synod_proto::etcdserverpb::maintenance_client::MaintenanceClient;
    use synod_proto::etcdserverpb::MoveLeaderRequest;
    let mut w = Writing::start(kind, 3).await;
    let c = &w.c;
    let target = (w.leader + 1) % c.len();
    let target_id = member_id(c, w.leader, &format!("m{target}"));
    let stranger = etcdctl(&c.endpoints(), &["move-leader", "1234"], None);
    assert!(
        String::from_utf8_lossy(&stranger.stderr).contains("bad leader transferee"),
        "{kind}: {stranger:?}"
    );
    let mut follower = MaintenanceClient::new(channel(c.url(target)));
    let refused = follower
        .move_leader(MoveLeaderRequest {
            target_id: u64::from_str_radix(&target_id, 16).unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), refused.message()),
        (tonic::Code::FailedPrecondition, "etcdserver: not leader"),
        "{kind}"
    );

    let asked = Instant::now();
    let moved = text(etcdctl(&c.endpoints(), &["move-leader", &target_id], None));
    let took = asked.elapsed();
    assert!(moved.contains("Leadership transferred"), "{kind}: {moved}");
    assert_eq!(c.leader(Duration::from_secs(5)).await, target, "{kind}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (acked, resumed) = w.finish(asked + took).await;
    eprintln!(
        "{kind}: leadership moved in {took:?}; {} writes acknowledged, the first after the move {resumed:?} after it",
        acked.len()
    );
    assert!(resumed.is_some(), "{kind}: no write after the move");
    all_members_hold(&w.c, "w/", &acked).await;

    // A MoveLeader its client gives up on while leadership is being handed
    // over (etcdctl's 5 s timeout ends first when the transfer stalls) must
    // not leave the member holding writes back: each member then still
    // takes a write within etcdctl's timeout.
    let c = &w.c;
    let leader = c.leader(Duration::from_secs(5)).await;
    let other = (leader + 1) % c.len();
    let other_id = u64::from_str_radix(&member_id(c, leader, &format!("m{other}")), 16).unwrap();
    let mut m = MaintenanceClient::new(channel(c.url(leader)));
    for ms in [1, 3, 10, 30] {
        let mut req = tonic::Request::new(MoveLeaderRequest {
            target_id: other_id,
        });
        req.set_timeout(Duration::from_millis(ms));
        let _ = m.move_leader(req).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..c.len() {
        let out = change(c, i, &["put", "after-cancel", &i.to_string()], ELECTING).await;
        assert!(
            out.status.success(),
            "{kind}: m{i} refused a write after a cancelled MoveLeader: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synod_leadership_moved_under_writers() {
    leadership_moved_under_writers("synod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_leadership_moved_under_writers() {
    leadership_moved_under_writers("etcd").await;
}

/// Alarms belong to the cluster: raised through one member, listed by
/// every member, kept across a restart; while NOSPACE is raised, writes
/// that would store more are refused everywhere and deletes go through;
/// `etcdctl alarm disarm` lifts it.
async fn alarms_are_the_clusters(kind: &'static str) {
    use synod_proto::etcdserverpb::maintenance_client::MaintenanceClient;
    use synod_proto::etcdserverpb::{alarm_request::AlarmAction, AlarmRequest, AlarmType};
    let _one = ONE_AT_A_TIME.lock().await;
    let root = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(kind, 3, root.path());
    c.leader(Duration::from_secs(10)).await;
    text(etcdctl(&c.endpoint(0), &["put", "before", "1"], None));
    let id = member_id(&c, 0, "m0");
    let mut m = MaintenanceClient::new(channel(c.url(1)));
    let raised = m
        .alarm(AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: u64::from_str_radix(&id, 16).unwrap(),
            alarm: AlarmType::Nospace as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(raised.alarms.len(), 1, "{kind}: {raised:?}");
    let listed = format!(
        "memberID:{} alarm:NOSPACE",
        u64::from_str_radix(&id, 16).unwrap()
    );
    let everywhere = |c: &Cluster, want: &str| {
        for i in 0..c.len() {
            let list = text(etcdctl(&c.endpoint(i), &["alarm", "list"], None));
            assert_eq!(list.trim(), want, "{kind}: member {i}");
        }
    };
    everywhere(&c, &listed);

    for i in 0..c.len() {
        for args in [&["put", "k", "v"][..], &["lease", "grant", "10"][..]] {
            let out = etcdctl(&c.endpoint(i), args, None);
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("database space exceeded"),
                "{kind}: {args:?} on member {i}: {out:?}"
            );
        }
    }
    assert_eq!(
        text(etcdctl(&c.endpoint(2), &["del", "before"], None)).trim(),
        "1"
    );

    c.kill9(0);
    c.restart(0);
    c.leader(Duration::from_secs(10)).await;
    everywhere(&c, &listed);

    let disarmed = text(etcdctl(&c.endpoint(2), &["alarm", "disarm"], None));
    assert_eq!(disarmed.trim(), listed, "{kind}");
    everywhere(&c, "");
    text(etcdctl(&c.endpoint(0), &["put", "k", "v"], None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synod_alarms_are_the_clusters() {
    alarms_are_the_clusters("synod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_alarms_are_the_clusters() {
    alarms_are_the_clusters("etcd").await;
}

/// The id etcdctl lists for member `name`.
fn member_id(c: &Cluster, via: usize, name: &str) -> String {
    let list = text(etcdctl(&c.endpoint(via), &["member", "list"], None));
    list.lines()
        .find(|l| l.split(", ").nth(2) == Some(name))
        .and_then(|l| l.split(", ").next())
        .unwrap_or_else(|| panic!("{}: no member {name}: {list}", c.kind))
        .to_string()
}

/// A membership change through member `via`, retried while the answer is
/// "unhealthy cluster" (etcd takes changes only once its members have been
/// connected for a while; synod takes them at once) or contains `wait_for`.
/// etcdctl's answers while a cluster elects a leader: worth asking again.
const ELECTING: &[&str] = &[
    "context deadline exceeded",
    "request timed out",
    "leader changed",
    "no leader",
];

async fn change(c: &Cluster, via: usize, args: &[&str], wait_for: &[&str]) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = etcdctl(&c.endpoint(via), args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        let again = err.contains("unhealthy cluster") || wait_for.iter().any(|w| err.contains(w));
        if out.status.success() || !again || Instant::now() > deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// etcd's way to grow and shrink a cluster, while 64 writers go on: add a
/// learner, start it with --initial-cluster-state existing, promote it once
/// it caught up, then remove one of the first members, which stops.
async fn membership_changes_under_writes(kind: &'static str) {
    let _one = ONE_AT_A_TIME.lock().await;
    let root = std::path::PathBuf::from("/tmp/mtest");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let root = tempfile::TempDir::new_in(&root).unwrap().keep();
    let mut c = Cluster::start(kind, 3, &root);
    c.leader(Duration::from_secs(10)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Log::default()));
    let writers = start_writers(&c, stop.clone(), log.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let ports = (common::free_port(), common::free_port());
    let peer = format!("--peer-urls=http://127.0.0.1:{}", ports.1);
    text(change(&c, 1, &["member", "add", "m3", &peer, "--learner"], &[]).await);
    // A URL already in use, and a malformed one, are refused.
    // (etcd 3.4 derives the new id from the URLs and trips on the id
    // first; synod's ids include the time, as etcd's later ones do).
    let dup = etcdctl(&c.endpoint(1), &["member", "add", "m4", &peer], None);
    let err = String::from_utf8_lossy(&dup.stderr);
    assert!(
        err.contains("Peer URLs already exists") || err.contains("member ID already exist"),
        "{kind}: {dup:?}"
    );
    let bad = etcdctl(
        &c.endpoint(1),
        &["member", "add", "m4", "--peer-urls=127.0.0.1:1"],
        None,
    );
    assert!(!bad.status.success(), "{kind}: {bad:?}");
    let new = c.join("m3", ports);
    let id = member_id(&c, 0, "m3");
    let line = text(etcdctl(&c.endpoint(0), &["member", "list"], None));
    assert!(
        line.lines()
            .any(|l| l.starts_with(&id) && l.ends_with(", true")),
        "{kind}: learner: {line}"
    );
    // A voter cannot be promoted.
    let voter = member_id(&c, 0, "m1");
    let refused = etcdctl(&c.endpoint(0), &["member", "promote", &voter], None);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("can only promote a learner member"),
        "{kind}: {refused:?}"
    );
    // The learner is promoted once it has caught up.
    text(change(&c, 2, &["member", "promote", &id], &["in sync with leader"]).await);
    let list = text(etcdctl(&c.endpoint(new), &["member", "list"], None));
    assert_eq!(list.lines().count(), 4, "{kind}: {list}");
    assert!(
        list.lines()
            .all(|l| l.contains(", started, ") && l.ends_with(", false")),
        "{kind}: {list}"
    );

    // Removing the first member stops it; the rest go on.
    let first = member_id(&c, 0, "m0");
    // A timed-out removal may still have been applied: a retry then finds
    // the member gone, which is what was asked for.
    let removed = change(&c, new, &["member", "remove", &first], ELECTING).await;
    assert!(
        removed.status.success()
            || String::from_utf8_lossy(&removed.stderr).contains("member not found"),
        "{kind}: {removed:?}"
    );
    assert!(
        c.exited_within(0, Duration::from_secs(15)),
        "{kind}: the removed member still runs"
    );
    // etcd may still be electing a new leader (the removed member may have
    // led): its answer is then a timeout, so ask again.
    let missing = change(&c, 1, &["member", "remove", &first], ELECTING).await;
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("member not found"),
        "{kind}: {missing:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let (acked, _) = log.lock().unwrap().since(Instant::now());
    let list = text(etcdctl(&c.endpoint(new), &["member", "list"], None));
    assert_eq!(list.lines().count(), 3, "{kind}: {list}");
    c.leader(Duration::from_secs(10)).await;
    all_members_hold(&c, "w/", &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synod_membership_changes_under_writes() {
    membership_changes_under_writes("synod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_membership_changes_under_writes() {
    membership_changes_under_writes("etcd").await;
}

/// A small deterministic generator for the clients' choices (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

const KEYS: usize = 3;

/// One client's operation on `key` through `kv`, timed against `t0`.
async fn run_op(
    kv: &mut KvClient<Channel>,
    key: usize,
    op: linearizability::Op,
    t0: Instant,
) -> Option<linearizability::Call> {
    use linearizability::{Call, Op, Outcome};
    use synod_proto::etcdserverpb::{compare, request_op, Compare, RequestOp, TxnRequest};
    let k = format!("lin/{key}").into_bytes();
    let ns = || t0.elapsed().as_nanos() as u64;
    let call = ns();
    let timeout = Duration::from_secs(2);
    // A request that never reached a server (connection refused) surely
    // did nothing: it is left out of the history.
    let unsent =
        |s: &tonic::Status| s.code() == tonic::Code::Unavailable && s.message().contains("connect");
    let outcome: Result<Outcome, tonic::Status> = match op {
        Op::Read => {
            let mut req = tonic::Request::new(RangeRequest {
                key: k,
                ..Default::default()
            });
            req.set_timeout(timeout);
            kv.range(req).await.map(|r| {
                let v = r.into_inner().kvs.first().map(|kv| {
                    String::from_utf8_lossy(&kv.value)
                        .parse::<u64>()
                        .expect("a number")
                });
                Outcome::Read(v)
            })
        }
        Op::Write(v) => {
            let mut req = tonic::Request::new(PutRequest {
                key: k,
                value: v.to_string().into_bytes(),
                ..Default::default()
            });
            req.set_timeout(timeout);
            kv.put(req).await.map(|_| Outcome::Written)
        }
        Op::Cas(from, to) => {
            let mut req = tonic::Request::new(TxnRequest {
                compare: vec![Compare {
                    key: k.clone(),
                    result: compare::CompareResult::Equal as i32,
                    target: compare::CompareTarget::Value as i32,
                    target_union: Some(compare::TargetUnion::Value(from.to_string().into_bytes())),
                    ..Default::default()
                }],
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: k,
                        value: to.to_string().into_bytes(),
                        ..Default::default()
                    })),
                }],
                failure: vec![],
            });
            req.set_timeout(timeout);
            kv.txn(req)
                .await
                .map(|r| Outcome::Swapped(r.into_inner().succeeded))
        }
    };
    match outcome {
        Ok(outcome) => Some(Call {
            op,
            outcome,
            call,
            ret: Some(ns()),
        }),
        Err(s) if unsent(&s) => None,
        // Failed or timed out: it may still take effect, at any later time.
        Err(_) => Some(Call {
            op,
            outcome: Outcome::Unknown,
            call,
            ret: None,
        }),
    }
}

/// Concurrent clients read, write and compare-and-swap a few keys through
/// every member while members are killed, paused and restarted; every key's
/// recorded history must be linearizable.
async fn linearizable_under_faults(kind: &'static str) {
    use linearizability::Op;
    let _one = ONE_AT_A_TIME.lock().await;
    let root = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(kind, 3, root.path());
    c.leader(Duration::from_secs(10)).await;
    for key in 0..KEYS {
        text(etcdctl(
            &c.endpoint(0),
            &["put", &format!("lin/{key}"), "0"],
            None,
        ));
    }
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let channels: Vec<Channel> = (0..c.len()).map(|i| channel(c.url(i))).collect();
    let clients: Vec<_> = (0..6u64)
        .map(|id| {
            let (stop, channels) = (stop.clone(), channels.clone());
            tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((id + 1) * 0x1000_0000_01b3));
                let mut last_seen = [0u64; KEYS];
                let mut history = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let key = rng.below(KEYS as u64) as usize;
                    n += 1;
                    let fresh = (id + 1) * 1_000_000 + n;
                    let op = match rng.below(10) {
                        0..=3 => Op::Read,
                        4..=6 => Op::Write(fresh),
                        _ => Op::Cas(last_seen[key], fresh),
                    };
                    let member = rng.below(channels.len() as u64) as usize;
                    let mut kv = KvClient::new(channels[member].clone());
                    if let Some(call) = run_op(&mut kv, key, op, t0).await {
                        if let linearizability::Outcome::Read(Some(v)) = call.outcome {
                            last_seen[key] = v;
                        }
                        history.push((key, call));
                    }
                    tokio::time::sleep(Duration::from_millis(rng.below(15))).await;
                }
                history
            })
        })
        .collect();

    // The faults: each member in turn killed and restarted, or paused and
    // resumed, while the clients go on.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (round, member) in [0usize, 1, 2, 0].into_iter().enumerate() {
        if round % 2 == 0 {
            c.kill9(member);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            c.restart(member);
        } else {
            c.signal(member, false);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            c.signal(member, true);
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut by_key: Vec<Vec<linearizability::Call>> = vec![Vec::new(); KEYS];
    for client in clients {
        for (key, call) in client.await.unwrap() {
            by_key[key].push(call);
        }
    }
    for (key, history) in by_key.iter().enumerate() {
        let answered = history.iter().filter(|c| c.ret.is_some()).count();
        let checked = Instant::now();
        let ok = linearizability::check(history, Some(0), 20_000_000);
        eprintln!(
            "{kind}: key {key}: {} operations ({answered} answered), linearizable: {ok:?}, checked in {:?}",
            history.len(),
            checked.elapsed()
        );
        assert_eq!(
            ok,
            Some(true),
            "{kind}: the history of lin/{key} is not linearizable (None: undecided)"
        );
        assert!(
            answered > 100,
            "{kind}: too few operations answered on lin/{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synod_linearizable_under_faults() {
    linearizable_under_faults("synod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_linearizable_under_faults() {
    linearizable_under_faults("etcd").await;
}

/// etcdctl through member `i`, giving up after 3 s; the answer and how long
/// it took. Blocks outside the runtime, which carries the peer proxies.
fn ctl(c: &Cluster, i: usize, args: &[&str]) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let args: Vec<&str> = std::iter::once("--command-timeout=3s")
        .chain(args.iter().copied())
        .collect();
    let out = tokio::task::block_in_place(|| etcdctl(&c.endpoint(i), &args, None));
    (out, started.elapsed())
}

/// What etcdctl answered, on one line: its output, or its error and the
/// distinct errors of the attempts it retried.
fn answer(out: &std::process::Output) -> String {
    if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        return format!("ok {:?}", text.trim().replace('\n', " | "));
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let mut tried: Vec<&str> = text
        .split("\"error\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    tried.dedup();
    let last = text.lines().last().unwrap_or_default();
    format!("{last:?} (attempts: {tried:?})")
}

/// The leader is cut off from the other two members (its peer traffic goes
/// through proxies the test controls): it acknowledges no write and serves
/// no linearizable read, while the other two elect a leader among
/// themselves and go on. Once healed, it follows that leader and holds
/// everything written meanwhile.
async fn partitioned_member(kind: &'static str) {
    let _one = ONE_AT_A_TIME.lock().await;
    let root = tempfile::tempdir().unwrap();
    let c = Cluster::start_proxied(kind, 3, root.path());
    let old = c.leader(Duration::from_secs(10)).await;
    let majority: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let mut want = put_many(&c, old, "p/before/", 20).await;
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Log::default()));
    let writers = start_writers_on(&c, &majority, 16, stop.clone(), log.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    c.isolate(old);
    let cut = Instant::now();
    // A write through the cut-off member is not acknowledged. It may still
    // take effect later (a timed-out write is indeterminate): nothing is
    // asserted on that.
    let (put, took) = ctl(&c, old, &["put", "p/isolated", "x"]);
    eprintln!(
        "{kind}: put through isolated member {old}: {} after {took:?}",
        answer(&put)
    );
    assert!(
        !put.status.success(),
        "{kind}: the isolated member acknowledged a write"
    );

    // The other two elect a leader among themselves and take writes and
    // linearizable reads through either of them.
    let new = c.leader_among(&majority, Duration::from_secs(10)).await;
    for &i in &majority {
        let key = format!("p/after/{i}");
        let out = text(ctl(&c, i, &["put", &key, "y"]).0);
        assert_eq!(out.trim(), "OK", "{kind}: put through member {i}");
        want.insert(key.clone(), "y".to_string());
        let got = text(ctl(&c, i, &["get", &key, "--print-value-only"]).0);
        assert_eq!(got.trim(), "y", "{kind}: linearizable read on member {i}");
    }
    let (_, resumed) = log.lock().unwrap().since(cut);
    let resumed = resumed.unwrap_or_else(|| panic!("{kind}: no write acknowledged after the cut"));
    eprintln!(
        "{kind}: leader {old} cut off; member {new} leads the other two; first write through them {resumed:?} after the cut"
    );
    assert!(
        resumed <= failover_bound(kind),
        "{kind}: writes resumed only {resumed:?} after the cut"
    );

    // The majority has written past the cut-off member, so a read it
    // answered from its own copy would be stale: a linearizable read must
    // fail. (A serializable read may be answered; it is only shown.)
    let (get, took) = ctl(&c, old, &["get", "p/", "--prefix", "--keys-only"]);
    eprintln!(
        "{kind}: linearizable get through isolated member {old}: {} after {took:?}",
        answer(&get)
    );
    assert!(
        !get.status.success(),
        "{kind}: the isolated member served a linearizable read"
    );
    // The same read over gRPC, to see the member's own answer (etcdctl
    // retries some).
    let mut req = tonic::Request::new(RangeRequest {
        key: "p/".into(),
        range_end: synod_proto::prefix_end(b"p/"),
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(3));
    let started = Instant::now();
    let res = KvClient::new(channel(c.url(old))).range(req).await;
    eprintln!(
        "{kind}: gRPC linearizable range through isolated member {old}: {:?} after {:?}",
        res.as_ref()
            .map(|r| r.get_ref().count)
            .map_err(|s| (s.code(), s.message())),
        started.elapsed()
    );
    assert!(
        res.is_err(),
        "{kind}: the isolated member served a linearizable read"
    );
    let (local, _) = ctl(
        &c,
        old,
        &["get", "p/", "--prefix", "--keys-only", "--consistency=s"],
    );
    let keys = String::from_utf8_lossy(&local.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .count();
    // Cut off, it no longer calls itself the leader (etcd's CheckQuorum),
    // so whoever looks for the leader through Status is not sent there.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        use synod_proto::etcdserverpb::maintenance_client::MaintenanceClient;
        let s = MaintenanceClient::new(channel(c.url(old)))
            .status(synod_proto::etcdserverpb::StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        if s.leader != s.header.map_or(0, |h| h.member_id) {
            eprintln!(
                "{kind}: the isolated member stopped calling itself leader {:?} after the cut",
                cut.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{kind}: the isolated member still calls itself leader"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = ctl(&c, old, &["endpoint", "status"]);
    eprintln!(
        "{kind}: isolated member {old}: serializable get {} ({keys} keys of {} written); endpoint status {}",
        local.status,
        want.len(),
        answer(&status)
    );

    // Healed, the old leader follows the new one and catches up.
    c.heal();
    let healed = Instant::now();
    let now = c.leader(Duration::from_secs(15)).await;
    eprintln!(
        "{kind}: {:?} after the heal all three follow member {now}",
        healed.elapsed()
    );
    assert_ne!(now, old, "{kind}: the cut-off member leads again");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let (acked, during, after) = {
        let log = log.lock().unwrap();
        let done = |from: Instant, to: Instant| {
            log.times
                .iter()
                .filter(|(_, done)| (from..to).contains(done))
                .count()
        };
        let during = done(cut, healed);
        (log.acked.clone(), during, done(healed, Instant::now()))
    };
    eprintln!(
        "{kind}: {} writes acknowledged by the majority: {during} in the {:?} cut off, {after} in the {:?} after the heal",
        acked.len(),
        healed - cut,
        healed.elapsed()
    );
    all_members_hold(&c, "w/", &acked).await;
    all_members_hold(&c, "p/", &want).await;
    one_hash(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synod_partitioned_leader_serves_nothing_linearizable() {
    partitioned_member("synod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_partitioned_leader_serves_nothing_linearizable() {
    partitioned_member("etcd").await;
}
