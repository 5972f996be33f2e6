//! The conformance suite and the several-servers behaviour of the MemcachedStore, against the
//! three local memcached instances named by `SERVER_SESSION_MEMCACHED_CLUSTER_URL`
//! (`memcache://127.0.0.1:11212,127.0.0.1:11213,127.0.0.1:11214`, started by
//! `scripts/cluster.sh` with `-I 2m`).
//!
//! Every test uses its own key prefix and holds the clusters' lock shared; the test that stops
//! a server holds it exclusive and restarts the server with `scripts/cluster.sh`. Without the
//! variable the server tests are skipped, or fail under `SERVER_SESSION_REQUIRE_SERVICES=1`.
#![cfg(feature = "memcached")]

mod cluster_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use cluster_support::{
    RestoreOnDrop, Steady, kill, lock_exclusive, lock_shared, nodes, restore, steady,
};
use server_session::store::conformance::{self, service_unavailable, unique_prefix};
use server_session::store::{ConnectionSettings, MemcachedStore, Store};
use server_session::{Config, SessionManager, conformance_tests};

const URL_ENV: &str = "SERVER_SESSION_MEMCACHED_CLUSTER_URL";

fn url() -> Option<String> {
    std::env::var(URL_ENV).ok().filter(|u| !u.is_empty())
}

fn cluster_store() -> Option<Steady<MemcachedStore>> {
    let store =
        MemcachedStore::open(&url()?).expect("a valid SERVER_SESSION_MEMCACHED_CLUSTER_URL");
    Some(steady(store))
}

conformance_tests!(cluster_store());

/// Sends one text-protocol command to `server` and returns the reply up to `END` (or its one
/// line), without the `\r\n`s and with data blocks as lossy text; `None` when the server
/// refuses the connection (stopped).
fn raw(server: &str, command: &str) -> Option<Vec<String>> {
    let mut stream = BufReader::new(TcpStream::connect(server).ok()?);
    stream.get_mut().write_all(command.as_bytes()).unwrap();
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        stream.read_until(b'\n', &mut line).unwrap();
        let line = String::from_utf8_lossy(&line).trim_end().to_owned();
        let last = !line.starts_with("VALUE ")
            && !line.starts_with("STAT ")
            && lines
                .last()
                .is_none_or(|l: &String| !l.starts_with("VALUE "));
        lines.push(line);
        if last {
            return Some(lines);
        }
    }
}

/// The servers (of those running) that hold `key`.
fn holders(servers: &[String], key: &str) -> Vec<String> {
    let command = format!("get {key}\r\n");
    servers
        .iter()
        .filter(|server| raw(server, &command).is_some_and(|reply| reply[0].starts_with("VALUE ")))
        .cloned()
        .collect()
}

fn pid(server: &str) -> u32 {
    let stats = raw(server, "stats\r\n").expect("the server is running");
    let line = stats.iter().find_map(|l| l.strip_prefix("STAT pid "));
    line.expect("memcached stats has a pid").parse().unwrap()
}

fn in_secs(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs)
}

/// Keys spread over all three servers, each on exactly one.
#[test]
fn keys_spread_over_every_server() {
    let (Some(store), Some(url)) = (cluster_store(), url()) else {
        return service_unavailable("keys_spread_over_every_server");
    };
    let servers = nodes(&url);
    let prefix = unique_prefix("spread");
    let mut per_server: HashMap<String, usize> = HashMap::new();
    for i in 0..60 {
        let key = format!("{prefix}{i}");
        assert!(store.create(&key, b"v", in_secs(60)).unwrap());
        let on = holders(&servers, &key);
        assert_eq!(on.len(), 1, "{key} is on {on:?}");
        *per_server.entry(on[0].clone()).or_default() += 1;
    }
    assert_eq!(per_server.len(), 3, "{per_server:?}");
    assert!(per_server.values().all(|&n| n >= 8), "{per_server:?}");
}

type Manager = SessionManager<MemcachedStore>;

/// One request: read `visits`, store `visits + 1`; returns the value read and the cookie the
/// response sets (`name=value`).
fn visit(manager: &Manager, cookie: Option<&str>) -> (u64, String) {
    let mut session = manager.open(cookie);
    let visits = session
        .get::<u64>("visits")
        .expect("no request fails")
        .unwrap_or(0);
    session.insert("visits", &(visits + 1)).unwrap();
    let commit = session.commit().expect("no request fails");
    let pair = commit.set_cookie().unwrap().split(';').next().unwrap();
    (visits, pair.to_owned())
}

fn key_of(prefix: &str, cookie: &str) -> String {
    format!("{prefix}{}", cookie.trim_start_matches("session="))
}

/// Stop one of the three servers: requests for the sessions it held start fresh sessions
/// (stored on the other servers), every other session keeps its data, and no request fails or
/// waits. Once it is back (empty) and its back-off has passed, its keys go to it again.
#[test]
fn stopped_server_loses_only_its_sessions() {
    let Some(url) = url() else {
        return service_unavailable("stopped_server_loses_only_its_sessions");
    };
    let _lock = lock_exclusive();
    restore("memcached");
    let servers = nodes(&url);
    let backoff = Duration::from_secs(1);
    let store = MemcachedStore::builder()
        .url(url.as_str())
        .dead_server_backoff(backoff)
        .build()
        .unwrap();
    let prefix = format!("{}session:", unique_prefix("down"));
    let config = Config::builder()
        .key_prefix(prefix.as_str())
        .build()
        .unwrap();
    let manager = SessionManager::new(store, config).unwrap();
    let sessions: Vec<(String, String)> = (0..30)
        .map(|_| {
            let (_, cookie) = visit(&manager, None);
            let on = holders(&servers, &key_of(&prefix, &cookie)).remove(0);
            (cookie, on)
        })
        .collect();
    let victim = sessions[0].1.clone();
    let restart = RestoreOnDrop("memcached");
    kill(pid(&victim));

    let (fresh, slowest) = requests_after_the_stop(&manager, &sessions, &victim);
    assert!(
        slowest < Duration::from_millis(500),
        "slowest request {slowest:?}"
    );
    let started: Vec<String> = (fresh.iter().cloned())
        .chain((0..30).map(|_| visit(&manager, None).1))
        .collect();
    for cookie in &started {
        let (visits, again) = visit(&manager, Some(cookie));
        assert_eq!(
            (visits, &again),
            (1, cookie),
            "a session started during the outage"
        );
        assert_ne!(
            holders(&servers, &key_of(&prefix, cookie)),
            std::slice::from_ref(&victim)
        );
    }

    drop(restart); // the victim is back, empty
    std::thread::sleep(backoff + Duration::from_millis(100));
    let back = (0..60).any(|_| {
        let (_, cookie) = visit(&manager, None);
        holders(&servers, &key_of(&prefix, &cookie)) == [victim.clone()]
    });
    assert!(back, "new sessions go to the restarted server again");
    let mut lost_again = 0;
    for cookie in &started {
        match visit(&manager, Some(cookie)).0 {
            0 => lost_again += 1,
            2 => {}
            visits => panic!("read {visits}: a session is either intact (2) or absent (0)"),
        }
    }
    println!(
        "memcached: {victim} killed; {} of {} sessions lost (fresh sessions, stored on the other \
         servers), the others kept; no request failed; slowest request {slowest:?}; after its \
         restart {lost_again} of the {} sessions started meanwhile were lost again",
        fresh.len(),
        sessions.len(),
        started.len()
    );
    assert!(lost_again > 0 && lost_again < started.len(), "{lost_again}");
}

/// One request per session after the victim stopped: the victim's sessions come back fresh
/// (a new cookie), the others with their data. Returns the new cookies and the slowest request.
fn requests_after_the_stop(
    manager: &Manager,
    sessions: &[(String, String)],
    victim: &str,
) -> (Vec<String>, Duration) {
    let mut fresh = Vec::new();
    let mut slowest = Duration::ZERO;
    for (cookie, on) in sessions {
        let start = Instant::now();
        let (visits, new_cookie) = visit(manager, Some(cookie));
        slowest = slowest.max(start.elapsed());
        if on == victim {
            assert_eq!(visits, 0, "a session on the stopped server is absent");
            assert_ne!(&new_cookie, cookie, "and replaced by a fresh one");
            fresh.push(new_cookie);
        } else {
            assert_eq!(
                (visits, &new_cookie),
                (1, cookie),
                "a session on a live server"
            );
        }
    }
    assert!(!fresh.is_empty() && fresh.len() < sessions.len());
    (fresh, slowest)
}

/// A fake server that accepts connections and never answers: a hung memcached.
fn hung_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    addr
}

/// Runs `op` on every key and returns (failures, operations slower than 250 ms, total time).
fn timed(keys: &[String], op: impl Fn(&str) -> bool) -> (usize, usize, Duration) {
    let start = Instant::now();
    let (mut failed, mut slow) = (0, 0);
    for key in keys {
        let t = Instant::now();
        failed += usize::from(!op(key));
        slow += usize::from(t.elapsed() >= Duration::from_millis(250));
    }
    (failed, slow, start.elapsed())
}

/// With a hung server among two, the first request for one of its keys waits one read timeout
/// (300 ms) and is then served by the live server; the hung server is left out for the
/// back-off, so the following requests never wait. Without the back-off, every request for
/// its keys waits the timeout and fails.
#[test]
fn hung_server_costs_one_timeout_per_backoff() {
    let Some(url) = url() else {
        return service_unavailable("hung_server_costs_one_timeout_per_backoff");
    };
    let _steady = lock_shared();
    let live = nodes(&url).remove(0);
    let build = |backoff: Duration| {
        MemcachedStore::builder()
            .url(format!("memcache://{live},{}", hung_server()))
            .connection(ConnectionSettings {
                io_timeout: Duration::from_millis(300),
                ..ConnectionSettings::default()
            })
            .dead_server_backoff(backoff)
            .startup_check(false)
            .build()
            .unwrap()
    };
    let prefix = unique_prefix("hung");
    let keys: Vec<String> = (0..40).map(|i| format!("{prefix}{i}")).collect();
    let store = build(Duration::from_secs(5));
    let created = timed(&keys, |key| {
        store.create(key, b"v", in_secs(60)).unwrap_or(false)
    });
    assert_eq!((created.0, created.1), (0, 1), "(failures, slow requests)");
    assert!(created.2 < Duration::from_millis(1000), "{:?}", created.2);
    for key in &keys {
        assert_eq!(
            holders(std::slice::from_ref(&live), key).len(),
            1,
            "{key} is on the live server"
        );
    }
    let strict = build(Duration::ZERO);
    let loads = timed(&keys[..10], |key| strict.load(key).is_ok());
    assert!(loads.0 > 0 && loads.0 == loads.1, "{loads:?}");
    println!(
        "memcached, one hung server of two: with a 5 s back-off 40 creates took {:?} (one waited \
         the 300 ms read timeout, none failed); without it 10 loads took {:?} and {} failed \
         after waiting the timeout",
        created.2, loads.2, loads.0
    );
}

/// With two servers, one silent or refusing and the other refusing: the start-up check fails
/// the build and every operation fails, each within the connect plus the I/O timeout of both
/// servers (the next server is tried after one that cannot be reached).
#[test]
fn two_unreachable_servers_fail_within_the_timeouts() {
    let timeout = Duration::from_millis(200);
    let build = |addr, check| {
        MemcachedStore::builder()
            .url(format!("memcache://{addr},{}", conformance::closed_port()))
            .connection(conformance::fault_settings(timeout))
            .startup_check(check)
            .build()
    };
    let limit = timeout * 4 + Duration::from_millis(150);
    conformance::every_wait_bounded(build, limit, limit);
}
