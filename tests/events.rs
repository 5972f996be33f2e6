//! Session events reach the hook, and forged cookies reach the log at a bounded rate, on a
//! MemoryStore with the ready `SessionMetrics` hook.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use server_session::store::{MemoryStore, Store};
use server_session::{Config, SessionEvent, SessionManager, SessionMetrics};

fn manager(config: Config) -> (SessionManager<MemoryStore>, Arc<SessionMetrics>) {
    let metrics = Arc::new(SessionMetrics::default());
    let manager = SessionManager::new(MemoryStore::new(), config)
        .unwrap()
        .with_events(Arc::clone(&metrics));
    (manager, metrics)
}

/// A stored session holding `n = 1`; its `Cookie` header pair.
fn stored(manager: &SessionManager<MemoryStore>) -> String {
    let mut session = manager.open(None);
    session.insert("n", &1u32).unwrap();
    let commit = session.commit().unwrap();
    commit
        .set_cookie()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The counts of every kind but `Swept`, in `SessionEvent::ALL` order.
fn counts(metrics: &SessionMetrics) -> Vec<u64> {
    let kinds = SessionEvent::ALL
        .into_iter()
        .filter(|k| k.name() != "swept");
    kinds.map(|kind| metrics.count(kind)).collect()
}

const UNKNOWN: &str = "session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[test]
fn loads_and_unknown_ids_are_counted_on_both_read_paths() {
    let (manager, metrics) = manager(Config::default());
    let cookie = stored(&manager);
    assert_eq!(
        manager.open(Some(&cookie)).get::<u32>("n").unwrap(),
        Some(1)
    );
    manager.open(Some(&cookie)).commit().unwrap(); // never read: get-and-touch
    assert_eq!(manager.open(Some(UNKNOWN)).get::<u32>("n").unwrap(), None);
    manager.open(Some(UNKNOWN)).commit().unwrap();
    manager.open(None).commit().unwrap(); // no cookie: nothing to report
    assert_eq!(metrics.count(SessionEvent::Loaded), 2);
    assert_eq!(metrics.count(SessionEvent::UnknownId), 2);
    assert_eq!(counts(&metrics), [2, 2, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn forged_and_malformed_cookies_are_counted() {
    let signed = |key: &str| Config::builder().use_signer(true).secret_key(key).build();
    let (manager, metrics) = manager(signed("current").unwrap());
    let (other, _) = self::manager(signed("someone else's").unwrap());
    let forged = stored(&other);
    manager.open(Some(&forged)).commit().unwrap();
    manager.open(Some("session=not-an-id")).commit().unwrap();
    let unsigned = UNKNOWN;
    manager.open(Some(unsigned)).commit().unwrap();
    assert_eq!(metrics.count(SessionEvent::BadSignature), 1);
    assert_eq!(
        metrics.count(SessionEvent::MalformedCookie),
        2,
        "no dot, and no signature"
    );
    assert_eq!(metrics.count(SessionEvent::Loaded), 0);
}

#[test]
fn an_undecodable_payload_is_counted_once() {
    let (manager, metrics) = manager(Config::default());
    let cookie = stored(&manager);
    let key = format!("session:{}", cookie.split_once('=').unwrap().1);
    let expires = SystemTime::now() + Duration::from_secs(60);
    assert!(
        manager
            .store()
            .save(&key, b"\xc1 not msgpack", expires)
            .unwrap()
    );
    assert_eq!(manager.open(Some(&cookie)).get::<u32>("n").unwrap(), None);
    assert_eq!(metrics.count(SessionEvent::Undecodable), 1);
    assert_eq!(metrics.count(SessionEvent::Loaded), 0);
}

#[test]
fn a_merge_is_counted() {
    let (manager, metrics) = manager(Config::default());
    let cookie = stored(&manager);
    let mut a = manager.open(Some(&cookie));
    let mut b = manager.open(Some(&cookie));
    a.update("n", |n: Option<u32>| n.unwrap_or(0) + 1).unwrap();
    b.update("n", |n: Option<u32>| n.unwrap_or(0) + 1).unwrap();
    a.commit().unwrap();
    b.commit().unwrap();
    assert_eq!(metrics.count(SessionEvent::Merged), 1);
    assert_eq!(
        manager.open(Some(&cookie)).get::<u32>("n").unwrap(),
        Some(3)
    );
}

/// A store whose server is down (a port nothing listens on): the failed load and the failed
/// commit are counted, and so is the skipped refresh of a session no request read.
#[cfg(feature = "redis")]
#[test]
fn a_failing_store_is_counted() {
    use server_session::Error;
    use server_session::store::{RedisStore, conformance};
    let store = RedisStore::builder()
        .url(format!("redis://{}/", conformance::closed_port()))
        .connection(conformance::fault_settings(Duration::from_millis(100)))
        .startup_check(false)
        .build()
        .unwrap();
    let metrics = Arc::new(SessionMetrics::default());
    let manager = SessionManager::new(store, Config::default())
        .unwrap()
        .with_events(Arc::clone(&metrics));
    let mut session = manager.open(Some(UNKNOWN));
    assert!(matches!(session.get::<u32>("n"), Err(Error::Store(_))));
    let mut session = manager.open(None);
    session.insert("n", &1u32).unwrap();
    assert!(matches!(session.commit(), Err(Error::Store(_))));
    assert!(
        manager.open(Some(UNKNOWN)).commit().is_ok(),
        "a refresh never fails"
    );
    assert_eq!(metrics.count(SessionEvent::StoreError), 3);
}

/// Log lines captured by the test logger.
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            LINES.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// A flood of forged cookies is counted in full but logged at most once a second, each line
/// saying how many were left out.
#[test]
fn a_flood_of_forged_cookies_cannot_flood_the_log() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let config = Config::builder().use_signer(true).secret_key("k");
    let (manager, metrics) = manager(config.build().unwrap());
    let forged = format!("{UNKNOWN}.c2lnbmF0dXJl");
    for _ in 0..500 {
        manager.open(Some(&forged)).commit().unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100));
    manager.open(Some(&forged)).commit().unwrap();
    assert_eq!(metrics.count(SessionEvent::BadSignature), 501);
    let lines = LINES.lock().unwrap();
    let forged_lines: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("bad signature"))
        .collect();
    assert!(
        (2..=3).contains(&forged_lines.len()),
        "{} lines: {forged_lines:?}",
        forged_lines.len()
    );
    let last = forged_lines.last().unwrap();
    assert!(
        !last.contains("(and 0 more"),
        "the last line counts the ones left out: {last}"
    );
}
