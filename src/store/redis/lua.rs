//! Lua scripts the Redis stores run atomically on the server, one key each.

use std::sync::OnceLock;

use ::redis::{Cmd, RedisError, Script};

use crate::{Error, Result};

/// A Lua script on one key, sent by its SHA-1 (`EVALSHA`), and whole (`EVAL`) only when the
/// server does not know it yet (or any more): one round trip in the steady state.
pub(crate) struct Lua {
    source: &'static str,
    script: OnceLock<Script>,
}

impl Lua {
    pub(crate) const fn new(source: &'static str) -> Self {
        Self {
            source,
            script: OnceLock::new(),
        }
    }

    /// Runs the script on `key` with the arguments `args` appends, through `query` (the
    /// store's own, so its timeouts and error mapping apply).
    pub(crate) fn run<T>(
        &self,
        query: impl Fn(&Cmd) -> Result<T>,
        key: &str,
        args: impl Fn(&mut Cmd),
    ) -> Result<T> {
        let cmd = |verb: &str| {
            let mut cmd = ::redis::cmd(verb);
            match verb {
                "EVAL" => cmd.arg(self.source),
                _ => cmd.arg(self.sha()),
            };
            cmd.arg(1).arg(key);
            args(&mut cmd);
            cmd
        };
        match query(&cmd("EVALSHA")) {
            Err(e) if is_noscript(&e) => query(&cmd("EVAL")),
            reply => reply,
        }
    }

    /// The SHA-1 Redis knows the script by, in hex.
    fn sha(&self) -> &str {
        self.script
            .get_or_init(|| Script::new(self.source))
            .get_hash()
    }
}

/// Whether the server does not know the script yet (or any more): send it whole.
fn is_noscript(e: &Error) -> bool {
    e.store_source::<RedisError>()
        .is_some_and(|e| e.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript))
}
