//! The MsgPack decoder on stored bytes. Property: never a panic; whatever decodes encodes, and
//! that encoding decodes and re-encodes to itself (compared as bytes, so NaN counts as equal).
#![no_main]

use libfuzzer_sys::fuzz_target;
use server_session::codec::{Codec, MsgPack};

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = MsgPack.decode(data) {
        let encoded = MsgPack.encode(&map).expect("a decoded session encodes");
        let again = MsgPack.decode(&encoded).expect("our encoding decodes");
        assert_eq!(MsgPack.encode(&again).expect("encodes"), encoded);
    }
});
