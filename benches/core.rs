//! In-process costs: cookie parsing + signature verification, id generation, and one full
//! request cycle on the MemoryStore with signing on, without an events hook and with the
//! `SessionMetrics` counters.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use server_session::store::MemoryStore;
use std::sync::Arc;

use server_session::{SessionId, SessionManager, SessionMetrics, Signer};

mod support;
use support::{browser_header, cycle, signed_config, stored_session};

/// A MemoryStore manager holding the ~200-byte session of every bench, and a browser's
/// `Cookie` header naming it.
fn signed_session() -> (SessionManager<MemoryStore>, String) {
    let manager = SessionManager::new(MemoryStore::new(), signed_config("session:")).unwrap();
    let (pair, _) = stored_session(&manager, 180);
    (manager, browser_header(&pair))
}

fn cookie_and_signature(c: &mut Criterion) {
    let (manager, header) = signed_session();
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
    let (manager, header) = signed_session();
    c.bench_function(
        "request cycle: open, get, insert, commit (MemoryStore, signed)",
        |b| b.iter(|| cycle(&manager, &header)),
    );
    let (manager, header) = signed_session();
    let metrics = Arc::new(SessionMetrics::default());
    let manager = manager.with_events(Arc::clone(&metrics));
    c.bench_function(
        "request cycle: open, get, insert, commit (MemoryStore, signed, SessionMetrics hook)",
        |b| b.iter(|| cycle(&manager, &header)),
    );
    assert!(metrics.count(server_session::SessionEvent::Loaded) > 0);
}

criterion_group!(
    benches,
    cookie_and_signature,
    id_generation,
    memory_request_cycle
);
criterion_main!(benches);
