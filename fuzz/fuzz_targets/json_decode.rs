//! The Json decoder on stored bytes. Property: never a panic; whatever decodes encodes, and
//! that encoding decodes and re-encodes to itself (compared as bytes, so NaN counts as equal).
#![no_main]

use libfuzzer_sys::fuzz_target;
use server_session::codec::{Codec, Json};

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = Json.decode(data) {
        let encoded = Json.encode(&map).expect("a decoded session encodes");
        let again = Json.decode(&encoded).expect("our encoding decodes");
        assert_eq!(Json.encode(&again).expect("encodes"), encoded);
    }
});
