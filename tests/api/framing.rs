//! Request framing attacks over a raw socket (issue #17, point 1): a body shorter than its
//! Content-Length, a chunked body without its last chunk, both framing headers with a second
//! request hidden in the body, and the framings that are not allowed at all. Each is refused
//! with a 400 in its area's shape before any route runs, the connection is closed (a read ends,
//! and a hidden request is never answered), and nothing changes (`hostile.rs`'s state).

use std::time::Duration;

use base64::Engine as _;
use switchboard::http::signature;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;
use crate::hostile::{CALLER, LINE, menu_action, message, state, worker, workflow, workspace};
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN, spawn_api};

/// How long the server gets to answer and close; only reached when a connection stays open,
/// which fails the test.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the client does once its bytes are sent.
#[derive(Clone, Copy, Debug)]
enum Then {
    /// Closes its side (shutdown(Write)), as a client that went away; it can still read.
    Closes,
    /// Keeps its side open and reads.
    Waits,
}

use Then::*;

/// One raw exchange: what it is, the path (whose area shapes the answer), the bytes sent, what
/// the client does then, and the status and a piece of the message it must get ("": actix-http
/// answers by itself, with an empty body).
type Case = (&'static str, String, Vec<u8>, Then, (u16, &'static str));

/// Sends each case on a connection of its own: it must get exactly one answer, as expected,
/// then the end of the connection, and change nothing.
async fn check(app: &TestApp, cases: Vec<Case>) {
    for (what, path, bytes, then, (status, expected)) in cases {
        let before = state(app);
        let answers = exchange(app, &bytes, then).await;
        let [answer] = &answers[..] else {
            panic!("{what}: one answer, and nothing for what may hide in the body; got {answers:#?}")
        };
        assert_eq!(answer.status, status, "{what}: {answer:#?}");
        if expected.is_empty() {
            assert_eq!(answer.body, "", "{what}: actix-http's own refusal");
        } else {
            let said = message(&path, answer.status, &answer.body);
            assert!(said.contains(expected), "{what}: expected {expected:?} in {said:?}");
            // HTTP/1.0 closes unless told otherwise, so actix says nothing there.
            let closes = answer.head.contains("\r\nconnection: close")
                || answer.head.starts_with("HTTP/1.0") && !answer.head.contains("\r\nconnection: keep-alive");
            assert!(closes, "{what}: {}", answer.head);
        }
        let changed = state(app).changed_since(&before);
        assert!(changed.is_empty(), "{what} changed the {}", changed.join(", "));
    }
}

/// One HTTP answer read off the socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The status line and headers, names in lower case as actix writes them.
    head: String,
    body: String,
}

/// Sends `bytes` on a new connection and reads until the server closes it: every answer.
async fn exchange(app: &TestApp, bytes: &[u8], then: Then) -> Vec<Answer> {
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    if let Closes = then {
        stream.shutdown().await.unwrap();
    }
    let mut received = Vec::new();
    let read = tokio::time::timeout(CLOSE_TIMEOUT, stream.read_to_end(&mut received)).await;
    let received = String::from_utf8(received).unwrap();
    assert!(read.is_ok(), "the server kept the connection open ({then:?}); it answered {received:?}");
    answers(&received)
}

/// The answers in `received`, in order (each with a Content-Length, as actix writes them).
fn answers(mut received: &str) -> Vec<Answer> {
    let mut answers = Vec::new();
    while let Some((head, rest)) = received.split_once("\r\n\r\n") {
        let status = head.split(' ').nth(1).and_then(|code| code.parse().ok());
        let length = head.lines().find_map(|line| line.strip_prefix("content-length: "));
        let length: usize = length.map_or(0, |length| length.parse().unwrap());
        let body = rest.get(..length).unwrap_or(rest);
        answers.push(Answer { status: status.unwrap_or(0), head: head.to_owned(), body: body.to_owned() });
        received = &rest[body.len()..];
    }
    assert!(received.is_empty(), "half an answer: {received:?}");
    answers
}

/// A request's head: `method path` over HTTP/1.1 with `headers`, then its body as given.
fn request(app: &TestApp, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    http(app, "HTTP/1.1", method, path, headers, body)
}

fn http(app: &TestApp, version: &str, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} {version}\r\nhost: {}\r\n", app.address);
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    [head.as_bytes(), body].concat()
}

/// `body` as chunks of up to 20 bytes, without the last (zero-length) chunk.
fn chunks(body: &str) -> Vec<u8> {
    let mut chunked = Vec::new();
    for chunk in body.as_bytes().chunks(20) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked
}

const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
const FORM: &str = "content-type: application/x-www-form-urlencoded";

fn basic() -> String {
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    format!("authorization: Basic {credentials}")
}

/// The provider's signature over `path` and the form `body`, as though it had sent that body.
fn signed(app: &TestApp, path: &str, body: &str) -> String {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
    format!("x-twilio-signature: {}", signature::sign(AUTH_TOKEN, &app.url(path), &params))
}

#[tokio::test]
async fn bodies_that_did_not_arrive_whole_and_smuggled_requests_are_refused_and_close_the_connection() {
    // Arrange: each body below is complete and valid; only its framing is wrong.
    let app = spawn_api().await;
    let tasks = format!("/v1/Workspaces/{}/Tasks", workspace(&app));
    let task =
        format!("WorkflowSid={}&Attributes=%7B%22skillsNeeded%22%3A%5B%22Sales%22%5D%7D", workflow(&app));
    let (auth, length) = (basic(), |body: &str| format!("content-length: {}", body.len()));
    let create = |headers: &[&str], body: &[u8]| {
        let headers = [&[auth.as_str(), FORM], headers].concat();
        request(&app, "POST", &tasks, &headers, body)
    };
    // The same task, asked for by a well-framed request: what may hide in a body.
    let hidden = create(&[&*length(&task)], task.as_bytes());
    let smuggling = [LAST_CHUNK, &hidden].concat();
    let hidden_length = format!("content-length: {}", smuggling.len());
    let keys = menu_action(&app, "CA1").await;
    let call = format!("AccountSid={ACCOUNT_SID}&CallSid=CA1&From={CALLER}&To={LINE}&Digits=1");
    let incoming = format!("AccountSid={ACCOUNT_SID}&CallSid=CA2&From={CALLER}&To={LINE}");
    let text = format!("MessageSid=SM1&AccountSid={ACCOUNT_SID}&From={CALLER}&To={LINE}&Body=hi");
    let alice = format!("/v1/Workspaces/{}/Workers/{}", workspace(&app), worker(&app, "alice"));
    let ended = "the body ended after";
    let both = "both Content-Length and Transfer-Encoding";
    let unterminated = "not with its last (zero-length) chunk";

    // Act and assert.
    check(
        &app,
        vec![
            (
                "a REST task whose Content-Length says 1000 bytes, the client gone",
                tasks.clone(),
                create(&["content-length: 1000"], task.as_bytes()),
                Closes,
                (400, ended),
            ),
            (
                "a REST task chunked without its last chunk, the client gone",
                tasks.clone(),
                create(&["transfer-encoding: chunked"], &chunks(&task)),
                Closes,
                (400, unterminated),
            ),
            (
                "a REST task with both framings, hiding the same task in its body",
                tasks.clone(),
                create(&[&*hidden_length, "transfer-encoding: chunked"], &smuggling),
                Waits,
                (400, both),
            ),
            (
                "the same, the client's side closed",
                tasks.clone(),
                create(&["transfer-encoding: chunked", &*hidden_length], &smuggling),
                Closes,
                (400, both),
            ),
            (
                "a GET with both framings, hiding a task in its body",
                "/healthz".to_owned(),
                request(
                    &app,
                    "GET",
                    "/healthz",
                    &["transfer-encoding: chunked", &*hidden_length],
                    &smuggling,
                ),
                Waits,
                (400, both),
            ),
            (
                "a DELETE whose Content-Length says more than it sends",
                alice.clone(),
                request(&app, "DELETE", &alice, &[&*auth, "content-length: 100"], b"x"),
                Closes,
                (400, ended),
            ),
            (
                "the voice webhook, signed, short of its Content-Length",
                "/voice/incoming".to_owned(),
                request(
                    &app,
                    "POST",
                    "/voice/incoming",
                    &[FORM, &*signed(&app, "/voice/incoming", &incoming), "content-length: 1000"],
                    incoming.as_bytes(),
                ),
                Closes,
                (400, "The body ended after"),
            ),
            (
                "the caller's keys, signed, short of their Content-Length (would route the call)",
                keys.clone(),
                request(
                    &app,
                    "POST",
                    &keys,
                    &[FORM, &*signed(&app, &keys, &call), "content-length: 1000"],
                    call.as_bytes(),
                ),
                Closes,
                (400, "The body ended after"),
            ),
            (
                "a text, signed, chunked without its last chunk",
                "/sms/incoming".to_owned(),
                request(
                    &app,
                    "POST",
                    "/sms/incoming",
                    &[FORM, &*signed(&app, "/sms/incoming", &text), "transfer-encoding: chunked"],
                    &chunks(&text),
                ),
                Closes,
                (400, "The chunked body ended with the connection closing"),
            ),
            (
                "the admin API, short of its Content-Length",
                "/admin/api/skills".to_owned(),
                request(
                    &app,
                    "POST",
                    "/admin/api/skills",
                    &[&*auth, FORM, "content-length: 50"],
                    b"Name=Billing",
                ),
                Closes,
                (400, ended),
            ),
            (
                "Transfer-Encoding: identity beside a Content-Length",
                tasks.clone(),
                create(&["transfer-encoding: identity", &*length(&task)], task.as_bytes()),
                Waits,
                (400, both),
            ),
            (
                "Transfer-Encoding: identity alone",
                tasks.clone(),
                create(&["transfer-encoding: identity"], b""),
                Waits,
                (400, "Transfer-Encoding must be `chunked`"),
            ),
            (
                "HTTP/1.0 with Transfer-Encoding (which it does not have) and a length",
                tasks.clone(),
                http(
                    &app,
                    "HTTP/1.0",
                    "POST",
                    &tasks,
                    &[&*auth, FORM, "transfer-encoding: chunked", &*length(&task)],
                    task.as_bytes(),
                ),
                Waits,
                (400, both),
            ),
            (
                "HTTP/1.0 with Transfer-Encoding",
                alice.clone(),
                http(&app, "HTTP/1.0", "DELETE", &alice, &[&*auth, "transfer-encoding: chunked"], b""),
                Waits,
                (400, "an HTTP/1.0 request cannot use Transfer-Encoding"),
            ),
            // What actix-http refuses by itself, before any service runs.
            (
                "two Content-Length values that differ",
                tasks.clone(),
                create(&[&*length(&task), "content-length: 10"], task.as_bytes()),
                Waits,
                (400, ""),
            ),
            (
                "a Content-Length that is not a number",
                tasks.clone(),
                create(&["content-length: 12abc"], task.as_bytes()),
                Waits,
                (400, ""),
            ),
            (
                "a Transfer-Encoding it does not know",
                tasks.clone(),
                create(&["transfer-encoding: gzip"], b""),
                Waits,
                (400, ""),
            ),
        ],
    )
    .await;

    // What is well framed is still served: a chunked body with its last chunk, a request
    // pipelined behind another, and a whole Content-Length body whose client closes its side.
    let mut chunked = chunks(&task);
    chunked.extend_from_slice(LAST_CHUNK);
    let pipelined = [
        create(&[&*length(&task)], task.as_bytes()),
        create(&[&*length(&task), "connection: close"], task.as_bytes()),
    ];
    let served = [
        (create(&["transfer-encoding: chunked", "connection: close"], &chunked), Waits, vec![201]),
        (pipelined.concat(), Waits, vec![201, 201]),
        (create(&[&*length(&task)], task.as_bytes()), Closes, vec![201]),
    ];
    for (bytes, then, expected) in served {
        let answers = exchange(&app, &bytes, then).await;
        let statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
        assert_eq!(statuses, expected, "{answers:#?}");
    }
    assert_eq!(app.engine.read(|engine| engine.tasks().count()), 4);
}
