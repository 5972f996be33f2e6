//! The codecs against payloads written by Flask-Session 0.8.0's own libraries (msgspec 0.22).

use server_session::codec::{Codec, Json, MsgPack, SessionMap, Value};

const VECTORS: &str = include_str!("vectors/flask_session_0_8.json");

/// One payload of the vector file.
struct Payload {
    name: String,
    msgpack: Vec<u8>,
    json: String,
}

fn payloads() -> Vec<Payload> {
    let file: serde_json::Value = serde_json::from_str(VECTORS).expect("vector file is JSON");
    let list = file["payloads"].as_array().expect("payloads array");
    assert!(list.len() >= 11, "the vector file lost payloads");
    list.iter()
        .map(|p| Payload {
            name: p["name"].as_str().expect("name").to_owned(),
            msgpack: hex(p["msgpack_hex"].as_str().expect("msgpack_hex")),
            json: p["json"].as_str().expect("json").to_owned(),
        })
        .collect()
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn payload(name: &str) -> Payload {
    payloads()
        .into_iter()
        .find(|p| p.name == name)
        .expect("payload exists")
}

fn msgpack_map(name: &str) -> SessionMap {
    MsgPack.decode(&payload(name).msgpack).expect("decodes")
}

fn keys(map: &SessionMap) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

#[test]
fn every_msgpack_payload_round_trips_byte_for_byte() {
    for p in payloads() {
        let map = MsgPack
            .decode(&p.msgpack)
            .unwrap_or_else(|e| panic!("{}: {e:?}", p.name));
        let again = MsgPack.encode(&map).expect("encodes");
        assert_eq!(again, p.msgpack, "{}", p.name);
    }
}

#[test]
fn every_json_payload_round_trips_byte_for_byte() {
    for p in payloads() {
        let map = Json
            .decode(p.json.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e:?}", p.name));
        let again = Json.encode(&map).expect("encodes");
        assert_eq!(
            String::from_utf8(again).expect("UTF-8"),
            p.json,
            "{}",
            p.name
        );
    }
}

#[test]
fn every_msgpack_payload_encodes_to_the_vector_json() {
    // bytes -> base64 and timestamps -> RFC 3339, exactly as msgspec's JSON encoder writes them.
    for p in payloads() {
        let map = MsgPack.decode(&p.msgpack).expect("decodes");
        let json = Json.encode(&map).expect("encodes");
        assert_eq!(
            String::from_utf8(json).expect("UTF-8"),
            p.json,
            "{}",
            p.name
        );
    }
}

#[test]
fn msgpack_and_json_agree_on_keys_and_order() {
    for p in payloads() {
        let from_msgpack = MsgPack.decode(&p.msgpack).expect("decodes");
        let from_json = Json.decode(p.json.as_bytes()).expect("decodes");
        assert_eq!(keys(&from_msgpack), keys(&from_json), "{}", p.name);
    }
}

#[test]
fn flask_docs_example_built_in_code_encodes_to_the_vector() {
    let mut map = SessionMap::default();
    map.insert("_permanent".to_owned(), Value::Boolean(true));
    map.insert("value".to_owned(), Value::from("42"));
    let bytes = MsgPack.encode(&map).expect("encodes");
    assert_eq!(bytes, hex("82aa5f7065726d616e656e74c3a576616c7565a23432"));
    assert_eq!(bytes, payload("flask_docs_example").msgpack);
    let json = Json.encode(&map).expect("encodes");
    assert_eq!(json, br#"{"_permanent":true,"value":"42"}"#);
}

#[test]
fn ints_keep_width_and_sign() {
    let map = msgpack_map("ints");
    let expected_keys = [
        "_permanent",
        "small",
        "neg",
        "byte",
        "word",
        "big",
        "negbig",
        "max",
    ];
    assert_eq!(keys(&map), expected_keys);
    assert_eq!(map["small"], Value::from(7_u64));
    assert_eq!(map["neg"], Value::from(-7_i64));
    assert_eq!(map["byte"], Value::from(200_u64));
    assert_eq!(map["word"], Value::from(300_u64));
    assert_eq!(map["big"], Value::from(1_099_511_627_776_u64));
    assert_eq!(map["negbig"], Value::from(-1_099_511_627_776_i64));
    assert_eq!(map["max"], Value::from(9_223_372_036_854_775_807_u64));
    assert!(map["max"].is_u64(), "max is a PosInt");
    assert!(map["neg"].as_i64().is_some_and(|n| n < 0) && map["neg"].as_u64().is_none());
    assert!(map["negbig"].as_u64().is_none(), "negbig is a NegInt");

    let json = Json
        .decode(payload("ints").json.as_bytes())
        .expect("decodes");
    assert_eq!(json, map, "JSON integers decode to the same values");
}

#[test]
fn floats_are_f64() {
    let map = msgpack_map("floats");
    assert_eq!(keys(&map), ["_permanent", "half", "pi", "neg"]);
    assert_eq!(map["half"], Value::F64(1.5));
    assert_eq!(map["pi"], Value::F64(std::f64::consts::PI));
    assert_eq!(map["neg"], Value::F64(-0.25));
    let json = Json
        .decode(payload("floats").json.as_bytes())
        .expect("decodes");
    assert_eq!(json, map);
}

#[test]
fn strings_including_unicode_and_str8() {
    let map = msgpack_map("strings");
    assert_eq!(
        keys(&map),
        ["_permanent", "empty", "ascii", "unicode", "long"]
    );
    assert_eq!(map["empty"], Value::from(""));
    assert_eq!(map["unicode"], Value::from("héllo ✓"));
    assert_eq!(map["long"], Value::from("x".repeat(40)));
    assert!(
        payload("strings")
            .msgpack
            .windows(2)
            .any(|w| w == [0xd9, 40])
    );
}

#[test]
fn nested_values_keep_their_structure() {
    let map = msgpack_map("nested");
    assert_eq!(keys(&map), ["_permanent", "l", "d", "b", "n"]);
    let list = Value::Array(vec![
        Value::from(1_u64),
        Value::from("a"),
        Value::Array(vec![Value::F64(2.5)]),
    ]);
    assert_eq!(map["l"], list);
    let inner = Value::Map(vec![(Value::from("z"), Value::Nil)]);
    let d = Value::Map(vec![(
        Value::from("k"),
        Value::Array(vec![Value::from(1_u64), inner]),
    )]);
    assert_eq!(map["d"], d);
    assert_eq!(map["b"], Value::Boolean(true));
    assert_eq!(map["n"], Value::Nil);
}

#[test]
fn bytes_are_binary() {
    let map = msgpack_map("bytes");
    assert_eq!(map["by"], Value::Binary(vec![0, 1, 255]));
    // JSON has no bytes: Python reads the base64 text back as a string, and so do we.
    let json = Json
        .decode(payload("bytes").json.as_bytes())
        .expect("decodes");
    assert_eq!(json["by"], Value::from("AAH/"));
}

#[test]
fn aware_datetimes_are_timestamp_extensions() {
    let map = msgpack_map("aware_datetime");
    assert_eq!(keys(&map), ["_permanent", "dt", "dt_us"]);
    // 2030-01-02T03:04:05Z: 32-bit seconds (fixext4).
    assert_eq!(
        map["dt"],
        Value::Ext(-1, 1_893_553_445_u32.to_be_bytes().to_vec())
    );
    // .123456: 30-bit nanoseconds and 34-bit seconds (fixext8).
    let packed = (123_456_000_u64 << 34) | 1_893_553_445;
    assert_eq!(map["dt_us"], Value::Ext(-1, packed.to_be_bytes().to_vec()));
    let json = Json
        .decode(payload("aware_datetime").json.as_bytes())
        .expect("decodes");
    assert_eq!(json["dt"], Value::from("2030-01-02T03:04:05Z"));
    assert_eq!(json["dt_us"], Value::from("2030-01-02T03:04:05.123456Z"));
}

#[test]
fn flashes_and_permanent_flag() {
    let map = msgpack_map("flashes");
    assert_eq!(keys(&map), ["_permanent", "_flashes"]);
    let pair = |a: &str, b: &str| Value::Array(vec![Value::from(a), Value::from(b)]);
    let flashes = Value::Array(vec![pair("message", "Saved"), pair("error", "Oops")]);
    assert_eq!(map["_flashes"], flashes);
    assert_eq!(msgpack_map("non_permanent").get("_permanent"), None);
    assert_eq!(
        msgpack_map("new_permanent_session")["_permanent"],
        Value::Boolean(true)
    );
}

#[test]
fn a_python_session_survives_a_rust_read_modify_write() {
    let p = payload("aware_datetime");
    let mut map = MsgPack.decode(&p.msgpack).expect("decodes");
    map.insert("visits".to_owned(), Value::from(1_u64));
    let bytes = MsgPack.encode(&map).expect("encodes");
    // The original entries come out byte for byte, the new one is appended.
    assert_eq!(bytes[0], 0x84);
    assert_eq!(bytes[1..p.msgpack.len()], p.msgpack[1..]);
    assert_eq!(bytes[p.msgpack.len()..], *b"\xa6visits\x01");
}
