//! Thin glue between a [`SessionManager`] and an HTTP server crate.
//!
//! Every adapter does the same four steps and nothing more: read the request's `Cookie`
//! header(s), [`SessionManager::open`] the session, run the handler with it, and when the
//! handler succeeds, [`Session::commit`] and add the commit's headers to the response
//! (`Set-Cookie`, and `Vary: Cookie` merged into any `Vary` the response already has).
//!
//! The handler returns the application's own error type `E`, anything a
//! [`server_session::Error`](crate::Error) converts into (or `server_session::Error` itself);
//! a failing commit is converted the same way. When the handler fails, nothing is committed:
//! the store is left as it was and the error is returned for the caller to render (a demo
//! might answer `503 Service Unavailable`).
//!
//! Enable the adapter of your server with its feature: `tiny_http` (on by default) or
//! `rouille`.

use std::borrow::Cow;

#[cfg(doc)]
use crate::SessionManager;
use crate::codec::Codec;
use crate::store::Store;
use crate::{Commit, Error, Result, Session};

#[cfg(feature = "rouille")]
pub mod rouille;
#[cfg(feature = "tiny_http")]
pub mod tiny_http;

/// Runs `handler` with `session` and commits the session when the handler succeeds. A failed
/// handler commits nothing; its error, or the commit's converted into `E`, is returned.
pub(crate) fn run<'m, S, C, T, E, F>(
    mut session: Session<'m, S, C>,
    handler: F,
) -> Result<(T, Commit), E>
where
    S: Store,
    C: Codec,
    E: From<Error>,
    F: FnOnce(&mut Session<'m, S, C>) -> Result<T, E>,
{
    let output = handler(&mut session)?;
    Ok((output, session.commit()?))
}

/// The values of several `Cookie` headers as one, joined with `"; "`; `None` without any.
pub(crate) fn join_cookie_headers<'a>(
    mut values: impl Iterator<Item = &'a str>,
) -> Option<Cow<'a, str>> {
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(Cow::Borrowed(first));
    };
    let mut joined = format!("{first}; {second}");
    for value in values {
        joined.push_str("; ");
        joined.push_str(value);
    }
    Some(Cow::Owned(joined))
}

/// Whether the `Vary` header value `existing` already covers `name` (lists it, or is `*`).
pub(crate) fn vary_covers(existing: &str, name: &str) -> bool {
    existing
        .split(',')
        .map(str::trim)
        .any(|token| token == "*" || token.eq_ignore_ascii_case(name))
}

/// `existing` with `name` appended to its list, e.g. `Accept-Encoding, Cookie`.
pub(crate) fn vary_append(existing: &str, name: &str) -> String {
    let existing = existing.trim();
    if existing.is_empty() {
        name.to_owned()
    } else {
        format!("{existing}, {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_cookie_headers() {
        assert_eq!(join_cookie_headers([].into_iter()), None);
        assert!(matches!(
            join_cookie_headers(["a=1"].into_iter()),
            Some(Cow::Borrowed("a=1"))
        ));
        let joined = join_cookie_headers(["a=1", "b=2", "session=x"].into_iter());
        assert_eq!(joined.as_deref(), Some("a=1; b=2; session=x"));
    }

    #[test]
    fn vary_merging() {
        assert!(vary_covers("Accept-Encoding, cookie", "Cookie"));
        assert!(vary_covers("*", "Cookie"));
        assert!(!vary_covers("Accept-Encoding", "Cookie"));
        assert!(!vary_covers("X-Cookie", "Cookie"));
        assert_eq!(
            vary_append("Accept-Encoding", "Cookie"),
            "Accept-Encoding, Cookie"
        );
        assert_eq!(vary_append("  ", "Cookie"), "Cookie");
    }
}
