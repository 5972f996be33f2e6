//! Many threads on one store: no error, no torn value, one winner per create.

use std::sync::Barrier;

use super::*;

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

const THREADS: usize = 8;
const OPS_PER_THREAD: usize = 500;
const SHARED_KEYS: usize = 6;
const TAG_LEN: usize = 12;

/// A value that says which key it belongs to: key index, body length, seed, then a body that
/// is a function of all three. A torn or cross-wired value fails [`check_tagged`].
fn tagged_value(key: usize, seed: u32, len: usize) -> Vec<u8> {
    let mut value = Vec::with_capacity(TAG_LEN + len);
    value.extend_from_slice(&(key as u32).to_be_bytes());
    value.extend_from_slice(&(len as u32).to_be_bytes());
    value.extend_from_slice(&seed.to_be_bytes());
    value.extend((0..len).map(|i| tag_byte(key, seed, i)));
    value
}

fn tag_byte(key: usize, seed: u32, i: usize) -> u8 {
    let mixed = seed.wrapping_add(i as u32).wrapping_mul(0x9E37_79B1) ^ (key as u32 * 0x85EB);
    (mixed >> 24) as u8
}

fn check_tagged(key: usize, value: &[u8]) -> std::result::Result<(), String> {
    let field = |i: usize| {
        value
            .get(i * 4..i * 4 + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
    };
    let (Some(k), Some(len), Some(seed)) = (field(0), field(1), field(2)) else {
        return Err(format!(
            "value of {} bytes is shorter than its tag",
            value.len()
        ));
    };
    let (k, len, seed) = (
        u32::from_be_bytes(k),
        u32::from_be_bytes(len),
        u32::from_be_bytes(seed),
    );
    if k as usize != key {
        return Err(format!("value of key {k} found under key {key}"));
    }
    if value.len() != TAG_LEN + len as usize {
        return Err(format!(
            "torn value: tag says {len} bytes, body has {}",
            value.len() - TAG_LEN
        ));
    }
    let body = &value[TAG_LEN..];
    match (0..body.len()).find(|&i| body[i] != tag_byte(key, seed, i)) {
        Some(i) => Err(format!("torn value: body differs at byte {i} of {len}")),
        None => Ok(()),
    }
}

#[derive(Default)]
struct Tally {
    values_seen: usize,
    creates_won: usize,
}

/// The key that is created before the workload and never deleted: it must never read as gone.
const STABLE: usize = SHARED_KEYS;

/// One operation of the mixed workload: the value it read back, if any.
fn step<S: Store>(
    store: &S,
    key: &str,
    op: usize,
    value: &[u8],
    tally: &mut Tally,
) -> Result<Option<Vec<u8>>> {
    match op {
        0..=2 => store.load(key),
        3 | 4 => {
            tally.creates_won += usize::from(store.create(key, value, after(LONG))?);
            Ok(None)
        }
        5 | 6 => store.save(key, value, after(LONG)).map(|_| None),
        7 => store.touch(key, after(LONG)).map(|_| None),
        8 => store.load_and_touch(key, after(LONG)),
        _ => store.delete(key).map(|()| None),
    }
}

fn hammer<S: Store>(store: &S, keys: &[String], thread: usize) -> Tally {
    let mut rng = Rng::new(random_u64());
    let mut tally = Tally::default();
    for op in 0..OPS_PER_THREAD {
        let k = rng.below(SHARED_KEYS + 1);
        let what = format!("thread {thread} op {op} on key {k}");
        let len = if rng.below(16) == 0 {
            16384 + rng.below(49152)
        } else {
            rng.below(2048)
        };
        let value = tagged_value(k, rng.next() as u32, len);
        let kind = match rng.below(10) {
            3 | 4 | 9 if k == STABLE => 5, // never create over or delete the stable key
            kind => kind,
        };
        let seen = ok(step(store, &keys[k], kind, &value, &mut tally), &what);
        match seen {
            Some(seen) => check_tagged(k, &seen).unwrap_or_else(|p| panic!("{what}: {p}")),
            None if k == STABLE && matches!(kind, 0..=2 | 8) => {
                panic!("{what}: a live key read as missing while it was being rewritten")
            }
            None => continue,
        }
        tally.values_seen += 1;
    }
    tally
}

/// 8 threads × 500 mixed operations over 6 shared keys plus one that is only ever rewritten:
/// no error, every value read back (by `load` or `load_and_touch`) is whole and belongs to its
/// key, and the never-deleted key never reads as missing (writes replace values atomically).
pub fn concurrent_mixed_operations<S: Store>(store: &S, prefix: &str) {
    let keys: Vec<String> = (0..=SHARED_KEYS).map(|k| format!("{prefix}{k}")).collect();
    let stable_value = tagged_value(STABLE, 0, 100);
    assert!(ok(
        store.create(&keys[STABLE], &stable_value, after(LONG)),
        "create"
    ));
    let barrier = Barrier::new(THREADS);
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (keys, barrier) = (&keys, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    hammer(store, keys, t)
                })
            })
            .collect();
        handles.into_iter().map(join).collect()
    });
    for (k, key) in keys.iter().enumerate() {
        match ok(store.load(key), "final load") {
            Some(value) => check_tagged(k, &value).unwrap_or_else(|p| panic!("final key {k}: {p}")),
            None => assert_ne!(
                k, STABLE,
                "the never-deleted key is gone after the workload"
            ),
        }
    }
    let seen: usize = tallies.iter().map(|t| t.values_seen).sum();
    let won: usize = tallies.iter().map(|t| t.creates_won).sum();
    assert!(
        won > 0 && seen > 0,
        "the workload never stored ({won}) or read ({seen}) a value"
    );
}

/// 8 threads race `create` on the same 40 fresh keys: exactly one wins each key, and the stored
/// value is the winner's.
pub fn concurrent_create_single_winner<S: Store>(store: &S, prefix: &str) {
    const RACED_KEYS: usize = 40;
    let keys: Vec<String> = (0..RACED_KEYS).map(|k| format!("{prefix}{k}")).collect();
    let barrier = Barrier::new(THREADS);
    let wins: Vec<Vec<bool>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (keys, barrier) = (&keys, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let value = format!("thread {t}");
                    let won = |key: &String| store.create(key, value.as_bytes(), after(LONG));
                    keys.iter()
                        .map(|key| ok(won(key), "create"))
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        handles.into_iter().map(join).collect()
    });
    for (k, key) in keys.iter().enumerate() {
        let winners: Vec<usize> = (0..THREADS).filter(|&t| wins[t][k]).collect();
        assert_eq!(
            winners.len(),
            1,
            "key {k}: create won by threads {winners:?}"
        );
        let expected = format!("thread {}", winners[0]);
        assert_bytes(
            ok(store.load(key), "load"),
            expected.as_bytes(),
            "the winner's value",
        );
    }
}
