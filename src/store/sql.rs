//! What the SQL stores share: identifier validation and quoting, the statements of Flask-Session's
//! `sessions` table, SQLAlchemy's naive-UTC timestamp text, and retry with backoff.
//!
//! Identifiers (table, schema, sequence) are never bound as parameters, so they are validated
//! (`[A-Za-z_][A-Za-z0-9_]{0,62}`) and then double-quoted: no SQL can come in through them.
//! Every value (key, data, expiry, the current time, a limit) is a bound parameter.

#[cfg(feature = "postgres")]
use std::time::Duration;
#[cfg(feature = "sqlite")]
use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::Replaced;
use crate::{Error, Result};

/// The longest identifier PostgreSQL keeps without truncating it (NAMEDATALEN - 1).
const MAX_IDENTIFIER_LEN: usize = 63;

/// The width of the `session_id` column, `varchar(255)`.
pub(crate) const MAX_KEY_CHARS: usize = 255;

/// Sleeps before each retry of a transient failure; one more attempt than delays in all.
#[cfg(feature = "postgres")]
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_millis(250),
];

/// Checks that `name` is a plain identifier, `[A-Za-z_][A-Za-z0-9_]{0,62}`; `what` names the
/// setting in the error message.
pub(crate) fn validate_identifier(what: &str, name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let starts_well = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if starts_well && rest_ok && name.len() <= MAX_IDENTIFIER_LEN {
        return Ok(());
    }
    Err(Error::Config(format!(
        "the {what} name {name:?} must match [A-Za-z_][A-Za-z0-9_]{{0,62}}"
    )))
}

/// `name` as a double-quoted SQL identifier (inner quotes doubled, although a validated name
/// has none).
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A key the `session_id varchar(255)` column can hold.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(Error::InvalidKey(format!(
            "SQL session keys are at most {MAX_KEY_CHARS} characters (session_id varchar(255))"
        )));
    }
    Ok(())
}

/// The statements of one store, for one table, in the placeholder style of its database.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    /// `(key, now) -> data`
    pub(crate) load: String,
    /// `(key, data, expiry, now)`; 1 row affected when created.
    pub(crate) create: String,
    /// `(key, data, expiry, now)`; 1 row affected when saved.
    pub(crate) save: String,
    /// `(key, data, expiry, now, expected data)`; 1 row affected when replaced.
    pub(crate) replace: String,
    /// `(key, expiry, now)`; 1 row affected when touched.
    pub(crate) touch: String,
    /// `(key, expiry, now) -> data`
    pub(crate) load_and_touch: String,
    /// `(key)`
    pub(crate) delete: String,
    /// `(now, limit)`; the number of rows removed.
    pub(crate) sweep: String,
}

impl Statements {
    /// The statements for `table` (already quoted, maybe schema-qualified). `id` is the value
    /// expression for the `id` column (`Some("nextval(..)")` with a sequence), `p` turns a
    /// 1-based parameter number into a placeholder (`?1` or `$1`).
    pub(crate) fn new(table: &str, id: Option<&str>, p: fn(usize) -> String) -> Self {
        let (id_column, id_value) = match id {
            Some(value) => ("id, ", format!("{value}, ")),
            None => ("", String::new()),
        };
        let touch = format!(
            "UPDATE {table} SET expiry = {} WHERE session_id = {} AND expiry > {}",
            p(2),
            p(1),
            p(3)
        );
        Self {
            load: format!(
                "SELECT data FROM {table} WHERE session_id = {} AND expiry > {}",
                p(1),
                p(2)
            ),
            create: format!(
                "INSERT INTO {table} AS cur ({id_column}session_id, data, expiry) \
                 VALUES ({id_value}{}, {}, {}) ON CONFLICT (session_id) DO UPDATE \
                 SET data = excluded.data, expiry = excluded.expiry \
                 WHERE cur.expiry IS NULL OR cur.expiry <= {}",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            save: format!(
                "UPDATE {table} SET data = {}, expiry = {} WHERE session_id = {} AND expiry > {}",
                p(2),
                p(3),
                p(1),
                p(4)
            ),
            replace: format!(
                "UPDATE {table} SET data = {}, expiry = {} \
                 WHERE session_id = {} AND expiry > {} AND data = {}",
                p(2),
                p(3),
                p(1),
                p(4),
                p(5)
            ),
            load_and_touch: format!("{touch} RETURNING data"),
            touch,
            delete: format!("DELETE FROM {table} WHERE session_id = {}", p(1)),
            sweep: format!(
                "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} \
                 WHERE expiry IS NULL OR expiry <= {} LIMIT {})",
                p(1),
                p(2)
            ),
        }
    }
}

/// What a conditional `UPDATE` that changed no row found, from a load after it.
pub(crate) fn not_replaced(current: Option<Vec<u8>>) -> Replaced {
    match current {
        Some(current) => Replaced::Changed(current),
        None => Replaced::Gone,
    }
}

/// The name of the expiry index we create with a table: `<table>_expiry_idx`.
pub(crate) fn expiry_index_name(table: &str) -> String {
    format!("{table}_expiry_idx")
}

#[cfg(feature = "sqlite")]
/// `time` as SQLAlchemy writes a naive UTC `DateTime` to SQLite: `YYYY-MM-DD HH:MM:SS.ffffff`.
///
/// Text in this format sorts like the times it names, so SQL compares expiries as text. Times
/// outside years 1..=9999 are clamped to that range.
pub(crate) fn naive_utc_text(time: SystemTime) -> String {
    const MIN_MICROS: i64 = -62_135_596_800_000_000; // 0001-01-01 00:00:00
    const MAX_MICROS: i64 = 253_402_300_799_999_999; // 9999-12-31 23:59:59.999999
    let micros = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
    }
    .clamp(MIN_MICROS, MAX_MICROS);
    let (days, micros_of_day) = (
        micros.div_euclid(86_400_000_000),
        micros.rem_euclid(86_400_000_000),
    );
    let (year, month, day) = civil_from_days(days);
    let secs = micros_of_day / 1_000_000;
    // Hand-written digits: this runs up to three times per request, format! costs ~5x more.
    let mut text = String::with_capacity(26);
    push_digits(&mut text, year, 4);
    text.push('-');
    push_digits(&mut text, month, 2);
    text.push('-');
    push_digits(&mut text, day, 2);
    text.push(' ');
    push_digits(&mut text, secs / 3600, 2);
    text.push(':');
    push_digits(&mut text, secs / 60 % 60, 2);
    text.push(':');
    push_digits(&mut text, secs % 60, 2);
    text.push('.');
    push_digits(&mut text, micros_of_day % 1_000_000, 6);
    text
}

#[cfg(feature = "sqlite")]
/// Appends the last `width` decimal digits of `value` (non-negative), zero-padded.
fn push_digits(text: &mut String, value: i64, width: u32) {
    for place in (0..width).rev() {
        let digit = (value / 10_i64.pow(place)) % 10;
        text.push(char::from(b'0' + digit as u8));
    }
}

#[cfg(feature = "sqlite")]
/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Runs `op`, retrying it after each [`BACKOFF`] delay while it fails with an error
/// `is_transient` accepts; the last error is returned as is.
#[cfg(feature = "postgres")]
pub(crate) fn retry<T>(
    is_transient: impl Fn(&Error) -> bool,
    mut op: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut delays = BACKOFF.iter();
    loop {
        match op() {
            Err(e) if is_transient(&e) => match delays.next() {
                Some(delay) => {
                    log::debug!("transient session store error, retrying in {delay:?}: {e}");
                    std::thread::sleep(*delay);
                }
                None => return Err(e),
            },
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "sqlite")]
    use std::time::Duration;

    #[cfg(feature = "sqlite")]
    fn at(secs: u64, micros: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros)
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn timestamps_match_sqlalchemy() {
        assert_eq!(naive_utc_text(at(0, 0)), "1970-01-01 00:00:00.000000");
        let expected = "2026-12-27 14:48:51.503858";
        assert_eq!(naive_utc_text(at(1_798_382_931, 503_858)), expected);
        assert_eq!(
            naive_utc_text(at(951_782_400, 1)),
            "2000-02-29 00:00:00.000001"
        );
        assert_eq!(
            naive_utc_text(at(4_107_542_399, 999_999)),
            "2100-02-28 23:59:59.999999"
        );
        let before = UNIX_EPOCH - Duration::from_micros(1);
        assert_eq!(naive_utc_text(before), "1969-12-31 23:59:59.999999");
        let far = at(400_000_000_000, 0);
        assert_eq!(naive_utc_text(far), "9999-12-31 23:59:59.999999");
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn text_order_is_time_order() {
        let times = [
            at(5, 0),
            at(5, 1),
            at(59, 999_999),
            at(60, 0),
            at(1_798_382_931, 0),
        ];
        for pair in times.windows(2) {
            assert!(naive_utc_text(pair[0]) < naive_utc_text(pair[1]));
        }
    }

    #[test]
    fn identifiers() {
        for good in ["sessions", "_x", "S9_a", &"a".repeat(63)] {
            assert!(validate_identifier("table", good).is_ok(), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "9a",
            "a b",
            "a;b",
            "a\"b",
            "a'b",
            "a.b",
            "sessions; DROP TABLE x",
            &long,
        ] {
            assert!(
                matches!(validate_identifier("table", bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn retry_is_bounded() {
        let mut calls = 0;
        let result: Result<()> = retry(
            |_| true,
            || {
                calls += 1;
                Err(Error::IdCollision)
            },
        );
        assert!(matches!(result, Err(Error::IdCollision)));
        assert_eq!(calls, BACKOFF.len() + 1);
        let mut calls = 0;
        let result: Result<()> = retry(
            |_| false,
            || {
                calls += 1;
                Err(Error::IdCollision)
            },
        );
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}
