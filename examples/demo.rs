//! The README's demo server: `cargo run --example demo`, then in another terminal
//! `curl -c jar -b jar http://127.0.0.1:8000/` (again and again), `/login?user=ada` (or
//! `/login?user=ada&remember=1`), `/whoami`, `/logout`, `/logout-everywhere`, `/metrics`,
//! `/health`. [`ROUTES`] lists them; `HEAD` is answered like `GET`.
//!
//! Options: `--addr HOST:PORT` (127.0.0.1:8000), `--threads N` (8), `--store URL`
//! (default: files in `./flask_session`; `file:///abs/dir`, `cachelib:///abs/dir` (files in
//! cachelib's layout with the `Pickle` codec, shared with a Flask app whose
//! `SESSION_TYPE = "filesystem"` and `SESSION_FILE_DIR` name that directory), `memory:`, and
//! with the store's feature `redis://HOST:PORT/DB`, `memcache://HOST:PORT[,HOST:PORT]`, `sqlite:///abs/path.db`,
//! `postgres://USER@HOST:PORT/DB`, `mongodb://HOST:PORT/?directConnection=true`), `--secret KEY`
//! (sign the cookie), `--lifetime SECS` (session lifetime; default 31 days), `--absolute SECS`
//! (the longest a session lives from its creation; default off). `tests/demo.rs` reuses
//! [`config`], [`prepare`], [`serve`] and [`route`].

use std::io::Cursor;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use server_session::adapter::tiny_http::handle;
use server_session::codec::{Codec, MsgPack, Pickle};
#[allow(unused_imports)] // the server stores' arms, each behind its feature, use it
use server_session::store;
use server_session::store::{FileLayout, FileStore, MemoryStore, Store, UserIndex};
use server_session::{
    Config, ConfigBuilder, ErrorKind, Result, Session, SessionManager, SessionMetrics,
};
use tiny_http::{Header, Method, Request, Response, Server};

pub const USAGE: &str = "usage: demo [--addr HOST:PORT] [--threads N] [--store URL] [--secret KEY] \
     [--lifetime SECS] [--absolute SECS]\n\nroutes (GET or HEAD):\n\
     /                count this session's visits (after a login, greets once first)\n\
     /incr?key=NAME   add 1 to the counter NAME, exact under parallel requests\n\
     /login?user=NAME log in as NAME (a fresh session id) until the browser closes or an hour\n\
     \x20                passes without a request; add &remember=1 to stay in for 30 days\n\
     /whoami          the logged-in user, read only\n\
     /logout          end the session\n\
     /logout-everywhere end every session of the logged-in user (not on memcached)\n\
     /metrics         the session event counters, in the Prometheus text format\n\
     /health          ok, without touching the session";

/// Every route of [`route`], for the usage text and the tests.
pub const ROUTES: [&str; 8] = [
    "/",
    "/incr",
    "/login",
    "/whoami",
    "/logout",
    "/logout-everywhere",
    "/metrics",
    "/health",
];

/// The demo's state: the session manager, its event counters, and what a store with a user
/// index adds (log out everywhere).
pub struct App<S: Store, C: Codec = MsgPack> {
    pub manager: SessionManager<S, C>,
    metrics: Arc<SessionMetrics>,
    accounts: Option<Accounts<S, C>>,
}

/// Ties a session to its user and ends a user's sessions: only for stores that implement
/// [`UserIndex`] (memcached cannot).
struct Accounts<S: Store, C: Codec> {
    tie: fn(&mut Session<'_, S, C>, &str) -> Result<()>,
    log_out_everywhere: fn(&SessionManager<S, C>, &str) -> Result<usize>,
}

impl<S: Store> App<S> {
    /// The demo on `store` in MessagePack, without log out everywhere.
    pub fn new(store: S, config: Config) -> Result<Self> {
        Self::with_codec(store, MsgPack, config)
    }
}

impl<S: Store, C: Codec> App<S, C> {
    /// The demo on `store` with `codec`, without log out everywhere.
    pub fn with_codec(store: S, codec: C, config: Config) -> Result<Self> {
        let metrics = Arc::new(SessionMetrics::default());
        let manager = SessionManager::with_codec(store, codec, config)?;
        Ok(Self {
            manager: manager.with_events(Arc::clone(&metrics)),
            metrics,
            accounts: None,
        })
    }
}

impl<S: UserIndex> App<S> {
    /// The demo on a store with a user index, in MessagePack: see
    /// [`logging_out_everywhere`](App::logging_out_everywhere).
    pub fn with_accounts(store: S, config: Config) -> Result<Self> {
        Ok(Self::new(store, config)?.logging_out_everywhere())
    }
}

impl<S: UserIndex, C: Codec> App<S, C> {
    /// Logins tie the session to the user, and `/logout-everywhere` ends all of them.
    pub fn logging_out_everywhere(self) -> Self {
        let accounts = Accounts {
            tie: |session, user| session.set_user(user),
            log_out_everywhere: |manager, user| manager.destroy_user_sessions(user),
        };
        Self {
            accounts: Some(accounts),
            ..self
        }
    }
}

/// An app ready to serve, whatever its store and codec: what [`prepare`] makes of the command
/// line.
pub trait Serve {
    /// Starts `threads` workers answering `server`'s requests (see [`serve`]).
    fn serve(self: Box<Self>, server: Arc<Server>, threads: usize) -> Vec<JoinHandle<()>>;
}

impl<S: Store + 'static, C: Codec + 'static> Serve for App<S, C> {
    fn serve(self: Box<Self>, server: Arc<Server>, threads: usize) -> Vec<JoinHandle<()>> {
        serve(server, Arc::from(self), threads)
    }
}

/// The command line.
pub struct Args {
    addr: String,
    threads: usize,
    store: Option<String>,
    secret: Option<String>,
    lifetime: Option<Duration>,
    absolute: Option<Duration>,
}

/// How long a login without "remember me" lasts without a request (its cookie ends with the
/// browser session).
pub const SIGNED_IN: Duration = Duration::from_secs(60 * 60);
/// How long a "remember me" login lasts without a request (its cookie too).
pub const REMEMBERED: Duration = Duration::from_secs(30 * 24 * 60 * 60);

fn main() {
    let started = parse_args(std::env::args().skip(1)).and_then(|args| start(&args));
    if let Err(message) = started {
        eprintln!("demo: {message}");
        std::process::exit(2);
    }
}

pub fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:8000".into(),
        threads: 8,
        store: None,
        secret: None,
        lifetime: None,
        absolute: None,
    };
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--addr" => args.addr = value()?,
            "--threads" => {
                args.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?
            }
            "--store" => args.store = Some(value()?),
            "--secret" => args.secret = Some(value()?),
            "--lifetime" => {
                let secs = value()?.parse().map_err(|e| format!("--lifetime: {e}"))?;
                args.lifetime = Some(Duration::from_secs(secs));
            }
            "--absolute" => {
                let secs = value()?.parse().map_err(|e| format!("--absolute: {e}"))?;
                args.absolute = Some(Duration::from_secs(secs));
            }
            "--help" | "-h" => return Err(USAGE.into()),
            _ => return Err(format!("unknown option {flag:?}\n{USAGE}")),
        }
    }
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    Ok(args)
}

/// Builds the app the command line asks for, then serves it until the process ends.
pub fn start(args: &Args) -> Result<(), String> {
    let app = prepare(args)?;
    let server =
        Server::http(&args.addr).map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    println!(
        "demo: listening on http://{} with {} threads",
        args.addr, args.threads
    );
    for worker in app.serve(Arc::new(server), args.threads) {
        worker
            .join()
            .map_err(|_| "a worker thread panicked".to_owned())?;
    }
    Ok(())
}

/// Opens the store the command line names and builds the app on it: dispatches once on the
/// store URL; everything after is statically typed by the store and the codec.
pub fn prepare(args: &Args) -> Result<Box<dyn Serve>, String> {
    let Some(url) = args.store.as_deref() else {
        return run(file_store("flask_session", FileLayout::Native)?, args);
    };
    let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
    // The store's own error names its server, never a password: the URL is not printed.
    #[allow(unused_variables)] // only the server stores' arms, each behind its feature, use it
    let failed = |e: server_session::Error| format!("--store {scheme}: {e}");
    match scheme {
        "memory" => run(MemoryStore::new(), args),
        "file" | "cachelib" => {
            let dir = url.split_once("://").map(|(_, dir)| dir);
            let Some(dir) = dir.filter(|dir| dir.starts_with('/')) else {
                return Err(format!("{url:?}: expected {scheme}:///absolute/directory"));
            };
            if scheme == "file" {
                return run(file_store(dir, FileLayout::Native)?, args);
            }
            // What Flask-Session's `filesystem` backend reads: cachelib's files, pickles.
            let store = file_store(dir, FileLayout::Cachelib)?;
            run_with_codec(store, Pickle, args)
        }
        #[cfg(feature = "redis")]
        "redis" => run(store::RedisStore::open(url).map_err(failed)?, args),
        #[cfg(feature = "redis-cluster")]
        "redis+cluster" => run(store::RedisClusterStore::open(url).map_err(failed)?, args),
        #[cfg(feature = "memcached")]
        "memcache" => run_without_accounts(store::MemcachedStore::open(url).map_err(failed)?, args),
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let path = url.trim_start_matches("sqlite://");
            let sqlite = store::SqliteStore::open(path).map_err(failed)?;
            run(
                store::CleanupEvery::new(sqlite, 1000, 500).map_err(failed)?,
                args,
            )
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            let postgres = store::PostgresStore::open(url).map_err(failed)?;
            run(
                store::CleanupEvery::new(postgres, 1000, 500).map_err(failed)?,
                args,
            )
        }
        #[cfg(feature = "mongodb")]
        "mongodb" => run(store::MongoStore::open(url).map_err(failed)?, args),
        other => Err(match feature_of(other) {
            Some(feature) => format!(
                "{other}: needs the {feature} store: cargo run --example demo --features {feature} -- --store URL"
            ),
            None => format!(
                "unknown store {other:?}; use memory:, file:///dir, cachelib:///dir or a server URL"
            ),
        }),
    }
}

/// The cargo feature that provides the store for a URL scheme.
fn feature_of(scheme: &str) -> Option<&'static str> {
    match scheme {
        "redis" => Some("redis"),
        "redis+cluster" => Some("redis-cluster"),
        "memcache" => Some("memcached"),
        "sqlite" => Some("sqlite"),
        "postgres" | "postgresql" => Some("postgres"),
        "mongodb" => Some("mongodb"),
        _ => None,
    }
}

fn file_store(dir: &str, layout: FileLayout) -> Result<FileStore, String> {
    let builder = FileStore::builder().directory(dir).layout(layout);
    let store = builder.build().map_err(|e| e.to_string())?;
    println!(
        "demo: file store {dir} ({layout:?} layout): at {} sessions the ones closest to expiry \
         are deleted (FileStore::builder().threshold(N); 0 turns pruning off)",
        store.threshold()
    );
    Ok(store)
}

/// The demo on a store with a user index, in MessagePack.
fn run<S: UserIndex + 'static>(store: S, args: &Args) -> Result<Box<dyn Serve>, String> {
    run_with_codec(store, MsgPack, args)
}

/// The demo on a store with a user index, with `codec`.
fn run_with_codec<S: UserIndex + 'static, C: Codec + 'static>(
    store: S,
    codec: C,
    args: &Args,
) -> Result<Box<dyn Serve>, String> {
    let app = App::with_codec(store, codec, session_config(args)?).map_err(|e| e.to_string())?;
    Ok(Box::new(app.logging_out_everywhere()))
}

/// The demo on a store without a user index (memcached): no log out everywhere.
#[allow(dead_code)] // only the memcached arm, behind its feature, uses it
fn run_without_accounts<S: Store + 'static>(
    store: S,
    args: &Args,
) -> Result<Box<dyn Serve>, String> {
    let app = App::new(store, session_config(args)?).map_err(|e| e.to_string())?;
    Ok(Box::new(app))
}

/// The configuration the command line asks for.
fn session_config(args: &Args) -> Result<Config, String> {
    let mut builder = builder(args.secret.as_deref());
    if let Some(lifetime) = args.lifetime {
        builder = builder.lifetime(lifetime);
    }
    if let Some(absolute) = args.absolute {
        builder = builder.absolute_lifetime(absolute);
    }
    builder.build().map_err(|e| e.to_string())
}

/// The session configuration: Flask-Session's defaults, signed cookies with a secret.
pub fn config(secret: Option<&str>) -> Result<Config, String> {
    builder(secret).build().map_err(|e| e.to_string())
}

fn builder(secret: Option<&str>) -> ConfigBuilder {
    match secret {
        Some(key) => Config::builder().use_signer(true).secret_key(key),
        None => Config::builder(),
    }
}

/// Starts `threads` workers answering the server's requests; they run until the process ends.
pub fn serve<S: Store + 'static, C: Codec + 'static>(
    server: Arc<Server>,
    app: Arc<App<S, C>>,
    threads: usize,
) -> Vec<JoinHandle<()>> {
    let spawn = |_| {
        let (server, app) = (Arc::clone(&server), Arc::clone(&app));
        thread::spawn(move || {
            loop {
                match server.recv() {
                    Ok(request) => respond(&app, request),
                    Err(err) => eprintln!("demo: accept failed: {err}"),
                }
            }
        })
    };
    (0..threads).map(spawn).collect()
}

/// Answers one request; a store that is down or silent becomes a 503 naming the cause, a
/// session that kept changing under parallel requests a 409, any other error a 500.
pub fn respond<S: Store, C: Codec>(app: &App<S, C>, mut request: Request) {
    let response = handle(&app.manager, &mut request, |request, session| {
        let (status, body) = route(app, session, request.method(), request.url())?;
        Ok::<_, server_session::Error>(text(status, body))
    });
    let response = response.unwrap_or_else(|err| {
        eprintln!("demo: {} {}: {err}", request.method(), request.url());
        match err.kind() {
            ErrorKind::Unavailable => text(503, format!("store unavailable: {err}")),
            ErrorKind::Conflict => text(409, format!("conflict, try again: {err}")),
            _ => text(500, format!("internal error: {err}")),
        }
    });
    if let Err(err) = request.respond(response) {
        eprintln!("demo: could not send the response: {err}");
    }
}

fn text(status: u16, body: String) -> Response<Cursor<Vec<u8>>> {
    let content_type = Header::from_bytes("Content-Type", "text/plain; charset=utf-8");
    Response::from_string(body + "\n")
        .with_status_code(status)
        .with_header(content_type.expect("a constant, valid header"))
}

/// The demo's routes: `(status, body)` for a request, using the session.
pub fn route<S: Store, C: Codec>(
    app: &App<S, C>,
    session: &mut Session<'_, S, C>,
    method: &Method,
    url: &str,
) -> Result<(u16, String)> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let method = match method {
        Method::Head => &Method::Get,
        other => other,
    };
    match (method, path) {
        (Method::Get, "/health") => Ok((200, "ok".into())),
        (Method::Get, "/metrics") => Ok((200, app.metrics.prometheus())),
        (Method::Get, "/logout-everywhere") => log_out_everywhere(app, session),
        (Method::Get, "/") => {
            let mut body = String::new();
            for (_, message) in session.take_flashes()? {
                body.push_str(&message);
                body.push('\n');
            }
            let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
            session.insert("visits", &visits)?;
            body.push_str(&format!("visits={visits}"));
            Ok((200, body))
        }
        (Method::Get, "/incr") => match query_param(query, "key").filter(|k| !k.is_empty()) {
            Some(key) => {
                let n = session.update(&key, |n: Option<i64>| n.unwrap_or(0) + 1)?;
                Ok((200, format!("{key}={n}")))
            }
            None => Ok((400, "missing ?key=NAME".into())),
        },
        (Method::Get, "/login") => match query_param(query, "user").filter(|u| !u.is_empty()) {
            Some(user) => {
                let remember = query_param(query, "remember").is_some_and(|r| r == "1");
                log_in(session, &user, remember)?;
                if let Some(accounts) = &app.accounts {
                    (accounts.tie)(session, &user)?;
                }
                Ok((200, format!("user={user}")))
            }
            None => Ok((400, "missing ?user=NAME".into())),
        },
        (Method::Get, "/logout") => session.clear().map(|()| (200, "logged out".into())),
        (Method::Get, "/whoami") => {
            let user = session.get::<String>("user")?.unwrap_or_default();
            Ok((200, format!("user={user}")))
        }
        _ => Ok((404, "not found".into())),
    }
}

/// A fresh id for the logged-in session (the creation time, and so an `--absolute` limit,
/// carries over), a greeting for the next page, and how long the login lasts: "remember me"
/// keeps a permanent cookie for [`REMEMBERED`]; otherwise the cookie ends with the browser
/// session and the server forgets the session after [`SIGNED_IN`] without a request.
fn log_in<S: Store, C: Codec>(
    session: &mut Session<'_, S, C>,
    user: &str,
    remember: bool,
) -> Result<()> {
    session.regenerate()?;
    session.insert("user", user)?;
    session.flash("message", &format!("welcome, {user}"))?;
    session.set_permanent(remember)?;
    session.set_lifetime(if remember { REMEMBERED } else { SIGNED_IN })
}

/// Ends every session of the logged-in user, this one included.
fn log_out_everywhere<S: Store, C: Codec>(
    app: &App<S, C>,
    session: &mut Session<'_, S, C>,
) -> Result<(u16, String)> {
    let Some(accounts) = &app.accounts else {
        return Ok((
            501,
            "this store keeps no user index (memcached cannot)".into(),
        ));
    };
    let Some(user) = session.user()? else {
        return Ok((403, "not logged in".into()));
    };
    let ended = (accounts.log_out_everywhere)(&app.manager, &user)?;
    session.destroy();
    Ok((200, format!("ended {ended} sessions of {user}")))
}

/// The percent-decoded value of `name` in a query string; `None` when absent or not UTF-8.
fn query_param(query: &str, name: &str) -> Option<String> {
    let mut pairs = query.split('&').filter_map(|pair| pair.split_once('='));
    let (_, value) = pairs.find(|(key, _)| *key == name)?;
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.bytes();
    while let Some(byte) = rest.next() {
        bytes.push(match byte {
            b'+' => b' ',
            b'%' => {
                let high = char::from(rest.next()?).to_digit(16)?;
                let low = char::from(rest.next()?).to_digit(16)?;
                u8::try_from(high * 16 + low).ok()?
            }
            other => other,
        });
    }
    String::from_utf8(bytes).ok()
}
