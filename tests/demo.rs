//! The demo server (examples/demo.rs) over real HTTP: its routes, the tiny_http adapter and the
//! stores, driven through `std::net::TcpStream` with a tiny HTTP/1.1 client.
#![cfg(feature = "tiny_http")]

#[allow(dead_code)]
#[path = "../examples/demo.rs"]
mod demo;

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{CountingStore, expires_of};
use server_session::SessionManager;
use server_session::codec::{Codec, MsgPack, Pickle};
use server_session::store::{FileStore, MemoryStore, NullStore, Store, conformance};
use tiny_http::Server;

/// Starts the demo's workers on an ephemeral port; they live until the test process ends.
fn start<S: Store + 'static>(store: S, secret: Option<&str>) -> (SocketAddr, Arc<demo::App<S>>) {
    let app = demo::App::new(store, demo::config(secret).unwrap()).unwrap();
    serve(app)
}

/// Serves `app` on an ephemeral port with two workers.
fn serve<S: Store + 'static>(app: demo::App<S>) -> (SocketAddr, Arc<demo::App<S>>) {
    let app = Arc::new(app);
    let server = Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    demo::serve(Arc::new(server), Arc::clone(&app), 2);
    (addr, app)
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        found.next().map(|(_, v)| v.as_str())
    }

    fn set_cookie(&self) -> Option<&str> {
        self.header("Set-Cookie")
    }

    /// The `name=value` pair of the `Set-Cookie`, as a browser sends it back.
    fn cookie(&self) -> String {
        let set_cookie = self.set_cookie().expect("a Set-Cookie header");
        set_cookie.split(';').next().unwrap().to_owned()
    }
}

/// Sends raw bytes on a fresh connection and returns everything the server sent back.
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    response
}

fn parse(response: &[u8]) -> Reply {
    let text = String::from_utf8(response.to_vec()).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a complete response head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| line.split_once(": ").unwrap())
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let reply = Reply {
        status,
        headers,
        body: body.trim_end().to_owned(),
    };
    assert_eq!(reply.header("Transfer-Encoding"), None, "{reply:?}");
    reply
}

fn request(method: &str, path: &str, cookie_lines: &[&str]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for cookie in cookie_lines {
        head.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Reply {
    let cookies: Vec<&str> = cookie.into_iter().collect();
    parse(&exchange(addr, &request("GET", path, &cookies)))
}

/// The store key behind a `session=<id>[.<signature>]` cookie pair.
fn key(cookie: &str) -> String {
    let value = cookie.split_once('=').unwrap().1;
    format!("session:{}", value.split('.').next().unwrap())
}

#[test]
fn visits_count_with_the_cookie_jar() {
    let (addr, app) = start(MemoryStore::new(), None);
    let first = get(addr, "/", None);
    assert_eq!((first.status, first.body.as_str()), (200, "visits=1"));
    assert_eq!(
        first.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(first.header("Vary"), Some("Cookie"));
    let jar = first.cookie();
    assert!(app.manager.store().load(&key(&jar)).unwrap().is_some());
    let second = get(addr, "/", Some(&jar));
    assert_eq!((second.status, second.body.as_str()), (200, "visits=2"));
    assert_eq!(second.cookie(), jar, "the id stays the same");
}

#[test]
fn file_store_sessions_are_owner_only_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (addr, app) = start(FileStore::new(dir.path()).unwrap(), None);
    let jar = get(addr, "/", None).cookie();
    assert_eq!(get(addr, "/", Some(&jar)).body, "visits=2");
    assert!(app.manager.store().load(&key(&jar)).unwrap().is_some());
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mode = entries[0].metadata().unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn login_regenerates_the_id_and_the_old_one_is_dead() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, app) = start(FileStore::new(dir.path()).unwrap(), None);
    let old = get(addr, "/", None).cookie();
    let login = get(addr, "/login?user=ada", Some(&old));
    assert_eq!((login.status, login.body.as_str()), (200, "user=ada"));
    let new = login.cookie();
    assert_ne!(new, old);
    assert_eq!(app.manager.store().load(&key(&old)).unwrap(), None);
    let replay = get(addr, "/", Some(&old));
    assert_eq!(replay.body, "visits=1", "the old id must not work");
    assert_ne!(replay.cookie(), old);
    assert_ne!(replay.cookie(), new);
    assert_eq!(
        get(addr, "/", Some(&new)).body,
        "welcome, ada\nvisits=2",
        "data moved to the new id"
    );
}

#[test]
fn the_first_page_after_a_login_greets_once() {
    let (addr, _app) = start(MemoryStore::new(), None);
    let jar = get(addr, "/login?user=J%C3%BCrgen", None).cookie();
    assert_eq!(
        get(addr, "/whoami", Some(&jar)).body,
        "user=Jürgen",
        "not taken"
    );
    assert_eq!(get(addr, "/", Some(&jar)).body, "welcome, Jürgen\nvisits=1");
    assert_eq!(get(addr, "/", Some(&jar)).body, "visits=2", "once");
}

/// The stored session's own lifetime (`_ss_lifetime`), in seconds.
fn stored_lifetime(manager: &SessionManager<MemoryStore>, cookie: &str) -> Option<u64> {
    let bytes = manager.store().load(&key(cookie)).unwrap()?;
    let data = MsgPack.decode(&bytes).unwrap();
    data.get("_ss_lifetime").and_then(|v| v.as_u64())
}

#[test]
fn remember_me_keeps_a_30_day_cookie_and_a_plain_login_a_browser_session_one() {
    let (addr, app) = start(MemoryStore::new(), None);
    let remembered = get(addr, "/login?user=ada&remember=1", None);
    assert_eq!(remembered.body, "user=ada");
    let expires = expires_of(remembered.set_cookie().unwrap()).expect("a lasting cookie");
    let ahead = expires.duration_since(SystemTime::now()).unwrap();
    let thirty_days = demo::REMEMBERED.as_secs();
    assert!(ahead.as_secs().abs_diff(thirty_days) < 5, "{ahead:?}");
    let jar = remembered.cookie();
    assert_eq!(stored_lifetime(&app.manager, &jar), Some(thirty_days));
    let refreshed = get(addr, "/whoami", Some(&jar));
    assert!(expires_of(refreshed.set_cookie().unwrap()).is_some());

    let plain = get(addr, "/login?user=bob", None);
    let set_cookie = plain.set_cookie().unwrap();
    assert_eq!(
        expires_of(set_cookie),
        None,
        "a browser-session cookie: {set_cookie}"
    );
    let jar = plain.cookie();
    assert_eq!(
        stored_lifetime(&app.manager, &jar),
        Some(demo::SIGNED_IN.as_secs())
    );
    assert_eq!(get(addr, "/whoami", Some(&jar)).body, "user=bob");
}

#[test]
fn whoami_reads_without_rewriting_the_data() {
    let (addr, app) = start(CountingStore::default(), None);
    let jar = get(addr, "/login?user=ada", None).cookie();
    let stored = app.manager.store().inner.load(&key(&jar)).unwrap();
    let counts = app.manager.store().counts();
    let whoami = get(addr, "/whoami", Some(&jar));
    assert_eq!((whoami.status, whoami.body.as_str()), (200, "user=ada"));
    if whoami.set_cookie().is_some() {
        assert_eq!(whoami.cookie(), jar, "only a refresh of the same id");
    }
    let after = app.manager.store().counts();
    assert_eq!(
        (after[1], after[2]),
        (counts[1], counts[2]),
        "no create, no save"
    );
    assert_eq!(app.manager.store().inner.load(&key(&jar)).unwrap(), stored);
    let anonymous = get(addr, "/whoami", None);
    assert_eq!(
        (anonymous.body.as_str(), anonymous.set_cookie()),
        ("user=", None)
    );
    assert_eq!(app.manager.store().inner.len(), 1);
}

#[test]
fn logout_sends_the_deletion_cookie_and_removes_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, app) = start(FileStore::new(dir.path()).unwrap(), None);
    let jar = get(addr, "/login?user=ada", None).cookie();
    let logout = get(addr, "/logout", Some(&jar));
    assert_eq!((logout.status, logout.body.as_str()), (200, "logged out"));
    let deletion = logout.set_cookie().unwrap();
    assert!(
        deletion.starts_with("session=;") && deletion.contains("Max-Age=0"),
        "{deletion}"
    );
    assert_eq!(app.manager.store().load(&key(&jar)).unwrap(), None);
    assert_eq!(get(addr, "/whoami", Some(&jar)).body, "user=");
}

#[test]
fn login_needs_a_user_and_unknown_routes_are_404() {
    let (addr, app) = start(MemoryStore::new(), None);
    assert_eq!(get(addr, "/login", None).status, 400);
    assert_eq!(get(addr, "/login?user=", None).status, 400);
    assert_eq!(get(addr, "/login?user=%zz", None).status, 400);
    assert!(app.manager.store().is_empty());
    assert_eq!(
        get(addr, "/login?x=1&user=J%C3%BCrgen+X", None).body,
        "user=Jürgen X"
    );
    assert_eq!(get(addr, "/nope", None).status, 404);
    let post = parse(&exchange(addr, &request("POST", "/", &[])));
    assert_eq!(post.status, 404);
}

/// Hostile `Cookie` header values, each of which must yield HTTP 200 and a fresh session.
fn hostile_cookies() -> Vec<String> {
    let unknown_id = format!("session={}", "A".repeat(43));
    vec![
        format!("session={}", "x".repeat(12 * 1024)),
        "session=../../etc/passwd".into(),
        "session=%00%ff".into(),
        "session=\"quoted\"".into(),
        "session=\"\"\"".into(),
        "session=a.b.c.d".into(),
        "session=".into(),
        "session".into(),
        "session=x; session=y; session=../z".into(),
        "session=\u{1}\u{7f}".into(),
        unknown_id.clone(),
        format!("{unknown_id}.c2lnbmF0dXJl"),
    ]
}

fn assert_fresh(addr: SocketAddr, cookie_lines: &[&str], known: &[&str]) {
    let reply = parse(&exchange(addr, &request("GET", "/", cookie_lines)));
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "visits=1"),
        "{cookie_lines:?}"
    );
    let fresh = reply.cookie();
    assert!(
        cookie_lines.iter().all(|c| !c.contains(&fresh)),
        "adopted a client id"
    );
    assert!(!known.contains(&fresh.as_str()));
}

#[test]
fn hostile_cookies_get_a_fresh_session() {
    let (addr, app) = start(MemoryStore::new(), None);
    let real = get(addr, "/", None).cookie();
    for cookie in hostile_cookies() {
        assert_fresh(addr, &[&cookie], &[&real]);
    }
    assert_fresh(addr, &["session=junk", "session=", "theme=dark"], &[&real]);
    assert_eq!(app.manager.store().len(), 1 + hostile_cookies().len() + 1);
}

#[test]
fn forged_signatures_get_a_fresh_session() {
    let (addr, _app) = start(MemoryStore::new(), Some("demo secret"));
    let real = get(addr, "/", None).cookie();
    assert!(real.contains('.'), "signed: {real}");
    assert_eq!(get(addr, "/", Some(&real)).body, "visits=2");
    let (id, signature) = real.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = [
        format!("{id}.{flipped}{}", &signature[1..]),
        id.to_owned(),
        format!("{id}."),
        format!("{id}.{signature}.{signature}"),
    ];
    for cookie in forged.iter().map(String::as_str).chain(["session=x.y"]) {
        assert_fresh(addr, &[cookie], &[&real]);
    }
    assert_eq!(
        get(addr, "/", Some(&real)).body,
        "visits=3",
        "the real cookie still works"
    );
}

/// tiny_http reads each request-head line as ASCII; a line with any byte >= 0x80 makes it close
/// the connection without a response, before our code runs. The worker must stay healthy.
#[test]
fn non_utf8_header_bytes_are_dropped_by_tiny_http_without_harm() {
    let (addr, app) = start(MemoryStore::new(), None);
    let raw: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: x\r\nCookie: session=\xff\xfe\x80\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nCookie: theme=caf\xc3\xa9\r\nConnection: close\r\n\r\n",
    ];
    for request in raw {
        let response = exchange(addr, request);
        assert!(
            response.is_empty(),
            "{:?}",
            String::from_utf8_lossy(&response)
        );
    }
    assert!(app.manager.store().is_empty(), "our handler never ran");
    assert_eq!(
        get(addr, "/", None).body,
        "visits=1",
        "the server still answers"
    );
}

/// Errors that are not an unavailable store (here: sessions disabled) are a 500 naming them;
/// an unavailable store's 503 is in tests/outage.rs.
#[test]
fn other_errors_answer_500_with_the_reason() {
    let (addr, _app) = start(NullStore, None);
    let reply = get(addr, "/", None);
    assert_eq!(reply.status, 500);
    assert!(
        reply
            .body
            .starts_with("internal error: sessions are disabled"),
        "{}",
        reply.body
    );
    assert!(!reply.body.contains('\n'), "one line");
    assert_eq!(reply.set_cookie(), None);
    let whoami = get(addr, "/whoami", None);
    assert_eq!((whoami.status, whoami.body.as_str()), (200, "user="));
    assert_eq!(get(addr, "/login?user=ada", None).status, 500);
}

#[test]
fn head_is_answered_like_get_without_a_body() {
    let (addr, app) = start(MemoryStore::new(), None);
    for path in demo::ROUTES {
        let get = get(addr, path, None);
        let response = exchange(addr, &request("HEAD", path, &[]));
        let text = String::from_utf8(response).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
        assert!(
            head.starts_with(&format!("HTTP/1.1 {}", get.status)),
            "{path}: {head}"
        );
        assert_eq!(body, "", "{path}: HEAD has no body");
        let has_cookie = head
            .to_ascii_lowercase()
            .contains("\r\nset-cookie: session=");
        assert_eq!(has_cookie, get.set_cookie().is_some(), "{path}: {head}");
    }
    assert_eq!(
        app.manager.store().len(),
        2,
        "GET / and HEAD / each stored a session"
    );
}

#[test]
fn health_answers_ok_without_reading_the_session() {
    let (addr, app) = start(CountingStore::default(), None);
    let jar = get(addr, "/", None).cookie();
    app.manager.store().reset();
    let health = get(addr, "/health", Some(&jar));
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    assert_eq!(health.header("Vary"), None, "the session was never read");
    let [loads, creates, saves, ..] = app.manager.store().counts();
    assert_eq!((loads, creates, saves), (0, 0, 0));
}

#[test]
fn usage_lists_every_route() {
    let listed: Vec<&str> = demo::USAGE
        .lines()
        .filter_map(|line| line.trim_start().split([' ', '?']).next())
        .collect();
    for route in demo::ROUTES {
        assert!(listed.contains(&route), "{route} in {listed:?}");
    }
    let routes = listed.iter().filter(|path| path.starts_with('/'));
    assert_eq!(routes.count(), demo::ROUTES.len(), "{listed:?}");
}

#[test]
fn every_listed_route_is_served() {
    let config = demo::config(None).unwrap();
    let (addr, _app) = serve(demo::App::with_accounts(MemoryStore::new(), config).unwrap());
    for path in demo::ROUTES {
        let status = get(addr, path, None).status;
        assert!([200, 400, 403].contains(&status), "{path}: {status}");
    }
}

/// A store that cannot start makes the demo fail before it listens, naming the cause.
#[test]
fn a_store_that_cannot_start_fails_the_start_with_its_cause() {
    let argv = [
        "--addr",
        "127.0.0.1:0",
        "--store",
        "file:///sys/server-session-test",
    ];
    let args = demo::parse_args(argv.map(String::from).into_iter()).unwrap();
    let message = demo::start(&args).unwrap_err();
    assert!(
        message.starts_with("file store /sys/server-session-test: "),
        "{message}"
    );
    assert!(
        message.contains("not permitted") || message.contains("denied"),
        "{message}"
    );
    let unknown = demo::parse_args(["--nope".to_owned()].into_iter());
    assert!(unknown.is_err_and(|e| e.contains("--nope") && e.contains("/health")));
    let absolute = ["--absolute", "soon"].map(String::from).into_iter();
    assert!(demo::parse_args(absolute).is_err_and(|e| e.starts_with("--absolute: ")));
}

/// `--store cachelib:///dir` serves the demo from files in cachelib's layout with the `Pickle`
/// codec: a login, then a read of it; on disk the session is cachelib's file (the expiry's
/// Unix second, native-endian, then a pickle of the session dict) beside cachelib's count
/// entry and the store's lock file. A relative directory fails the start.
#[test]
fn cachelib_store_keeps_sessions_in_cachelibs_files() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("cachelib://{}", dir.path().display());
    let argv = ["--addr", "127.0.0.1:0", "--store", &url];
    let app = demo::prepare(&demo::parse_args(argv.map(String::from).into_iter()).unwrap());
    let server = Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    app.unwrap().serve(Arc::new(server), 2);
    let jar = get(addr, "/login?user=ada", None).cookie();
    assert_eq!(get(addr, "/whoami", Some(&jar)).body, "user=ada");

    let sha256 = |text: &str| {
        let hash = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        hash.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let bytes = std::fs::read(dir.path().join(sha256(&key(&jar)))).unwrap();
    let stamp = u64::from(u32::from_ne_bytes(bytes[..4].try_into().unwrap()));
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let until = now.as_secs() + demo::SIGNED_IN.as_secs();
    assert!((until - 5..=until).contains(&stamp), "{stamp} vs {until}");
    let session = Pickle.decode(&bytes[4..]).unwrap();
    assert_eq!(session["user"], "ada".into());
    let count = std::fs::read(dir.path().join(sha256("__wz_cache_count"))).unwrap();
    assert_eq!(
        count, b"\0\0\0\0\x80\x04K\x01.",
        "cachelib's count: one session"
    );
    assert!(dir.path().join(".server-session.lock.__wz_cache").is_file());

    let relative = ["--store", "cachelib://sessions"]
        .map(String::from)
        .into_iter();
    let message = demo::prepare(&demo::parse_args(relative).unwrap())
        .err()
        .unwrap();
    assert!(
        message.contains("expected cachelib:///absolute/directory"),
        "{message}"
    );
}

/// `--store sqlite://` (no path) fails at start-up instead of giving every pooled connection
/// its own private database.
#[cfg(feature = "sqlite")]
#[test]
fn an_empty_sqlite_path_fails_the_start() {
    let argv = ["--addr", "127.0.0.1:0", "--store", "sqlite://"];
    let args = demo::parse_args(argv.map(String::from).into_iter()).unwrap();
    let message = demo::start(&args).unwrap_err();
    assert!(message.starts_with("--store sqlite: "), "{message}");
    assert!(message.contains("needs a database file"), "{message}");
}

/// Starts the demo on `store` (when its server is available) with one worker per client, and
/// has 16 clients sharing one cookie call `/incr?key=shared` 100 times each: at least 99 % of
/// the requests succeed, the others answer 409 naming the conflict, and the final count is
/// exactly the number that succeeded.
fn shared_counter<S: Store + 'static>(test: &str, store: Option<S>) {
    const CLIENTS: usize = 16;
    const REQUESTS: usize = 100;
    let Some(store) = store else {
        return conformance::service_unavailable(test);
    };
    let app = Arc::new(demo::App::new(store, demo::config(None).unwrap()).unwrap());
    let server = Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    demo::serve(Arc::new(server), app, CLIENTS);
    let first = get(addr, "/incr?key=shared", None);
    assert_eq!((first.status, first.body.as_str()), (200, "shared=1"));
    let cookie = first.cookie();
    let succeeded: usize = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| scope.spawn(|| increments(addr, &cookie, REQUESTS)))
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).sum()
    });
    let total = CLIENTS * REQUESTS;
    println!("{test}: {succeeded} of {total} increments succeeded");
    assert!(
        succeeded * 100 >= total * 99,
        "{succeeded} of {total} succeeded"
    );
    let last = get(addr, "/incr?key=shared", Some(&cookie));
    assert_eq!(last.body, format!("shared={}", succeeded + 2));
}

/// `requests` calls of `/incr?key=shared`; how many answered 200. Every other answer is a 409
/// that says why.
fn increments(addr: SocketAddr, cookie: &str, requests: usize) -> usize {
    let mut succeeded = 0;
    for _ in 0..requests {
        let reply = get(addr, "/incr?key=shared", Some(cookie));
        match reply.status {
            200 => succeeded += 1,
            409 => assert!(reply.body.contains("conflict"), "{reply:?}"),
            _ => panic!("{reply:?}"),
        }
    }
    succeeded
}

/// A URL from the environment variable `name`, when it is set.
#[cfg(any(
    feature = "redis",
    feature = "memcached",
    feature = "postgres",
    feature = "mongodb"
))]
fn url(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|url| !url.is_empty())
}

#[test]
fn shared_counter_on_memory() {
    shared_counter("shared_counter_on_memory", Some(MemoryStore::new()));
}

#[test]
fn shared_counter_on_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    shared_counter("shared_counter_on_files", Some(store));
}

#[cfg(feature = "sqlite")]
#[test]
fn shared_counter_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = server_session::store::SqliteStore::open(dir.path().join("sessions.db")).unwrap();
    shared_counter("shared_counter_on_sqlite", Some(store));
}

#[cfg(feature = "redis")]
#[test]
fn shared_counter_on_redis() {
    let store = url("SERVER_SESSION_REDIS_URL")
        .map(|u| server_session::store::RedisStore::open(&u).unwrap());
    shared_counter("shared_counter_on_redis", store);
}

#[cfg(feature = "memcached")]
#[test]
fn shared_counter_on_memcached() {
    let url = url("SERVER_SESSION_MEMCACHED_URL");
    let store = url.map(|u| server_session::store::MemcachedStore::open(&u).unwrap());
    shared_counter("shared_counter_on_memcached", store);
}

#[cfg(feature = "postgres")]
#[test]
fn shared_counter_on_postgres() {
    let url = url("SERVER_SESSION_POSTGRES_URL");
    let store = url.map(|u| server_session::store::PostgresStore::open(&u).unwrap());
    shared_counter("shared_counter_on_postgres", store);
}

#[cfg(feature = "mongodb")]
#[test]
fn shared_counter_on_mongodb() {
    let store = url("SERVER_SESSION_MONGODB_URL")
        .map(|u| server_session::store::MongoStore::open(&u).unwrap());
    shared_counter("shared_counter_on_mongodb", store);
}

/// `/logout-everywhere` ends every session of the logged-in user, this one included, and no
/// one else's.
#[test]
fn logout_everywhere_ends_every_session_of_the_user() {
    let config = demo::config(None).unwrap();
    let (addr, _app) = serve(demo::App::with_accounts(MemoryStore::new(), config).unwrap());
    let ada = [(); 2].map(|()| get(addr, "/login?user=ada", None).cookie());
    let bob = get(addr, "/login?user=bob", None).cookie();
    let ended = get(addr, "/logout-everywhere", Some(&ada[0]));
    assert_eq!(
        (ended.status, ended.body.as_str()),
        (200, "ended 2 sessions of ada")
    );
    for jar in &ada {
        assert_eq!(get(addr, "/whoami", Some(jar)).body, "user=");
    }
    assert_eq!(get(addr, "/whoami", Some(&bob)).body, "user=bob");
    let anonymous = get(addr, "/logout-everywhere", None);
    assert_eq!(anonymous.status, 403);
}

/// On a store without a user index the route says so.
#[test]
fn logout_everywhere_needs_a_user_index() {
    let (addr, _app) = start(MemoryStore::new(), None);
    let jar = get(addr, "/login?user=ada", None).cookie();
    let reply = get(addr, "/logout-everywhere", Some(&jar));
    assert_eq!(reply.status, 501, "{}", reply.body);
}

/// `/metrics` serves the session event counters in the Prometheus text format.
#[test]
fn metrics_count_the_session_events() {
    let (addr, _app) = start(MemoryStore::new(), None);
    let jar = get(addr, "/", None).cookie();
    get(addr, "/", Some(&jar));
    get(
        addr,
        "/",
        Some("session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    );
    let metrics = get(addr, "/metrics", None);
    assert_eq!(metrics.status, 200);
    for line in [
        "# TYPE server_session_events_total counter",
        "server_session_events_total{event=\"loaded\"} 1",
        "server_session_events_total{event=\"unknown_id\"} 1",
        "server_session_events_total{event=\"bad_signature\"} 0",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "{line:?} in {}",
            metrics.body
        );
    }
}
