//! The threads that keep the CPUs awake after activity (`--idle-spin-us`,
//! server/src/warm.rs): one per CPU, each pinned to its CPU under SCHED_IDLE,
//! spinning while requests come and asleep once they stop, and absent when
//! turned off, or under a CPU quota smaller than the CPUs unless asked for.
//! Each property is read from /proc, as an operator would.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, Server};
use synod_proto::etcdserverpb::PutRequest;

/// `SCHED_IDLE` as /proc/<pid>/task/<tid>/stat's policy field gives it.
const SCHED_IDLE: u32 = 5;

struct Spinner {
    name: String,
    stat: std::path::PathBuf,
    status: std::path::PathBuf,
}

impl Spinner {
    /// The thread's CPU time (user + system), in clock ticks.
    fn ticks(&self) -> u64 {
        let f = fields(&self.stat);
        f[13].parse::<u64>().unwrap() + f[14].parse::<u64>().unwrap()
    }

    fn policy(&self) -> u32 {
        fields(&self.stat)[40].parse().unwrap()
    }

    fn cpus_allowed(&self) -> String {
        cpus_allowed_list(&self.status)
    }
}

/// A status file's Cpus_allowed_list, such as "0-3,6".
fn cpus_allowed_list(status: &std::path::Path) -> String {
    std::fs::read_to_string(status)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

/// The fields of a stat file, counted from 1 as proc(5) does, less one; the
/// command name (field 2) is in parentheses and may hold spaces.
fn fields(stat: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(stat).unwrap();
    let close = text.rfind(')').unwrap();
    let mut f = vec![text[..close].to_string(), String::new()];
    f.extend(text[close + 2..].split_whitespace().map(str::to_string));
    f
}

fn spinners(pid: u32) -> Vec<Spinner> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if name.starts_with("synod-warm") {
            found.push(Spinner {
                name: name.trim().to_string(),
                stat: dir.join("stat"),
                status: dir.join("status"),
            });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

fn total_ticks(s: &[Spinner]) -> u64 {
    s.iter().map(Spinner::ticks).sum()
}

/// Serial puts for `how_long`, as one client makes them.
fn put_for(server: &Server, how_long: Duration) -> usize {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(puts(server, how_long))
}

async fn puts(server: &Server, how_long: Duration) -> usize {
    let mut kv = server.kv().await;
    let end = Instant::now() + how_long;
    let mut n = 0;
    while Instant::now() < end {
        kv.put(PutRequest {
            key: format!("spin/{}", n % 100).into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
        n += 1;
    }
    n
}

/// How many CPUs this process may run on.
fn allowed_cpus() -> usize {
    cpus_allowed_list(std::path::Path::new("/proc/self/status"))
        .split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

#[test]
fn spinners_run_while_requests_come_and_sleep_when_they_stop() {
    let dir = tempfile::tempdir().unwrap();
    // Asked for explicitly: under a container's CPU quota the default is off.
    let server = Server::synod_with(
        dir.path(),
        free_port(),
        free_port(),
        &["--idle-spin-us=200"],
    );
    let pid = server.child.id();

    let spin = spinners(pid);
    assert_eq!(spin.len(), allowed_cpus().min(8), "one spinner per CPU");
    for s in &spin {
        assert_eq!(s.policy(), SCHED_IDLE, "{} is not SCHED_IDLE", s.name);
        let cpu = s.name.trim_start_matches("synod-warm-");
        assert_eq!(s.cpus_allowed(), cpu, "{} is not pinned to its CPU", s.name);
    }

    // Serial puts leave the CPUs idle between the hops of each request: the
    // spinners take that time, unless other work on a loaded machine does.
    let before = total_ticks(&spin);
    let mut puts = 0;
    for _ in 0..5 {
        puts += put_for(&server, Duration::from_secs(1));
        if total_ticks(&spin) > before {
            break;
        }
    }
    assert!(
        total_ticks(&spin) > before,
        "the spinners used no CPU time during {puts} serial puts"
    );

    // Once requests stop, they sleep: a server nobody uses must not burn CPU.
    // Its timers (Raft's tick, the lease ticker) still wake a worker about
    // ten times a second, and each wake-up spins every CPU for the window.
    std::thread::sleep(Duration::from_millis(500));
    let before = total_ticks(&spin);
    std::thread::sleep(Duration::from_secs(3));
    let idle = total_ticks(&spin) - before;
    // A clock tick is 10 ms; spinning through the 3 s would be 300 a CPU.
    assert!(
        idle <= 5 * spin.len() as u64,
        "the spinners used {idle} ticks in 3 s with no requests"
    );
}

#[test]
fn zero_turns_the_spinners_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::synod_with(dir.path(), free_port(), free_port(), &["--idle-spin-us=0"]);
    put_for(&server, Duration::from_millis(200));
    assert!(spinners(server.child.id()).is_empty());
}

/// A cgroup with half a CPU's quota, removed when dropped (after the
/// processes in it have ended).
struct Quota {
    dir: std::path::PathBuf,
}

impl Quota {
    /// None where this process cannot make one (not root, a read-only or
    /// delegated cgroup tree).
    fn half_a_cpu() -> Option<Quota> {
        let name = format!("synod-test-{}", std::process::id());
        let v1 = std::path::Path::new("/sys/fs/cgroup/cpu");
        let (quota, limit) = if v1.join("cpu.cfs_quota_us").exists() {
            let quota = Quota { dir: v1.join(name) };
            std::fs::create_dir(&quota.dir).ok()?;
            std::fs::write(quota.dir.join("cpu.cfs_period_us"), "100000").ok()?;
            (quota, ("cpu.cfs_quota_us", "50000"))
        } else {
            let root = std::path::Path::new("/sys/fs/cgroup");
            std::fs::write(root.join("cgroup.subtree_control"), "+cpu").ok()?;
            let quota = Quota {
                dir: root.join(name),
            };
            std::fs::create_dir(&quota.dir).ok()?;
            (quota, ("cpu.max", "50000 100000"))
        };
        std::fs::write(quota.dir.join(limit.0), limit.1).ok()?;
        Some(quota)
    }
}

impl Drop for Quota {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// In a container limited to fewer CPUs than it can see, spinning would
/// spend the quota that requests need: the default is off there, and an
/// explicit `--idle-spin-us` still turns it on.
#[test]
fn a_cpu_quota_turns_the_spinners_off_unless_asked() {
    use std::os::unix::fs::PermissionsExt;
    let cpus = allowed_cpus();
    let quota = match Quota::half_a_cpu() {
        Some(q) if cpus >= 2 => q,
        _ => {
            eprintln!("skipped: a quota below the CPUs needs two CPUs and a writable cgroup");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("in-cgroup");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho $$ > {}/cgroup.procs\nexec {} \"$@\"\n",
            quota.dir.display(),
            env!("CARGO_BIN_EXE_synod")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let cases: [(&[&str], usize); 2] = [(&[], 0), (&["--idle-spin-us=200"], cpus.min(8))];
    for (i, (extra, want)) in cases.into_iter().enumerate() {
        let server = Server::synod_program(&wrapper, &dir.path().join(format!("d{i}")), extra);
        let pid = server.child.id();
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let name = quota.dir.file_name().unwrap().to_string_lossy();
        assert!(
            cgroups.contains(&*name),
            "not in the quota's cgroup: {cgroups}"
        );
        assert_eq!(spinners(pid).len(), want, "{extra:?} under half a CPU");
    }
}
