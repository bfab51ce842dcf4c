//! `/healthz` and the JSON error answers, against the in-process server.

use serde_json::{Value, json};

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_answers_status_and_version_as_json() {
    let app = spawn_app().await;

    let response = app.client.get(app.url("/healthz")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}));
    app.shut_down().await.unwrap();
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let cases = [
        ("GET", "/nowhere", 404, "no route for GET /nowhere"),
        ("POST", "/healthz", 405, "POST is not allowed on /healthz"),
        ("DELETE", "/healthz", 405, "DELETE is not allowed on /healthz"),
    ];
    for (method, path, status, message) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app.client.request(method.clone(), app.url(path)).send().await.unwrap();

        assert_eq!(response.status(), status, "{method} {path}");
        if status == 405 {
            assert_eq!(response.headers()["allow"], "GET");
        }
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"status": status, "message": message}), "{method} {path}");
    }
    app.shut_down().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_the_connections_it_was_serving() {
    // A raw keep-alive connection to this server: unlike a new connection after shutdown, it
    // cannot reach another test's server that happened to get the freed port.
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    let mut response = vec![0u8; 1024];
    let n = stream.read(&mut response).await.unwrap();
    assert!(response[..n].starts_with(b"HTTP/1.1 200 OK"), "{}", String::from_utf8_lossy(&response[..n]));

    app.shut_down().await.unwrap();

    let after = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut response))
        .await
        .expect("closed, not hanging");
    assert!(matches!(after, Ok(0) | Err(_)), "the connection is closed: {after:?}");
}

#[tokio::test]
async fn stopping_does_not_wait_for_idle_keep_alive_connections() {
    // Arrange: an hour of shutdown timeout, and a client that keeps its connection open.
    let app = spawn_app_with(|settings| settings.http.shutdown_timeout = 3600).await;
    let client = reqwest::Client::builder().pool_idle_timeout(None).build().unwrap();
    assert_eq!(client.get(app.url("/healthz")).send().await.unwrap().status(), 200);

    // Act
    let stopped = tokio::time::timeout(Duration::from_secs(60), app.shut_down()).await;

    // Assert: the bound only turns a regression into a failure instead of an hour-long hang.
    stopped.expect("the stop does not wait for the idle connection").unwrap();
    drop(client);
}

/// Sends `GET /healthz` on `stream` and answers whether a 200 came back (false when the server
/// had closed the connection).
async fn healthz_on(stream: &mut TcpStream) -> bool {
    if stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").await.is_err() {
        return false;
    }
    let mut response = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut response)).await;
    matches!(read, Ok(Ok(n)) if response[..n].starts_with(b"HTTP/1.1 200 OK"))
}

#[tokio::test]
async fn an_idle_connection_stays_open_for_http_keep_alive_seconds() {
    // Actix's own default closes after 5 s, before the proxies in front (60 s) would: a request
    // a proxy sends on a connection the server is closing at that instant is lost.
    let (kept, short) = tokio::join!(spawn_app(), spawn_app_with(|settings| settings.http.keep_alive = 1));
    let mut to_kept = TcpStream::connect(kept.address).await.unwrap();
    let mut to_short = TcpStream::connect(short.address).await.unwrap();
    assert!(healthz_on(&mut to_kept).await && healthz_on(&mut to_short).await);

    tokio::time::sleep(Duration::from_millis(2_500)).await;

    assert!(healthz_on(&mut to_kept).await, "the default (75 s) keeps the connection");
    assert!(!healthz_on(&mut to_short).await, "http.keep_alive = 1 closed it after a second");
}
