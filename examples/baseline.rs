//! The load test's baseline: a tiny_http server shaped like the demo (same worker threads,
//! same response: `visits=N` as `text/plain`) but without sessions, so `wrk` against both
//! shows what the session layer costs. `scripts/bench.sh` runs it.
//!
//! Options: `--addr HOST:PORT` (127.0.0.1:8001), `--threads N` (8, as the demo).

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use tiny_http::{Header, Response, Server};

const USAGE: &str = "usage: baseline [--addr HOST:PORT] [--threads N]";

fn main() {
    if let Err(message) = parse_args(std::env::args().skip(1)).and_then(run) {
        eprintln!("baseline: {message}");
        std::process::exit(2);
    }
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<(String, usize), String> {
    let (mut addr, mut threads) = ("127.0.0.1:8001".to_owned(), 8);
    while let Some(flag) = argv.next() {
        let value = argv
            .next()
            .ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--addr" => addr = value,
            "--threads" => threads = value.parse().map_err(|e| format!("--threads: {e}"))?,
            _ => return Err(USAGE.into()),
        }
    }
    if threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    Ok((addr, threads))
}

fn run((addr, threads): (String, usize)) -> Result<(), String> {
    let server =
        Arc::new(Server::http(&addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?);
    println!("baseline: listening on http://{addr} with {threads} threads");
    let visits = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (server, visits) = (Arc::clone(&server), Arc::clone(&visits));
            thread::spawn(move || {
                loop {
                    match server.recv() {
                        Ok(request) => {
                            let visits = visits.fetch_add(1, Ordering::Relaxed) + 1;
                            if let Err(err) = request.respond(text(format!("visits={visits}"))) {
                                eprintln!("baseline: could not send the response: {err}");
                            }
                        }
                        Err(err) => eprintln!("baseline: accept failed: {err}"),
                    }
                }
            })
        })
        .collect();
    if let Some(worker) = workers.into_iter().next() {
        worker
            .join()
            .map_err(|_| "a worker thread panicked".to_owned())?;
    }
    Ok(())
}

/// The demo's response, byte for byte: status 200, `text/plain; charset=utf-8`, body + newline.
fn text(body: String) -> Response<Cursor<Vec<u8>>> {
    let content_type = Header::from_bytes("Content-Type", "text/plain; charset=utf-8");
    Response::from_string(body + "\n").with_header(content_type.expect("a constant, valid header"))
}
