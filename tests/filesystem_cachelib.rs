//! `FileStore` in cachelib's layout against the real cachelib 0.17 `FileSystemCache` (the one
//! Flask-Session 0.8's `filesystem` backend uses), run by the Python of the interop venv
//! (`SERVER_SESSION_INTEROP_PYTHON`, see `scripts/interop.sh`): each reads the other's files,
//! cachelib's file count stays exact whichever side writes, and pruning removes what cachelib
//! removes. The checks of the layout that need no Python come first.
#![cfg(unix)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};
use server_session::Error;
use server_session::codec::{Codec, Pickle, SessionMap, Value};
use server_session::store::conformance::service_unavailable;
use server_session::store::{FileLayout, FileStore, Store, Sweep, UserIndex};

#[allow(dead_code)] // the log capture is for tests/interop.rs
#[path = "interop/driver.rs"]
mod driver;

/// `hashlib.sha256(b"__wz_cache_count").hexdigest()`: cachelib's file count.
const COUNT_FILE: &str = "79bc207ee04a581ab2348ca1f3494e64cd0ec36128735b8c6bc85ddd8fe1938c";

fn cachelib_store(dir: &Path, threshold: usize) -> FileStore {
    let builder = FileStore::builder().directory(dir).threshold(threshold);
    builder.layout(FileLayout::Cachelib).build().unwrap()
}

fn in_secs(secs: i64) -> SystemTime {
    let now = SystemTime::now();
    let offset = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        now + offset
    } else {
        now - offset
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// cachelib's file name of `key`.
fn file_for(dir: &Path, key: &str) -> PathBuf {
    let hash = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    dir.join(
        hash.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
}

/// The session files in `dir`: every hex SHA-256 name but the count's.
fn sessions(dir: &Path) -> BTreeSet<String> {
    let names = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name());
    let names = names.map(|n| n.into_string().unwrap());
    let hex = |n: &String| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit());
    names.filter(|n| hex(n) && n != COUNT_FILE).collect()
}

fn pickled(entries: &[(&str, Value)]) -> Vec<u8> {
    let mut map = SessionMap::default();
    for (key, value) in entries {
        map.insert((*key).to_owned(), value.clone());
    }
    Pickle.encode(&map).unwrap()
}

fn unpickled(bytes: &[u8]) -> SessionMap {
    Pickle.decode(bytes).unwrap()
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------------------------------------
// The layout on disk
// ---------------------------------------------------------------------------------------------

/// A session file is the expiry's Unix second (native-endian u32) and the payload; the count
/// file is expiry 0 and a pickled int; the store's own files all end in `.__wz_cache`, the
/// suffix cachelib never counts.
#[test]
fn files_on_disk_are_cachelibs() {
    let dir = tempfile::tempdir().unwrap();
    let store = cachelib_store(dir.path(), 10);
    let expires = in_secs(600);
    assert!(store.create("session:a", b"payload", expires).unwrap());
    store.link_user("ada", "session:a", expires).unwrap();
    let bytes = fs::read(file_for(dir.path(), "session:a")).unwrap();
    let stamp = u32::try_from(unix_secs(expires)).unwrap();
    assert_eq!(bytes, [&stamp.to_ne_bytes()[..], b"payload"].concat());
    assert_eq!(mode_of(&file_for(dir.path(), "session:a")), 0o600);
    let count = fs::read(dir.path().join(COUNT_FILE)).unwrap();
    assert_eq!(count, b"\0\0\0\0\x80\x04K\x01.", "expiry 0, pickle of 1");
    assert_eq!(mode_of(&dir.path().join(COUNT_FILE)), 0o600);
    let mut others: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.len() != 64)
        .collect();
    others.sort();
    assert_eq!(
        others,
        [
            ".server-session.lock.__wz_cache",
            "server-session-users.__wz_cache"
        ]
    );
    assert_eq!(store.user_keys("ada").unwrap(), ["session:a"]);
}

/// With a threshold of 0 and no count file (cachelib keeps none then) the store keeps none;
/// a file too short for the header reads as absent and is removed; a bare header is an empty
/// live value.
#[test]
fn no_count_without_a_threshold_and_short_files_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = cachelib_store(dir.path(), 0);
    assert!(store.create("session:a", b"v", in_secs(60)).unwrap());
    store.delete("session:a").unwrap();
    assert!(!dir.path().join(COUNT_FILE).exists());
    let short = file_for(dir.path(), "session:short");
    fs::write(&short, b"\x01\x02").unwrap();
    assert_eq!(store.load("session:short").unwrap(), None);
    assert!(!short.exists(), "a headerless file is removed");
    let stamp = u32::try_from(unix_secs(in_secs(60))).unwrap();
    fs::write(file_for(dir.path(), "session:bare"), stamp.to_ne_bytes()).unwrap();
    assert_eq!(store.load("session:bare").unwrap(), Some(Vec::new()));
    let forever = file_for(dir.path(), "session:forever");
    fs::write(&forever, [&[0u8; 4][..], b"kept"].concat()).unwrap();
    assert_eq!(
        store.load("session:forever").unwrap(),
        Some(b"kept".to_vec()),
        "0: never"
    );
}

/// The count's own key would overwrite cachelib's count: refused, with a typed error.
#[test]
fn the_count_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = cachelib_store(dir.path(), 10);
    let created = store.create("__wz_cache_count", b"v", in_secs(60));
    assert!(matches!(created, Err(Error::InvalidKey(_))), "{created:?}");
    assert!(matches!(
        store.check_key("__wz_cache_count"),
        Err(Error::InvalidKey(_))
    ));
    assert!(store.check_key("session:abc").is_ok());
    let native = FileStore::builder()
        .directory(tempfile::tempdir().unwrap().path())
        .build();
    assert!(
        native.unwrap().check_key("__wz_cache_count").is_ok(),
        "only in cachelib's layout"
    );
}

/// A write over the threshold prunes like cachelib, but never the session it writes: here
/// cachelib would remove "a" (the earliest expiry) and write it again; the store keeps it and
/// removes the next one.
#[test]
fn a_prune_never_removes_the_session_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = cachelib_store(dir.path(), 2);
    for (key, secs) in [("a", 100), ("b", 200), ("c", 300)] {
        assert!(store.create(key, b"v", in_secs(secs)).unwrap());
    }
    assert_eq!(
        sessions(dir.path()).len(),
        3,
        "2 + the one written after the check"
    );
    assert!(store.save("a", b"v2", in_secs(400)).unwrap());
    assert_eq!(store.load("a").unwrap(), Some(b"v2".to_vec()));
    assert_eq!(store.load("b").unwrap(), None, "the earliest other expiry");
    assert!(store.load("c").unwrap().is_some());
}

// ---------------------------------------------------------------------------------------------
// With the real cachelib
// ---------------------------------------------------------------------------------------------

/// Runs `calls` on cachelib's `FileSystemCache(dir, threshold)` and returns their results.
fn cachelib(dir: &Path, threshold: usize, calls: Json) -> Vec<Json> {
    let answer = driver::call(json!({
        "op": "cache",
        "dir": dir,
        "threshold": threshold,
        "calls": calls,
    }));
    answer["results"].as_array().expect("results").clone()
}

/// A fresh directory for `test` when the interop Python is there; otherwise `None`, after
/// printing SKIP (or failing when services are required).
fn python_dir(test: &str) -> Option<tempfile::TempDir> {
    if !driver::python_available() {
        service_unavailable(test);
        return None;
    }
    Some(tempfile::tempdir().unwrap())
}

/// cachelib reads what the store writes: values, expiry, updates and deletes.
#[test]
fn cachelib_reads_the_stores_sessions() {
    let Some(dir) = python_dir("cachelib_reads_the_stores_sessions") else {
        return;
    };
    let store = cachelib_store(dir.path(), 0);
    let session = [
        ("_permanent", Value::from(true)),
        ("user", Value::from("ada")),
    ];
    assert!(
        store
            .create("session:a", &pickled(&session), in_secs(600))
            .unwrap()
    );
    assert!(
        store
            .create("session:old", &pickled(&session), in_secs(-60))
            .unwrap()
    );
    let calls = json!([
        ["get", "session:a"],
        ["has", "session:a"],
        ["get", "session:old"]
    ]);
    let read = cachelib(dir.path(), 0, calls);
    assert_eq!(
        read,
        [
            json!({"_permanent": true, "user": "ada"}),
            json!(true),
            Json::Null
        ]
    );

    assert!(
        store
            .save(
                "session:a",
                &pickled(&[("user", Value::from("bob"))]),
                in_secs(600)
            )
            .unwrap()
    );
    assert_eq!(
        cachelib(dir.path(), 0, json!([["get", "session:a"]])),
        [json!({"user": "bob"})]
    );
    store.delete("session:a").unwrap();
    assert_eq!(
        cachelib(dir.path(), 0, json!([["has", "session:a"]])),
        [json!(false)]
    );
}

/// The store reads what cachelib writes (protocol 5 pickles, expiries, 0 = never), treats an
/// expired file as absent, and never resurrects what cachelib deleted.
#[test]
fn the_store_reads_cachelibs_sessions() {
    let Some(dir) = python_dir("the_store_reads_cachelibs_sessions") else {
        return;
    };
    let store = cachelib_store(dir.path(), 0);
    let before = unix_secs(SystemTime::now());
    let calls = json!([
        ["set", "session:py", {"user": "ada", "visits": 2}, 600],
        ["set", "session:forever", {"a": 1}, 0],
        ["set", "session:expired", {"a": 1}, -60],
    ]);
    assert_eq!(
        cachelib(dir.path(), 0, calls),
        [json!(true), json!(true), json!(true)]
    );
    let bytes = fs::read(file_for(dir.path(), "session:py")).unwrap();
    let stamp = u64::from(u32::from_ne_bytes(bytes[..4].try_into().unwrap()));
    assert!((before + 600..=before + 601).contains(&stamp), "{stamp}");
    assert_eq!(&bytes[4..6], b"\x80\x05", "pickle.HIGHEST_PROTOCOL");
    let loaded = unpickled(&store.load("session:py").unwrap().unwrap());
    assert_eq!(loaded["user"], Value::from("ada"));
    assert_eq!(loaded["visits"], Value::from(2));
    assert!(
        store.load("session:forever").unwrap().is_some(),
        "0 never expires"
    );
    assert!(store.touch("session:forever", in_secs(60)).unwrap());

    assert_eq!(store.load("session:expired").unwrap(), None);
    let fresh = pickled(&[("fresh", Value::from(true))]);
    assert!(
        store
            .create("session:expired", &fresh, in_secs(60))
            .unwrap(),
        "expired = absent"
    );
    let calls = json!([["get", "session:expired"], ["get", "session:forever"]]);
    assert_eq!(
        cachelib(dir.path(), 0, calls),
        [json!({"fresh": true}), json!({"a": 1})]
    );

    assert_eq!(
        cachelib(dir.path(), 0, json!([["delete", "session:py"]])),
        [json!(true)]
    );
    assert_eq!(store.load("session:py").unwrap(), None);
    assert!(
        !store.save("session:py", &fresh, in_secs(60)).unwrap(),
        "not resurrected"
    );
}

/// cachelib's file count, kept by both: cachelib (threshold 100) and the store (threshold 0,
/// keeping the count file cachelib made) create, overwrite and delete each other's sessions,
/// and the store sweeps; after each step the count is the number of session files. A
/// cachelib started afterwards counts only the sessions (not the store's lock, temp files or
/// user index), and its prune leaves them alone.
#[test]
fn the_file_count_stays_exact_with_both_writing() {
    let Some(dir) = python_dir("the_file_count_stays_exact_with_both_writing") else {
        return;
    };
    let path = dir.path();
    let store = cachelib_store(path, 0);
    let v = pickled(&[("v", Value::from(1))]);
    let python = |calls: Json| cachelib(path, 100, calls);
    let assert_counted = |step: &str| {
        let count = cachelib(path, 0, json!([["file_count"]]));
        assert_eq!(count, [json!(sessions(path).len())], "after {step}");
    };
    python(json!([["set", "session:d", {"v": 1}, 600], ["set", "session:e", {"v": 1}, 600]]));
    assert_counted("cachelib's sets");
    for key in ["session:a", "session:b", "session:c"] {
        assert!(store.create(key, &v, in_secs(600)).unwrap());
    }
    assert!(store.create("session:x", &v, in_secs(-5)).unwrap());
    assert_counted("the store's creates");
    store.delete("session:d").unwrap();
    python(json!([["delete", "session:a"]]));
    assert_counted("deletes across");
    assert!(store.save("session:b", &v, in_secs(900)).unwrap());
    python(json!([["set", "session:b", {"v": 2}, 600]]));
    assert_counted("overwrites");
    assert_eq!(store.sweep(10).unwrap(), 1);
    assert_counted("a sweep");
    store.link_user("ada", "session:b", in_secs(600)).unwrap();
    assert_eq!(sessions(path).len(), 3);

    assert_eq!(
        cachelib(path, 7, json!([["file_count"]])),
        [json!(3)],
        "a fresh count"
    );
    assert_eq!(
        cachelib(path, 1, json!([["prune"], ["file_count"]])),
        [Json::Null, json!(1)]
    );
    assert_eq!(sessions(path).len(), 1, "cachelib pruned to its threshold");
    assert_eq!(
        store.user_keys("ada").unwrap(),
        ["session:b"],
        "the index is intact"
    );
    assert!(path.join(".server-session.lock.__wz_cache").is_file());
    assert!(store.create("session:after", &v, in_secs(60)).unwrap());
}

/// The same writes on cachelib alone and on the store, each with threshold 4: after every
/// write the same sessions are left and the counts agree. The one that never expires (written
/// by cachelib on both sides) goes first once no expired one is left.
#[test]
fn pruning_removes_what_cachelib_removes() {
    const THRESHOLD: usize = 4;
    let Some(theirs) = python_dir("pruning_removes_what_cachelib_removes") else {
        return;
    };
    let ours = tempfile::tempdir().unwrap();
    let (theirs, ours) = (theirs.path(), ours.path());
    let store = cachelib_store(ours, THRESHOLD);
    let never = json!([["set", "never", {"v": 0}, 0]]);
    cachelib(theirs, THRESHOLD, never.clone());
    cachelib(ours, THRESHOLD, never);
    let writes = [
        ("k1", 1000),
        ("k2", 500),
        ("x1", -100),
        ("k3", 2000),
        ("k4", 3000),
    ];
    let writes = writes
        .into_iter()
        .chain([("k5", 4000), ("x2", -50), ("k6", 5000), ("k7", 800)]);
    for (key, secs) in writes {
        cachelib(theirs, THRESHOLD, json!([["set", key, {"k": key}, secs]]));
        assert!(
            store
                .create(key, &pickled(&[("k", Value::from(key))]), in_secs(secs))
                .unwrap()
        );
        assert_eq!(sessions(ours), sessions(theirs), "after {key}");
        let counts = [theirs, ours].map(|dir| cachelib(dir, 0, json!([["file_count"]])));
        assert_eq!(counts[0], counts[1], "after {key}");
    }
    assert!(!file_for(ours, "never").exists() && !file_for(ours, "k2").exists());
    assert_eq!(
        sessions(ours).len(),
        THRESHOLD + 1,
        "the threshold and the one written last"
    );
}
