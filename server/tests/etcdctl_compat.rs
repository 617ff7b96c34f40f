//! The etcdctl compatibility suite: the same ~250 etcdctl commands run against
//! synod and against a real etcd, both fresh, and the transcripts (commands,
//! output, errors, exit codes) must be identical once ids, ports, timings
//! and sizes are normalized. Where they differ, Synod is wrong.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;

fn transcript(server: &Server) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/etcdctl");
    let raw = Command::new("bash")
        .arg(dir.join("run.sh"))
        .arg(server.url())
        .output()
        .expect("run.sh");
    let raw_path = server.dir.with_extension("transcript");
    std::fs::write(&raw_path, &raw.stdout).unwrap();
    let normalized = Command::new("bash")
        .arg(dir.join("normalize.sh"))
        .arg(server.port.to_string())
        .arg(server.peer_port.to_string())
        .stdin(std::fs::File::open(&raw_path).unwrap())
        .output()
        .expect("normalize.sh");
    String::from_utf8_lossy(&normalized.stdout).into_owned()
}

#[test]
fn etcdctl_sees_synod_as_it_sees_etcd() {
    let tmp = tempfile::tempdir().unwrap();
    let etcd = Server::etcd(&tmp.path().join("etcd"));
    let synod = Server::synod(&tmp.path().join("synod"));
    let (want, got) = std::thread::scope(|s| {
        let e = s.spawn(|| transcript(&etcd));
        let g = s.spawn(|| transcript(&synod));
        (e.join().unwrap(), g.join().unwrap())
    });
    assert!(
        want.lines().count() > 1000,
        "etcd transcript too short:\n{want}"
    );
    if want != got {
        let a = tmp.path().join("etcd.txt");
        let b = tmp.path().join("synod.txt");
        std::fs::write(&a, &want).unwrap();
        std::fs::write(&b, &got).unwrap();
        let diff = Command::new("diff")
            .arg("-u")
            .arg(&a)
            .arg(&b)
            .output()
            .unwrap();
        let diff = String::from_utf8_lossy(&diff.stdout);
        let shown: String = diff.lines().take(300).collect::<Vec<_>>().join("\n");
        panic!("etcdctl output differs between etcd (-) and synod (+):\n{shown}");
    }
}
