//! The [`rouille`](https://docs.rs/rouille/3.6) adapter (feature `rouille`).
//!
//! Call [`handle`] from the closure given to `rouille::start_server` and render an `Err`
//! yourself. The handler returns the application's own error type; here a `POST /login` form:
//!
//! ```
//! use rouille::input::post::raw_urlencoded_post_input;
//! use rouille::{Request, Response};
//! use server_session::adapter::rouille::handle;
//! use server_session::{store::MemoryStore, Config, Session, SessionManager};
//!
//! /// The app's own error: the session layer's, or a bad request.
//! #[derive(Debug)]
//! enum AppError {
//!     Session(server_session::Error),
//!     BadRequest(String),
//! }
//!
//! impl From<server_session::Error> for AppError {
//!     fn from(err: server_session::Error) -> Self {
//!         AppError::Session(err)
//!     }
//! }
//!
//! /// `POST /login` with the form field `user`: a new session id, then the user in it.
//! fn login(request: &Request, session: &mut Session<'_, MemoryStore>) -> Result<Response, AppError> {
//!     let form = raw_urlencoded_post_input(request)
//!         .map_err(|e| AppError::BadRequest(format!("unreadable form: {e}")))?;
//!     let user = form.iter().find(|(name, value)| name == "user" && !value.is_empty());
//!     let (_, user) = user.ok_or_else(|| AppError::BadRequest("expected user=NAME".into()))?;
//!     session.regenerate()?;
//!     session.insert("user", user)?;
//!     Ok(Response::text(format!("hello {user}")))
//! }
//!
//! let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
//! let app = |request: &Request| {
//!     handle(&manager, request, login).unwrap_or_else(|err| match err {
//!         AppError::BadRequest(why) => Response::text(why).with_status_code(400),
//!         AppError::Session(err) => Response::text(err.to_string()).with_status_code(503),
//!     })
//! };
//! // With a real server: `rouille::start_server("127.0.0.1:8000", app);`
//! let form = vec![("Content-Type".to_owned(), "application/x-www-form-urlencoded".to_owned())];
//! let post = |body: &str| Request::fake_http("POST", "/login", form.clone(), body.into());
//! assert_eq!(app(&post("user=ada")).status_code, 200);
//! assert_eq!(app(&post("name=ada")).status_code, 400);
//! assert_eq!(manager.store().len(), 1, "only the valid form logged in");
//! # Ok::<(), server_session::Error>(())
//! ```

use std::borrow::Cow;

use ::rouille::{Request, Response};

use super::{join_cookie_headers, run, vary_append, vary_covers};
use crate::codec::Codec;
use crate::store::Store;
use crate::{Commit, Error, Result, Session, SessionManager};

/// Runs `handler` with the session named by the request's `Cookie` header(s) and, when it
/// succeeds, commits the session and adds `Set-Cookie` / `Vary: Cookie` to its response.
///
/// Several `Cookie` headers are read as one. An existing `Vary` header is extended rather
/// than repeated (`Vary: Accept-Encoding` becomes `Vary: Accept-Encoding, Cookie`). When the
/// handler fails, nothing is committed and its error is returned unchanged; a failing commit
/// (the store is down) is returned converted into `E`. Rendering errors is the caller's
/// choice. The handler reads a body with `request.data()`.
///
/// ```
/// use rouille::{Request, Response};
/// use server_session::adapter::rouille::handle;
/// use server_session::{store::MemoryStore, Config, SessionManager};
///
/// let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
/// let request = Request::fake_http("GET", "/login", vec![], vec![]);
/// let response = handle(&manager, &request, |_, session| {
///     session.insert("user", "ada")?;
///     Ok::<_, server_session::Error>(Response::text("hello"))
/// })?;
/// let set_cookie = response.headers.iter().find(|(name, _)| name == "Set-Cookie").unwrap();
/// let cookie = set_cookie.1.split(';').next().unwrap().to_owned();
///
/// // The browser sends the cookie back; the next request sees the data.
/// let headers = vec![("Cookie".to_owned(), cookie)];
/// let request = Request::fake_http("GET", "/whoami", headers, vec![]);
/// let mut user = None;
/// handle(&manager, &request, |_, session| {
///     user = session.get::<String>("user")?;
///     Ok::<_, server_session::Error>(Response::text("ok"))
/// })?;
/// assert_eq!(user.as_deref(), Some("ada"));
/// # Ok::<(), server_session::Error>(())
/// ```
pub fn handle<S, C, E, F>(
    manager: &SessionManager<S, C>,
    request: &Request,
    handler: F,
) -> Result<Response, E>
where
    S: Store,
    C: Codec,
    E: From<Error>,
    F: FnOnce(&Request, &mut Session<'_, S, C>) -> Result<Response, E>,
{
    let cookies = request
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Cookie"))
        .map(|(_, value)| value);
    let session = manager.open(join_cookie_headers(cookies).as_deref());
    let (mut response, commit) = run(session, |session| handler(request, session))?;
    apply(&mut response, &commit);
    Ok(response)
}

fn apply(response: &mut Response, commit: &Commit) {
    for (name, value) in commit.headers() {
        if name.eq_ignore_ascii_case("Vary") {
            add_vary(response, value);
        } else {
            let value = Cow::Owned(value.to_owned());
            response.headers.push((Cow::Borrowed(name), value));
        }
    }
}

fn add_vary(response: &mut Response, name: &str) {
    let mut varies = response
        .headers
        .iter_mut()
        .filter(|(header, _)| header.eq_ignore_ascii_case("Vary"));
    let Some((_, first)) = varies.next() else {
        response
            .headers
            .push(("Vary".into(), name.to_owned().into()));
        return;
    };
    if vary_covers(first, name) || varies.any(|(_, value)| vary_covers(value, name)) {
        return;
    }
    *first = Cow::Owned(vary_append(first, name));
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::codec::MsgPack;
    use crate::store::MemoryStore;
    use crate::{Config, Error};

    type Manager = SessionManager<MemoryStore>;

    fn manager() -> Manager {
        SessionManager::new(MemoryStore::new(), Config::default()).unwrap()
    }

    fn request(cookies: &[&str]) -> Request {
        let headers = cookies
            .iter()
            .map(|c| ("Cookie".to_owned(), (*c).to_owned()));
        Request::fake_http("GET", "/", headers.collect(), vec![])
    }

    fn values(response: &Response, name: &str) -> Vec<String> {
        let headers = response
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        headers.map(|(_, v)| v.to_string()).collect()
    }

    fn body(response: Response) -> String {
        let (mut reader, _) = response.data.into_reader_and_size();
        let mut body = String::new();
        reader.read_to_string(&mut body).unwrap();
        body
    }

    fn count_visit(
        _: &Request,
        session: &mut Session<'_, MemoryStore, MsgPack>,
    ) -> Result<Response> {
        let visits = session.get::<u32>("visits")?.unwrap_or(0) + 1;
        session.insert("visits", &visits)?;
        Ok(Response::text(format!("visits={visits}")))
    }

    /// The `name=value` pair of the response's `Set-Cookie`.
    fn cookie_pair(response: &Response) -> String {
        let set_cookie = values(response, "Set-Cookie");
        assert_eq!(set_cookie.len(), 1, "{set_cookie:?}");
        set_cookie[0].split(';').next().unwrap().to_owned()
    }

    #[test]
    fn new_session_sets_cookie_and_vary() {
        let m = manager();
        let response = handle(&m, &request(&[]), count_visit).unwrap();
        assert!(cookie_pair(&response).starts_with("session="));
        assert_eq!(values(&response, "Vary"), ["Cookie"]);
        assert_eq!(body(response), "visits=1");
        assert_eq!(m.store().len(), 1);
    }

    #[test]
    fn cookie_round_trips_to_the_next_request() {
        let m = manager();
        let first = handle(&m, &request(&[]), count_visit).unwrap();
        let second = handle(&m, &request(&[&cookie_pair(&first)]), count_visit).unwrap();
        assert_eq!(body(second), "visits=2");
        assert_eq!(m.store().len(), 1);
    }

    #[test]
    fn handler_error_commits_nothing_and_is_returned() {
        let m = manager();
        let pair = cookie_pair(&handle(&m, &request(&[]), count_visit).unwrap());
        let key = format!("session:{}", pair.trim_start_matches("session="));
        let before = m.store().load(&key).unwrap();
        let result = handle(&m, &request(&[&pair]), |_, session| {
            session.insert("visits", &99u32)?;
            Err(Error::SessionsDisabled)
        });
        assert!(matches!(result, Err(Error::SessionsDisabled)));
        assert_eq!(m.store().load(&key).unwrap(), before);
        let fresh = handle(&m, &request(&[]), |_, session| {
            session.insert("a", &1)?;
            Err(Error::IdCollision)
        });
        assert!(matches!(fresh, Err(Error::IdCollision)));
        assert_eq!(m.store().len(), 1);
    }

    #[test]
    fn finds_the_session_among_several_cookie_headers() {
        let m = manager();
        let pair = cookie_pair(&handle(&m, &request(&[]), count_visit).unwrap());
        let second = handle(&m, &request(&["theme=dark", &pair, "lang=en"]), count_visit).unwrap();
        assert_eq!(body(second), "visits=2");
    }

    #[test]
    fn existing_vary_is_extended_not_repeated() {
        let m = manager();
        let response = handle(&m, &request(&[]), |r, s| {
            Ok::<_, Error>(count_visit(r, s)?.with_additional_header("Vary", "Accept-Encoding"))
        })
        .unwrap();
        assert_eq!(values(&response, "Vary"), ["Accept-Encoding, Cookie"]);
        assert_eq!(values(&response, "Set-Cookie").len(), 1);
    }

    #[test]
    fn vary_already_naming_cookie_is_left_alone() {
        let m = manager();
        for existing in ["Accept-Encoding, cookie", "*"] {
            let response = handle(&m, &request(&[]), |r, s| {
                let response = count_visit(r, s)?.with_additional_header("Vary", "Origin");
                Ok::<_, Error>(response.with_additional_header("vary", existing))
            })
            .unwrap();
            assert_eq!(values(&response, "Vary"), ["Origin", existing]);
        }
    }

    #[test]
    fn untouched_session_adds_no_headers() {
        let m = manager();
        let response = handle(&m, &request(&["session=junk"]), |_, _| {
            Ok::<_, Error>(Response::text("static"))
        })
        .unwrap();
        assert!(values(&response, "Set-Cookie").is_empty());
        assert!(values(&response, "Vary").is_empty());
        assert!(m.store().is_empty());
    }
}
