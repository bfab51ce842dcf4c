//! Request framing (RFC 9112 §6): every request's body is read whole, and its framing checked,
//! before any route sees the request, so that a request whose body did not really arrive, or
//! that could be read as two requests, runs no handler and changes nothing.
//!
//! What actix-http 3 does by itself, and so what is left to this module:
//!
//! - It refuses a request with several `Content-Length` headers (even equal ones), one that is
//!   not a decimal number, several `Transfer-Encoding` headers, or a coding other than
//!   `chunked` and `identity`: 400 with an empty body, and the connection closed, before any
//!   service runs. Those never reach this module (its checks of them are a backstop).
//! - With both `Content-Length` and `Transfer-Encoding: chunked` it reads the body as chunked
//!   and serves whatever follows as the next request, which is how a request hidden in the body
//!   is smuggled past a proxy that honours the length. It accepts `Transfer-Encoding: identity`,
//!   and on HTTP/1.0 it ignores `Transfer-Encoding` altogether. All three are refused here.
//! - When the client closes the connection, the body ends quietly (`feed_eof`), as though it
//!   were complete: for a `Content-Length` body the bytes are counted here; a chunked body ended
//!   that way looks exactly like one that ended with its last (zero-length) chunk, so here the
//!   socket itself is asked whether the client has closed its side (see [`peer_closed`]).
//!
//! A refused request is answered 400 (413 for a body over `http.max_body_bytes`) with a message
//! in its area's shape (`form::refusal`), and its connection is closed: the response says
//! `Connection: close`, and any request already read behind it on the same connection is never
//! served (see [`drop_connection`]). A route then reads the body from memory (`form.rs`).

use std::any::Any;
use std::cell::Cell;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::HttpResponse;
use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{Extensions, RequestHead, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{ConnectionType, StatusCode, Version};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};

use super::form::{self, FormError};

/// The largest body any route reads (`http.max_body_bytes`), as app data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub usize);

/// actix-web's own default, for a server wired without [`BodyLimit`] (never, outside tests).
const DEFAULT_LIMIT: usize = 256 << 10;

/// Why a request's body is refused before any route reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FramingError {
    /// A `Content-Length` that is not one decimal number (actix-http refuses these first).
    #[error("Content-Length must be one decimal number of bytes, not `{given}`")]
    ContentLength { given: String },
    /// A `Transfer-Encoding` other than exactly `chunked` (actix-http lets `identity` through).
    #[error("Transfer-Encoding must be `chunked`, the only transfer coding this server reads, not `{given}`")]
    TransferEncoding { given: String },
    /// Both `Content-Length` and `Transfer-Encoding`: two ways to find where the body ends.
    #[error(
        "the request has both Content-Length and Transfer-Encoding, which frame its body in two \
         different ways (RFC 9112 §6.1, request smuggling); send only one of them"
    )]
    LengthAndEncoding,
    /// `Transfer-Encoding` on HTTP/1.0, which has none (actix-http ignores it there).
    #[error("an HTTP/1.0 request cannot use Transfer-Encoding (RFC 9112 §6.1); send a Content-Length")]
    OldEncoding,
    /// The body is longer than `http.max_body_bytes`.
    #[error(
        "the request body is larger than {limit} bytes, the most this server accepts (http.max_body_bytes)"
    )]
    TooLarge { limit: usize },
    /// The connection ended before all the bytes its `Content-Length` declares.
    #[error(
        "the body ended after {received} of the {declared} bytes its Content-Length declares: the \
         connection was closed before the rest arrived"
    )]
    Truncated { received: usize, declared: u64 },
    /// A chunked body ended by the connection closing, not by its last chunk.
    #[error("the chunked body ended with the connection closing, not with its last (zero-length) chunk")]
    Unterminated,
    /// The body could not be read (the connection was reset, or a chunk was malformed).
    #[error("the request body could not be read: {0}")]
    Read(String),
}

impl FramingError {
    /// The HTTP status that answers this refusal.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            FramingError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// What one connection carries for this module, from when it is accepted (`on_connect`).
#[derive(Debug)]
pub(super) struct Connection {
    /// The connection's socket, to ask whether the client closed its side. Only read while
    /// actix-http's dispatcher polls one of this connection's requests: the dispatcher owns the
    /// socket, and drops its requests' futures before it closes it.
    socket: Option<RawFd>,
    /// Set once a request on this connection was refused for its framing: whatever follows on
    /// the connection cannot be trusted to be a request of its own. A `Cell`: connection data
    /// stays on the worker thread that accepted the connection.
    refused: Cell<bool>,
}

/// Records each accepted connection's socket (`HttpServer::on_connect`).
pub(super) fn on_connect(io: &dyn Any, data: &mut Extensions) {
    let socket = io.downcast_ref::<actix_web::rt::net::TcpStream>().map(AsRawFd::as_raw_fd);
    data.insert(Connection { socket, refused: Cell::new(false) });
}

/// Middleware: checks every request's framing, and reads its body whole (up to
/// `http.max_body_bytes`) before the route runs; refuses the request otherwise.
pub(super) async fn check<B: MessageBody>(
    mut request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let connection = request.conn_data::<Connection>();
    if connection.is_some_and(|connection| connection.refused.get()) {
        return Ok(drop_connection(request).await.map_into_right_body());
    }
    let socket = connection.and_then(|connection| connection.socket);
    let limit = request.app_data::<BodyLimit>().map_or(DEFAULT_LIMIT, |limit| limit.0);
    let body = match Framing::of(request.head()) {
        Ok(Framing::None) => Ok(None),
        Ok(framing) => read_body(&mut request, framing, limit, socket).await.map(Some),
        Err(err) => Err(err),
    };
    match body {
        Ok(body) => {
            if let Some(body) = body {
                request.set_payload(body.into());
            }
            Ok(next.call(request).await?.map_into_left_body())
        }
        Err(err) => Ok(refuse(request, err).map_into_right_body()),
    }
}

/// How a request says where its body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`, up to its last (zero-length) chunk.
    Chunked,
}

impl Framing {
    fn of(head: &RequestHead) -> Result<Framing, FramingError> {
        Framing::from_headers(head.version, &head.headers)
    }

    fn from_headers(version: Version, headers: &HeaderMap) -> Result<Framing, FramingError> {
        let all = |name| headers.get_all(name).map(|value| value.to_str().unwrap_or("?")).collect::<Vec<_>>();
        let (lengths, encodings) = (all(header::CONTENT_LENGTH), all(header::TRANSFER_ENCODING));
        if !encodings.is_empty() && !lengths.is_empty() {
            return Err(FramingError::LengthAndEncoding);
        }
        if !encodings.is_empty() && version < Version::HTTP_11 {
            return Err(FramingError::OldEncoding);
        }
        match (&lengths[..], &encodings[..]) {
            ([], []) => Ok(Framing::None),
            ([], [coding]) if coding.trim().eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
            ([], given) => Err(FramingError::TransferEncoding { given: given.join(", ") }),
            ([given], _) => {
                // Rust's parser takes a leading `+`, which HTTP does not.
                let digits = given.trim();
                match digits.parse::<u64>() {
                    Ok(0) => Ok(Framing::None),
                    Ok(length) if !digits.starts_with('+') => Ok(Framing::Length(length)),
                    _ => Err(FramingError::ContentLength { given: (*given).to_owned() }),
                }
            }
            (given, _) => Err(FramingError::ContentLength { given: given.join(", ") }),
        }
    }
}

/// Reads the body of `request` whole, and checks that it ended as its framing says.
async fn read_body(
    request: &mut ServiceRequest,
    framing: Framing,
    limit: usize,
    socket: Option<RawFd>,
) -> Result<Bytes, FramingError> {
    let read_error = |err: &dyn std::fmt::Display| FramingError::Read(err.to_string());
    if let Framing::Length(declared) = framing
        && declared > limit as u64
    {
        return Err(FramingError::TooLarge { limit });
    }
    let payload = request.extract::<web::Payload>().await.map_err(|err| read_error(&err))?;
    let body = match payload.to_bytes_limited(limit).await {
        Ok(Ok(body)) => body,
        Ok(Err(err)) => return Err(read_error(&err)),
        Err(_) => return Err(FramingError::TooLarge { limit }),
    };
    match framing {
        Framing::Length(declared) if (body.len() as u64) < declared => {
            Err(FramingError::Truncated { received: body.len(), declared })
        }
        Framing::Chunked if socket.is_some_and(peer_closed) => Err(FramingError::Unterminated),
        _ => Ok(body),
    }
}

/// Whether the client has closed its side of the connection on `socket` (or reset it).
///
/// actix-http ends a chunked body the same way for its last chunk and for the end of the
/// connection, so when the body has ended this tells the two apart: a body cut off by the
/// client's close always finds the connection closed. A client that sends a whole chunked body
/// and closes its side at once, before it reads the answer, is refused as well when its close
/// arrived with the body (it is told why); HTTP clients do not half-close a connection they
/// expect an answer on, and a `Content-Length` body, counted instead, has no such case.
fn peer_closed(socket: RawFd) -> bool {
    // SAFETY: `socket` is the connection's own descriptor (`on_connect`), and this runs while
    // actix-http's dispatcher polls one of the connection's requests: the dispatcher owns the
    // socket and closes it only when it is dropped, after the requests it holds. So the
    // descriptor is open and is this connection's; `ManuallyDrop` keeps this handle from
    // closing it. tokio's sockets are non-blocking, so the peek does not wait.
    let stream = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(socket) });
    let mut byte = [0; 1];
    match stream.peek(&mut byte) {
        // The client's FIN, after every byte it sent was read.
        Ok(0) => true,
        // More bytes: the next request (pipelined).
        Ok(_) => false,
        Err(err) => err.kind() != io::ErrorKind::WouldBlock,
    }
}

/// The refusal of `request`, in its area's shape, closing the connection.
fn refuse(request: ServiceRequest, err: FramingError) -> ServiceResponse {
    tracing::info!(method = %request.method(), path = %request.path(), %err, "request framing refused; closing the connection");
    if let Some(connection) = request.conn_data::<Connection>() {
        connection.refused.set(true);
    }
    let mut response = form::refusal(request.path(), FormError::Framing(err));
    response.head_mut().set_connection_type(ConnectionType::Close);
    request.into_response(response)
}

/// What answers a request read on a connection after a refused one: nothing. It was read from
/// bytes that cannot be trusted to be a request (the body of a smuggling request, say), and
/// actix-http serves such pipelined requests even after a `Connection: close` answer.
///
/// The answer's body promises a byte and ends without it, which actix-http's encoder takes as
/// an I/O error: the dispatcher then drops the connection at once, neither writing this answer
/// nor serving anything else read on the connection. It first yields once, so that the
/// dispatcher flushes the refusal before it, which is already written to its buffer.
async fn drop_connection(request: ServiceRequest) -> ServiceResponse {
    tracing::info!(method = %request.method(), path = %request.path(), "request after a refused one on its connection: dropping the connection");
    tokio::task::yield_now().await;
    request.into_response(HttpResponse::BadRequest().body(Unfinished))
}

/// A body that declares one byte and has none.
struct Unfinished;

impl MessageBody for Unfinished {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(1)
    }

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(None)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};

    use actix_web::http::header::{HeaderName, HeaderValue};
    use expect_test::expect;

    use super::*;

    /// The framing of a request with `headers`, or the status and the error.
    fn check(version: Version, headers: &[(&str, &str)], expected: &str) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let actual = match Framing::from_headers(version, &map) {
            Ok(framing) => format!("{framing:?}"),
            Err(err) => format!("{} {err:?}", err.status().as_u16()),
        };
        assert_eq!(actual, expected, "{headers:?}");
    }

    const HTTP_11: Version = Version::HTTP_11;
    const HTTP_10: Version = Version::HTTP_10;

    #[test]
    fn framing_is_one_length_or_chunked_never_both() {
        check(HTTP_11, &[], "None");
        check(HTTP_11, &[("content-length", "0")], "None");
        check(HTTP_11, &[("content-length", " 12 ")], "Length(12)");
        check(HTTP_10, &[("content-length", "12")], "Length(12)");
        check(HTTP_11, &[("transfer-encoding", "chunked")], "Chunked");
        check(HTTP_11, &[("transfer-encoding", "Chunked")], "Chunked");
        check(HTTP_11, &[("content-length", "5"), ("transfer-encoding", "chunked")], "400 LengthAndEncoding");
        check(HTTP_11, &[("transfer-encoding", "chunked"), ("content-length", "0")], "400 LengthAndEncoding");
        check(
            HTTP_11,
            &[("transfer-encoding", "identity"), ("content-length", "5")],
            "400 LengthAndEncoding",
        );
        check(HTTP_10, &[("transfer-encoding", "chunked"), ("content-length", "5")], "400 LengthAndEncoding");
        check(HTTP_10, &[("transfer-encoding", "chunked")], "400 OldEncoding");
        check(HTTP_11, &[("transfer-encoding", "identity")], r#"400 TransferEncoding { given: "identity" }"#);
        check(
            HTTP_11,
            &[("transfer-encoding", "gzip"), ("transfer-encoding", "chunked")],
            r#"400 TransferEncoding { given: "gzip, chunked" }"#,
        );
        check(
            HTTP_11,
            &[("content-length", "5"), ("content-length", "6")],
            r#"400 ContentLength { given: "5, 6" }"#,
        );
        check(HTTP_11, &[("content-length", "abc")], r#"400 ContentLength { given: "abc" }"#);
        check(HTTP_11, &[("content-length", "+5")], r#"400 ContentLength { given: "+5" }"#);
        check(HTTP_11, &[("content-length", "-1")], r#"400 ContentLength { given: "-1" }"#);
    }

    #[test]
    fn refusals_say_what_was_wrong() {
        let errors = [
            FramingError::ContentLength { given: "abc".into() },
            FramingError::TransferEncoding { given: "identity".into() },
            FramingError::LengthAndEncoding,
            FramingError::OldEncoding,
            FramingError::TooLarge { limit: 1024 },
            FramingError::Truncated { received: 60, declared: 1000 },
            FramingError::Unterminated,
            FramingError::Read("connection reset".into()),
        ];
        let rendered: Vec<String> =
            errors.iter().map(|err| format!("{} {err}", err.status().as_u16())).collect();
        expect![[r#"
            400 Content-Length must be one decimal number of bytes, not `abc`
            400 Transfer-Encoding must be `chunked`, the only transfer coding this server reads, not `identity`
            400 the request has both Content-Length and Transfer-Encoding, which frame its body in two different ways (RFC 9112 §6.1, request smuggling); send only one of them
            400 an HTTP/1.0 request cannot use Transfer-Encoding (RFC 9112 §6.1); send a Content-Length
            413 the request body is larger than 1024 bytes, the most this server accepts (http.max_body_bytes)
            400 the body ended after 60 of the 1000 bytes its Content-Length declares: the connection was closed before the rest arrived
            400 the chunked body ended with the connection closing, not with its last (zero-length) chunk
            400 the request body could not be read: connection reset"#]]
        .assert_eq(&rendered.join("\n"));
    }

    #[test]
    fn a_closed_side_is_told_from_one_still_open() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        // The server's sockets are non-blocking, as tokio's are; the test's reads block.
        let closed = |server: &TcpStream| {
            server.set_nonblocking(true).unwrap();
            let closed = peer_closed(server.as_raw_fd());
            server.set_nonblocking(false).unwrap();
            closed
        };
        assert!(!closed(&server), "open, nothing sent");
        client.write_all(b"GET").unwrap();
        server.peek(&mut [0; 1]).unwrap();
        assert!(!closed(&server), "bytes waiting");
        server.read_exact(&mut [0; 3]).unwrap();
        assert!(!closed(&server), "everything read, still open");
        client.shutdown(Shutdown::Write).unwrap();
        assert_eq!(server.read(&mut [0; 1]).unwrap(), 0, "the FIN arrived");
        assert!(closed(&server), "the client closed its side");
    }
}
