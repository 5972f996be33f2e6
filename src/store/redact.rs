//! Connection strings that never print their password.

use std::fmt;

/// What a password is replaced with.
const MASK: &str = "***";

/// A connection URL (or PostgreSQL key-value string) kept whole for connecting, printed by
/// `Debug` and `Display` without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for the driver only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&redact(&self.0), f)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

/// `text` with the password of every `scheme://user:password@host` URL in it, and every
/// `password=...` pair, replaced by `***`. Handles comma-separated URL lists.
pub(crate) fn redact(text: &str) -> String {
    let masked_urls = redact_userinfo(text);
    redact_pairs(&masked_urls)
}

fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (head, tail) = rest.split_at(start + 3);
        out.push_str(head);
        let authority_len = tail.find(['/', '?', '#', ',']).unwrap_or(tail.len());
        let authority = &tail[..authority_len];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_len..];
    }
    out.push_str(rest);
    out
}

fn redact_pairs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_ignore_case(rest, "password=") {
        let (head, tail) = rest.split_at(start + "password=".len());
        out.push_str(head);
        let end = tail.find([' ', '&', ';']).unwrap_or(tail.len());
        if end > 0 {
            out.push_str(MASK);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .to_ascii_lowercase()
        .find(&needle.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        let cases = [
            (
                "redis://:hunter2@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            ("redis://user:hunter2@h/1", "redis://user:***@h/1"),
            ("redis://user@h/1", "redis://user@h/1"),
            ("redis://h:6379", "redis://h:6379"),
            (
                "redis://a:hunter2@x:1,redis://b:hunter2@y:2",
                "redis://a:***@x:1,redis://b:***@y:2",
            ),
            (
                "mongodb://app:hun@ter2@h1,h2/?authSource=admin",
                "mongodb://app:***@h1,h2/?authSource=admin",
            ),
            (
                "host=db user=app password=hunter2 dbname=x",
                "host=db user=app password=*** dbname=x",
            ),
            (
                "postgres://h/db?user=app&password=hunter2",
                "postgres://h/db?user=app&password=***",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(redact(url), expected, "{url}");
            let secret = SecretUrl::new(url);
            assert!(!format!("{secret:?} {secret}").contains("hunter2"));
            assert_eq!(secret.expose(), url);
        }
    }
}
