//! Reading the `Cookie` request header and writing `Set-Cookie` values.

use std::cell::Cell;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use arrayvec::ArrayString;

use crate::Config;

/// Every value of the cookie called `name` in a `Cookie` header, in order, with surrounding
/// quotes removed. Tolerates any input: junk pairs, empty pairs and odd spacing are skipped.
///
/// ```
/// use server_session::cookie::values;
/// let header = r#"theme=dark; session="abc"; ; junk; session=def"#;
/// assert_eq!(values(header, "session").collect::<Vec<_>>(), ["abc", "def"]);
/// ```
pub fn values<'h>(header: &'h str, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    let first = name.as_bytes().first().copied();
    let starts = first
        .map(|first| memchr::memchr_iter(first, header.as_bytes()))
        .into_iter()
        .flatten();
    starts.filter_map(move |start| value_at(header, start, name))
}

/// The value of the pair whose name starts at byte `start` of `header`, when that is `name`:
/// only spaces and tabs between it and the `;` before it (or the header's start), and between
/// it and its `=`. The value runs to the next `;`, trimmed the same way and unquoted. Finding
/// the name's first byte and checking around it is the same as splitting the header at every
/// `;` (a cookie name is a token: no `;`, `=` or spaces), without reading every pair.
fn value_at<'h>(header: &'h str, start: usize, name: &str) -> Option<&'h str> {
    let before = header.get(..start)?.trim_end_matches(is_space);
    if !(before.is_empty() || before.ends_with(';')) {
        return None;
    }
    let after_name = header.get(start..)?.strip_prefix(name)?;
    let rest = after_name.trim_start_matches(is_space).strip_prefix('=')?;
    let value = memchr::memchr(b';', rest.as_bytes()).map_or(rest, |end| &rest[..end]);
    Some(unquote(value.trim_matches(is_space)))
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Room for a typical `Set-Cookie` value, so that building one allocates once.
const TYPICAL_COOKIE_LEN: usize = 192;

/// The `Set-Cookie` value whose cookie value `write_value` appends; `expires` is given for
/// permanent sessions only.
pub(crate) fn session_cookie(
    config: &Config,
    expires: Option<SystemTime>,
    write_value: impl FnOnce(&mut String),
) -> String {
    let mut out = String::with_capacity(TYPICAL_COOKIE_LEN);
    out.push_str(config.cookie_name());
    out.push('=');
    write_value(&mut out);
    if let Some(expires) = expires {
        out.push_str("; Expires=");
        push_http_date(&mut out, expires);
    }
    push_attributes(&mut out, config);
    out
}

/// The length of an IMF-fixdate: `Fri, 01 Jan 2027 00:00:00 GMT`.
const HTTP_DATE_LEN: usize = 29;

thread_local! {
    /// The last date this thread wrote, by Unix second: it changes once a second at most, so
    /// most cookies copy it instead of formatting it.
    static LAST_DATE: Cell<(u64, ArrayString<HTTP_DATE_LEN>)> =
        const { Cell::new((u64::MAX, ArrayString::new_const())) };
}

/// Appends `time` as an HTTP date (whole seconds, as `Expires` takes it).
fn push_http_date(out: &mut String, time: SystemTime) {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (last_secs, last) = LAST_DATE.get();
    if last_secs == secs {
        return out.push_str(&last);
    }
    let mut date = ArrayString::new();
    // Always 29 characters (lifetimes are bounded, so the year stays below 10000).
    let _ = write!(date, "{}", httpdate::HttpDate::from(time));
    LAST_DATE.set((secs, date));
    out.push_str(&date);
}

/// The `Set-Cookie` value that makes the browser drop the session cookie.
pub(crate) fn deletion_cookie(config: &Config) -> String {
    let mut out = format!(
        "{}=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0",
        config.cookie_name()
    );
    push_attributes(&mut out, config);
    out
}

fn push_attributes(out: &mut String, config: &Config) {
    if let Some(domain) = config.cookie_domain() {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    out.push_str("; Path=");
    out.push_str(config.cookie_path());
    if config.cookie_secure() {
        out.push_str("; Secure");
    }
    if config.cookie_http_only() {
        out.push_str("; HttpOnly");
    }
    if let Some(same_site) = config.cookie_same_site() {
        out.push_str("; SameSite=");
        out.push_str(same_site.as_str());
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::SameSite;

    fn all(header: &str) -> Vec<&str> {
        values(header, "session").collect()
    }

    #[test]
    fn parses_tolerantly() {
        assert_eq!(all("session=abc"), ["abc"]);
        assert_eq!(all("  session  =  abc  ;theme=x"), ["abc"]);
        assert_eq!(all("a=1;session=\"q\";b"), ["q"]);
        assert_eq!(all("session=\"unbalanced"), ["\"unbalanced"]);
        assert_eq!(all("session=; session=x"), ["", "x"]);
        assert_eq!(all("sessionx=1; xsession=2; Session=3"), Vec::<&str>::new());
        assert_eq!(all(";;;=;=x;session"), Vec::<&str>::new());
        assert_eq!(all("session=a=b"), ["a=b"]);
        assert_eq!(all(""), Vec::<&str>::new());
        assert_eq!(all("session=é\u{0}"), ["é\u{0}"]);
    }

    /// The plain reading of a `Cookie` header: split at every `;`, then at the first `=`.
    fn split_reading<'h>(header: &'h str, name: &str) -> Vec<&'h str> {
        let pairs = header.split(';').filter_map(|pair| pair.split_once('='));
        pairs
            .filter(|(key, _)| key.trim_matches(is_space) == name)
            .map(|(_, value)| unquote(value.trim_matches(is_space)))
            .collect()
    }

    #[test]
    fn finding_the_name_reads_like_splitting_every_pair() {
        const PARTS: [&str; 12] = [
            "session", "=", ";", " ", "\t", "\"", "x", "sess", "ion", "é", "a=b", "sessions",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            let mut header = String::new();
            for _ in 0..state % 12 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                header.push_str(PARTS[(state % PARTS.len() as u64) as usize]);
            }
            state = state.wrapping_add(1);
            let found: Vec<&str> = values(&header, "session").collect();
            assert_eq!(found, split_reading(&header, "session"), "{header:?}");
        }
    }

    #[test]
    fn huge_header_is_parsed_without_trouble() {
        let header = format!("{}; session=abc", "x=y; ".repeat(100_000));
        assert_eq!(all(&header), ["abc"]);
    }

    #[test]
    fn builds_permanent_cookie_with_every_attribute() {
        let config = Config::builder()
            .cookie_domain("example.com")
            .cookie_path("/app")
            .cookie_secure(true)
            .cookie_same_site(Some(SameSite::Strict))
            .build()
            .unwrap();
        let expires = UNIX_EPOCH + Duration::from_secs(1_798_761_600);
        assert_eq!(
            session_cookie(&config, Some(expires), |out| out.push_str("abc")),
            "session=abc; Expires=Fri, 01 Jan 2027 00:00:00 GMT; Domain=example.com; \
             Path=/app; Secure; HttpOnly; SameSite=Strict"
        );
    }

    #[test]
    fn the_cached_date_follows_the_second() {
        let config = Config::builder().build().unwrap();
        let expires = |secs| {
            let time = UNIX_EPOCH + Duration::from_millis(secs);
            session_cookie(&config, Some(time), |out| out.push('a'))
        };
        for (millis, date) in [
            (1_798_761_600_000, "Fri, 01 Jan 2027 00:00:00 GMT"),
            (1_798_761_600_999, "Fri, 01 Jan 2027 00:00:00 GMT"),
            (1_798_761_601_000, "Fri, 01 Jan 2027 00:00:01 GMT"),
            (1_798_761_600_000, "Fri, 01 Jan 2027 00:00:00 GMT"),
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        ] {
            let cookie = expires(millis);
            assert_eq!(cookie.split("; ").nth(1), Some(&*format!("Expires={date}")));
        }
    }

    #[test]
    fn builds_browser_session_cookie_without_expires() {
        let config = Config::builder()
            .cookie_http_only(false)
            .cookie_same_site(None)
            .build()
            .unwrap();
        assert_eq!(
            session_cookie(&config, None, |out| out.push_str("abc")),
            "session=abc; Path=/"
        );
    }

    #[test]
    fn deletion_cookie_keeps_name_domain_and_path() {
        let config = Config::builder()
            .cookie_name("sid")
            .cookie_domain("example.com")
            .build()
            .unwrap();
        assert_eq!(
            deletion_cookie(&config),
            "sid=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Domain=example.com; \
             Path=/; HttpOnly; SameSite=Lax"
        );
    }
}
