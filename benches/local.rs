//! The in-process stores' full request cycle next to their raw floor, in the same run:
//! `MemoryStore` against a `Mutex<HashMap>` read + overwrite, `FileStore` against a plain
//! read + write-temp + rename-over-existing of a file of the same size in the same directory,
//! in its native layout with `MsgPack` and in cachelib's layout with `Pickle` (what
//! Flask-Session's `filesystem` backend shares), each against a floor of its own file's size.
//!
//! Cycle: open (cookie parse + signature check) -> get -> insert -> commit, which costs one load
//! and one save. The session holds `visits` and a 180-character `note` (about 200 bytes of
//! MessagePack), as in the server benches. Run pinned to one CPU:
//! `taskset -c 0 cargo bench -p server-session-benches --bench local`.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use criterion::{criterion_group, criterion_main, Criterion};
use server_session::codec::Pickle;
use server_session::store::{FileLayout, FileStore, MemoryStore, Store};
use server_session::SessionManager;

mod support;
use support::merging::{bench_merging, MergeBench};
use support::{cycle, paired_rounds, signed_config, stored_session};

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
        fs::create_dir_all(dir).expect("floor directory");
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

fn memory(c: &mut Criterion) {
    let manager = SessionManager::new(MemoryStore::new(), signed_config("session:")).unwrap();
    let (header, key) = stored_session(&manager, 180);
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
    let merging = MergeBench::new("memory", "MemoryStore, signed", 60, 2000);
    bench_merging(&mut group, &manager, &header, &merging);
    group.finish();
    paired_rounds(
        "memory",
        60,
        2000,
        || cycle(&manager, &header),
        || floor.cycle(),
    );
}

fn file(c: &mut Criterion) {
    // Under the repository's target/ (a real disk, like an app's session directory; /tmp may be
    // a tmpfs); `cargo bench` runs this binary from benches/.
    let target = concat!(env!("CARGO_MANIFEST_DIR"), "/../target");
    let dir = tempfile::tempdir_in(target).expect("temp dir under target/");
    let store = FileStore::new(dir.path().join("sessions")).expect("store");
    let manager = SessionManager::new(store, signed_config("session:")).unwrap();
    let (header, key) = stored_session(&manager, 180);
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
    let merging = MergeBench::new("file", "FileStore, signed", 60, 50);
    bench_merging(&mut group, &manager, &header, &merging);
    let cachelib = Cachelib::new(dir.path());
    group.bench_function(
        "cachelib layout + Pickle: open, get, insert, commit (FileStore, signed)",
        |b| b.iter(|| cachelib.cycle()),
    );
    group.finish();
    paired_rounds(
        "file",
        60,
        50,
        || cycle(&manager, &header),
        || floor.cycle(),
    );
    paired_rounds(
        "file cachelib layout + Pickle",
        60,
        50,
        || cachelib.cycle(),
        || cachelib.floor.cycle(),
    );
}

/// The FileStore in cachelib's layout with the `Pickle` codec (the default threshold, so
/// each write also reads cachelib's file count), a stored session, and the floor for a file
/// of its size: a 4-byte header and the pickle.
struct Cachelib {
    manager: SessionManager<FileStore, Pickle>,
    header: String,
    floor: FileFloor,
}

impl Cachelib {
    fn new(dir: &Path) -> Self {
        let store = FileStore::builder()
            .directory(dir.join("cachelib"))
            .layout(FileLayout::Cachelib)
            .build()
            .expect("store");
        let manager = SessionManager::with_codec(store, Pickle, signed_config("session:")).unwrap();
        let (header, key) = stored_session(&manager, 180);
        let value = manager.store().load(&key).expect("load").expect("stored");
        let floor = FileFloor::new(&dir.join("cachelib-floor"), vec![7u8; value.len() + 4]);
        Self {
            manager,
            header,
            floor,
        }
    }

    fn cycle(&self) {
        cycle(&self.manager, &self.header)
    }
}

criterion_group!(benches, memory, file);
criterion_main!(benches);
