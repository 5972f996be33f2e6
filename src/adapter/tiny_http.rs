//! The [`tiny_http`](https://docs.rs/tiny_http/0.12) adapter (feature `tiny_http`, on by
//! default).
//!
//! A server loop calls [`handle`] once per request and renders an `Err` itself. The handler
//! gets the request mutably, so it can read a body, and returns the application's own error
//! type: here a `POST /login` form.
//!
//! ```
//! use std::io::{Cursor, Read};
//! use server_session::adapter::tiny_http::handle;
//! use server_session::{store::MemoryStore, Config, Session, SessionManager};
//! use tiny_http::{Method, Request, Response, TestRequest};
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
//! /// `POST /login` with the form body `user=NAME`: a new session id, then the user in it.
//! fn login(
//!     request: &mut Request,
//!     session: &mut Session<'_, MemoryStore>,
//! ) -> Result<Response<Cursor<Vec<u8>>>, AppError> {
//!     let mut form = String::new();
//!     let read = request.as_reader().read_to_string(&mut form);
//!     read.map_err(|e| AppError::BadRequest(format!("unreadable body: {e}")))?;
//!     let user = form.strip_prefix("user=").filter(|user| !user.is_empty());
//!     let user = user.ok_or_else(|| AppError::BadRequest("expected user=NAME".into()))?;
//!     session.regenerate()?;
//!     session.insert("user", user)?;
//!     Ok(Response::from_string(format!("hello {user}")))
//! }
//!
//! let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
//! # let post = |body| Request::from(TestRequest::new().with_method(Method::Post).with_body(body));
//! # let server = vec![post("user=ada"), post("name=ada")];
//! # let mut statuses = Vec::new();
//! // With a real server: `for mut request in server.incoming_requests() {`
//! for mut request in server {
//!     let response = handle(&manager, &mut request, login).unwrap_or_else(|err| match err {
//!         AppError::BadRequest(why) => Response::from_string(why).with_status_code(400),
//!         AppError::Session(err) => Response::from_string(err.to_string()).with_status_code(503),
//!     });
//!     # statuses.push(response.status_code().0);
//!     request.respond(response)?;
//! }
//! # assert_eq!(statuses, [200, 400]);
//! # assert_eq!(manager.store().len(), 1, "only the valid form logged in");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Read;

use ::tiny_http::{Header, Request, Response};

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
/// choice.
///
/// ```
/// use server_session::adapter::tiny_http::handle;
/// use server_session::{store::MemoryStore, Config, SessionManager};
/// use tiny_http::{Header, Response, TestRequest};
///
/// let manager = SessionManager::new(MemoryStore::new(), Config::default())?;
/// let login = |_: &mut tiny_http::Request, session: &mut server_session::Session<'_, _>| {
///     session.insert("user", "ada")?;
///     Ok::<_, server_session::Error>(Response::from_string("hello"))
/// };
/// let response = handle(&manager, &mut TestRequest::new().into(), login)?;
/// let set_cookie = response.headers().iter().find(|h| h.field.equiv("Set-Cookie")).unwrap();
/// let cookie = set_cookie.value.as_str().split(';').next().unwrap();
///
/// // The browser sends the cookie back; the next request sees the data.
/// let mut request = TestRequest::new()
///     .with_header(format!("Cookie: {cookie}").parse::<Header>().unwrap())
///     .into();
/// let response = handle(&manager, &mut request, |_, session| {
///     let user: Option<String> = session.get("user")?;
///     Ok::<_, server_session::Error>(Response::from_string(user.unwrap_or_default()))
/// })?;
/// let mut body = String::new();
/// std::io::Read::read_to_string(&mut response.into_reader(), &mut body)?;
/// assert_eq!(body, "ada");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn handle<S, C, R, E, F>(
    manager: &SessionManager<S, C>,
    request: &mut Request,
    handler: F,
) -> Result<Response<R>, E>
where
    S: Store,
    C: Codec,
    R: Read,
    E: From<Error>,
    F: FnOnce(&mut Request, &mut Session<'_, S, C>) -> Result<Response<R>, E>,
{
    let session = open(manager, request);
    let (response, commit) = run(session, |session| handler(request, session))?;
    Ok(apply(response, &commit)?)
}

/// The session named by the request's `Cookie` header(s).
fn open<'m, S: Store, C: Codec>(
    manager: &'m SessionManager<S, C>,
    request: &Request,
) -> Session<'m, S, C> {
    let cookies = request
        .headers()
        .iter()
        .filter(|h| h.field.equiv("Cookie"))
        .map(|h| h.value.as_str());
    manager.open(join_cookie_headers(cookies).as_deref())
}

fn apply<R: Read>(mut response: Response<R>, commit: &Commit) -> Result<Response<R>> {
    for (name, value) in commit.headers() {
        if name.eq_ignore_ascii_case("Vary") {
            response = add_vary(response, value)?;
        } else {
            response.add_header(header(name, value)?);
        }
    }
    Ok(response)
}

fn add_vary<R: Read>(response: Response<R>, name: &str) -> Result<Response<R>> {
    let mut varies = response.headers().iter().filter(|h| h.field.equiv("Vary"));
    if varies.any(|h| vary_covers(h.value.as_str(), name)) {
        return Ok(response);
    }
    let first = response
        .headers()
        .iter()
        .position(|h| h.field.equiv("Vary"));
    let Some(index) = first else {
        return Ok(response.with_header(header("Vary", name)?));
    };
    let mut headers = response.headers().to_vec();
    headers[index] = header("Vary", &vary_append(headers[index].value.as_str(), name))?;
    Ok(with_headers(response, headers))
}

/// `response` with its headers replaced: tiny_http cannot edit a header in place.
fn with_headers<R: Read>(response: Response<R>, headers: Vec<Header>) -> Response<R> {
    let status = response.status_code();
    let length = response.data_length();
    let threshold = response.chunked_threshold();
    Response::new(status, headers, response.into_reader(), length, None)
        .with_chunked_threshold(threshold)
}

/// A response header; the configuration is validated, so the values are always ASCII.
fn header(name: &str, value: &str) -> Result<Header> {
    Header::from_bytes(name, value)
        .map_err(|()| Error::Config(format!("the {name} header value is not ASCII: {value:?}")))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use ::tiny_http::TestRequest;

    use super::*;
    use crate::Config;
    use crate::store::MemoryStore;

    type Manager = SessionManager<MemoryStore>;

    fn manager() -> Manager {
        SessionManager::new(MemoryStore::new(), Config::default()).unwrap()
    }

    fn request(headers: &[&str]) -> Request {
        let mut request = TestRequest::new();
        for line in headers {
            request = request.with_header(line.parse::<Header>().unwrap());
        }
        request.into()
    }

    fn values<R: Read>(response: &Response<R>, name: &'static str) -> Vec<String> {
        let headers = response.headers().iter().filter(|h| h.field.equiv(name));
        headers.map(|h| h.value.to_string()).collect()
    }

    fn body(response: Response<Cursor<Vec<u8>>>) -> String {
        String::from_utf8(response.into_reader().into_inner()).unwrap()
    }

    fn count_visit(
        _: &mut Request,
        session: &mut Session<'_, MemoryStore>,
    ) -> Result<Response<Cursor<Vec<u8>>>> {
        let visits = session.get::<u32>("visits")?.unwrap_or(0) + 1;
        session.insert("visits", &visits)?;
        Ok(Response::from_string(format!("visits={visits}")))
    }

    /// The `name=value` pair of the response's `Set-Cookie`.
    fn cookie_pair<R: Read>(response: &Response<R>) -> String {
        let set_cookie = values(response, "Set-Cookie");
        assert_eq!(set_cookie.len(), 1, "{set_cookie:?}");
        set_cookie[0].split(';').next().unwrap().to_owned()
    }

    #[test]
    fn new_session_sets_cookie_and_vary() {
        let m = manager();
        let response = handle(&m, &mut request(&[]), count_visit).unwrap();
        assert!(cookie_pair(&response).starts_with("session="));
        assert_eq!(values(&response, "Vary"), ["Cookie"]);
        assert_eq!(body(response), "visits=1");
        assert_eq!(m.store().len(), 1);
    }

    #[test]
    fn cookie_round_trips_to_the_next_request() {
        let m = manager();
        let first = handle(&m, &mut request(&[]), count_visit).unwrap();
        let cookie = format!("Cookie: {}", cookie_pair(&first));
        let second = handle(&m, &mut request(&[&cookie]), count_visit).unwrap();
        assert_eq!(body(second), "visits=2");
        assert_eq!(m.store().len(), 1);
    }

    #[test]
    fn handler_error_commits_nothing_and_is_returned() {
        let m = manager();
        let first = handle(&m, &mut request(&[]), count_visit).unwrap();
        let pair = cookie_pair(&first);
        let key = format!("session:{}", pair.trim_start_matches("session="));
        let before = m.store().load(&key).unwrap();
        let cookie = format!("Cookie: {pair}");
        let result = handle(&m, &mut request(&[&cookie]), |_, session| {
            session.insert("visits", &99u32)?;
            session.insert("other", "x")?;
            Err::<Response<Cursor<Vec<u8>>>, _>(Error::SessionsDisabled)
        });
        assert!(matches!(result, Err(Error::SessionsDisabled)));
        assert_eq!(m.store().load(&key).unwrap(), before);
        let fresh = handle(&m, &mut request(&[]), |_, session| {
            session.insert("a", &1)?;
            Err::<Response<Cursor<Vec<u8>>>, _>(Error::IdCollision)
        });
        assert!(matches!(fresh, Err(Error::IdCollision)));
        assert_eq!(m.store().len(), 1);
    }

    #[test]
    fn finds_the_session_among_several_cookie_headers() {
        let m = manager();
        let first = handle(&m, &mut request(&[]), count_visit).unwrap();
        let cookie = format!("Cookie: {}", cookie_pair(&first));
        let headers = ["Cookie: theme=dark", &cookie, "Cookie: lang=en"];
        let second = handle(&m, &mut request(&headers), count_visit).unwrap();
        assert_eq!(body(second), "visits=2");
    }

    #[test]
    fn existing_vary_is_extended_not_repeated() {
        let m = manager();
        let response = handle(&m, &mut request(&[]), |r, s| {
            let response = count_visit(r, s)?.with_status_code(201);
            Ok::<_, Error>(response.with_header("Vary: Accept-Encoding".parse::<Header>().unwrap()))
        })
        .unwrap();
        assert_eq!(values(&response, "Vary"), ["Accept-Encoding, Cookie"]);
        assert_eq!(values(&response, "Set-Cookie").len(), 1);
        assert_eq!(response.status_code().0, 201);
        assert_eq!(response.data_length(), Some("visits=1".len()));
        assert_eq!(body(response), "visits=1");
    }

    #[test]
    fn vary_already_naming_cookie_is_left_alone() {
        let m = manager();
        for existing in ["Vary: cookie", "Vary: *"] {
            let response = handle(&m, &mut request(&[]), |r, s| {
                Ok::<_, Error>(count_visit(r, s)?.with_header(existing.parse::<Header>().unwrap()))
            })
            .unwrap();
            assert_eq!(values(&response, "Vary"), [&existing[6..]]);
        }
    }

    #[test]
    fn untouched_session_adds_no_headers() {
        let m = manager();
        let response = handle(&m, &mut request(&["Cookie: session=junk"]), |_, _| {
            Ok::<_, Error>(Response::from_string("static"))
        })
        .unwrap();
        assert!(values(&response, "Set-Cookie").is_empty());
        assert!(values(&response, "Vary").is_empty());
        assert!(m.store().is_empty());
    }
}
