//! The [`UserIndex`](crate::store::UserIndex) of the Redis stores: one sorted set per user,
//! under the user name the manager passes, whose members are session keys scored by their
//! `until` in Unix milliseconds. The set expires with its last record, and every link drops
//! the records that have lapsed, so the index never outgrows the live sessions.

use std::time::SystemTime;

use ::redis::Cmd;

use super::lua::Lua;
use super::unix_ms;

/// The largest time a sorted-set score (a double) holds to the millisecond: 2^53 ms, some
/// 285,000 years from now. A later `until` is recorded as this.
const MAX_EXACT_MS: u64 = 1 << 53;

/// `link_user` in one atomic step: record the key (or move its score), drop the records that
/// have lapsed, and expire the set with its last record (an empty set is gone already).
/// `KEYS[1]` is the user, `ARGV` the session key, its `until` and now, in Unix milliseconds.
pub(crate) static LINK: Lua = Lua::new(
    "\
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]
if last then redis.call('PEXPIREAT', KEYS[1], string.format('%d', tonumber(last))) end
return 0",
);

/// The arguments of [`LINK`] for `key` until `until`.
pub(crate) fn link_args(key: &str, until: SystemTime) -> impl Fn(&mut Cmd) + '_ {
    let until = unix_ms(until).min(MAX_EXACT_MS);
    let now = unix_ms(SystemTime::now());
    move |cmd| {
        cmd.arg(key).arg(until).arg(now);
    }
}

/// `ZRANGEBYSCORE user (now +inf`: the keys whose `until` has not passed.
pub(crate) fn live_keys_cmd(user: &str) -> Cmd {
    let mut cmd = ::redis::cmd("ZRANGEBYSCORE");
    cmd.arg(user)
        .arg(format!("({}", unix_ms(SystemTime::now())))
        .arg("+inf");
    cmd
}

/// `ZREM user key...`, or nothing to send for no keys (Redis rejects a `ZREM` without one).
pub(crate) fn unlink_cmd(user: &str, keys: &[String]) -> Option<Cmd> {
    if keys.is_empty() {
        return None;
    }
    let mut cmd = ::redis::cmd("ZREM");
    cmd.arg(user).arg(keys);
    Some(cmd)
}

/// Implements [`UserIndex`](crate::store::UserIndex) for a type with a
/// `query(&self, &Cmd) -> Result<T>` method: one command (or script) on the user's key per
/// operation, so the cluster store needs no more than the single-server one.
macro_rules! user_index_by_commands {
    ($store:ty) => {
        impl $crate::store::UserIndex for $store {
            fn link_user(
                &self,
                user: &str,
                key: &str,
                until: ::std::time::SystemTime,
            ) -> $crate::Result<()> {
                let args = $crate::store::redis::users::link_args(key, until);
                let script = &$crate::store::redis::users::LINK;
                let _: i64 = script.run(|cmd| self.query(cmd), user, args)?;
                Ok(())
            }

            fn user_keys(&self, user: &str) -> $crate::Result<Vec<String>> {
                self.query(&$crate::store::redis::users::live_keys_cmd(user))
            }

            fn unlink_user(&self, user: &str, keys: &[String]) -> $crate::Result<()> {
                if let Some(cmd) = $crate::store::redis::users::unlink_cmd(user, keys) {
                    let _removed: i64 = self.query(&cmd)?;
                }
                Ok(())
            }
        }
    };
}
pub(crate) use user_index_by_commands;
