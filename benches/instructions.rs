//! A driver for counting instructions per request cycle: runs `N` MemoryStore cycles of one
//! kind and nothing else, so `valgrind --tool=callgrind` can count them. The count does not
//! depend on the machine's load, unlike a time. `scripts/instructions.sh` runs every kind
//! twice (N and 2N cycles) and prints the difference per cycle, which leaves out start-up.
//!
//! `cargo bench -p server-session-benches --bench instructions -- KIND N`, where KIND is one of
//! the names in [`KINDS`]; without arguments it runs each kind once and prints the kinds.

use std::hint::black_box;

use server_session::store::MemoryStore;
use server_session::{Config, SessionManager};

mod support;
use support::{browser_header, signed_config};

/// What a request does with its session.
#[derive(Clone, Copy)]
enum Work {
    /// `get` then `insert`: the store is read, and written at the commit.
    Modify,
    /// `get` only: the store is read, and the expiry refreshed at the commit.
    Read,
}

/// A cycle: signed cookies or not, a cookie of a stored session or none, what it does.
struct Kind {
    name: &'static str,
    signed: bool,
    cookie: bool,
    work: Work,
}

const KINDS: [Kind; 6] = [
    Kind::new("signed-modify", true, true, Work::Modify),
    Kind::new("signed-read", true, true, Work::Read),
    Kind::new("signed-new", true, false, Work::Modify),
    Kind::new("unsigned-modify", false, true, Work::Modify),
    Kind::new("unsigned-read", false, true, Work::Read),
    Kind::new("unsigned-new", false, false, Work::Modify),
];

impl Kind {
    const fn new(name: &'static str, signed: bool, cookie: bool, work: Work) -> Self {
        Self {
            name,
            signed,
            cookie,
            work,
        }
    }

    fn manager(&self) -> SessionManager<MemoryStore> {
        let config = if self.signed {
            signed_config("session:")
        } else {
            Config::builder().build().expect("valid config")
        };
        SessionManager::new(MemoryStore::new(), config).expect("manager")
    }

    /// Runs `n` cycles of this kind on a fresh manager, the same ~200-byte session each time.
    fn run(&self, n: u64) {
        let manager = self.manager();
        let header = self.cookie.then(|| browser_header(&stored_pair(&manager)));
        for _ in 0..n {
            cycle(&manager, header.as_deref(), self.work);
        }
    }
}

/// Stores a ~200-byte session (`visits` and a 180-character `note`); its `name=value` pair.
fn stored_pair(manager: &SessionManager<MemoryStore>) -> String {
    let mut session = manager.open(None);
    session.insert("visits", &0u64).expect("insert");
    session.insert("note", &"x".repeat(180)).expect("insert");
    let commit = session.commit().expect("commit");
    let set_cookie = commit.set_cookie().expect("a new session sets its cookie");
    set_cookie.split(';').next().expect("name=value").to_owned()
}

fn cycle(manager: &SessionManager<MemoryStore>, header: Option<&str>, work: Work) {
    let mut session = manager.open(black_box(header));
    let visits: u64 = session.get("visits").expect("get").unwrap_or(0);
    if let Work::Modify = work {
        session.insert("visits", &(visits + 1)).expect("insert");
    }
    black_box(session.commit().expect("commit"));
}

fn main() {
    // `cargo bench` passes `--bench` first; the rest are KIND N.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.as_slice() {
        [name, n] => {
            let kind = KINDS.iter().find(|k| k.name == name);
            let kind = kind.unwrap_or_else(|| panic!("no kind {name}; kinds: {}", names()));
            kind.run(n.parse().expect("N: a number of cycles"));
        }
        _ => {
            KINDS.iter().for_each(|kind| kind.run(1));
            println!("instructions: kinds {}", names());
        }
    }
}

fn names() -> String {
    KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(" ")
}
