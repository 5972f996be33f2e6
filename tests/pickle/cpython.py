"""CPython's side of tests/pickle.rs and of the pickle_decode fuzz corpus.

    python3 tests/pickle/cpython.py dump            -> {"0": hex, ..., "5": hex, "googol": hex}:
                                                       SAMPLE pickled with every protocol
    python3 tests/pickle/cpython.py check  < hex    -> loads a pickle Rust wrote, asserts it is
                                                       EXPECTED_BACK type for type (exit 1 if
                                                       not), prints it pickled again (protocol 5)
    python3 tests/pickle/cpython.py malicious DIR   -> [{name, global, hex, path}]: pickles that
                                                       create a file in DIR when loaded
    python3 tests/pickle/cpython.py loads  < hex    -> pickle.loads (the control: it runs them)
    python3 tests/pickle/cpython.py corpus DIR      -> writes the fuzz seed corpus into DIR
"""

import datetime
import json
import math
import os
import pickle
import pickletools
import subprocess
import sys

UTC = datetime.timezone.utc
IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30), "IST")
SHARED = [1, 2]

# Every type the Pickle codec reads (tests/pickle.rs holds the Values it must read them as).
SAMPLE = {
    "_permanent": True,
    "str": "h\u00e9llo \u2603 \U0001f600 \\ \n \r \x00 \x1a",
    "empty_str": "",
    "long_str": "x" * 300,
    "bytes": b"\x00\x01\xff\\\n",
    "empty_bytes": b"",
    "long_bytes": bytes(range(256)) * 2,
    "bytearray": bytearray(b"ba\x00"),
    "ints": [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1,
             2**63 - 1, 2**63, 2**64 - 1, -(2**63)],
    "big": [2**64, -(2**63) - 1, 2**70, -(2**70), 10**100],
    "floats": [1.5, -0.0, 1e300, math.inf, -math.inf, 0.1],
    "nan": math.nan,
    "true": True,
    "false": False,
    "none": None,
    "list": [1, "a", [2, [3]]],
    "tuple": (1, "a", (2,)),
    "empty": [[], (), {}],
    "dict": {"k": {"nested": [None]}, 7: "int", (1, "t"): "tuple", frozenset([2]): "frozenset",
             b"b": "bytes", None: "none", 2.5: "float", False: "bool"},
    "set": {3},
    "frozenset": frozenset(["f"]),
    "naive": datetime.datetime(2030, 1, 2, 3, 4, 5),
    "naive_us": datetime.datetime(2030, 1, 2, 3, 4, 5, 123456),
    "utc": datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
    "utc_us": datetime.datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    "offset": datetime.datetime(2030, 1, 2, 8, 34, 5, tzinfo=IST),
    "old": datetime.datetime(1, 1, 1, tzinfo=UTC),
    "date": datetime.date(2030, 1, 2),
    "in_list": [datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)],
    "shared": [SHARED, SHARED],
}

# What the session tests/pickle.rs encodes must load as, type for type.
EXPECTED_BACK = {
    "_permanent": True,
    "str": "h\u00e9llo \u2603 \U0001f600 \\ \n \r \x00 \x1a",
    "bytes": b"\x00\x01\xff\\\n",
    "long_bytes": bytes(range(256)) * 2,
    "ints": [0, -1, 255, 256, 65535, 65536, -(2**31), -(2**63), 2**64 - 1],
    "big": [2**70, -(2**70), 10**100],
    "float": 1.5,
    "f32": 0.5,
    "nan": math.nan,
    "false": False,
    "none": None,
    "list": [1, "a", [2]],
    "map": {"k": [None], 7: "int", (1, ("t",)): "tuple", b"b": "bytes", None: "none",
            2.5: "float"},
    "utc": datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
    "utc_us": datetime.datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    "old": datetime.datetime(1, 1, 1, tzinfo=UTC),
}


def same(a, b, path="session"):
    """Raises AssertionError naming `path` unless `a` and `b` are equal and of the same types."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} {a!r} is not {type(b).__name__} {b!r}"
    if isinstance(a, float) and math.isnan(b):
        assert math.isnan(a), f"{path}: {a!r} is not nan"
    elif isinstance(a, float):
        assert a == b and math.copysign(1, a) == math.copysign(1, b), f"{path}: {a!r} != {b!r}"
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert len(a) == len(b), f"{path}: keys {list(a)} != {list(b)}"
        for (ka, va), (kb, vb) in zip(a.items(), b.items()):
            same(ka, kb, f"{path} key {kb!r}")
            same(va, vb, f"{path}[{kb!r}]")
    elif isinstance(a, datetime.datetime):
        assert a == b and a.tzinfo == b.tzinfo, f"{path}: {a!r} != {b!r}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def first_global(data):
    """The `module.name` of the first global a pickle names (as pickle would import it)."""
    strings = []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            return ".".join(arg.split(" ", 1))
        if op.name == "STACK_GLOBAL":
            return ".".join(strings[-2:])
        if isinstance(arg, str):
            strings.append(arg)
    return None


class Reduce:
    """An object whose pickle calls `func(*args)` when loaded."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class Plain:
    """An instance of an ordinary class: pickled by NEWOBJ and BUILD."""

    def __init__(self):
        self.name = "plain"


def malicious(directory):
    """Pickles that create `directory/<name>` when Python loads them."""
    def path(name):
        return os.path.join(directory, name)

    cases = [
        ("os_system_p2", 2, Reduce(os.system, "touch " + path("os_system_p2"))),
        ("os_system_p5", 5, Reduce(os.system, "touch " + path("os_system_p5"))),
        ("open_p0", 0, Reduce(open, path("open_p0"), "w")),
        ("exec_p4", 4, Reduce(exec, f"open({path('exec_p4')!r}, 'w').close()")),
        ("subprocess_p3", 3, Reduce(subprocess.call, ["touch", path("subprocess_p3")])),
        ("in_session_p4", 4,
         {"_permanent": True, "user": Reduce(os.system, "touch " + path("in_session_p4"))}),
    ]
    out = []
    for name, protocol, obj in cases:
        data = pickle.dumps(obj, protocol=protocol)
        out.append({"name": name, "global": first_global(data), "hex": data.hex(),
                    "path": path(name)})
    plain = pickle.dumps({"user": Plain()}, protocol=4)
    out.append({"name": "plain_instance", "global": first_global(plain), "hex": plain.hex(),
                "path": None})
    return out


def corpus(directory):
    """The fuzz seeds: small sessions as Flask apps keep them, at every protocol."""
    os.makedirs(directory, exist_ok=True)
    login = {"_permanent": True, "_user_id": "42", "_fresh": True, "_id": "f" * 32,
             "csrf_token": "0123456789abcdef" * 2}
    seeds = {
        "login_p2": (login, 2),
        "login_p4": (login, 4),
        "flashes_p5": ({"_flashes": [("message", "Hello"), ("error", "\u2603")]}, 5),
        "datetimes_p0": ({k: SAMPLE[k] for k in ("naive_us", "utc_us", "offset", "date")}, 0),
        "datetimes_p5": ({k: SAMPLE[k] for k in ("naive_us", "utc_us", "offset", "date")}, 5),
        "numbers_p1": ({k: SAMPLE[k] for k in ("ints", "big", "floats", "true")}, 1),
        "bytes_p3": ({k: SAMPLE[k] for k in ("bytes", "bytearray", "empty_bytes")}, 3),
        "containers_p4": ({k: SAMPLE[k] for k in ("tuple", "dict", "set", "frozenset",
                                                  "shared", "empty")}, 4),
        "evil_p2": (Reduce(os.system, "true"), 2),
    }
    for name, (obj, protocol) in seeds.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(pickle.dumps(obj, protocol=protocol))
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with open(os.path.join(directory, f"sample_p{protocol}"), "wb") as f:
            f.write(pickle.dumps(SAMPLE, protocol=protocol))


def main(argv):
    command = argv[1]
    if command == "dump":
        out = {str(p): pickle.dumps(SAMPLE, protocol=p).hex()
               for p in range(pickle.HIGHEST_PROTOCOL + 1)}
        out["googol"] = (10**100).to_bytes(42, "little", signed=True).hex()
        print(json.dumps(out))
    elif command == "check":
        loaded = pickle.loads(bytes.fromhex(sys.stdin.read().strip()))
        try:
            same(loaded, EXPECTED_BACK)
        except AssertionError as e:
            print(f"cpython.py: {e}", file=sys.stderr)
            return 1
        print(pickle.dumps(loaded, protocol=5).hex())
    elif command == "malicious":
        print(json.dumps(malicious(argv[2])))
    elif command == "loads":
        pickle.loads(bytes.fromhex(sys.stdin.read().strip()))
    elif command == "corpus":
        corpus(argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
