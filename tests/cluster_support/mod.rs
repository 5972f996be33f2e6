//! Helpers shared by the scale-out tests (Redis Cluster, several memcached servers): the
//! cross-process lock on the local clusters, restarting them with `scripts/cluster.sh`, and
//! killing a server by PID.
//!
//! Tests that need the clusters steady hold the lock shared (through [`Steady`]); tests that
//! kill a server hold it exclusive, so that they never run while another test (in this process
//! or another `cargo test` on the machine) uses the clusters, and `scripts/cluster.sh` waits
//! for them too.
#![allow(dead_code)]

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;

use fs2::FileExt;
use server_session::store::conformance::Guarded;

/// The directory `scripts/cluster.sh` keeps the clusters' state and lock in.
pub fn cluster_dir() -> PathBuf {
    match std::env::var_os("SERVER_SESSION_CLUSTER_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join("server-session-cluster"),
    }
}

fn lock_file() -> File {
    let dir = cluster_dir();
    std::fs::create_dir_all(&dir).expect("create the cluster state directory");
    File::create(dir.join("cluster.lock")).expect("open cluster.lock")
}

/// Holds the lock shared until dropped: no server is killed meanwhile.
pub fn lock_shared() -> File {
    let file = lock_file();
    FileExt::lock_shared(&file).expect("lock cluster.lock shared");
    file
}

/// Holds the lock exclusive until dropped: no other test uses the clusters meanwhile.
pub fn lock_exclusive() -> File {
    let file = lock_file();
    FileExt::lock_exclusive(&file).expect("lock cluster.lock exclusive");
    file
}

/// Runs `bash scripts/cluster.sh <what>` (which starts what is missing and waits until healthy)
/// under the lock this process holds, and asserts that it succeeded.
pub fn restore(what: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(what)
        .env("SERVER_SESSION_CLUSTER_LOCKED", "1")
        .status()
        .expect("run scripts/cluster.sh");
    assert!(
        status.success(),
        "scripts/cluster.sh {what} failed: {status}"
    );
}

/// Runs [`restore`] when dropped, even when the test panics: a test that kills a server creates
/// this first, so the clusters are healthy again for the next test whatever happens.
pub struct RestoreOnDrop(pub &'static str);

impl Drop for RestoreOnDrop {
    fn drop(&mut self) {
        restore(self.0);
    }
}

/// Kills the process `pid` with SIGKILL: no shutdown, no goodbye to its peers.
pub fn kill(pid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -KILL {pid} failed");
}

/// The `host:port` nodes of a `redis+cluster://` or `memcache://` URL.
pub fn nodes(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, hosts)| hosts);
    rest.trim_end_matches('/')
        .split(',')
        .map(|n| n.trim().to_owned())
        .collect()
}

/// A store used while holding the lock shared, for the conformance suite.
pub type Steady<S> = Guarded<S, File>;

/// `store`, with the lock held shared until it is dropped.
pub fn steady<S>(store: S) -> Steady<S> {
    Guarded {
        store,
        guard: lock_shared(),
    }
}
