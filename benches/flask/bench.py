"""Flask-Session 0.8's per-request session cost, on the servers the Rust benches use.

For each backend this builds a Flask app configured like the Rust benches (signed cookie,
MessagePack, a stored session holding `visits` and a 180-character `note`), then times what
Flask-Session adds to a request that reads and updates that session:

    open_session(app, request)   cookie parse, signature check, store read, decode
    session["visits"] += 1
    save_session(app, session, response)   encode, store write, Set-Cookie

The request object (from `app.test_request_context`) and an app context (Flask-SQLAlchemy
scopes its database session to it, as in a real request) are made before the clock starts and
torn down after it stops, so only the session layer is timed, as `SessionManager::open` ..
`commit` is in the Rust benches. Each backend runs `--rounds` rounds of `--per-round` requests
after a warm-up; the result is one JSON line per backend with the median and mean per request.

    target/flask-bench/venv/bin/python benches/flask/bench.py redis memcached sqlite postgres mongodb

Servers: Redis 127.0.0.1:6379, memcached 127.0.0.1:11211, PostgreSQL (trust auth, database
`test`), a MongoDB-wire server; the URLs come from the same SERVER_SESSION_*_URL variables as
the Rust benches. SQLite uses a file under target/ with the SqliteStore's durability settings
(WAL, synchronous=NORMAL) so both pay for the same fsync policy.
"""

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from urllib.parse import urlparse

warnings.simplefilter("ignore")  # SESSION_USE_SIGNER is deprecated in 0.8 but still works

from flask import Flask  # noqa: E402
from flask_session import Session  # noqa: E402

SECRET = "bench-secret-key"
BROWSER_COOKIES = (
    "_ga=GA1.1.123456789.1700000000; theme=dark; "
    "csrftoken=Zm9vYmFyYmF6cXV4cXV1eHh5enp5eHd2dXRzcnFwb24; lang=en-GB"
)
HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.normpath(os.path.join(HERE, "..", "..", "target", "flask-bench"))
PREFIX = f"bench:flask:{os.getpid()}:"
TABLE = f"flask_bench_{os.getpid()}"


def env_url(name, default):
    return os.environ.get(f"SERVER_SESSION_{name}_URL", default)


def redis_config(app):
    import redis

    url = env_url("REDIS", "redis://127.0.0.1:6379/")
    client = redis.Redis.from_url(url)
    client.ping()
    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=client)
    return lambda: client.delete(*client.keys(PREFIX + "*") or ["-"])


def memcached_config(app):
    from pymemcache.client.base import Client

    url = urlparse(env_url("MEMCACHED", "memcache://127.0.0.1:11211"))
    # no_delay: without TCP_NODELAY, pymemcache's fire-and-forget `set` and the next `get` meet
    # Nagle's algorithm and a delayed ACK, and every request stalls for 40 ms.
    client = Client((url.hostname, url.port or 11211), no_delay=True)
    client.version()
    app.config.update(SESSION_TYPE="memcached", SESSION_MEMCACHED=client)
    return lambda: None  # the entries expire; memcached has no key listing


def sqlalchemy_config(app, uri, engine_options=None):
    from flask_sqlalchemy import SQLAlchemy

    app.config.update(
        SQLALCHEMY_DATABASE_URI=uri,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options or {},
    )
    db = SQLAlchemy(app)
    app.config.update(SESSION_TYPE="sqlalchemy", SESSION_SQLALCHEMY=db, SESSION_SQLALCHEMY_TABLE=TABLE)

    def drop():
        with app.app_context():
            db.session.remove()
            db.metadata.tables[TABLE].drop(bind=db.engine)

    return drop


def sqlite_config(app):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    os.makedirs(TARGET, exist_ok=True)
    path = os.path.join(TARGET, f"sessions-{os.getpid()}.db")

    @event.listens_for(Engine, "connect")
    def durability(connection, _record):
        if type(connection).__module__.startswith("sqlite3"):
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    drop = sqlalchemy_config(app, f"sqlite:///{path}")

    def remove():
        drop()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)

    return remove


def postgres_config(app):
    url = urlparse(env_url("POSTGRES", "postgres://postgres@127.0.0.1:5432/test"))
    uri = url._replace(scheme="postgresql+psycopg2").geturl()
    return sqlalchemy_config(app, uri)


def mongodb_config(app):
    from pymongo import MongoClient

    url = env_url("MONGODB", "mongodb://127.0.0.1:27017/?directConnection=true")
    client = MongoClient(url, serverSelectionTimeoutMS=3000)
    client.admin.command("ping")
    collection = f"flask_bench_{os.getpid()}"
    app.config.update(
        SESSION_TYPE="mongodb",
        SESSION_MONGODB=client,
        SESSION_MONGODB_DB="server_session_bench",
        SESSION_MONGODB_COLLECT=collection,
    )
    return lambda: client["server_session_bench"].drop_collection(collection)


BACKENDS = {
    "redis": redis_config,
    "memcached": memcached_config,
    "sqlite": sqlite_config,
    "postgres": postgres_config,
    "mongodb": mongodb_config,
}


def make_app(backend):
    app = Flask(__name__)
    app.secret_key = SECRET
    app.config.update(SESSION_USE_SIGNER=True, SESSION_KEY_PREFIX=PREFIX)
    cleanup = BACKENDS[backend](app)
    Session(app)
    return app, cleanup


def one_request(app, cookie):
    """One timed session open + read + write + save; returns (seconds, Set-Cookie, visits)."""
    interface = app.session_interface
    headers = {"Cookie": cookie} if cookie else {}
    ctx = app.test_request_context("/", headers=headers)
    with app.app_context():
        start = time.perf_counter()
        session = interface.open_session(app, ctx.request)
        visits = session.get("visits", 0) + 1
        session["visits"] = visits
        if "note" not in session:
            session["note"] = "x" * 180
        response = app.response_class(f"visits={visits}")
        interface.save_session(app, session, response)
        elapsed = time.perf_counter() - start
    return elapsed, response.headers.get("Set-Cookie"), visits


def measure(backend, rounds, per_round, warmup):
    app, cleanup = make_app(backend)
    try:
        _, set_cookie, _ = one_request(app, None)
        cookie = f"{BROWSER_COOKIES}; {set_cookie.split(';')[0]}"
        expected = 1
        for _ in range(warmup):
            _, _, visits = one_request(app, cookie)
            expected += 1
            assert visits == expected, f"{backend}: the stored session was not read back"
        times = []
        for _ in range(rounds):
            times.extend(one_request(app, cookie)[0] for _ in range(per_round))
    finally:
        cleanup()
    times_us = sorted(t * 1e6 for t in times)
    return {
        "backend": backend,
        "requests": len(times_us),
        "median_us": round(statistics.median(times_us), 2),
        "mean_us": round(statistics.fmean(times_us), 2),
        "p10_us": round(times_us[len(times_us) // 10], 2),
        "p90_us": round(times_us[len(times_us) * 9 // 10], 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backends", nargs="*", help=f"any of {', '.join(BACKENDS)} (default: all)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(sorted(unknown))}")
    args.backends = args.backends or list(BACKENDS)
    failed = False
    for backend in args.backends:
        try:
            result = measure(backend, args.rounds, args.per_round, args.warmup)
        except Exception as err:  # a server that is down is reported, not fatal
            result = {"backend": backend, "skipped": f"{type(err).__name__}: {err}"[:200]}
            failed = True
        print(json.dumps(result), flush=True)
    return 1 if failed and len(args.backends) == 1 else 0


if __name__ == "__main__":
    sys.exit(main())
