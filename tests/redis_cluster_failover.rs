//! Failover on the real local Redis Cluster named by `SERVER_SESSION_REDIS_CLUSTER_URL` (the one
//! `scripts/cluster.sh` starts): kill the master that owns a session's slot and watch requests
//! fail fast with a typed error until its replica is promoted, then succeed with the data intact,
//! while a session on another master keeps working throughout.
//!
//! The test holds the clusters' lock exclusive, so no other test using the clusters runs
//! meanwhile (in this or another process), and it leaves the cluster healthy: the killed node is
//! restarted by `scripts/cluster.sh` and rejoins as a replica, even when an assertion fails.
#![cfg(feature = "redis-cluster")]

mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::{RestoreOnDrop, kill, lock_exclusive, nodes, restore};
use server_session::store::RedisClusterStore;
use server_session::store::conformance::{service_unavailable, unique_prefix};
use server_session::{Config, Error, SessionManager};

const URL_ENV: &str = "SERVER_SESSION_REDIS_CLUSTER_URL";
/// How long the cluster may take to promote the replica (node timeout 2 s, then an election).
const PROMOTION_LIMIT: Duration = Duration::from_secs(20);
/// The longest a failing request may take: the read timeout, far above the refused connect.
const FAILURE_LIMIT: Duration = Duration::from_secs(2);

type Manager = SessionManager<RedisClusterStore>;

fn query<T: redis::FromRedisValue>(node: &str, cmd: &mut redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://{node}/"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    cmd.query(&mut conn)
}

/// The node that owns `key`'s slot: the only one that answers `EXISTS` instead of `MOVED`.
fn owner(all: &[String], key: &str) -> String {
    let owners: Vec<&String> = all
        .iter()
        .filter(|node| query::<i64>(node, redis::cmd("EXISTS").arg(key)).is_ok())
        .collect();
    assert_eq!(owners.len(), 1, "{key}: owners {owners:?}");
    owners[0].clone()
}

fn info_field(node: &str, section: &str, field: &str) -> String {
    let info: String = query(node, redis::cmd("INFO").arg(section)).unwrap();
    let prefix = format!("{field}:");
    let line = info.lines().find_map(|l| l.strip_prefix(&prefix));
    line.unwrap_or_else(|| panic!("{node}: no {field} in INFO {section}"))
        .trim()
        .to_owned()
}

/// A new session with `visits = 1`: its `Cookie` header and its store key.
fn new_session(manager: &Manager, prefix: &str) -> (String, String) {
    let mut session = manager.open(None);
    session.insert("visits", &1u64).unwrap();
    let commit = session.commit().unwrap();
    let pair = commit.set_cookie().unwrap().split(';').next().unwrap();
    let key = format!("{prefix}{}", pair.trim_start_matches("session="));
    (pair.to_owned(), key)
}

/// One request: read `visits`, store `visits + 1`; returns the value read.
fn visit(manager: &Manager, cookie: &str) -> Result<u64, Error> {
    let mut session = manager.open(Some(cookie));
    let visits = session.get::<u64>("visits")?.unwrap_or(0);
    session.insert("visits", &(visits + 1))?;
    session.commit()?;
    Ok(visits)
}

/// Two sessions on different masters: `(cookie a, key a, master of a, cookie b)`.
fn sessions_on_two_masters(manager: &Manager, all: &[String], prefix: &str) -> [String; 4] {
    let (cookie_a, key_a) = new_session(manager, prefix);
    let master_a = owner(all, &key_a);
    loop {
        let (cookie_b, key_b) = new_session(manager, prefix);
        if owner(all, &key_b) != master_a {
            return [cookie_a, key_a, master_a, cookie_b];
        }
    }
}

#[test]
fn killed_master_fails_fast_then_its_replica_serves_the_data() {
    let Some(url) = std::env::var(URL_ENV).ok().filter(|u| !u.is_empty()) else {
        return service_unavailable("redis_cluster_failover");
    };
    let _lock = lock_exclusive();
    restore("redis"); // start from a healthy cluster, whatever an earlier run left
    let all = nodes(&url);
    let prefix = format!("{}session:", unique_prefix("failover"));
    let config = Config::builder()
        .key_prefix(prefix.as_str())
        .build()
        .unwrap();
    let manager = SessionManager::new(RedisClusterStore::open(&url).unwrap(), config).unwrap();
    let [cookie_a, key_a, master_a, cookie_b] = sessions_on_two_masters(&manager, &all, &prefix);
    let acked: i64 = query(&master_a, redis::cmd("WAIT").arg(1).arg(2000)).unwrap();
    assert_eq!(
        acked, 1,
        "the replica of {master_a} did not acknowledge the session"
    );
    let pid: u32 = info_field(&master_a, "server", "process_id")
        .parse()
        .unwrap();

    let restart = RestoreOnDrop("redis");
    let killed = Instant::now();
    kill(pid);
    let timeline = failover_timeline(&manager, &cookie_a, &cookie_b);
    println!(
        "failover: master {master_a} (pid {pid}) killed; requests for its session failed \
         {} times over {:?} (slowest {:?}, first error: {}); served again {:?} after the kill; \
         {} requests for the other master's session all succeeded",
        timeline.failures,
        timeline.failing_for,
        timeline.slowest_failure,
        timeline.first_error,
        killed.elapsed(),
        timeline.other_requests,
    );
    assert_ne!(
        owner(&all, &key_a),
        master_a,
        "a replica took over the slot"
    );
    drop(restart); // the killed node rejoins as a replica, the cluster is healthy again
    assert_eq!(info_field(&master_a, "replication", "role"), "slave");
    assert_eq!(
        visit(&manager, &cookie_a).unwrap(),
        2,
        "data written after the failover"
    );
}

struct Timeline {
    failures: usize,
    failing_for: Duration,
    slowest_failure: Duration,
    first_error: String,
    other_requests: usize,
}

/// Requests both sessions every 50 ms until session a is served again; asserts that a's
/// failures are typed and fast, that b never fails, and that a comes back with `visits = 1`.
fn failover_timeline(manager: &Manager, cookie_a: &str, cookie_b: &str) -> Timeline {
    let start = Instant::now();
    let mut timeline = Timeline {
        failures: 0,
        failing_for: Duration::ZERO,
        slowest_failure: Duration::ZERO,
        first_error: String::new(),
        other_requests: 0,
    };
    let mut expected_b = 1;
    loop {
        assert_eq!(visit(manager, cookie_b).unwrap(), expected_b, "session b");
        (expected_b, timeline.other_requests) = (expected_b + 1, timeline.other_requests + 1);
        let attempt = Instant::now();
        match visit(manager, cookie_a) {
            Ok(visits) => {
                assert_eq!(visits, 1, "session a after the failover");
                return timeline;
            }
            Err(e) => {
                let took = attempt.elapsed();
                assert!(matches!(e, Error::Store(_)), "{e:?}");
                assert!(took < FAILURE_LIMIT, "a failing request took {took:?}");
                if timeline.failures == 0 {
                    timeline.first_error =
                        format!("{e} ({})", std::error::Error::source(&e).unwrap());
                }
                timeline.failures += 1;
                timeline.failing_for = start.elapsed();
                timeline.slowest_failure = timeline.slowest_failure.max(took);
            }
        }
        assert!(
            start.elapsed() < PROMOTION_LIMIT,
            "no promotion after {PROMOTION_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
