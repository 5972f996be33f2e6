//! A signed cookie value. Property: never a panic, and a value that verifies is exactly what
//! signing its id produces (with the current key) or with the fallback key.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use server_session::Signer;

fn signers() -> &'static (Signer, Signer, Signer) {
    static SIGNERS: OnceLock<(Signer, Signer, Signer)> = OnceLock::new();
    SIGNERS.get_or_init(|| {
        let rotating = Signer::with_fallbacks("current", ["previous"]);
        (rotating, Signer::new("current"), Signer::new("previous"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let (rotating, current, previous) = signers();
    if let Some(sid) = rotating.unsign(value) {
        let resigned = [current.sign(sid), previous.sign(sid)];
        assert!(resigned.iter().any(|v| v == value), "{value:?} verified but is not canonical");
    }
});
