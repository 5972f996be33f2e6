//! The two login examples (examples/tiny_http_login.rs and examples/rouille_login.rs) over real
//! HTTP: each is started on an ephemeral port and driven through the same visits with a tiny
//! HTTP/1.1 client on `std::net::TcpStream`.
#![cfg(any(feature = "tiny_http", feature = "rouille"))]

#[cfg(feature = "rouille")]
#[allow(dead_code)]
#[path = "../examples/rouille_login.rs"]
mod rouille_login;
#[cfg(feature = "tiny_http")]
#[allow(dead_code)]
#[path = "../examples/tiny_http_login.rs"]
mod tiny_http_login;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use server_session::store::{MemoryStore, Store};
use server_session::{Config, SessionManager};

type Manager = Arc<SessionManager<MemoryStore>>;

const LOGIN_FORM: &str = r#"<form method="post" action="/login">"#;

fn manager() -> Manager {
    Arc::new(SessionManager::new(MemoryStore::new(), Config::default()).unwrap())
}

/// The tiny_http example on an ephemeral port; it serves until the test process ends.
#[cfg(feature = "tiny_http")]
fn start_tiny_http() -> (SocketAddr, Manager) {
    let manager = manager();
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    let serving = Arc::clone(&manager);
    thread::spawn(move || tiny_http_login::serve(&server, &serving));
    (addr, manager)
}

/// The rouille example on an ephemeral port; it serves until the test process ends.
#[cfg(feature = "rouille")]
fn start_rouille() -> (SocketAddr, Manager) {
    let manager = manager();
    let serving = Arc::clone(&manager);
    let app = move |request: &rouille::Request| rouille_login::respond(&serving, request);
    let server = rouille::Server::new("127.0.0.1:0", app).unwrap();
    let addr = server.server_addr();
    thread::spawn(move || server.run());
    (addr, manager)
}

#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    /// The value of the first `name` header.
    fn header(&self, name: &str) -> Option<&str> {
        let mut headers = self.head.lines().skip(1).filter_map(|l| l.split_once(": "));
        headers
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The `name=value` pair of the `Set-Cookie`, as a browser sends it back.
    fn cookie(&self) -> String {
        let set_cookie = self.header("Set-Cookie").expect("a Set-Cookie header");
        set_cookie.split(';').next().unwrap().to_owned()
    }
}

/// One request on a fresh connection; a `POST` sends `form` as its urlencoded body.
fn send(addr: SocketAddr, method: &str, path: &str, cookie: Option<&str>, form: &str) -> Reply {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    request += "Connection: close\r\nContent-Type: application/x-www-form-urlencoded\r\n";
    if let Some(cookie) = cookie {
        request += &format!("Cookie: {cookie}\r\n");
    }
    request += &format!("Content-Length: {}\r\n\r\n{form}", form.len());
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok());
    let (head, body) = (head.to_owned(), body.to_owned());
    let reply = Reply {
        status: status.expect("a status code"),
        head,
        body,
    };
    assert_eq!(reply.header("Transfer-Encoding"), None, "{reply:?}");
    reply
}

fn get(addr: SocketAddr, cookie: Option<&str>) -> Reply {
    send(addr, "GET", "/", cookie, "")
}

fn post(addr: SocketAddr, path: &str, cookie: Option<&str>, form: &str) -> Reply {
    send(addr, "POST", path, cookie, form)
}

/// The store key behind a `session=<id>` cookie pair.
fn key(cookie: &str) -> String {
    format!("session:{}", cookie.strip_prefix("session=").unwrap())
}

fn assert_redirects_home(reply: &Reply) {
    assert_eq!(
        (reply.status, reply.header("Location")),
        (303, Some("/")),
        "{reply:?}"
    );
}

/// The login form, a wrong password, a login, the greeting shown once, a second login (a fresh
/// id again) and the logout, as a browser with a cookie jar does them.
fn log_in_and_out(addr: SocketAddr, manager: &SessionManager<MemoryStore>) {
    let store = manager.store();
    let form = get(addr, None);
    assert_eq!(form.status, 200);
    assert_eq!(
        form.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(form.body.contains(LOGIN_FORM), "{form:?}");
    assert_eq!(form.header("Set-Cookie"), None, "nothing to remember");

    let wrong = post(addr, "/login", None, "user=ada&password=Secret");
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("wrong password") && wrong.body.contains(LOGIN_FORM));
    assert_eq!(wrong.header("Set-Cookie"), None);
    assert!(store.is_empty(), "a failed login stores nothing");

    let login = post(addr, "/login", None, "user=Ada+L%C3%B6&password=secret");
    assert_redirects_home(&login);
    let jar = login.cookie();
    assert!(store.load(&key(&jar)).unwrap().is_some(), "{jar}");
    assert_eq!(store.len(), 1);

    let greeted = get(addr, Some(&jar));
    assert_eq!(greeted.status, 200);
    assert!(
        greeted
            .body
            .contains("<p class=\"flash\">welcome, Ada Lö</p>"),
        "{greeted:?}"
    );
    assert!(greeted.body.contains("hello Ada Lö"), "{greeted:?}");
    let again = get(addr, Some(&jar));
    assert!(
        !again.body.contains("welcome"),
        "the greeting is shown once: {again:?}"
    );
    assert!(again.body.contains("hello Ada Lö") && !again.body.contains(LOGIN_FORM));

    let relogin = post(addr, "/login", Some(&jar), "user=bob&password=secret");
    assert_redirects_home(&relogin);
    let fresh = relogin.cookie();
    assert_ne!(fresh, jar, "a login moves the session to a fresh id");
    assert_eq!(store.load(&key(&jar)).unwrap(), None, "the old id is gone");
    assert!(get(addr, Some(&jar)).body.contains(LOGIN_FORM));

    let logout = post(addr, "/logout", Some(&fresh), "");
    assert_redirects_home(&logout);
    let deletion = logout.header("Set-Cookie").unwrap_or_default();
    assert!(
        deletion.starts_with("session=;") && deletion.contains("Max-Age=0"),
        "{deletion}"
    );
    assert!(store.is_empty(), "the logout deleted the session");
    let after = get(addr, Some(&fresh));
    assert!(
        after.body.contains(LOGIN_FORM) && !after.body.contains("hello"),
        "{after:?}"
    );
}

/// Forms without a user or a password are a 400 and store nothing; a user name is shown as
/// text, never as markup; unknown routes are a 404.
fn bad_forms_markup_and_unknown_routes(addr: SocketAddr, manager: &SessionManager<MemoryStore>) {
    for form in [
        "password=secret",
        "user=&password=secret",
        "user=ada",
        "",
        "%ff",
    ] {
        let reply = post(addr, "/login", None, form);
        assert_eq!(reply.status, 400, "{form:?}: {reply:?}");
        assert!(reply.body.contains("bad form") && reply.body.contains(LOGIN_FORM));
    }
    assert!(manager.store().is_empty());

    let login = post(
        addr,
        "/login",
        None,
        "user=%3Ci%3E%22x%26y%22&password=secret",
    );
    let page = get(addr, Some(&login.cookie()));
    assert!(
        page.body.contains("hello &lt;i&gt;&quot;x&amp;y&quot;"),
        "{page:?}"
    );
    assert!(!page.body.contains("<i>"), "{page:?}");

    for (method, path) in [
        ("GET", "/login"),
        ("GET", "/nope"),
        ("POST", "/"),
        ("GET", "/logout"),
    ] {
        let reply = send(addr, method, path, None, "");
        assert_eq!(reply.status, 404, "{method} {path}");
    }
    assert_eq!(manager.store().len(), 1);
}

#[cfg(feature = "tiny_http")]
#[test]
fn tiny_http_login_flash_and_logout() {
    let (addr, manager) = start_tiny_http();
    log_in_and_out(addr, &manager);
}

#[cfg(feature = "tiny_http")]
#[test]
fn tiny_http_bad_forms_markup_and_unknown_routes() {
    let (addr, manager) = start_tiny_http();
    bad_forms_markup_and_unknown_routes(addr, &manager);
}

#[cfg(feature = "rouille")]
#[test]
fn rouille_login_flash_and_logout() {
    let (addr, manager) = start_rouille();
    log_in_and_out(addr, &manager);
}

#[cfg(feature = "rouille")]
#[test]
fn rouille_bad_forms_markup_and_unknown_routes() {
    let (addr, manager) = start_rouille();
    bad_forms_markup_and_unknown_routes(addr, &manager);
}
