//! The `Pickle` codec against real CPython, driven through `tests/pickle/cpython.py` with the
//! interpreter in `SERVER_SESSION_INTEROP_PYTHON` (else `python3`): CPython's pickles of a
//! session holding every type, protocols 0 to 5, decoded value by value; sessions Rust encodes,
//! loaded and checked type for type by Python; malicious pickles refused without running (each
//! would create a file). Without a Python a test prints SKIP, or fails under
//! `SERVER_SESSION_REQUIRE_SERVICES=1`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value as Json;
use server_session::Error;
use server_session::codec::{Codec, Pickle, PickleError, SessionMap, Value};
use server_session::store::conformance::service_unavailable;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pickle/cpython.py");

/// The interpreter, if it runs; otherwise SKIP (or a panic when services are required).
fn python(test: &str) -> Option<String> {
    let python = std::env::var("SERVER_SESSION_INTEROP_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_owned());
    let works = Command::new(&python)
        .args(["-c", "import pickle, pickletools"])
        .status()
        .is_ok_and(|status| status.success());
    if !works {
        service_unavailable(test);
        return None;
    }
    Some(python)
}

/// Runs the script with `args` and `input` on its stdin; its stdout (panics on failure, with
/// the script's own message on stderr).
fn script(python: &str, args: &[&str], input: &str) -> Result<String, String> {
    let mut child = Command::new(python)
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).expect("write to Python");
    drop(stdin);
    let out = child.wait_with_output().expect("Python ran");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    match out.status.success() {
        true => Ok(stdout),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn int(n: i64) -> Value {
    Value::from(n)
}

fn ints(ns: &[i64]) -> Vec<Value> {
    ns.iter().copied().map(int).collect()
}

fn big(le: &[u8]) -> Value {
    Value::Ext(Pickle::BIG_INT_EXT, le.to_vec())
}

fn array(items: impl IntoIterator<Item = Value>) -> Value {
    Value::Array(items.into_iter().collect())
}

fn ts(data: &[u8]) -> Value {
    Value::Ext(-1, data.to_vec())
}

/// The Values `SAMPLE` of cpython.py must read as (`googol` is 10**100 as CPython gives it).
fn sample(googol: Value) -> Vec<(&'static str, Value)> {
    let long_bytes: Vec<u8> = (0..=255).chain(0..=255).collect();
    let mut ints = ints(&[0, 1, -1, 255, 256, 65_535, 65_536, (1 << 31) - 1, 1 << 31]);
    ints.extend([
        int(-(1 << 31)),
        int(-(1 << 31) - 1),
        int(i64::MAX),
        Value::from(1_u64 << 63),
    ]);
    ints.extend([Value::from(u64::MAX), int(i64::MIN)]);
    let utc = ts(b"\x70\xdd\x55\x25"); // 2030-01-02T03:04:05Z
    let dict = vec![
        (
            Value::from("k"),
            Value::Map(vec![(Value::from("nested"), array([Value::Nil]))]),
        ),
        (int(7), Value::from("int")),
        (array([int(1), Value::from("t")]), Value::from("tuple")),
        (array([int(2)]), Value::from("frozenset")),
        (Value::Binary(b"b".to_vec()), Value::from("bytes")),
        (Value::Nil, Value::from("none")),
        (Value::F64(2.5), Value::from("float")),
        (Value::Boolean(false), Value::from("bool")),
    ];
    vec![
        ("_permanent", Value::Boolean(true)),
        ("str", Value::from("héllo ☃ 😀 \\ \n \r \0 \x1a")),
        ("empty_str", Value::from("")),
        ("long_str", Value::from("x".repeat(300))),
        ("bytes", Value::Binary(b"\x00\x01\xff\\\n".to_vec())),
        ("empty_bytes", Value::Binary(vec![])),
        ("long_bytes", Value::Binary(long_bytes)),
        ("bytearray", Value::Binary(b"ba\x00".to_vec())),
        ("ints", Value::Array(ints)),
        (
            "big",
            array([
                big(&[0, 0, 0, 0, 0, 0, 0, 0, 1]),
                big(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff]),
                big(&[0, 0, 0, 0, 0, 0, 0, 0, 0x40]),
                big(&[0, 0, 0, 0, 0, 0, 0, 0, 0xc0]),
                googol,
            ]),
        ),
        (
            "floats",
            array([1.5, -0.0, 1e300, f64::INFINITY, f64::NEG_INFINITY, 0.1].map(Value::F64)),
        ),
        ("true", Value::Boolean(true)),
        ("false", Value::Boolean(false)),
        ("none", Value::Nil),
        (
            "list",
            array([int(1), Value::from("a"), array([int(2), array([int(3)])])]),
        ),
        ("tuple", array([int(1), Value::from("a"), array([int(2)])])),
        ("empty", array([array([]), array([]), Value::Map(vec![])])),
        ("dict", Value::Map(dict)),
        ("set", array([int(3)])),
        ("frozenset", array([Value::from("f")])),
        ("naive", Value::from("2030-01-02T03:04:05")),
        ("naive_us", Value::from("2030-01-02T03:04:05.123456")),
        ("utc", utc.clone()),
        ("utc_us", ts(b"\x1d\x6f\x28\x00\x70\xdd\x55\x25")),
        ("offset", utc.clone()), // 08:34:05+05:30
        (
            "old",
            ts(b"\x00\x00\x00\x00\xff\xff\xff\xf1\x88\x6e\x09\x00"),
        ),
        ("date", Value::from("2030-01-02")),
        ("in_list", array([utc])),
        (
            "shared",
            array([array([int(1), int(2)]), array([int(1), int(2)])]),
        ),
    ]
}

#[test]
fn cpython_pickles_of_every_protocol_decode_value_by_value() {
    let Some(python) = python("cpython_pickles_of_every_protocol_decode_value_by_value") else {
        return;
    };
    let dump: Json =
        serde_json::from_str(&script(&python, &["dump"], "").expect("dump")).expect("JSON");
    let googol = big(&unhex(dump["googol"].as_str().expect("googol")));
    let expected = sample(googol);
    for protocol in 0..=5 {
        let bytes = unhex(
            dump[protocol.to_string()]
                .as_str()
                .expect("a pickle per protocol"),
        );
        let map = Pickle
            .decode(&bytes)
            .unwrap_or_else(|e| panic!("protocol {protocol}: {e}"));
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        let mut names: Vec<&str> = expected.iter().map(|(k, _)| *k).collect();
        names.insert(
            names.iter().position(|k| *k == "floats").expect("floats") + 1,
            "nan",
        );
        assert_eq!(keys, names, "protocol {protocol}");
        for (key, value) in &expected {
            assert_eq!(&map[*key], value, "protocol {protocol}, key {key}");
        }
        assert!(
            map["nan"].as_f64().is_some_and(f64::is_nan),
            "protocol {protocol}"
        );
        let negative_zero = &map["floats"][1];
        assert!(
            negative_zero.as_f64().is_some_and(f64::is_sign_negative),
            "protocol {protocol}"
        );
        // What Rust writes back, it reads back the same.
        let again = Pickle
            .decode(&Pickle.encode(&map).expect("encodes"))
            .expect("decodes");
        assert_eq!(Pickle.encode(&again).unwrap(), Pickle.encode(&map).unwrap());
    }
}

/// What `EXPECTED_BACK` of cpython.py is, as Rust values.
fn rust_session() -> SessionMap {
    let mut ints = ints(&[
        0,
        -1,
        255,
        256,
        65_535,
        65_536,
        i64::from(i32::MIN),
        i64::MIN,
    ]);
    ints.push(Value::from(u64::MAX));
    let map = vec![
        (Value::from("k"), array([Value::Nil])),
        (int(7), Value::from("int")),
        (
            array([int(1), array([Value::from("t")])]),
            Value::from("tuple"),
        ),
        (Value::Binary(b"b".to_vec()), Value::from("bytes")),
        (Value::Nil, Value::from("none")),
        (Value::F64(2.5), Value::from("float")),
    ];
    let googol = Pickle.decode(b"}(\x8c\x01aL10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000L\nu.");
    let entries = [
        ("_permanent", Value::Boolean(true)),
        ("str", Value::from("héllo ☃ 😀 \\ \n \r \0 \x1a")),
        ("bytes", Value::Binary(b"\x00\x01\xff\\\n".to_vec())),
        (
            "long_bytes",
            Value::Binary((0..=255).chain(0..=255).collect()),
        ),
        ("ints", Value::Array(ints)),
        (
            "big",
            array([
                big(&[0, 0, 0, 0, 0, 0, 0, 0, 0x40]),
                big(&[0, 0, 0, 0, 0, 0, 0, 0, 0xc0]),
                googol.expect("decodes")["a"].clone(),
            ]),
        ),
        ("float", Value::F64(1.5)),
        ("f32", Value::F32(0.5)),
        ("nan", Value::F64(f64::NAN)),
        ("false", Value::Boolean(false)),
        ("none", Value::Nil),
        ("list", array([int(1), Value::from("a"), array([int(2)])])),
        ("map", Value::Map(map)),
        ("utc", ts(b"\x70\xdd\x55\x25")),
        ("utc_us", ts(b"\x1d\x6f\x28\x00\x70\xdd\x55\x25")),
        (
            "old",
            ts(b"\x00\x00\x00\x00\xff\xff\xff\xf1\x88\x6e\x09\x00"),
        ),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

#[test]
fn python_loads_what_rust_encodes_into_the_same_types() {
    let Some(python) = python("python_loads_what_rust_encodes_into_the_same_types") else {
        return;
    };
    let session = rust_session();
    let bytes = Pickle.encode(&session).expect("encodes");
    let again = script(&python, &["check"], &hex(&bytes)).unwrap_or_else(|e| panic!("Python: {e}"));
    // Python's own pickle (protocol 5) of what it loaded reads as what Rust wrote; only the
    // f32 became a float and the NaN is compared apart.
    let mut back = Pickle.decode(&unhex(again.trim())).expect("decodes");
    assert!(
        back.swap_remove("nan")
            .and_then(|v| v.as_f64())
            .is_some_and(f64::is_nan)
    );
    let mut expected = session;
    expected.swap_remove("nan");
    expected.insert("f32".into(), Value::F64(0.5));
    assert_eq!(back, expected);
}

#[test]
fn python_notices_a_wrong_type() {
    let Some(python) = python("python_notices_a_wrong_type") else {
        return;
    };
    // The check is strict: a list where a tuple key belongs, or an int for a bool, fails it.
    let mut session = rust_session();
    session.insert("false".into(), int(0));
    let error = script(&python, &["check"], &hex(&Pickle.encode(&session).unwrap()));
    assert!(error.expect_err("a mismatch").contains("session['false']"));
}

#[test]
fn malicious_pickles_are_refused_without_running_anything() {
    let Some(python) = python("malicious_pickles_are_refused_without_running_anything") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dir_text = dir.path().to_str().expect("UTF-8 path");
    let cases: Json =
        serde_json::from_str(&script(&python, &["malicious", dir_text], "").expect("malicious"))
            .expect("JSON");
    let cases = cases.as_array().expect("a list");
    assert!(cases.len() >= 7);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let bytes = unhex(case["hex"].as_str().expect("hex"));
        let Err(Error::Decode(source)) = Pickle.decode(&bytes) else {
            panic!("{name}: decoded");
        };
        let global = case["global"].as_str().expect("the global it names");
        assert_eq!(
            source.downcast_ref::<PickleError>(),
            Some(&PickleError::Global(global.into())),
            "{name}"
        );
        assert!(source.to_string().contains(global), "{name}: {source}");
        let Some(path) = case["path"].as_str() else {
            continue;
        };
        assert!(
            !std::path::Path::new(path).exists(),
            "{name}: the file was created"
        );
        // The control: Python itself does run it.
        script(&python, &["loads"], &hex(&bytes)).expect("Python loads it");
        assert!(
            std::path::Path::new(path).exists(),
            "{name}: not a live pickle"
        );
    }
}
