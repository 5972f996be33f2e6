//! The demo through a store outage: a Redis server this test starts on its own loopback port,
//! stops and starts again. A route that never reads the session keeps answering; one that needs
//! the store answers 503 naming the cause within the timeouts; after the server is back,
//! requests succeed without restarting the app.
#![cfg(all(feature = "redis", feature = "tiny_http"))]

mod common;
#[allow(dead_code)]
#[path = "../examples/demo.rs"]
mod demo;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{RedisServer, free_port};
use server_session::store::RedisStore;
use server_session::store::conformance::service_unavailable;
use tiny_http::Server;

/// `GET path` with an optional cookie: (status, body, Set-Cookie pair) and how long it took.
fn get(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
) -> ((u16, String, Option<String>), Duration) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let cookie_line = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{cookie_line}\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let set_cookie = head
        .lines()
        .find_map(|line| line.strip_prefix("Set-Cookie: "))
        .map(|value| value.split(';').next().unwrap().to_owned());
    (
        (status, body.trim_end().to_owned(), set_cookie),
        start.elapsed(),
    )
}

#[test]
fn an_outage_fails_only_the_requests_that_need_the_store() {
    let port = free_port();
    let Some(redis) = RedisServer::start(port, &[]) else {
        return service_unavailable("outage: redis-server is not installed");
    };
    let store = RedisStore::open(&format!("redis://127.0.0.1:{port}/0")).unwrap();
    let app = Arc::new(demo::App::new(store, demo::config(None).unwrap()).unwrap());
    let server = Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    demo::serve(Arc::new(server), app, 2);

    let ((status, body, cookie), _) = get(addr, "/", None);
    assert_eq!((status, body.as_str()), (200, "visits=1"));
    let cookie = cookie.expect("a session cookie");

    drop(redis);
    let bound = Duration::from_secs(3);
    let ((status, body, _), took) = get(addr, "/health", Some(&cookie));
    assert_eq!(
        (status, body.as_str()),
        (200, "ok"),
        "a route without the session"
    );
    assert!(took < bound, "/health took {took:?}");
    let ((status, body, _), took) = get(addr, "/", Some(&cookie));
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("store unavailable: "), "{body}");
    assert!(
        body.contains(&format!("127.0.0.1:{port}")),
        "names the server: {body}"
    );
    assert!(took < bound, "/ took {took:?}");

    let _back = RedisServer::start(port, &[]).expect("redis-server restarts");
    let ((status, body, _), _) = get(addr, "/", Some(&cookie));
    assert_eq!(
        (status, body.as_str()),
        (200, "visits=1"),
        "served again, a fresh session"
    );
}
