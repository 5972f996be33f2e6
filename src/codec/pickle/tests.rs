//! The codec as a whole: CPython's pickles, hand-made malicious and malformed ones, the limits,
//! and encoding.

use rmpv::Value;

use super::{MAX_NESTING, Pickle, PickleError};
use crate::Error;
use crate::codec::{Codec, MsgPack, SessionMap};

/// `pickle.dumps(SAMPLE, protocol)` by CPython 3.11 for protocols 0, 2 and 5, where SAMPLE is
/// `{'s': 'é☃\\\n', 'b': b'\x00\xff', 'i': -5, 'big': -2**70, 'f': 1.5, 't': True, 'n': None,
/// 'l': [1, (2, 3)], 'm': {1: 'a', (1, 2): None}, 'dt': datetime(2030, 1, 2, 3, 4, 5, 123456),
/// 'au': datetime(2030, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
/// 'day': date(2030, 1, 2), 'set': {7}, 'ba': bytearray(b'x')}`.
const CPYTHON: [&[u8]; 3] = [
    b"(dp0\nVs\np1\nV\xe9\\u2603\\u005c\\u000a\np2\nsVb\np3\nc_codecs\nencode\np4\n(V\\u0000\xff\np5\nVlatin1\np6\ntp7\nRp8\nsVi\np9\nI-5\nsVbig\np10\nL-1180591620717411303424L\nsVf\np11\nF1.5\nsVt\np12\nI01\nsVn\np13\nNsVl\np14\n(lp15\nI1\na(I2\nI3\ntp16\nasVm\np17\n(dp18\nI1\nVa\np19\ns(I1\nI2\ntp20\nNssVdt\np21\ncdatetime\ndatetime\np22\n(g4\n(V\x07\xee\x01\x02\x03\x04\x05\x01\xe2@\np23\ng6\ntp24\nRp25\ntp26\nRp27\nsVau\np28\ng22\n(g4\n(V\x07\xee\x01\x02\x05\x04\x05\\u0000\\u0000\\u0000\np29\ng6\ntp30\nRp31\ncdatetime\ntimezone\np32\n(cdatetime\ntimedelta\np33\n(I0\nI7200\nI0\ntp34\nRp35\ntp36\nRp37\ntp38\nRp39\nsVday\np40\ncdatetime\ndate\np41\n(g4\n(V\x07\xee\x01\x02\np42\ng6\ntp43\nRp44\ntp45\nRp46\nsVset\np47\nc__builtin__\nset\np48\n((lp49\nI7\natp50\nRp51\nsVba\np52\nc__builtin__\nbytearray\np53\n(g4\n(Vx\np54\ng6\ntp55\nRp56\ntp57\nRp58\ns.",
    b"\x80\x02}q\x00(X\x01\x00\x00\x00sq\x01X\x07\x00\x00\x00\xc3\xa9\xe2\x98\x83\\\nq\x02X\x01\x00\x00\x00bq\x03c_codecs\nencode\nq\x04X\x03\x00\x00\x00\x00\xc3\xbfq\x05X\x06\x00\x00\x00latin1q\x06\x86q\x07Rq\x08X\x01\x00\x00\x00iq\x09J\xfb\xff\xff\xffX\x03\x00\x00\x00bigq\n\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xc0X\x01\x00\x00\x00fq\x0bG?\xf8\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00tq\x0c\x88X\x01\x00\x00\x00nq\x0dNX\x01\x00\x00\x00lq\x0e]q\x0f(K\x01K\x02K\x03\x86q\x10eX\x01\x00\x00\x00mq\x11}q\x12(K\x01X\x01\x00\x00\x00aq\x13K\x01K\x02\x86q\x14NuX\x02\x00\x00\x00dtq\x15cdatetime\ndatetime\nq\x16h\x04X\x0c\x00\x00\x00\x07\xc3\xae\x01\x02\x03\x04\x05\x01\xc3\xa2@q\x17h\x06\x86q\x18Rq\x19\x85q\x1aRq\x1bX\x02\x00\x00\x00auq\x1ch\x16h\x04X\x0b\x00\x00\x00\x07\xc3\xae\x01\x02\x05\x04\x05\x00\x00\x00q\x1dh\x06\x86q\x1eRq\x1fcdatetime\ntimezone\nq cdatetime\ntimedelta\nq!K\x00M \x1cK\x00\x87q\"Rq#\x85q$Rq%\x86q&Rq'X\x03\x00\x00\x00dayq(cdatetime\ndate\nq)h\x04X\x05\x00\x00\x00\x07\xc3\xae\x01\x02q*h\x06\x86q+Rq,\x85q-Rq.X\x03\x00\x00\x00setq/c__builtin__\nset\nq0]q1K\x07a\x85q2Rq3X\x02\x00\x00\x00baq4c__builtin__\nbytearray\nq5h\x04X\x01\x00\x00\x00xq6h\x06\x86q7Rq8\x85q9Rq:u.",
    b"\x80\x05\x95\x1e\x01\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01s\x94\x8c\x07\xc3\xa9\xe2\x98\x83\\\n\x94\x8c\x01b\x94C\x02\x00\xff\x94\x8c\x01i\x94J\xfb\xff\xff\xff\x8c\x03big\x94\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xc0\x8c\x01f\x94G?\xf8\x00\x00\x00\x00\x00\x00\x8c\x01t\x94\x88\x8c\x01n\x94N\x8c\x01l\x94]\x94(K\x01K\x02K\x03\x86\x94e\x8c\x01m\x94}\x94(K\x01\x8c\x01a\x94K\x01K\x02\x86\x94Nu\x8c\x02dt\x94\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94C\n\x07\xee\x01\x02\x03\x04\x05\x01\xe2@\x94\x85\x94R\x94\x8c\x02au\x94h\x14C\n\x07\xee\x01\x02\x05\x04\x05\x00\x00\x00\x94h\x12\x8c\x08timezone\x94\x93\x94h\x12\x8c\x09timedelta\x94\x93\x94K\x00M \x1cK\x00\x87\x94R\x94\x85\x94R\x94\x86\x94R\x94\x8c\x03day\x94h\x12\x8c\x04date\x94\x93\x94C\x04\x07\xee\x01\x02\x94\x85\x94R\x94\x8c\x03set\x94\x8f\x94(K\x07\x90\x8c\x02ba\x94\x96\x01\x00\x00\x00\x00\x00\x00\x00x\x94u.",
];

/// SAMPLE as session values.
fn sample() -> SessionMap {
    let ints = |ns: &[i64]| Value::Array(ns.iter().map(|&n| Value::from(n)).collect());
    let entries: Vec<(&str, Value)> = vec![
        ("s", Value::from("é☃\\\n")),
        ("b", Value::Binary(vec![0, 0xff])),
        ("i", Value::from(-5)),
        (
            "big",
            Value::Ext(Pickle::BIG_INT_EXT, vec![0, 0, 0, 0, 0, 0, 0, 0, 0xc0]),
        ),
        ("f", Value::F64(1.5)),
        ("t", Value::Boolean(true)),
        ("n", Value::Nil),
        ("l", Value::Array(vec![Value::from(1), ints(&[2, 3])])),
        (
            "m",
            Value::Map(vec![
                (Value::from(1), Value::from("a")),
                (ints(&[1, 2]), Value::Nil),
            ]),
        ),
        ("dt", Value::from("2030-01-02T03:04:05.123456")),
        ("au", Value::Ext(-1, vec![0x70, 0xdd, 0x55, 0x25])), // 03:04:05 UTC
        ("day", Value::from("2030-01-02")),
        ("set", ints(&[7])),
        ("ba", Value::Binary(b"x".to_vec())),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn decode_err(bytes: &[u8]) -> PickleError {
    match Pickle.decode(bytes) {
        Err(Error::Decode(source)) => match source.downcast::<PickleError>() {
            Ok(e) => *e,
            Err(other) => panic!("not a PickleError: {other}"),
        },
        other => panic!("expected Error::Decode, got {other:?}"),
    }
}

fn encode_err(value: Value) -> PickleError {
    let mut map = SessionMap::default();
    map.insert("k".into(), value);
    match Pickle.encode(&map) {
        Err(Error::Encode(source)) => *source.downcast::<PickleError>().expect("a PickleError"),
        other => panic!("expected Error::Encode, got {other:?}"),
    }
}

/// A session `{"a": <value>}` around the opcodes of one value.
fn session_of(value: &[u8]) -> Vec<u8> {
    let mut bytes = b"\x80\x04}(\x8c\x01a".to_vec();
    bytes.extend_from_slice(value);
    bytes.extend_from_slice(b"u.");
    bytes
}

fn one_value(value: &[u8]) -> Value {
    let mut map = Pickle.decode(&session_of(value)).expect("decodes");
    map.swap_remove("a").expect("has a")
}

#[test]
fn cpython_pickles_of_every_type_decode_value_by_value() {
    let expected = sample();
    for (i, bytes) in CPYTHON.iter().enumerate() {
        let map = Pickle
            .decode(bytes)
            .unwrap_or_else(|e| panic!("vector {i}: {e}"));
        assert_eq!(
            map.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        );
        for (key, value) in &expected {
            assert_eq!(&map[key], value, "vector {i}, key {key}");
        }
    }
}

#[test]
fn what_is_encoded_decodes_to_the_same_map() {
    let map = sample();
    let bytes = Pickle.encode(&map).expect("encodes");
    assert_eq!(&bytes[..3], b"\x80\x04}");
    assert_eq!(Pickle.decode(&bytes).expect("decodes"), map);
    assert_eq!(
        Pickle.encode(&SessionMap::default()).unwrap(),
        b"\x80\x04}."
    );
    let mut one = SessionMap::default();
    one.insert("a".into(), Value::from(1));
    assert_eq!(Pickle.encode(&one).unwrap(), b"\x80\x04}(\x8c\x01aK\x01u.");
}

#[test]
fn every_value_survives_a_round_trip() {
    let mut map = SessionMap::default();
    let ints = [
        0,
        255,
        256,
        65_535,
        65_536,
        -1,
        i64::from(i32::MIN),
        i64::from(i32::MAX) + 1,
        i64::MIN,
    ];
    for (i, n) in ints.into_iter().enumerate() {
        map.insert(format!("i{i}"), Value::from(n));
    }
    map.insert("u64".into(), Value::from(u64::MAX));
    map.insert(
        "long".into(),
        Value::Ext(Pickle::BIG_INT_EXT, [1; 300].to_vec()),
    );
    map.insert("f".into(), Value::F64(-0.0));
    map.insert("str".into(), Value::from("x".repeat(300)));
    map.insert("bin".into(), Value::Binary(vec![1; 70_000]));
    let tuple_key = Value::Array(vec![Value::from(1), Value::Array(vec![Value::from("x")])]);
    map.insert(
        "map".into(),
        Value::Map(vec![(tuple_key, Value::Map(vec![]))]),
    );
    let long_key = Value::Array((0..5).map(Value::from).collect());
    map.insert(
        "tuple5".into(),
        Value::Map(vec![(long_key, Value::Array(vec![]))]),
    );
    for (i, data) in [
        &b"\x70\xdd\x55\x25"[..],
        b"\x1d\x6f\x28\x00\x70\xdd\x55\x25",
    ]
    .iter()
    .enumerate()
    {
        map.insert(format!("ts{i}"), Value::Ext(-1, data.to_vec()));
    }
    let mut pre_epoch = 1000_u32.to_be_bytes().to_vec();
    pre_epoch.extend_from_slice(&(-1_i64).to_be_bytes());
    map.insert("ts_old".into(), Value::Ext(-1, pre_epoch));
    let back = Pickle
        .decode(&Pickle.encode(&map).expect("encodes"))
        .expect("decodes");
    assert_eq!(back, map);
    // F32 becomes a float, NaN stays NaN.
    map.insert("f32".into(), Value::F32(1.5));
    map.insert("nan".into(), Value::F64(f64::NAN));
    let back = Pickle.decode(&Pickle.encode(&map).unwrap()).unwrap();
    assert_eq!(back["f32"], Value::F64(1.5));
    assert!(back["nan"].as_f64().is_some_and(f64::is_nan));
}

#[test]
fn aware_datetimes_read_as_flask_session_msgpack_has_them() {
    // pickle.dumps({'_permanent': True, 'dt': datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
    // 'dt_us': datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)}, protocol=2)
    let pickled = b"\x80\x02}q\x00(X\n\x00\x00\x00_permanentq\x01\x88X\x02\x00\x00\x00dtq\x02cdatetime\ndatetime\nq\x03c_codecs\nencode\nq\x04X\x0b\x00\x00\x00\x07\xc3\xae\x01\x02\x03\x04\x05\x00\x00\x00q\x05X\x06\x00\x00\x00latin1q\x06\x86q\x07Rq\x08cdatetime\ntimezone\nq\x09cdatetime\ntimedelta\nq\nK\x00K\x00K\x00\x87q\x0bRq\x0c\x85q\x0dRq\x0e\x86q\x0fRq\x10X\x05\x00\x00\x00dt_usq\x11h\x03h\x04X\x0c\x00\x00\x00\x07\xc3\xae\x01\x02\x03\x04\x05\x01\xc3\xa2@q\x12h\x06\x86q\x13Rq\x14h\x0e\x86q\x15Rq\x16u.";
    // The same dict by msgspec (the vector file's `aware_datetime`).
    let msgpack = b"\x83\xaa_permanent\xc3\xa2dt\xd6\xff\x70\xdd\x55\x25\xa5dt_us\xd7\xff\x1d\x6f\x28\x00\x70\xdd\x55\x25";
    let map = Pickle.decode(pickled).expect("decodes");
    assert_eq!(map, MsgPack.decode(msgpack).expect("decodes"));
    assert_eq!(MsgPack.encode(&map).unwrap(), msgpack);
}

#[test]
fn every_prefix_and_trailing_bytes_are_errors() {
    for bytes in CPYTHON {
        for cut in 0..bytes.len() {
            assert!(Pickle.decode(&bytes[..cut]).is_err(), "prefix of {cut}");
        }
        let mut longer = bytes.to_vec();
        longer.push(b'N');
        assert_eq!(decode_err(&longer), PickleError::TrailingBytes(1));
    }
}

#[test]
fn the_session_is_a_dict_of_distinct_str_keys() {
    assert_eq!(decode_err(b"N."), PickleError::NotADict);
    assert_eq!(decode_err(b"\x80\x04]."), PickleError::NotADict);
    assert_eq!(decode_err(b"}K\x01K\x02s."), PickleError::NonStringKey);
    let twice = b"}(\x8c\x01aK\x01\x8c\x01aK\x02u.";
    assert_eq!(decode_err(twice), PickleError::DuplicateKey("a".into()));
    assert!(matches!(decode_err(b"}N."), PickleError::Malformed(_)));
    assert!(matches!(decode_err(b"}(."), PickleError::Malformed(_)));
}

#[test]
fn globals_other_than_the_known_data_types_are_refused_by_name() {
    let cases: [(&[u8], &str); 5] = [
        (b"cos\nsystem\n(Vtouch /tmp/x\ntR.", "os.system"),
        (
            b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.",
            "builtins.eval",
        ),
        (
            b"\x80\x02ccopy_reg\n_reconstructor\n.",
            "copy_reg._reconstructor",
        ),
        (b"}(\x8c\x01acsubprocess\nPopen\nu.", "subprocess.Popen"),
        (b"cdatetime\ntime\n.", "datetime.time"),
    ];
    for (bytes, name) in cases {
        let err = decode_err(bytes);
        assert_eq!(err, PickleError::Global(name.into()));
        assert!(err.to_string().contains(name), "{err}");
    }
    let mut long = b"c".to_vec();
    long.extend(std::iter::repeat_n(b'm', 10_000));
    long.extend_from_slice(b"\nname\n.");
    let PickleError::Global(name) = decode_err(&long) else {
        panic!("a global")
    };
    assert_eq!(name.len(), 200);
}

#[test]
fn opcodes_that_create_instances_or_fetch_data_are_refused() {
    for op in [
        b'b', b'i', b'o', 0x81, 0x92, b'P', b'Q', 0x82, 0x83, 0x84, 0x97, 0x98, b'S',
    ] {
        assert!(
            matches!(decode_err(&[b'}', op]), PickleError::Refused(_)),
            "{op:#x}"
        );
    }
    assert_eq!(decode_err(b"}\xff."), PickleError::UnknownOpcode(0xff));
    assert_eq!(decode_err(b"\x80\x06}."), PickleError::Protocol(6));
    assert!(Pickle.decode(b"\x80\x05}.").unwrap().is_empty());
}

#[test]
fn the_known_globals_check_their_arguments() {
    let bad = [
        &b"cdatetime\ndatetime\n(C\x03abctR"[..], // a short state
        b"cdatetime\ndatetime\n(C\x04\x07\xee\x01\x02K\x01tR", // a tz that is no timezone
        b"c_codecs\nencode\n(Vx\nVrot13\ntR",     // another encoding
        b"c_codecs\nencode\n(V\\u0100\nVlatin1\ntR", // not Latin-1
        b"c__builtin__\nset\n(K\x01tR",           // set(1)
        b"cdatetime\ntimezone\n(cdatetime\ntimedelta\n(K\x01tRtR", // a day's offset
        b"cdatetime\ntimedelta\n(Vx\ntR",
        // timedelta(0, 0, -2**63): a total of exactly i64::MIN microseconds as the offset.
        b"cdatetime\ntimezone\n(cdatetime\ntimedelta\n(K\x00K\x00\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80tRtR",
        b"cdatetime\ndate\nK\x01R", // arguments not a tuple
        b"K\x01)R",                 // calling an int
    ];
    for value in bad {
        assert!(Pickle.decode(&session_of(value)).is_err(), "{value:?}");
    }
    let empty = one_value(b"c__builtin__\nbytes\n)R");
    assert_eq!(empty, Value::Binary(vec![]));
    let old_bytearray = one_value(b"c__builtin__\nbytearray\n(V\xff\nVlatin-1\ntR");
    assert_eq!(old_bytearray, Value::Binary(vec![0xff]));
    assert_eq!(
        one_value(b"c_codecs\nencode\n(V\xe9\ntR"),
        Value::Binary("é".into())
    );
    let frozen = one_value(b"c__builtin__\nfrozenset\n)R");
    assert_eq!(frozen, Value::Array(vec![]));
}

#[test]
fn values_that_are_not_session_data_are_errors() {
    let timedelta = b"cdatetime\ntimedelta\n(K\x01K\x00K\x00tR";
    let err = decode_err(&session_of(timedelta));
    assert_eq!(err, PickleError::NotAValue("datetime.timedelta"));
    let class = decode_err(&session_of(b"cdatetime\ndatetime\n"));
    assert!(matches!(class, PickleError::NotAValue(_)));
    // Keys and set elements Python could not hash.
    for value in [
        &b"}(]K\x02u"[..],
        b"}((]tK\x02u",
        b"\x8f(]\x90",
        b"}(\x8fK\x01u",
    ] {
        assert_eq!(
            decode_err(&session_of(value)),
            PickleError::Unhashable,
            "{value:?}"
        );
    }
    let frozen_key = one_value(b"}((K\x01\x91K\x02u");
    assert_eq!(
        frozen_key,
        Value::Map(vec![(Value::Array(vec![Value::from(1)]), Value::from(2))])
    );
}

#[test]
fn integers_in_every_form() {
    assert_eq!(one_value(b"I123\n"), Value::from(123));
    assert_eq!(one_value(b"I00\n"), Value::Boolean(false));
    assert_eq!(one_value(b"L-5L\n"), Value::from(-5));
    assert_eq!(one_value(b"L7\n"), Value::from(7));
    assert_eq!(one_value(b"\x8a\x00"), Value::from(0));
    assert_eq!(
        one_value(b"\x8b\x02\x00\x00\x00\xff\x7f"),
        Value::from(32_767)
    );
    assert_eq!(one_value(b"M\xff\xff"), Value::from(65_535));
    assert!(matches!(
        decode_err(&session_of(b"\x8b\xff\xff\xff\xff")),
        PickleError::Malformed(_)
    ));
    assert!(matches!(
        decode_err(&session_of(b"I0x10\n")),
        PickleError::Malformed(_)
    ));
    let mut huge = b"I".to_vec();
    huge.extend(std::iter::repeat_n(b'9', 5000));
    huge.push(b'\n');
    assert_eq!(decode_err(&session_of(&huge)), PickleError::IntTooLong);
}

#[test]
fn strings_in_every_form() {
    assert_eq!(one_value(b"Vcaf\xe9\n"), Value::from("café"));
    assert_eq!(one_value(b"X\x02\x00\x00\x00\xc3\xa9"), Value::from("é"));
    assert_eq!(
        one_value(b"\x8d\x01\x00\x00\x00\x00\x00\x00\x00e"),
        Value::from("e")
    );
    assert_eq!(one_value(b"U\x02py"), Value::from("py"));
    assert_eq!(one_value(b"T\x01\x00\x00\x00p"), Value::from("p"));
    assert_eq!(one_value(b"B\x01\x00\x00\x00\x00"), Value::Binary(vec![0]));
    assert_eq!(
        one_value(b"\x8e\x00\x00\x00\x00\x00\x00\x00\x00"),
        Value::Binary(vec![])
    );
    // A lone surrogate, which CPython writes with surrogatepass.
    assert_eq!(
        decode_err(&session_of(b"\x8c\x03\xed\xa0\x80")),
        PickleError::InvalidUtf8
    );
}

#[test]
fn shared_references_are_the_same_object_as_in_python() {
    // x = [1, 2]; pickle.dumps({'a': x, 'b': x}, 4): the list is filled after the memo has it.
    let shared = b"\x80\x04\x95\x17\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01K\x02e\x8c\x01b\x94h\x02u.";
    let map = Pickle.decode(shared).expect("decodes");
    let list = Value::Array(vec![Value::from(1), Value::from(2)]);
    assert_eq!((&map["a"], &map["b"]), (&list, &list));
    // DUP is a reference too; POP of a mark with nothing above it drops the mark.
    assert_eq!(one_value(b"]2K\x01a0"), Value::Array(vec![Value::from(1)]));
    assert_eq!(one_value(b"(0K\x01"), Value::from(1));
}

#[test]
fn cycles_are_errors() {
    // l = []; l.append(l); pickle.dumps({'l': l}, 4), and d = {}; d['d'] = d.
    let list = b"\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01l\x94]\x94h\x02as.";
    assert_eq!(decode_err(list), PickleError::Recursive);
    let dict = b"\x80\x04\x95\n\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01d\x94h\x00s.";
    assert_eq!(decode_err(dict), PickleError::Recursive);
}

#[test]
fn shared_references_cannot_expand_without_bound() {
    // memo[i + 1] = [memo[i], memo[i]]: 2^61 lists from a few hundred bytes.
    let mut laughs = b"]\x940".to_vec();
    for i in 0..60_u8 {
        laughs.extend_from_slice(&[b']', b'(', b'h', i, b'h', i, b'e', 0x94, b'0']);
    }
    laughs.extend_from_slice(b"h\x3c");
    assert_eq!(decode_err(&session_of(&laughs)), PickleError::TooLarge);
    // 5000 calls of set() on a 1000-item list copy it each time.
    let mut copies = b"\x8c\x08builtins\x8c\x03set\x93\x940]\x94(".to_vec();
    copies.extend(std::iter::repeat_n(*b"K\x01", 1000).flatten());
    copies.extend_from_slice(b"e0");
    copies.extend(std::iter::repeat_n(*b"h\x00h\x01\x85R0", 5000).flatten());
    copies.push(b'N');
    assert_eq!(decode_err(&session_of(&copies)), PickleError::TooLarge);
}

/// `depth` nested lists (`]` pushes one, `a` appends it to the one below).
fn lists(depth: usize) -> Vec<u8> {
    let mut bytes = vec![b']'; depth];
    bytes.extend(std::iter::repeat_n(b'a', depth - 1));
    bytes
}

#[test]
fn nesting_is_limited_to_the_other_codecs_depth() {
    let deepest = one_value(&lists(MAX_NESTING - 1)); // the session dict is the first level
    let mut value = Value::Array(vec![]);
    for _ in 2..MAX_NESTING {
        value = Value::Array(vec![value]);
    }
    assert_eq!(deepest, value);
    assert_eq!(
        decode_err(&session_of(&lists(MAX_NESTING))),
        PickleError::TooDeep
    );
    assert_eq!(
        decode_err(&session_of(&lists(100_000))),
        PickleError::TooDeep
    );
    assert_eq!(encode_err(Value::Array(vec![value])), PickleError::TooDeep);
}

#[test]
fn huge_length_prefixes_allocate_nothing() {
    for value in [
        &b"\x8d\xff\xff\xff\xff\xff\xff\xff\x7fx"[..],
        b"X\xff\xff\xff\xffab",
        b"B\xff\xff\xff\xff",
        b"\x8e\x00\x00\x00\x00\x00\x00\x00\x01",
        b"\x96\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x8b\xff\xff\xff\x7f",
        b"\x95\xff\xff\xff\xff\xff\xff\xff\xff",
    ] {
        assert_eq!(
            decode_err(&session_of(value)),
            PickleError::Truncated,
            "{value:?}"
        );
    }
    let framed = b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00}.";
    assert!(Pickle.decode(framed).unwrap().is_empty());
}

#[test]
fn values_without_a_pickle_form_are_encode_errors() {
    let bad_utf8 = MsgPack
        .decode(b"\x81\xa1k\xa1\xff")
        .unwrap()
        .swap_remove("k")
        .unwrap();
    assert_eq!(encode_err(bad_utf8), PickleError::InvalidUtf8);
    assert_eq!(
        encode_err(Value::Ext(5, vec![1])),
        PickleError::UnsupportedExt(5)
    );
    let mut fine = 5_u32.to_be_bytes().to_vec();
    fine.extend_from_slice(&0_i64.to_be_bytes());
    assert_eq!(
        encode_err(Value::Ext(-1, fine)),
        PickleError::InvalidTimestamp
    );
    let map_key = Value::Map(vec![(Value::Map(vec![]), Value::Nil)]);
    assert_eq!(encode_err(map_key), PickleError::Unhashable);
    let nested_map_key = Value::Array(vec![Value::Map(vec![])]);
    assert_eq!(
        encode_err(Value::Map(vec![(nested_map_key, Value::Nil)])),
        PickleError::Unhashable
    );
}

/// A small deterministic generator (xorshift64) for the mutation test.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn mutated_pickles_never_panic_and_what_decodes_survives_a_round_trip() {
    let (mut state, mut decoded) = (0x9e37_79b9_7f4a_7c15_u64, 0);
    for round in 0..30_000 {
        let mut bytes = CPYTHON[round % CPYTHON.len()].to_vec();
        for _ in 0..=next(&mut state) % 2 {
            let at = (next(&mut state) % bytes.len() as u64) as usize;
            let byte = next(&mut state) as u8;
            match next(&mut state) % 4 {
                0 | 1 => bytes[at] = byte,
                2 => bytes.insert(at, byte),
                _ => drop(bytes.remove(at)),
            }
        }
        if let Ok(map) = Pickle.decode(&bytes) {
            let encoded = Pickle.encode(&map).expect("a decoded session encodes");
            let again = Pickle.decode(&encoded).expect("our encoding decodes");
            assert_eq!(Pickle.encode(&again).expect("encodes"), encoded);
            decoded += 1;
        }
    }
    assert!(decoded > 1000, "only {decoded} mutants decoded");
}
