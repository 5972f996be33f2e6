//! In-process costs: cookie parsing + signature verification, id generation, and one full
//! request cycle on the MemoryStore with signing on.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use server_session::store::MemoryStore;
use server_session::{Config, SessionId, SessionManager, Signer};

const BROWSER_COOKIES: &str = "_ga=GA1.1.123456789.1700000000; theme=dark; \
    csrftoken=Zm9vYmFyYmF6cXV4cXV1eHh5enp5eHd2dXRzcnFwb24; lang=en-GB";

fn signed_manager() -> SessionManager<MemoryStore> {
    let config = Config::builder()
        .use_signer(true)
        .secret_key("bench-secret-key")
        .build()
        .expect("valid config");
    SessionManager::new(MemoryStore::new(), config)
}

/// A stored session with `visits` and the `Cookie` header that names it.
fn stored_session(manager: &SessionManager<MemoryStore>) -> String {
    let mut session = manager.open(None);
    session.insert("visits", &0u64).expect("insert");
    let set_cookie = session
        .commit()
        .expect("commit")
        .set_cookie()
        .expect("cookie")
        .to_owned();
    let pair = set_cookie.split(';').next().expect("pair");
    format!("{BROWSER_COOKIES}; {pair}")
}

fn cookie_and_signature(c: &mut Criterion) {
    let manager = signed_manager();
    let header = stored_session(&manager);
    c.bench_function("open: parse Cookie header + verify signature", |b| {
        b.iter(|| {
            let session = manager.open(Some(black_box(&header)));
            assert!(session.id().is_some());
        })
    });
    let signer = Signer::new("bench-secret-key");
    let id = SessionId::generate(32).expect("id");
    c.bench_function("sign a 43-char id", |b| {
        b.iter(|| signer.sign(black_box(id.as_str())))
    });
}

fn id_generation(c: &mut Criterion) {
    c.bench_function("generate a 32-byte id", |b| {
        b.iter(|| SessionId::generate(black_box(32)).expect("id"))
    });
}

fn memory_request_cycle(c: &mut Criterion) {
    let manager = signed_manager();
    let header = stored_session(&manager);
    c.bench_function(
        "request cycle: open, get, insert, commit (MemoryStore, signed)",
        |b| {
            b.iter(|| {
                let mut session = manager.open(Some(black_box(&header)));
                let visits: u64 = session.get("visits").expect("get").unwrap_or(0);
                session.insert("visits", &(visits + 1)).expect("insert");
                black_box(session.commit().expect("commit"));
            })
        },
    );
}

criterion_group!(
    benches,
    cookie_and_signature,
    id_generation,
    memory_request_cycle
);
criterion_main!(benches);
