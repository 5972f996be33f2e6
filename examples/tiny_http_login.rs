//! A login form on tiny_http with server-side sessions in memory:
//! `cargo run --example tiny_http_login` (tiny_http is the default feature), then try it with
//! a browser at <http://127.0.0.1:8000/> or with curl and a cookie jar:
//!
//! ```text
//! curl -b jar -c jar http://127.0.0.1:8000/                          # the login form
//! curl -b jar -c jar -d user=ada -d password=wrong http://127.0.0.1:8000/login   # 401
//! curl -b jar -c jar -d user=ada -d password=secret http://127.0.0.1:8000/login  # 303 to /
//! curl -b jar -c jar http://127.0.0.1:8000/         # "welcome, ada" (once) and "hello ada"
//! curl -b jar -c jar -X POST http://127.0.0.1:8000/logout                        # 303 to /
//! ```
//!
//! `tests/examples.rs` drives [`serve`] the same way.

use std::io::{Cursor, Read};

use server_session::adapter::tiny_http::handle;
use server_session::store::MemoryStore;
use server_session::{Config, ErrorKind, Session, SessionManager};
use tiny_http::{Header, Method, Request, Response, Server};

/// The password of every user in this example.
const PASSWORD: &str = "secret";
/// The longest login form body read.
const MAX_FORM_BYTES: u64 = 4096;
const LOGIN_FORM: &str = r#"<form method="post" action="/login">
<input name="user" placeholder="name"> <input name="password" type="password">
<button>log in</button></form>"#;
const LOGOUT_FORM: &str = r#"<form method="post" action="/logout"><button>log out</button></form>"#;

type Page = Response<Cursor<Vec<u8>>>;

/// What can go wrong in a request: the session layer, or the visitor.
#[derive(Debug)]
pub enum AppError {
    Session(server_session::Error),
    BadForm(&'static str),
    WrongPassword,
}

impl From<server_session::Error> for AppError {
    fn from(err: server_session::Error) -> Self {
        AppError::Session(err)
    }
}

fn main() {
    let addr = "127.0.0.1:8000";
    let manager = SessionManager::new(MemoryStore::new(), Config::default());
    let manager = manager.expect("the default configuration is valid");
    match Server::http(addr) {
        Ok(server) => serve(&server, &manager),
        Err(err) => eprintln!("tiny_http_login: cannot listen on {addr}: {err}"),
    }
}

/// Answers the server's requests one after the other, for as long as it runs.
pub fn serve(server: &Server, manager: &SessionManager<MemoryStore>) {
    for mut request in server.incoming_requests() {
        let response = handle(manager, &mut request, route).unwrap_or_else(error_page);
        if let Err(err) = request.respond(response) {
            eprintln!("tiny_http_login: could not send the response: {err}");
        }
    }
}

fn route(request: &mut Request, session: &mut Session<'_, MemoryStore>) -> Result<Page, AppError> {
    let url = request.url().to_owned();
    let path = url.split_once('?').map_or(url.as_str(), |(path, _)| path);
    match (request.method(), path) {
        (Method::Get, "/") => home(session),
        (Method::Post, "/login") => log_in(request, session),
        (Method::Post, "/logout") => {
            session.destroy();
            Ok(redirect_home())
        }
        _ => Ok(html(404, "<p>not found</p>".into())),
    }
}

/// "hello NAME" after any flashed messages when logged in, the login form otherwise.
fn home(session: &mut Session<'_, MemoryStore>) -> Result<Page, AppError> {
    let Some(user) = session.get::<String>("user")? else {
        return Ok(html(200, LOGIN_FORM.into()));
    };
    let mut body = String::new();
    for (_category, message) in session.take_flashes()? {
        body += &format!("<p class=\"flash\">{}</p>\n", escape(&message));
    }
    body += &format!("<p>hello {}</p>\n{LOGOUT_FORM}", escape(&user));
    Ok(html(200, body))
}

/// Checks the form `user=NAME&password=...`, then logs the user in under a fresh session id
/// (against session fixation) and greets them once on the next page.
fn log_in(request: &mut Request, session: &mut Session<'_, MemoryStore>) -> Result<Page, AppError> {
    let mut body = String::new();
    let mut reader = request.as_reader().take(MAX_FORM_BYTES);
    let read = reader.read_to_string(&mut body);
    read.map_err(|_| AppError::BadForm("unreadable or not UTF-8"))?;
    let field = |name: &str| {
        let mut pairs = form_urlencoded::parse(body.as_bytes());
        pairs
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let (Some(user), Some(password)) = (field("user"), field("password")) else {
        return Err(AppError::BadForm("expected user=NAME&password=..."));
    };
    if user.is_empty() {
        return Err(AppError::BadForm("the user name is empty"));
    }
    if password != PASSWORD {
        return Err(AppError::WrongPassword);
    }
    session.regenerate()?;
    session.insert("user", &user)?;
    session.flash("message", &format!("welcome, {user}"))?;
    Ok(redirect_home())
}

/// The page for an error: the visitor's mistakes name themselves, the store's are logged.
fn error_page(err: AppError) -> Page {
    match err {
        AppError::BadForm(why) => html(400, format!("<p>bad form: {why}</p>\n{LOGIN_FORM}")),
        AppError::WrongPassword => html(401, format!("<p>wrong password</p>\n{LOGIN_FORM}")),
        AppError::Session(err) => {
            eprintln!("tiny_http_login: {err}");
            match err.kind() {
                ErrorKind::Unavailable => html(503, "<p>try again in a moment</p>".into()),
                _ => html(500, "<p>internal error</p>".into()),
            }
        }
    }
}

fn html(status: u16, body: String) -> Page {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", "text/html; charset=utf-8"))
}

/// `303 See Other` to `/`: the browser follows it with a `GET`.
fn redirect_home() -> Page {
    Response::from_string("")
        .with_status_code(303)
        .with_header(header("Location", "/"))
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name, value).expect("an ASCII constant")
}

/// `text` safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
