//! The FileStore file format (24-byte header + payload) as found on disk. Property: never a
//! panic or an error; a file is read back exactly when it is well formed and unexpired, and a
//! malformed file is removed.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use server_session::store::{FileStore, Store};

const KEY: &str = "session:fuzz";

/// The store, and the path of the one entry file it holds for `KEY`.
fn store() -> &'static (FileStore, PathBuf) {
    static STORE: OnceLock<(FileStore, PathBuf)> = OnceLock::new();
    STORE.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        let dir = base.join(format!("server-session-fuzz-{}", std::process::id()));
        let store = FileStore::builder().directory(&dir).threshold(0).build().expect("store");
        let far = SystemTime::now() + Duration::from_secs(3600);
        assert!(store.create(KEY, b"seed", far).expect("create"));
        let entry = std::fs::read_dir(&dir)
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .expect("the entry file");
        (store, entry)
    })
}

/// The payload of `data` if it is a well-formed entry (expired or not), and its expiry.
fn parse(data: &[u8]) -> Option<(u64, &[u8])> {
    let (header, payload) = (data.get(..24)?, data.get(24..)?);
    if &header[..7] != b"SRVSESS" || header[7] != 1 {
        return None;
    }
    let expires_ms = u64::from_be_bytes(header[8..16].try_into().ok()?);
    let len = u64::from_be_bytes(header[16..24].try_into().ok()?);
    (len == payload.len() as u64).then_some((expires_ms, payload))
}

fuzz_target!(|data: &[u8]| {
    let (store, path) = store();
    std::fs::write(path, data).expect("write the entry");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let loaded = store.load(KEY).expect("a bad file is never an error");
    match parse(data) {
        Some((expires_ms, payload)) if expires_ms > now_ms + 1000 => {
            assert_eq!(loaded.as_deref(), Some(payload));
        }
        Some((expires_ms, _)) if expires_ms <= now_ms => assert_eq!(loaded, None),
        Some(_) => {} // expires within the second: either answer is right
        None => {
            assert_eq!(loaded, None);
            assert!(!path.exists(), "a malformed file is removed");
        }
    }
});
