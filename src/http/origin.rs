//! Where a request comes from and which URL it was sent to: the one place that reads the
//! forwarding headers (`X-Forwarded-For`, `X-Forwarded-Host`, `X-Forwarded-Proto`).
//!
//! Any client can send those headers, so they are believed only when the direct peer is one of
//! `http.trusted_proxies`; otherwise a request is taken as it arrived: its Host header, the
//! scheme of the connection, the peer's address. Even from a trusted proxy, only what the
//! proxy itself wrote counts: the nearest (last) value of each header, and the client address
//! found walking `X-Forwarded-For` from the nearest hop. RFC 7239's `Forwarded` is not read at
//! all: a proxy that writes the `X-Forwarded-*` headers (nginx, HAProxy, Envoy, Caddy,
//! Traefik, cloud balancers) passes a client's own `Forwarded` through untouched, and reading
//! it would let any client pick the address the sign-in throttle counts.
//!
//! Everything built from the request's own URL goes through here: the REST API's `url` and
//! `links`, the URL that webhook signatures are checked over (with `voice.public_url` empty),
//! whether the session cookie is `Secure`, and the client address that the throttle counts.

use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{HttpRequest, web};

use crate::config::TrustedProxies;

/// A request's origin, forwarding headers applied only from a trusted proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// The host (and port) the client asked for.
    pub host: String,
    /// The client's address: the nearest untrusted one along the forwarding chain. `None` only
    /// for a request without a peer (a test request).
    pub client: Option<IpAddr>,
}

/// The origin of `request` (see the module's comment).
pub(crate) fn origin(request: &HttpRequest) -> Origin {
    let peer = request.peer_addr().map(|address| address.ip().to_canonical());
    let trusted = request.app_data::<web::Data<TrustedProxies>>().map(|data| data.get_ref());
    let trusted = trusted.filter(|proxies| peer.is_some_and(|peer| proxies.contains(peer)));
    let Some(proxies) = trusted else {
        return Origin { scheme: own_scheme(request), host: own_host(request), client: peer };
    };
    let scheme = match nearest(request, "x-forwarded-proto").map(|scheme| scheme.to_ascii_lowercase()) {
        Some(scheme) if scheme == "http" || scheme == "https" => scheme,
        _ => own_scheme(request),
    };
    let host = nearest(request, "x-forwarded-host").unwrap_or_else(|| own_host(request));
    Origin { scheme, host, client: forwarded_client(request, proxies, peer) }
}

/// The values of header `name`, in order, every comma-separated item on its own.
fn header_values(request: &HttpRequest, name: &'static str) -> Vec<String> {
    let headers = request.headers().get_all(header::HeaderName::from_static(name));
    let texts = headers.filter_map(|value| value.to_str().ok());
    texts
        .flat_map(|value| value.split(','))
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

/// The last value of header `name`: the one the nearest proxy wrote (a proxy that appends
/// leaves what the client sent to its left).
fn nearest(request: &HttpRequest, name: &'static str) -> Option<String> {
    header_values(request, name).pop()
}

/// `voice.public_url` when set (`public_url`), otherwise `scheme://host` of [`origin`]: what
/// the client or the provider used to reach us, without a trailing slash.
pub(crate) fn base_url(request: &HttpRequest, public_url: &str) -> String {
    if public_url.is_empty() {
        let Origin { scheme, host, .. } = origin(request);
        format!("{scheme}://{host}")
    } else {
        public_url.to_owned()
    }
}

/// The scheme of the connection itself: Switchboard serves plain HTTP unless actix is told
/// otherwise (an absolute request URI says which).
fn own_scheme(request: &HttpRequest) -> String {
    match request.uri().scheme_str() {
        Some(scheme) => scheme.to_ascii_lowercase(),
        None if request.app_config().secure() => "https".to_owned(),
        None => "http".to_owned(),
    }
}

/// The Host header, else the request URI's authority (HTTP/2), else the server's own name.
fn own_host(request: &HttpRequest) -> String {
    let host = request.headers().get(header::HOST).and_then(|value| value.to_str().ok());
    let host = host.or_else(|| request.uri().authority().map(|authority| authority.as_str()));
    host.unwrap_or_else(|| request.app_config().host()).to_owned()
}

/// The client behind a trusted `peer`: walking `X-Forwarded-For` from the nearest hop, the
/// first address that is not a trusted proxy. A hop that is not an address (`unknown`, an
/// obfuscated name) stops the walk at the last trusted one: nothing further out can be believed.
fn forwarded_client(request: &HttpRequest, proxies: &TrustedProxies, peer: Option<IpAddr>) -> Option<IpAddr> {
    let mut client = peer;
    for hop in header_values(request, "x-forwarded-for").iter().rev() {
        let Some(address) = parse_hop(hop) else { break };
        client = Some(address);
        if !proxies.contains(address) {
            break;
        }
    }
    client
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `"[2001:db8::1]:4711"` or `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    let bare = match hop.strip_prefix('[') {
        Some(rest) => rest.split(']').next()?,
        None => hop.rsplit_once(':')?.0,
    };
    bare.parse::<IpAddr>().ok().map(|address| address.to_canonical())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use expect_test::{Expect, expect};

    use super::*;

    /// The origin of a request from `peer` with `headers`, when `trusted` are the proxies.
    fn check(trusted: &[&str], peer: &str, headers: &[(&str, &str)], expected: Expect) {
        let proxies = TrustedProxies::parse(trusted.iter().copied()).unwrap();
        let mut request = TestRequest::get()
            .uri("/v1/Workspaces")
            .peer_addr(peer.parse().unwrap())
            .app_data(web::Data::new(proxies));
        for &(name, value) in headers {
            request = request.insert_header((name, value));
        }
        let Origin { scheme, host, client } = origin(&request.to_http_request());
        let client = client.map_or("-".to_owned(), |client| client.to_string());
        expected.assert_eq(&format!("{scheme}://{host} from {client}"));
    }

    #[test]
    fn forwarding_headers_count_only_from_a_trusted_proxy() {
        let forwarded = [
            ("host", "10.0.0.5:8080"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        // Nobody is trusted by default: the Host header, the connection's scheme, the peer.
        check(&[], "198.51.100.7:5000", &forwarded, expect!["http://10.0.0.5:8080 from 198.51.100.7"]);
        check(
            &["127.0.0.1"],
            "198.51.100.7:5000",
            &forwarded,
            expect!["http://10.0.0.5:8080 from 198.51.100.7"],
        );
        // From a trusted proxy (an address or a network, v4 mapped into v6 too).
        check(&["127.0.0.1"], "127.0.0.1:5000", &forwarded, expect!["https://evil.example from 203.0.113.9"]);
        check(&["10.0.0.0/8"], "10.1.2.3:5000", &forwarded, expect!["https://evil.example from 203.0.113.9"]);
        check(
            &["10.0.0.0/8"],
            "[::ffff:10.1.2.3]:5000",
            &forwarded,
            expect!["https://evil.example from 203.0.113.9"],
        );
        check(&["::1"], "[::1]:5000", &forwarded, expect!["https://evil.example from 203.0.113.9"]);
        // `Forwarded` is not read: behind a proxy that appends X-Forwarded-For, it is whatever
        // the client sent. Of each X- header, the nearest value counts.
        check(
            &["127.0.0.1"],
            "127.0.0.1:5000",
            &[
                ("host", "10.0.0.5"),
                ("forwarded", r#"for="[2001:db8::7]:4711";proto=https;host=evil.example"#),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-host", "evil.example, sb.example"),
            ],
            expect!["http://sb.example from 203.0.113.9"],
        );
        check(
            &["127.0.0.1"],
            "127.0.0.1:5000",
            &[("host", "h"), ("forwarded", "for=6.6.6.6;proto=https;host=evil.example")],
            expect!["http://h from 127.0.0.1"],
        );
        // A client's IPv6 hop may carry a port and brackets.
        check(
            &["127.0.0.1"],
            "127.0.0.1:5000",
            &[("host", "h"), ("x-forwarded-for", r#""[2001:db8::7]:4711""#)],
            expect!["http://h from 2001:db8::7"],
        );
        // A scheme that is neither http nor https is not taken.
        check(
            &["127.0.0.1"],
            "127.0.0.1:5000",
            &[("host", "h"), ("x-forwarded-proto", "javascript")],
            expect!["http://h from 127.0.0.1"],
        );
    }

    #[test]
    fn the_client_is_the_nearest_untrusted_hop() {
        let trusted = ["127.0.0.1", "10.0.0.0/8"];
        let check = |xff: &str, expected: Expect| {
            check(&trusted, "127.0.0.1:1", &[("host", "h"), ("x-forwarded-for", xff)], expected)
        };
        // The client wrote the first entry itself: what the proxies appended is what counts.
        check("6.6.6.6, 203.0.113.9", expect!["http://h from 203.0.113.9"]);
        check("6.6.6.6, 203.0.113.9, 10.0.0.2", expect!["http://h from 203.0.113.9"]);
        check("10.0.0.3, 10.0.0.2", expect!["http://h from 10.0.0.3"]);
        check("203.0.113.9:4711", expect!["http://h from 203.0.113.9"]);
        check("6.6.6.6, unknown, 10.0.0.2", expect!["http://h from 10.0.0.2"]);
        check("", expect!["http://h from 127.0.0.1"]);
    }

    #[test]
    fn base_url_prefers_the_public_url() {
        let request = TestRequest::get().insert_header(("host", "h:1")).to_http_request();
        assert_eq!(base_url(&request, "https://sb.example"), "https://sb.example");
        assert_eq!(base_url(&request, ""), "http://h:1");
    }
}
