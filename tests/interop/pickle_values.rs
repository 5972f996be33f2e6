//! What only a pickle holds, on the filesystem backend (where Flask-Session pickles the session
//! dict): ints beyond 64 bits, naive datetimes, dates, tuples, sets, bytearrays and tuple keys.
//! Rust reads them as the `Pickle` codec maps them (see its docs), and a Rust write keeps them,
//! with the changes of type that mapping documents.

use super::*;

/// Python's reprs of `PICKLE_MATRIX` (`flask_app.py`), in order.
const PYTHON_REPRS: [(&str, &str); 8] = [
    ("huge", "1267650600228229401496703205376"),
    ("neghuge", "-1180591620717411303424"),
    ("naive", "datetime.datetime(2030, 1, 2, 3, 4, 5, 123456)"),
    ("day", "datetime.date(2030, 1, 2)"),
    ("pair", "(1, 'two')"),
    ("tags", "frozenset({'a'})"),
    ("raw", r"bytearray(b'\x00\xff')"),
    ("tuplekey", "{(1, 2): 'x'}"),
];

/// The same values after a Rust write, as the `Pickle` codec writes them back: the ints and
/// the tuple key unchanged; a naive datetime and a date as their ISO text (the form msgspec
/// gives them in MessagePack, and what Flask-Session 0.8's own upgrade of a pickled session
/// makes of them); a tuple and a set as lists; a bytearray as bytes.
const AFTER_A_RUST_WRITE: [(&str, &str); 8] = [
    ("huge", "1267650600228229401496703205376"),
    ("neghuge", "-1180591620717411303424"),
    ("naive", "'2030-01-02T03:04:05.123456'"),
    ("day", "'2030-01-02'"),
    ("pair", "[1, 'two']"),
    ("tags", "['a']"),
    ("raw", r"b'\x00\xff'"),
    ("tuplekey", "{(1, 2): 'x'}"),
];

/// -2**80, as the `Pickle` codec holds an int that fits neither `i64` nor `u64`: its
/// little-endian two's complement in the fewest bytes.
fn minus_2_pow_80() -> Value {
    let mut bytes = vec![0; 10];
    bytes.push(0xff);
    Value::Ext(Pickle::BIG_INT_EXT, bytes)
}

/// Python stores `PICKLE_MATRIX`; Rust reads every value in its documented form and writes an
/// int beyond 64 bits of its own; Python then reads the documented forms back, its own big ints
/// exactly, and Rust's as an `int`.
pub(crate) fn pickle_only_values_cross_both_ways<S: Store, C: Format>(ctx: &Ctx<S, C>) {
    let cookie = ctx.py(None, json!([["set_pickle_matrix"]])).cookie.value();
    let mut expected = pairs(&[PERMANENT]);
    expected.extend(pairs(&PYTHON_REPRS));
    let own = ctx.py(Some(&cookie), json!([]));
    assert_eq!(own.items, expected, "Flask-Session's own round trip");

    ctx.rs(Some(&cookie), |s| {
        check_pickled_values_in_rust(s);
        s.insert_value("rust_huge", minus_2_pow_80())
    });
    let mut expected = pairs(&[PERMANENT]);
    expected.extend(pairs(&AFTER_A_RUST_WRITE));
    expected.extend(pairs(&[("rust_huge", "-1208925819614629174706176")]));
    assert_eq!(ctx.py(Some(&cookie), json!([])).items, expected);
}

/// Rust's view of `PICKLE_MATRIX`.
fn check_pickled_values_in_rust<S: Store, C: Codec>(s: &mut Session<'_, S, C>) {
    let big = |mut bytes: Vec<u8>, top: u8| {
        bytes.push(top);
        Value::Ext(Pickle::BIG_INT_EXT, bytes)
    };
    let tuple_key = Value::Array(vec![Value::from(1), Value::from(2)]);
    let expected = [
        ("huge", big(vec![0; 12], 0x10)),
        ("neghuge", big(vec![0; 8], 0xc0)),
        ("naive", Value::from("2030-01-02T03:04:05.123456")),
        ("day", Value::from("2030-01-02")),
        (
            "pair",
            Value::Array(vec![Value::from(1), Value::from("two")]),
        ),
        ("tags", Value::Array(vec![Value::from("a")])),
        ("raw", Value::Binary(vec![0, 0xff])),
        ("tuplekey", Value::Map(vec![(tuple_key, Value::from("x"))])),
    ];
    for (key, value) in expected {
        assert_eq!(s.get_value(key).unwrap(), Some(&value), "{key}");
    }
    let naive = s.get::<String>("naive").unwrap();
    assert_eq!(
        naive.as_deref(),
        Some("2030-01-02T03:04:05.123456"),
        "typed"
    );
}
