//! The `Cookie` request header through to a validated session id, with signing off and on
//! (with a fallback key). Property: never a panic; an id is only ever accepted when it is well
//! formed and, with signing, when one of the header's session cookies verifies for it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use server_session::store::NullStore;
use server_session::{cookie, Config, SessionId, SessionManager, Signer};

struct Managers {
    plain: SessionManager<NullStore>,
    signed: SessionManager<NullStore>,
    signer: Signer,
}

fn managers() -> &'static Managers {
    static MANAGERS: OnceLock<Managers> = OnceLock::new();
    MANAGERS.get_or_init(|| {
        let signed = Config::builder()
            .use_signer(true)
            .secret_key("current")
            .fallback_secret_keys(["previous"])
            .build()
            .expect("valid config");
        Managers {
            plain: SessionManager::new(NullStore, Config::default()).expect("a valid config"),
            signed: SessionManager::new(NullStore, signed).expect("a valid config"),
            signer: Signer::with_fallbacks("current", ["previous"]),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let m = managers();
    if let Some(id) = m.plain.open(Some(header)).id() {
        assert!(SessionId::parse(id).is_some(), "accepted a malformed id {id:?}");
        assert!(cookie::values(header, "session").any(|v| v == id));
    }
    if let Some(id) = m.signed.open(Some(header)).id() {
        assert!(SessionId::parse(id).is_some(), "accepted a malformed id {id:?}");
        let verified = cookie::values(header, "session").any(|v| m.signer.unsign(v) == Some(id));
        assert!(verified, "accepted {id:?} without a valid signature");
    }
});
