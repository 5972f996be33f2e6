"""The Python side of tests/interop.rs: Flask apps using Flask-Session 0.8, driven with Flask's
test client, answering one JSON request per line on stdin with one JSON line on stdout.

Run with the venv scripts/interop.sh creates. Each request names the app it is for by its
configuration (backend, server URL, key prefix, table or collection, signer, format...); an app
is built on first use and kept until a `close` request for the same configuration.

Requests (`op`):
  hello                  -> the versions of flask, flask-session and msgspec
  request app cookie actions
                         -> one HTTP request to the app. `cookie` is the Cookie header (or
                            null), `actions` a list applied to `flask.session` in order. Answers
                            the session as Python sees it after the actions ([key, repr(value)]
                            pairs, in order), the bytes Flask-Session would store for the
                            session as it was loaded, the response's Set-Cookie headers and,
                            after a `take_flashes` action, the flashed messages it took
  put_pickle app data protocol
                         -> writes `data` the way Flask-Session 0.6 and older did (pickle),
                            through the backend's own write path; answers the cookie
  matrix                 -> [key, repr(value)] for every entry of VALUE_MATRIX, in order
  cache dir threshold calls
                         -> calls on cachelib's FileSystemCache(dir, threshold), the cache
                            Flask-Session's filesystem backend uses (made on first use of the
                            pair, so its count is reset then, as at an app's start), for
                            tests/filesystem_cachelib.rs. `calls` are [method, args...]
                            (set, get, delete, has, file_count, prune); answers their results
  close app              -> disposes of the app's clients and forgets the app
Every answer has "ok" and the request's "id"; a failure answers "ok": false and "error", the
Python traceback.
"""

import datetime
import json
import pickle
import sys
import traceback
import warnings
from importlib.metadata import version

import flask
from flask import Flask, request, session
from flask_session import Session

# SESSION_USE_SIGNER is deprecated in Flask-Session 0.8 (but supported): keep stderr quiet.
warnings.simplefilter("ignore", DeprecationWarning)

UTC = datetime.timezone.utc

# Every Python type Flask-Session 0.8 can store, as a Python app would put it in the session.
VALUE_MATRIX = {
    "text": "héllo wörld ✓ 日本",
    "big": 2**40,
    "negbig": -(2**40),
    "u64max": 2**64 - 1,
    "i64min": -(2**63),
    "float": 3.141592653589793,
    "negfloat": -0.25,
    "yes": True,
    "no": False,
    "none": None,
    "list": [1, "two", [3.5, None], {"k": False}],
    "dict": {"a": 1, "nested": {"b": [True, "x"]}, "é": "ü"},
    "bytes": b"\x00\x01\xfe\xff",
    "when": datetime.datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
}

# What only a pickle holds (the filesystem backend pickles the session dict): ints beyond 64
# bits, naive datetimes and dates, tuples, sets, bytearrays, tuple keys.
PICKLE_MATRIX = {
    "huge": 2**100,
    "neghuge": -(2**70),
    "naive": datetime.datetime(2030, 1, 2, 3, 4, 5, 123456),
    "day": datetime.date(2030, 1, 2),
    "pair": (1, "two"),
    "tags": frozenset({"a"}),
    "raw": bytearray(b"\x00\xff"),
    "tuplekey": {(1, 2): "x"},
}

# SESSION_SERIALIZATION_FORMAT per format: the filesystem backend pickles the session dict
# itself (cachelib's FileSystemSerializer), so its serializer, which must be one of
# msgspec's two formats, stores nothing.
SERIALIZATION_FORMAT = {"msgpack": "msgpack", "json": "json", "pickle": "msgpack"}


def build_app(cfg):
    """A Flask app with Flask-Session configured as `cfg` says."""
    app = Flask(f"interop_{cfg['backend']}")
    app.config.update(
        SECRET_KEY=cfg["secret_key"],
        SESSION_USE_SIGNER=cfg["signer"],
        SESSION_SERIALIZATION_FORMAT=SERIALIZATION_FORMAT[cfg["format"]],
        SESSION_KEY_PREFIX=cfg["prefix"],
        SESSION_COOKIE_NAME=cfg["cookie_name"],
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_PERMANENT=True,
        PERMANENT_SESSION_LIFETIME=datetime.timedelta(seconds=cfg["lifetime_secs"]),
    )
    closers = configure_backend(app, cfg)
    if cfg["backend"] == "redis-cluster":
        closers += init_session_on_cluster(app)
    else:
        Session(app)
    app.add_url_rule("/act", view_func=act, methods=["POST"])
    return app, closers


def configure_backend(app, cfg):
    """Sets SESSION_TYPE and the backend's client; returns what closes the client."""
    backend = cfg["backend"]
    if backend == "redis":
        import redis

        client = redis.Redis.from_url(cfg["url"], socket_timeout=10)
        app.config.update(SESSION_TYPE="redis", SESSION_REDIS=client)
        return [client.close]
    if backend == "redis-cluster":
        from redis.cluster import ClusterNode, RedisCluster

        hosts_ports = (node.rsplit(":", 1) for node in cfg["nodes"])
        nodes = [ClusterNode(host, int(port)) for host, port in hosts_ports]
        client = RedisCluster(startup_nodes=nodes, socket_timeout=10)
        app.config.update(SESSION_TYPE="redis", SESSION_REDIS=client)
        return [client.close]
    if backend == "memcached":
        from pymemcache.client.base import Client

        # default_noreply=False: pymemcache's default sends `set` and `delete` without waiting
        # for the reply, so another client could still read the old value afterwards.
        client = Client(cfg["server"], default_noreply=False, connect_timeout=5, timeout=10)
        app.config.update(SESSION_TYPE="memcached", SESSION_MEMCACHED=client)
        return [client.close]
    if backend == "sqlalchemy":
        from flask_sqlalchemy import SQLAlchemy

        app.config.update(SQLALCHEMY_DATABASE_URI=cfg["url"])
        db = SQLAlchemy(app)
        app.config.update(
            SESSION_TYPE="sqlalchemy",
            SESSION_SQLALCHEMY=db,
            SESSION_SQLALCHEMY_TABLE=cfg["table"],
        )

        def dispose():
            with app.app_context():
                db.session.remove()
                db.engine.dispose()

        return [dispose]
    if backend == "mongodb":
        from pymongo import MongoClient

        client = MongoClient(cfg["url"], serverSelectionTimeoutMS=10000)
        app.config.update(
            SESSION_TYPE="mongodb",
            SESSION_MONGODB=client,
            SESSION_MONGODB_DB=cfg["database"],
            SESSION_MONGODB_COLLECT=cfg["collection"],
        )
        return [client.close]
    if backend == "filesystem":
        app.config.update(SESSION_TYPE="filesystem", SESSION_FILE_DIR=cfg["dir"])
        return []
    raise ValueError(f"unknown backend {backend!r}")


def init_session_on_cluster(app):
    """Session(app) with a redis-py RedisCluster as SESSION_REDIS; returns what closes the
    client Flask-Session made instead.

    Flask-Session 0.8's RedisSessionInterface only accepts an `isinstance(client, redis.Redis)`
    client, and RedisCluster is no subclass of it: it warns "No valid Redis instance provided"
    and silently uses `redis.Redis()` on localhost:6379 (pallets-eco/flask-session#263, open,
    adds cluster support). Everything the interface sends is single-key (GET, SET key value EX,
    DEL key), so RedisCluster runs it as is: hand the interface the cluster client, as apps on
    a cluster do, and check that the interface made the fallback client, so that the day
    Flask-Session takes a RedisCluster itself this is noticed.
    """
    client = app.config["SESSION_REDIS"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        Session(app)
    interface = app.session_interface
    messages = [str(w.message) for w in caught]
    fell_back = any(m.startswith("No valid Redis instance") for m in messages)
    if interface.client is client or not fell_back:
        raise RuntimeError(f"Flask-Session took the RedisCluster client: {messages}")
    fallback, interface.client = interface.client, client
    return [fallback.close]


def act():
    """The one route: loads the session, applies the actions, describes the result."""
    interface = flask.current_app.session_interface
    loaded = stored_form(interface, session).hex()
    answer = {}
    for action in request.get_json()["actions"]:
        answer.update(apply(interface, action) or {})
    answer.update(
        sid=session.sid,
        items=[[key, repr(value)] for key, value in session.items()],
        loaded_encoded=loaded,
    )
    return answer


def stored_form(interface, session):
    """The bytes Flask-Session stores for `session`: its serializer's, except on the filesystem
    backend, where cachelib pickles the dict (pickle.HIGHEST_PROTOCOL)."""
    if flask.current_app.config["SESSION_TYPE"] == "filesystem":
        return interface.cache.serializer.dumps(dict(session))
    return interface.serializer.encode(session)


def apply(interface, action):
    """Applies one action to the session; returns what it adds to the answer, if anything."""
    name, args = action[0], action[1:]
    if name == "set":
        session[args[0]] = args[1]
    elif name == "set_matrix":
        session.update(VALUE_MATRIX)
    elif name == "set_pickle_matrix":
        session.update(PICKLE_MATRIX)
    elif name == "remove":
        session.pop(args[0], None)
    elif name == "clear":
        session.clear()
    elif name == "regenerate":
        interface.regenerate(session)
    elif name == "flash":
        flask.flash(args[1], args[0])
    elif name == "take_flashes":
        flashes = flask.get_flashed_messages(with_categories=True)
        return {"flashes": [list(pair) for pair in flashes]}
    else:
        raise ValueError(f"unknown action {name!r}")


def do_request(app, cookie, actions):
    client = app.test_client(use_cookies=False)
    headers = {"Cookie": cookie} if cookie else {}
    response = client.post("/act", json={"actions": actions}, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.get_data(as_text=True)}")
    answer = response.get_json()
    answer["set_cookie"] = response.headers.getlist("Set-Cookie")
    return answer


class PickleSerializer:
    """What Flask-Session 0.6 and older stored: pickle.dumps of the session dict."""

    protocol = pickle.DEFAULT_PROTOCOL

    @classmethod
    def encode(cls, data):
        return pickle.dumps(dict(data), protocol=cls.protocol)


def put_pickle(app, data, protocol):
    interface = app.session_interface
    sid = interface._generate_sid(interface.sid_length)
    legacy = interface.session_class(data, sid=sid)
    current, interface.serializer = interface.serializer, PickleSerializer
    PickleSerializer.protocol = protocol
    try:
        with app.app_context():
            store_id = interface._get_store_id(sid)
            interface._upsert_session(app.permanent_session_lifetime, legacy, store_id)
    finally:
        interface.serializer = current
    cookie = interface._sign(app, sid) if interface.use_signer else sid
    return {"sid": sid, "cookie": cookie, "pickle": PickleSerializer.encode(data).hex()}


def cache_call(cache, method, args):
    """One call on a FileSystemCache; what it returns, as JSON (a non-JSON value by repr)."""
    if method == "file_count":
        return cache._file_count
    if method == "prune":
        return cache._prune()
    result = getattr(cache, method)(*args)
    try:
        json.dumps(result)
    except TypeError:
        return repr(result)
    return result


class Driver:
    def __init__(self):
        self.apps = {}
        self.caches = {}

    def cache(self, req):
        from cachelib.file import FileSystemCache

        key = (req["dir"], req["threshold"])
        if key not in self.caches:
            self.caches[key] = FileSystemCache(req["dir"], threshold=req["threshold"], mode=0o600)
        cache = self.caches[key]
        return {"results": [cache_call(cache, call[0], call[1:]) for call in req["calls"]]}

    def app(self, cfg):
        key = json.dumps(cfg, sort_keys=True)
        if key not in self.apps:
            self.apps[key] = build_app(cfg)
        return self.apps[key][0]

    def handle(self, req):
        op = req["op"]
        if op == "hello":
            return {name: version(name) for name in ("flask", "flask-session", "msgspec")}
        if op == "request":
            return do_request(self.app(req["app"]), req.get("cookie"), req["actions"])
        if op == "put_pickle":
            return put_pickle(self.app(req["app"]), req["data"], req["protocol"])
        if op == "cache":
            return self.cache(req)
        if op == "matrix":
            return {"reprs": [[key, repr(value)] for key, value in VALUE_MATRIX.items()]}
        if op == "close":
            _, closers = self.apps.pop(json.dumps(req["app"], sort_keys=True), (None, []))
            for close in closers:
                close()
            return {}
        raise ValueError(f"unknown op {op!r}")


def main():
    driver = Driver()
    for line in sys.stdin:
        req = json.loads(line)
        try:
            answer = {"ok": True, **driver.handle(req)}
        except Exception:
            answer = {"ok": False, "error": traceback.format_exc()}
        answer["id"] = req.get("id")
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
