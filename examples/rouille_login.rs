//! A login form on rouille with server-side sessions in memory:
//! `cargo run --example rouille_login --features rouille`, then try it with a browser at
//! <http://127.0.0.1:8000/> or with curl and a cookie jar:
//!
//! ```text
//! curl -b jar -c jar http://127.0.0.1:8000/                          # the login form
//! curl -b jar -c jar -d user=ada -d password=wrong http://127.0.0.1:8000/login   # 401
//! curl -b jar -c jar -d user=ada -d password=secret http://127.0.0.1:8000/login  # 303 to /
//! curl -b jar -c jar http://127.0.0.1:8000/         # "welcome, ada" (once) and "hello ada"
//! curl -b jar -c jar -X POST http://127.0.0.1:8000/logout                        # 303 to /
//! ```
//!
//! `tests/examples.rs` drives [`respond`] the same way.

use rouille::{Request, Response, post_input};
use server_session::adapter::rouille::handle;
use server_session::store::MemoryStore;
use server_session::{Config, ErrorKind, Session, SessionManager};

/// The password of every user in this example.
const PASSWORD: &str = "secret";
const LOGIN_FORM: &str = r#"<form method="post" action="/login">
<input name="user" placeholder="name"> <input name="password" type="password">
<button>log in</button></form>"#;
const LOGOUT_FORM: &str = r#"<form method="post" action="/logout"><button>log out</button></form>"#;

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
    let manager = SessionManager::new(MemoryStore::new(), Config::default());
    let manager = manager.expect("the default configuration is valid");
    rouille::start_server("127.0.0.1:8000", move |request| respond(&manager, request));
}

/// Answers one request; rouille calls it from its worker threads.
pub fn respond(manager: &SessionManager<MemoryStore>, request: &Request) -> Response {
    handle(manager, request, route).unwrap_or_else(error_page)
}

fn route(request: &Request, session: &mut Session<'_, MemoryStore>) -> Result<Response, AppError> {
    match (request.method(), request.url().as_str()) {
        ("GET", "/") => home(session),
        ("POST", "/login") => log_in(request, session),
        ("POST", "/logout") => {
            session.destroy();
            Ok(Response::redirect_303("/"))
        }
        _ => Ok(Response::html("<p>not found</p>").with_status_code(404)),
    }
}

/// "hello NAME" after any flashed messages when logged in, the login form otherwise.
fn home(session: &mut Session<'_, MemoryStore>) -> Result<Response, AppError> {
    let Some(user) = session.get::<String>("user")? else {
        return Ok(Response::html(LOGIN_FORM));
    };
    let flashes = session.take_flashes()?;
    let messages = flashes
        .iter()
        .map(|(_category, message)| format!("<p class=\"flash\">{}</p>\n", escape(message)));
    let body: String = messages.collect();
    Ok(Response::html(
        body + &format!("<p>hello {}</p>\n{LOGOUT_FORM}", escape(&user)),
    ))
}

/// Checks the form `user=NAME&password=...`, then logs the user in under a fresh session id
/// (against session fixation) and greets them once on the next page.
fn log_in(request: &Request, session: &mut Session<'_, MemoryStore>) -> Result<Response, AppError> {
    let form = post_input!(request, { user: String, password: String })
        .map_err(|_| AppError::BadForm("expected user=NAME&password=..."))?;
    if form.user.is_empty() {
        return Err(AppError::BadForm("the user name is empty"));
    }
    if form.password != PASSWORD {
        return Err(AppError::WrongPassword);
    }
    session.regenerate()?;
    session.insert("user", &form.user)?;
    session.flash("message", &format!("welcome, {}", form.user))?;
    Ok(Response::redirect_303("/"))
}

/// The page for an error: the visitor's mistakes name themselves, the store's are logged.
fn error_page(err: AppError) -> Response {
    let (status, body) = match err {
        AppError::BadForm(why) => (400, format!("<p>bad form: {why}</p>\n{LOGIN_FORM}")),
        AppError::WrongPassword => (401, format!("<p>wrong password</p>\n{LOGIN_FORM}")),
        AppError::Session(err) => {
            eprintln!("rouille_login: {err}");
            match err.kind() {
                ErrorKind::Unavailable => (503, "<p>try again in a moment</p>".into()),
                _ => (500, "<p>internal error</p>".into()),
            }
        }
    };
    Response::html(body).with_status_code(status)
}

/// `text` safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
