//! The conformance suite and FileStore-specific behaviour, on the real filesystem.
#![cfg(unix)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, SystemTime};

use server_session::store::conformance::{self, Guarded};
use server_session::store::{FileStore, Store, Sweep, UserIndex};
use server_session::{
    Error, conformance_tests, sweep_conformance_tests, user_index_conformance_tests,
};
use tempfile::TempDir;

/// A FileStore in a fresh temp directory that lives (and is removed) with the store.
type FreshStore = Guarded<FileStore, TempDir>;

fn fresh() -> FreshStore {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder()
        .directory(dir.path())
        .threshold(0)
        .build()
        .unwrap();
    Guarded { store, guard: dir }
}

conformance_tests!(Some(fresh()));
sweep_conformance_tests!(Some(fresh()));
user_index_conformance_tests!(Some(fresh()));

/// The whole suite again in cachelib's layout, with a threshold too large to prune but that
/// makes every create, delete and sweep keep cachelib's file count.
mod cachelib_layout {
    use super::*;
    use server_session::store::FileLayout;

    fn fresh() -> FreshStore {
        let dir = tempfile::tempdir().unwrap();
        let builder = FileStore::builder().directory(dir.path());
        let builder = builder.layout(FileLayout::Cachelib).threshold(1_000_000);
        Guarded {
            store: builder.build().unwrap(),
            guard: dir,
        }
    }

    conformance_tests!(Some(fresh()));
    sweep_conformance_tests!(Some(fresh()));
    user_index_conformance_tests!(Some(fresh()));

    /// Two processes merging on one directory, in this layout.
    #[test]
    fn two_processes_merge_on_one_directory() {
        let dir = tempfile::tempdir().unwrap();
        let open = |dir: &str| {
            let builder = FileStore::builder().directory(dir).threshold(0);
            builder.layout(FileLayout::Cachelib).build().unwrap()
        };
        let location = dir.path().to_str().unwrap();
        let test = "cachelib_layout::two_processes_merge_on_one_directory";
        conformance::two_processes_merge(test, location, open);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn in_secs(secs: i64) -> SystemTime {
    let now = SystemTime::now();
    if secs >= 0 {
        now + Duration::from_secs(secs as u64)
    } else {
        now - Duration::from_secs(secs.unsigned_abs())
    }
}

/// The documented file name of `key`: lowercase hex SHA-256.
fn file_for(dir: &Path, key: &str) -> PathBuf {
    let hash = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let hex: String = hash.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    dir.join(hex)
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn entry_count(dir: &Path) -> usize {
    names(dir).iter().filter(|n| n.len() == 64).count()
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A file in the documented format: magic, version, expiry (Unix ms), length, payload.
fn handmade_file(expires: SystemTime, payload: &[u8]) -> Vec<u8> {
    let ms = expires
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut bytes = b"SRVSESS\x01".to_vec();
    bytes.extend_from_slice(&ms.to_be_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

// ---------------------------------------------------------------------------------------------
// Files, names and modes
// ---------------------------------------------------------------------------------------------

#[test]
fn files_are_mode_0600_by_default_even_after_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let path = file_for(dir.path(), "k");
    assert!(store.create("k", b"v", in_secs(60)).unwrap());
    assert_eq!(mode_of(&path), 0o600);
    assert!(store.save("k", b"v2", in_secs(60)).unwrap());
    assert_eq!(mode_of(&path), 0o600);
    assert!(store.touch("k", in_secs(120)).unwrap());
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(mode_of(&dir.path().join(".lock")), 0o600);
}

#[test]
fn files_get_the_configured_mode_regardless_of_umask() {
    // 0o660 is group-writable: a umask of 022 would strip that unless the mode is set explicitly.
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder()
        .directory(dir.path())
        .mode(0o660)
        .build()
        .unwrap();
    assert!(store.create("k", b"v", in_secs(60)).unwrap());
    assert_eq!(mode_of(&file_for(dir.path(), "k")), 0o660);
}

#[test]
fn missing_directory_is_created_with_mode_0700() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a").join("flask_session");
    let store = FileStore::new(&nested).unwrap();
    assert!(nested.is_dir());
    assert_eq!(mode_of(&nested), 0o700);
    assert!(store.create("k", b"v", in_secs(60)).unwrap());
    assert!(file_for(&nested, "k").is_file());
}

const CHILD_DEFAULTS_ENV: &str = "SERVER_SESSION_TEST_CHILD_DEFAULTS";

/// Helper for `defaults_are_flask_sessions`, run as a child process in a fresh working directory.
#[test]
#[ignore = "run by defaults_are_flask_sessions as a child process"]
fn child_process_defaults() {
    if std::env::var(CHILD_DEFAULTS_ENV).is_err() {
        println!("{CHILD_DEFAULTS_ENV} not set: only meaningful as a child process");
        return;
    }
    let store = FileStore::builder().build().unwrap();
    assert_eq!(store.directory(), Path::new("flask_session"));
    assert_eq!(store.threshold(), 500);
    assert!(store.create("k", b"v", in_secs(60)).unwrap());
    println!("DEFAULTS OK");
}

/// The default directory is `flask_session` under the working directory (checked in a child
/// process, since changing this process's working directory would race other tests).
#[test]
fn defaults_are_flask_sessions() {
    let cwd = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_process_defaults",
            "--nocapture",
        ])
        .env(CHILD_DEFAULTS_ENV, "1")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("DEFAULTS OK"),
        "{stdout}"
    );
    let dir = cwd.path().join("flask_session");
    assert_eq!(mode_of(&dir), 0o700);
    assert_eq!(mode_of(&file_for(&dir, "k")), 0o600);
}

#[test]
fn builder_rejects_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o200, 0o400, 0o1600, 0o10_000] {
        let built = FileStore::builder()
            .directory(dir.path())
            .mode(mode)
            .build();
        assert!(
            matches!(built, Err(Error::Config(_))),
            "mode {mode:#o} accepted"
        );
    }
    let built = FileStore::builder().directory("").build();
    assert!(
        matches!(built, Err(Error::Config(_))),
        "empty directory accepted"
    );
}

#[test]
fn file_names_are_sha256_hex_and_keys_cannot_escape() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let store = FileStore::builder()
        .directory(&dir)
        .threshold(0)
        .build()
        .unwrap();
    let long = "x".repeat(10_000);
    let keys = [
        "../../etc/passwd",
        "/etc/passwd",
        "a/b\\c",
        "",
        ".lock",
        ".tmp-1",
        "é\0\n",
        &long,
    ];
    for key in keys {
        assert!(
            store.create(key, key.as_bytes(), in_secs(60)).unwrap(),
            "create {key:?}"
        );
    }
    assert_eq!(
        names(root.path()),
        BTreeSet::from(["store".to_owned()]),
        "wrote outside"
    );
    let files = names(&dir);
    assert!(files.contains(".lock"));
    let entries: Vec<&String> = files.iter().filter(|n| *n != ".lock").collect();
    assert_eq!(entries.len(), keys.len(), "{files:?}");
    for name in entries {
        assert!(
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
        assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{name}");
    }
    for key in keys {
        assert!(
            file_for(&dir, key).is_file(),
            "{key:?} not at its SHA-256 name"
        );
        assert_eq!(store.load(key).unwrap(), Some(key.as_bytes().to_vec()));
    }
}

// ---------------------------------------------------------------------------------------------
// File format, corrupt and expired files
// ---------------------------------------------------------------------------------------------

#[test]
fn documented_file_format_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    fs::write(
        file_for(dir.path(), "live"),
        handmade_file(in_secs(60), b"payload"),
    )
    .unwrap();
    fs::write(
        file_for(dir.path(), "old"),
        handmade_file(in_secs(-60), b"payload"),
    )
    .unwrap();
    assert_eq!(store.load("live").unwrap(), Some(b"payload".to_vec()));
    assert_eq!(store.load("old").unwrap(), None);
    // And the store writes the same format.
    let expires = in_secs(60);
    assert!(store.create("mine", b"abc", expires).unwrap());
    let written = fs::read(file_for(dir.path(), "mine")).unwrap();
    assert_eq!(written, handmade_file(expires, b"abc"));
}

#[test]
fn corrupt_files_read_as_none_and_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let valid = handmade_file(in_secs(60), &[7u8; 100]);
    let mut wrong_magic = valid.clone();
    wrong_magic[0] = b'X';
    let mut wrong_version = valid.clone();
    wrong_version[7] = 2;
    let mut too_long = valid.clone();
    too_long.push(0);
    let cases: [(&str, &[u8]); 7] = [
        ("empty", b""),
        ("short header", &valid[..10]),
        ("truncated payload", &valid[..valid.len() - 1]),
        ("trailing bytes", &too_long),
        ("wrong magic", &wrong_magic),
        ("wrong version", &wrong_version),
        ("garbage", &[0xA5; 300]),
    ];
    for (key, bytes) in cases {
        let path = file_for(dir.path(), key);
        fs::write(&path, bytes).unwrap();
        assert_eq!(store.load(key).unwrap(), None, "{key}");
        assert!(!path.exists(), "{key}: corrupt file not removed");
        assert!(
            store.create(key, b"fresh", in_secs(60)).unwrap(),
            "{key}: create after"
        );
        assert_eq!(store.load(key).unwrap(), Some(b"fresh".to_vec()), "{key}");
    }
}

#[test]
fn corrupt_file_is_not_live_for_mutations() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    fs::write(file_for(dir.path(), "k"), b"garbage").unwrap();
    assert!(!store.save("k", b"v", in_secs(60)).unwrap());
    assert!(!store.touch("k", in_secs(60)).unwrap());
    assert_eq!(store.load_and_touch("k", in_secs(60)).unwrap(), None);
    assert!(store.create("k", b"v", in_secs(60)).unwrap());
    assert_eq!(store.load("k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn expired_file_reads_as_none_and_stays_until_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let path = file_for(dir.path(), "k");
    assert!(store.create("k", b"v", in_secs(-5)).unwrap());
    assert!(path.is_file());
    assert_eq!(store.load("k").unwrap(), None);
    assert!(!store.save("k", b"v2", in_secs(60)).unwrap());
    assert_eq!(store.load("k").unwrap(), None);
    assert_eq!(store.sweep(10).unwrap(), 1);
    assert!(!path.exists());
}

// ---------------------------------------------------------------------------------------------
// Threshold and sweep
// ---------------------------------------------------------------------------------------------

#[test]
fn threshold_prunes_expired_first_then_closest_to_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder()
        .directory(dir.path())
        .threshold(4)
        .build()
        .unwrap();
    for (key, secs) in [("a", 100), ("b", 400), ("x1", -10), ("x2", -10)] {
        assert!(store.create(key, b"v", in_secs(secs)).unwrap());
    }
    assert!(store.create("c", b"v", in_secs(300)).unwrap()); // 5 > 4: the two expired go
    assert_eq!(entry_count(dir.path()), 3);
    assert!(!file_for(dir.path(), "x1").exists() && !file_for(dir.path(), "x2").exists());
    assert!(
        store.load("a").unwrap().is_some(),
        "a live entry pruned while expired ones remained"
    );
    assert!(store.create("d", b"v", in_secs(200)).unwrap());
    assert!(store.create("e", b"v", in_secs(500)).unwrap()); // 5 > 4: "a" is closest to expiry
    assert_eq!(
        store.load("a").unwrap(),
        None,
        "closest to expiry should be pruned"
    );
    for key in ["b", "c", "d", "e"] {
        assert!(store.load(key).unwrap().is_some(), "{key} pruned");
    }
    for i in 0..20 {
        let key = format!("n{i}");
        assert!(store.create(&key, b"v", in_secs(1000 + i)).unwrap());
        assert!(entry_count(dir.path()) <= 4, "over threshold after {key}");
        assert!(
            store.load(&key).unwrap().is_some(),
            "the entry just created was pruned"
        );
    }
}

#[test]
fn a_prune_leaves_room_for_a_tenth_of_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder()
        .directory(dir.path())
        .threshold(20)
        .build()
        .unwrap();
    for i in 0..21 {
        assert!(
            store
                .create(&format!("k{i}"), b"v", in_secs(100 + i))
                .unwrap()
        );
    }
    assert_eq!(
        entry_count(dir.path()),
        18,
        "pruned to 90% of the threshold"
    );
    assert!(store.load("k20").unwrap().is_some() && store.load("k2").unwrap().is_none());
    for i in 21..23 {
        assert!(
            store
                .create(&format!("k{i}"), b"v", in_secs(100 + i))
                .unwrap()
        );
    }
    assert_eq!(
        entry_count(dir.path()),
        20,
        "no prune while at or under the threshold"
    );
    assert!(store.create("k23", b"v", in_secs(123)).unwrap());
    assert_eq!(entry_count(dir.path()), 18);
}

#[test]
fn threshold_counts_files_already_in_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let unlimited = FileStore::builder()
        .directory(dir.path())
        .threshold(0)
        .build()
        .unwrap();
    for i in 0..10 {
        assert!(
            unlimited
                .create(&format!("k{i}"), b"v", in_secs(100 + i))
                .unwrap()
        );
    }
    assert_eq!(entry_count(dir.path()), 10);
    let bounded = FileStore::builder()
        .directory(dir.path())
        .threshold(5)
        .build()
        .unwrap();
    assert!(bounded.create("new", b"v", in_secs(50)).unwrap());
    assert_eq!(entry_count(dir.path()), 5);
    assert!(bounded.load("new").unwrap().is_some());
    assert!(bounded.load("k9").unwrap().is_some() && bounded.load("k0").unwrap().is_none());
}

#[test]
fn sweep_batches_counts_corrupt_files_and_removes_stale_temps() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder()
        .directory(dir.path())
        .threshold(0)
        .build()
        .unwrap();
    for i in 0..11 {
        assert!(
            store
                .create(&format!("old{i}"), b"v", in_secs(-10))
                .unwrap()
        );
    }
    assert!(store.create("live", b"v", in_secs(60)).unwrap());
    fs::write(file_for(dir.path(), "corrupt"), b"not a session").unwrap();
    let stale = dir.path().join(".tmp-crashed");
    let fresh = dir.path().join(".tmp-in-flight");
    fs::write(&stale, b"x").unwrap();
    fs::write(&fresh, b"x").unwrap();
    let two_minutes_ago = SystemTime::now() - Duration::from_secs(120);
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_minutes_ago)
        .unwrap();
    assert_eq!(store.sweep(5).unwrap(), 5);
    assert_eq!(store.sweep(5).unwrap(), 5);
    assert_eq!(store.sweep(5).unwrap(), 2);
    assert_eq!(store.sweep(5).unwrap(), 0);
    assert_eq!(entry_count(dir.path()), 1);
    assert_eq!(store.load("live").unwrap(), Some(b"v".to_vec()));
    assert!(!stale.exists(), "stale temp file kept");
    assert!(
        fresh.exists(),
        "a recent temp file (maybe in flight) was removed"
    );
}

#[test]
fn sync_mode_writes_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder()
        .directory(dir.path())
        .sync(true)
        .build()
        .unwrap();
    assert!(store.create("k", b"durable", in_secs(60)).unwrap());
    assert!(store.save("k", b"durable 2", in_secs(60)).unwrap());
    assert_eq!(store.load("k").unwrap(), Some(b"durable 2".to_vec()));
    assert_eq!(names(dir.path()).len(), 2, "temp file left behind");
}

// ---------------------------------------------------------------------------------------------
// Several stores and processes on one directory
// ---------------------------------------------------------------------------------------------

/// Two FileStore values on one directory share nothing in memory: only the file lock keeps a
/// create race between them to exactly one winner per key.
#[test]
fn two_stores_on_one_directory_never_both_win_create() {
    let dir = tempfile::tempdir().unwrap();
    let stores = [
        FileStore::new(dir.path()).unwrap(),
        FileStore::new(dir.path()).unwrap(),
    ];
    let barrier = Barrier::new(4);
    let wins: Vec<Vec<bool>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (store, barrier) = (&stores[t % 2], &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let value = format!("thread {t}");
                    (0..50)
                        .map(|k| store.create(&format!("k{k}"), value.as_bytes(), in_secs(60)))
                        .map(Result::unwrap)
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for k in 0..50 {
        let winners: Vec<usize> = (0..4).filter(|&t| wins[t].get(k) == Some(&true)).collect();
        assert_eq!(winners.len(), 1, "key k{k} won by {winners:?}");
        let expected = format!("thread {}", winners[0]);
        assert_eq!(
            stores[1].load(&format!("k{k}")).unwrap(),
            Some(expected.into_bytes())
        );
    }
}

const CHILD_DIR_ENV: &str = "SERVER_SESSION_TEST_CHILD_DIR";
const CHILD_ID_ENV: &str = "SERVER_SESSION_TEST_CHILD_ID";
const RACED_KEYS: usize = 100;
const SHARED_KEYS: usize = 5;

/// A value naming its key, length and seed, with a body derived from all three.
fn tagged(key: usize, seed: u32, len: usize) -> Vec<u8> {
    let mut value = format!("{key}:{len}:{seed}:").into_bytes();
    value
        .extend((0..len).map(|i| (seed as usize).wrapping_mul(31).wrapping_add(i * 7 + key) as u8));
    value
}

fn check_tagged(key: usize, value: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(&value[..value.len().min(40)]).into_owned();
    let mut fields = text.splitn(4, ':');
    let mut next = || fields.next().and_then(|f| f.parse::<usize>().ok());
    let (Some(k), Some(len), Some(seed)) = (next(), next(), next()) else {
        return Err(format!("untagged value {text:?}"));
    };
    if tagged(k, seed as u32, len) != value || k != key {
        return Err(format!(
            "torn or misplaced value under key {key}: tag {text:?}"
        ));
    }
    Ok(())
}

/// Helper for `two_processes_share_a_directory`, run as a child process.
#[test]
#[ignore = "run by two_processes_share_a_directory as a child process"]
fn child_process_hammer() {
    let (Ok(dir), Ok(id)) = (std::env::var(CHILD_DIR_ENV), std::env::var(CHILD_ID_ENV)) else {
        println!("{CHILD_DIR_ENV} not set: only meaningful as a child process");
        return;
    };
    let dir = PathBuf::from(dir);
    let store = FileStore::builder()
        .directory(dir.join("store"))
        .threshold(0)
        .build()
        .unwrap();
    wait_for_the_other_child(&dir, &id);
    for k in 0..RACED_KEYS {
        let key = format!("race:{k}");
        if store
            .create(&key, format!("child {id}").as_bytes(), in_secs(600))
            .unwrap()
        {
            println!("WIN {key}");
        }
    }
    let seen: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2).map(|_| scope.spawn(|| hammer(&store))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    println!("SEEN {seen}");
}

/// A file barrier: each child announces itself, then waits (up to 20 s) for the other.
fn wait_for_the_other_child(dir: &Path, id: &str) {
    fs::write(dir.join(format!("ready-{id}")), b"").unwrap();
    let other = dir.join(if id == "a" { "ready-b" } else { "ready-a" });
    let start = std::time::Instant::now();
    while !other.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the other child never started"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Mixed operations on shared keys; panics (failing the child) on any torn value.
fn hammer(store: &FileStore) -> usize {
    let mut seed = getrandom::u32().unwrap() | 1;
    let mut seen = 0;
    for _ in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let k = seed as usize % SHARED_KEYS;
        let key = format!("shared:{k}");
        let value = tagged(k, seed, (seed >> 8) as usize % 3000);
        let loaded = match (seed >> 20) % 8 {
            0..=2 => store.load(&key).unwrap(),
            6 => store.load_and_touch(&key, in_secs(600)).unwrap(),
            3 => {
                store.create(&key, &value, in_secs(600)).unwrap();
                None
            }
            4 | 5 => {
                store.save(&key, &value, in_secs(600)).unwrap();
                None
            }
            _ => {
                store.delete(&key).unwrap();
                None
            }
        };
        if let Some(value) = loaded {
            check_tagged(k, &value).unwrap_or_else(|e| panic!("TORN {e}"));
            seen += 1;
        }
    }
    seen
}

#[test]
fn two_processes_share_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|id| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "child_process_hammer",
                    "--nocapture",
                ])
                .env(CHILD_DIR_ENV, dir.path())
                .env(CHILD_ID_ENV, id)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
            assert!(
                stdout.contains("SEEN "),
                "child did not run the helper:\n{stdout}"
            );
            stdout
        })
        .collect();
    let seen: usize = outputs
        .iter()
        .flat_map(|out| out.lines().filter_map(|l| l.strip_prefix("SEEN ")))
        .map(|n| n.parse::<usize>().unwrap())
        .sum();
    assert!(seen > 0, "the children never read a shared value back");
    let wins: Vec<BTreeSet<&str>> = outputs
        .iter()
        .map(|out| out.lines().filter_map(|l| l.strip_prefix("WIN ")).collect())
        .collect();
    let store = FileStore::new(dir.path().join("store")).unwrap();
    for k in 0..RACED_KEYS {
        let key = format!("race:{k}");
        let winners: Vec<&str> = ["a", "b"]
            .into_iter()
            .zip(&wins)
            .filter(|(_, w)| w.contains(key.as_str()))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(winners.len(), 1, "{key} won by {winners:?}");
        let expected = format!("child {}", winners[0]);
        assert_eq!(
            store.load(&key).unwrap(),
            Some(expected.into_bytes()),
            "{key}"
        );
    }
    for k in 0..SHARED_KEYS {
        if let Some(value) = store.load(&format!("shared:{k}")).unwrap() {
            check_tagged(k, &value).unwrap();
        }
    }
}

/// Two processes with a FileStore each on one directory merge the overlapping requests of one
/// session: no increment and no key is lost across processes.
#[test]
fn two_processes_merge_on_one_directory() {
    let dir = tempfile::tempdir().unwrap();
    let open = |dir: &str| {
        FileStore::builder()
            .directory(dir)
            .threshold(0)
            .build()
            .unwrap()
    };
    let location = dir.path().to_str().unwrap();
    conformance::two_processes_merge("two_processes_merge_on_one_directory", location, open);
}

// ---------------------------------------------------------------------------------------------
// User index
// ---------------------------------------------------------------------------------------------

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The documented index file of `user`: `users/` + lowercase hex SHA-256 of the user name.
fn index_for(dir: &Path, user: &str) -> PathBuf {
    file_for(&dir.join("users"), user)
}

fn store_in(dir: &Path, threshold: usize) -> FileStore {
    let builder = FileStore::builder().directory(dir).threshold(threshold);
    builder.build().unwrap()
}

/// An index file holds one `key<TAB>until-ms` line per record, sorted by key, in `users/`
/// (mode 0700) with mode 0600 like a session file, and is never counted as a session.
#[test]
fn index_files_hold_documented_lines_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 0);
    let (soon, later) = (in_secs(60), in_secs(3600));
    store
        .link_user("session:user:ada", "session:b", later)
        .unwrap();
    store
        .link_user("session:user:ada", "session:a", soon)
        .unwrap();
    let path = index_for(dir.path(), "session:user:ada");
    let expected = format!(
        "session:a\t{}\nsession:b\t{}\n",
        unix_ms(soon),
        unix_ms(later)
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), expected);
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(mode_of(&dir.path().join("users")), 0o700);
    assert_eq!(entry_count(dir.path()), 0, "the index is not a session");
    store
        .unlink_user(
            "session:user:ada",
            &["session:a".into(), "session:b".into()],
        )
        .unwrap();
    assert!(
        !path.exists(),
        "an index file left without records is removed"
    );
}

/// A sweep rewrites an index file holding lapsed records, removes one holding nothing else and
/// the index's stale temp files, leaves a tidy one alone, and counts only sessions.
#[test]
fn sweep_tidies_the_user_index_and_counts_only_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 0);
    store.link_user("carol", "c", in_secs(60)).unwrap();
    let until = unix_ms(in_secs(3600));
    let [ada, bob, carol] = ["ada", "bob", "carol"].map(|u| index_for(dir.path(), u));
    fs::write(&ada, "x\t1000\ny\t2000\n").unwrap();
    fs::write(&bob, format!("a\t1000\nb\t{until}\nmalformed\n")).unwrap();
    let tidy = fs::read(&carol).unwrap();
    let stale = dir.path().join("users/.tmp-crashed");
    fs::write(&stale, b"x").unwrap();
    let two_minutes_ago = SystemTime::now() - Duration::from_secs(120);
    let file = fs::File::options().write(true).open(&stale).unwrap();
    file.set_modified(two_minutes_ago).unwrap();
    assert!(store.create("expired", b"v", in_secs(-10)).unwrap());
    assert_eq!(store.sweep(10).unwrap(), 1, "only the session is counted");
    assert!(
        !ada.exists(),
        "an index file of lapsed records only is removed"
    );
    assert_eq!(fs::read_to_string(&bob).unwrap(), format!("b\t{until}\n"));
    assert_eq!(store.user_keys("bob").unwrap(), ["b"]);
    assert_eq!(
        fs::read(&carol).unwrap(),
        tidy,
        "a tidy index file is unchanged"
    );
    assert!(!stale.exists(), "stale temp file in users/ kept");
}

/// The threshold counts session files only, so index files never trigger or suffer a prune,
/// and a prune also removes the index files whose records have all lapsed.
#[test]
fn prune_ignores_the_users_directory_and_tidies_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 10);
    for i in 0..20 {
        store
            .link_user(&format!("user{i}"), "k", in_secs(60))
            .unwrap();
    }
    let lapsed = index_for(dir.path(), "lapsed");
    fs::write(&lapsed, "k\t1000\n").unwrap();
    for i in 0..10 {
        assert!(
            store
                .create(&format!("k{i}"), b"v", in_secs(100 + i))
                .unwrap()
        );
    }
    assert_eq!(entry_count(dir.path()), 10, "no prune at the threshold");
    assert!(lapsed.exists(), "no prune yet");
    assert!(store.create("k10", b"v", in_secs(110)).unwrap());
    assert_eq!(entry_count(dir.path()), 9, "pruned to 90% of the threshold");
    assert!(!lapsed.exists(), "the prune removed the lapsed index file");
    assert_eq!(
        store.user_keys("user7").unwrap(),
        ["k"],
        "live records are kept"
    );
}

/// A key an index line cannot hold is a typed error, at start-up (`check_key`) and on link.
#[test]
fn keys_with_tabs_or_line_breaks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 0);
    for key in ["a\tb", "a\nb", "a\rb"] {
        assert!(
            matches!(store.check_key(key), Err(Error::InvalidKey(_))),
            "{key:?}"
        );
        let linked = store.link_user("ada", key, in_secs(60));
        assert!(matches!(linked, Err(Error::InvalidKey(_))), "{key:?}");
    }
    assert!(store.check_key("session:abc").is_ok());
    assert!(store.user_keys("ada").unwrap().is_empty());
}
