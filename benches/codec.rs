//! Codec costs: encode + decode of a typical 5-key session with each codec.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use server_session::codec::{Codec, Json, MsgPack, SessionMap, Value};

/// `_permanent`, a user name, a visit counter, a float and a short list.
fn session() -> SessionMap {
    let mut map = SessionMap::default();
    map.insert("_permanent".to_owned(), Value::Boolean(true));
    map.insert("user".to_owned(), Value::from("alice@example.com"));
    map.insert("visits".to_owned(), Value::from(1234_u64));
    map.insert("score".to_owned(), Value::F64(98.6));
    let roles = ["admin", "editor", "viewer"].map(Value::from).to_vec();
    map.insert("roles".to_owned(), Value::Array(roles));
    map
}

fn round_trip<C: Codec>(c: &mut Criterion, name: &str, codec: C) {
    let map = session();
    let bytes = codec.encode(&map).expect("encodes");
    assert_eq!(codec.decode(&bytes).expect("decodes"), map);
    c.bench_function(
        &format!("{name}: encode + decode, 5 keys ({} B)", bytes.len()),
        |b| {
            b.iter(|| {
                let bytes = codec.encode(black_box(&map)).expect("encodes");
                codec.decode(black_box(&bytes)).expect("decodes")
            })
        },
    );
    c.bench_function(&format!("{name}: encode, 5 keys"), |b| {
        b.iter(|| codec.encode(black_box(&map)).expect("encodes"))
    });
    c.bench_function(&format!("{name}: decode, 5 keys"), |b| {
        b.iter(|| codec.decode(black_box(&bytes)).expect("decodes"))
    });
}

fn codecs(c: &mut Criterion) {
    round_trip(c, "msgpack", MsgPack);
    round_trip(c, "json", Json);
}

criterion_group!(benches, codecs);
criterion_main!(benches);
