//! How long a session lives: its idle lifetime (the configuration's, or its own from
//! [`Session::set_lifetime`](crate::Session::set_lifetime)), refreshed by activity, and the
//! optional absolute lifetime counted from its creation. Both live in the session map, so they
//! survive a Flask-Session read-modify-write of the session.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Config;
use crate::codec::{SessionMap, Value};

/// The key a session's creation time is stored under, in Unix seconds (only while an
/// absolute lifetime is configured).
pub(crate) const CREATED_KEY: &str = "_ss_created";
/// The key a session's own idle lifetime is stored under, in seconds.
pub(crate) const LIFETIME_KEY: &str = "_ss_lifetime";

/// The longest idle lifetime [`Session::set_lifetime`](crate::Session::set_lifetime) accepts:
/// 400 days, the longest browsers keep a cookie.
pub const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(400 * 24 * 60 * 60);

/// The session's own idle lifetime, if it has a valid one.
pub(crate) fn own_lifetime(data: &SessionMap) -> Option<Duration> {
    let secs = data.get(LIFETIME_KEY)?.as_u64()?;
    let valid = (1..=MAX_SESSION_LIFETIME.as_secs()).contains(&secs);
    valid.then(|| Duration::from_secs(secs))
}

/// The idle lifetime that applies to `data`: its own, or the configuration's.
pub(crate) fn idle_lifetime(config: &Config, data: &SessionMap) -> Duration {
    own_lifetime(data).unwrap_or(config.lifetime())
}

/// When the absolute lifetime ends the session: `None` when it is off or the session has no
/// creation time.
fn deadline(config: &Config, data: &SessionMap) -> Option<SystemTime> {
    let limit = config.absolute_lifetime()?;
    let created = data.get(CREATED_KEY)?.as_u64()?;
    UNIX_EPOCH
        .checked_add(Duration::from_secs(created))?
        .checked_add(limit)
}

/// Whether the absolute lifetime of `data` is over at `now`.
pub(crate) fn expired(config: &Config, data: &SessionMap, now: SystemTime) -> bool {
    deadline(config, data).is_some_and(|deadline| deadline <= now)
}

/// The expiry a commit at `now` gives `data`: now + its idle lifetime, but never past its
/// absolute deadline.
pub(crate) fn expiry(config: &Config, data: &SessionMap, now: SystemTime) -> SystemTime {
    let idle = now + idle_lifetime(config, data);
    match deadline(config, data) {
        Some(deadline) => idle.min(deadline),
        None => idle,
    }
}

/// Records `now` as the creation time of `data` when an absolute lifetime is configured and
/// `data` has none yet; whether it did.
pub(crate) fn stamp_creation(config: &Config, data: &mut SessionMap, now: SystemTime) -> bool {
    if config.absolute_lifetime().is_none() || data.contains_key(CREATED_KEY) {
        return false;
    }
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    data.insert(CREATED_KEY.to_owned(), Value::from(secs));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(absolute: Option<u64>) -> Config {
        let builder = Config::builder().lifetime(Duration::from_secs(100));
        let builder = match absolute {
            Some(secs) => builder.absolute_lifetime(Duration::from_secs(secs)),
            None => builder,
        };
        builder.build().unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn session(created: Option<u64>, lifetime: Option<Value>) -> SessionMap {
        let mut data = SessionMap::default();
        if let Some(created) = created {
            data.insert(CREATED_KEY.into(), Value::from(created));
        }
        if let Some(lifetime) = lifetime {
            data.insert(LIFETIME_KEY.into(), lifetime);
        }
        data
    }

    #[test]
    fn the_idle_lifetime_is_the_sessions_own_when_valid() {
        let c = config(None);
        assert_eq!(expiry(&c, &session(None, None), at(1000)), at(1100));
        let own = session(None, Some(Value::from(30)));
        assert_eq!(expiry(&c, &own, at(1000)), at(1030));
        for invalid in [
            Value::from(0),
            Value::from(-5),
            Value::from("30"),
            Value::Nil,
        ] {
            let data = session(None, Some(invalid.clone()));
            assert_eq!(idle_lifetime(&c, &data), c.lifetime(), "{invalid:?}");
        }
        let too_long = Value::from(MAX_SESSION_LIFETIME.as_secs() + 1);
        assert_eq!(own_lifetime(&session(None, Some(too_long))), None);
    }

    #[test]
    fn the_absolute_deadline_caps_the_expiry_and_ends_the_session() {
        let c = config(Some(500));
        let data = session(Some(1000), Some(Value::from(300)));
        assert_eq!(expiry(&c, &data, at(1100)), at(1400), "idle first");
        assert_eq!(expiry(&c, &data, at(1300)), at(1500), "capped");
        assert!(!expired(&c, &data, at(1499)));
        assert!(expired(&c, &data, at(1500)));
        assert!(!expired(&config(None), &data, at(9999)), "off by default");
        assert!(
            !expired(&c, &session(None, None), at(9999)),
            "no creation time"
        );
        assert!(!expired(&c, &session(Some(u64::MAX), None), at(9999)));
    }

    #[test]
    fn the_creation_time_is_stamped_once_and_only_when_configured() {
        let mut data = SessionMap::default();
        assert!(!stamp_creation(&config(None), &mut data, at(7)));
        assert!(data.is_empty());
        assert!(stamp_creation(&config(Some(60)), &mut data, at(7)));
        assert!(!stamp_creation(&config(Some(60)), &mut data, at(9)));
        assert_eq!(data[CREATED_KEY], Value::from(7));
    }
}
