//! The in-process stores' full request cycle next to their raw floor, in the same run:
//! `MemoryStore` against a `Mutex<HashMap>` read + overwrite, `FileStore` against a plain
//! read + write-temp + rename-over-existing of a file of the same size in the same directory.
//!
//! Cycle: open (cookie parse + signature check) -> get -> insert -> commit, which costs one load
//! and one save. The session holds `visits` and a 180-character `note` (about 200 bytes of
//! MessagePack), as in the server benches. Run pinned to one CPU:
//! `taskset -c 0 cargo bench --bench local`.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use server_session::store::{FileStore, MemoryStore, Store};
use server_session::{Config, SessionManager};

fn signed_config() -> Config {
    Config::builder()
        .use_signer(true)
        .secret_key("bench-secret-key")
        .build()
        .expect("valid config")
}

/// A stored session with `visits` and a 180-character `note`; its `Cookie` header and key.
fn stored_session<S: Store>(manager: &SessionManager<S>) -> (String, String) {
    let mut session = manager.open(None);
    session.insert("visits", &0u64).expect("insert");
    session.insert("note", &"x".repeat(180)).expect("insert");
    let commit = session.commit().expect("commit");
    let pair = commit.set_cookie().expect("cookie").split(';').next();
    let pair = pair.expect("pair").to_owned();
    let signed = pair.trim_start_matches("session=");
    let key = format!("session:{}", signed.rsplit_once('.').expect("signed").0);
    (pair, key)
}

fn cycle<S: Store>(manager: &SessionManager<S>, header: &str) {
    let mut session = manager.open(Some(black_box(header)));
    let visits: u64 = session.get("visits").expect("get").unwrap_or(0);
    session.insert("visits", &(visits + 1)).expect("insert");
    black_box(session.commit().expect("commit"));
}

/// The memory floor: what the MemoryStore must do at least, a locked map read that copies the
/// value out and a locked overwrite of it.
struct MemoryFloor {
    map: Mutex<HashMap<String, Vec<u8>>>,
    key: String,
    value: Vec<u8>,
}

impl MemoryFloor {
    fn cycle(&self) {
        let loaded = self.map.lock().expect("lock").get(&self.key).cloned();
        black_box(loaded);
        let mut map = self.map.lock().expect("lock");
        let entry = map.get_mut(&self.key).expect("present");
        entry.clear();
        entry.extend_from_slice(&self.value);
    }
}

/// The file floor: read the file, write a fresh temp file, rename it over the old one.
struct FileFloor {
    path: PathBuf,
    temp: PathBuf,
    contents: Vec<u8>,
}

impl FileFloor {
    fn new(dir: &Path, contents: Vec<u8>) -> Self {
        let floor = Self {
            path: dir.join("raw-floor"),
            temp: dir.join("raw-floor.tmp"),
            contents,
        };
        fs::write(&floor.path, &floor.contents).expect("write");
        floor
    }

    fn cycle(&self) {
        black_box(fs::read(&self.path).expect("read"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.temp)
            .expect("temp");
        file.write_all(&self.contents).expect("write");
        drop(file);
        fs::rename(&self.temp, &self.path).expect("rename");
    }
}

/// Alternates short rounds of the cycle and of the floor, so both see the same machine state,
/// and prints the best of each and the median of the paired ratios.
fn paired_rounds(name: &str, per_round: u32, mut full: impl FnMut(), mut floor: impl FnMut()) {
    const ROUNDS: usize = 60;
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        (0..per_round).for_each(|_| f());
        start.elapsed().as_secs_f64() * 1e6 / f64::from(per_round)
    };
    let (mut cycles, mut floors) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        cycles.push(time(&mut full));
        floors.push(time(&mut floor));
    }
    let mut ratios: Vec<f64> = cycles.iter().zip(&floors).map(|(c, f)| c / f).collect();
    ratios.sort_by(f64::total_cmp);
    let best = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
    println!(
        "{name} paired rounds: best cycle {:.2} us, best floor {:.2} us, ratio of bests {:.3}, \
         median paired ratio {:.3}",
        best(&cycles),
        best(&floors),
        best(&cycles) / best(&floors),
        ratios[ROUNDS / 2]
    );
}

fn memory(c: &mut Criterion) {
    let manager = SessionManager::new(MemoryStore::new(), signed_config());
    let (header, key) = stored_session(&manager);
    let value = manager.store().load(&key).expect("load").expect("stored");
    let floor = MemoryFloor {
        map: Mutex::new(HashMap::from([(key.clone(), value.clone())])),
        key,
        value,
    };
    let mut group = c.benchmark_group("memory");
    group.bench_function("raw floor: locked HashMap read + overwrite", |b| {
        b.iter(|| floor.cycle())
    });
    group.bench_function(
        "request cycle: open, get, insert, commit (MemoryStore, signed)",
        |b| b.iter(|| cycle(&manager, &header)),
    );
    group.finish();
    paired_rounds(
        "memory",
        2000,
        || cycle(&manager, &header),
        || floor.cycle(),
    );
}

fn file(c: &mut Criterion) {
    let dir = tempfile::tempdir_in("target").expect("temp dir under target/");
    let store = FileStore::new(dir.path().join("sessions")).expect("store");
    let manager = SessionManager::new(store, signed_config());
    let (header, key) = stored_session(&manager);
    let value = manager.store().load(&key).expect("load").expect("stored");
    // The FileStore's file is a 24-byte header and the payload; the floor writes as many bytes.
    let floor = FileFloor::new(dir.path(), vec![7u8; value.len() + 24]);
    let mut group = c.benchmark_group("file");
    group.bench_function(
        "raw floor: read + write temp + rename over (std::fs)",
        |b| b.iter(|| floor.cycle()),
    );
    group.bench_function(
        "request cycle: open, get, insert, commit (FileStore, signed)",
        |b| b.iter(|| cycle(&manager, &header)),
    );
    group.finish();
    paired_rounds("file", 50, || cycle(&manager, &header), || floor.cycle());
}

criterion_group!(benches, memory, file);
criterion_main!(benches);
