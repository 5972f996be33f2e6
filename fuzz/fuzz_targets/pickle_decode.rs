//! The Pickle decoder on stored bytes (a legacy Flask-Session pickle, a cachelib file's
//! payload). Property: never a panic, never unbounded memory; whatever decodes encodes, and
//! that encoding decodes and re-encodes to itself (compared as bytes, so NaN counts as equal).
//! The seeds in corpus/pickle_decode are CPython's: `python3 tests/pickle/cpython.py corpus
//! fuzz/corpus/pickle_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use server_session::codec::{Codec, Pickle};

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = Pickle.decode(data) {
        let encoded = Pickle.encode(&map).expect("a decoded session encodes");
        let again = Pickle.decode(&encoded).expect("our encoding decodes");
        assert_eq!(Pickle.encode(&again).expect("encodes"), encoded);
    }
});
