//! X-Twilio-Signature (reference/twiml.md §3): the HMAC-SHA1, keyed with the auth token, of the
//! public URL Twilio requested followed by the form parameters, sorted by name then value, each
//! name immediately followed by its decoded value; Base64 of that. Twilio is inconsistent about
//! ports, so a signature also counts when it matches the URL with its port removed or with the
//! scheme's default port added, as every Twilio library accepts.
//!
//! Pure functions of their inputs: the webhook handlers supply the public URL (configured base
//! plus the path and query as received) and the raw form parameters.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// The signature Twilio sends for a request to `url` with form `params` (empty for GET).
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `signature` (the X-Twilio-Signature header) signs this request, for `url` as given,
/// without its port, or with the scheme's default port. The comparison is constant-time.
pub fn is_valid(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    url_variants(url)
        .iter()
        .any(|candidate| mac(auth_token, candidate, params).verify_slice(&expected).is_ok())
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC accepts any key length");
    mac.update(url.as_bytes());
    // Names in byte order; a repeated name contributes each distinct value once, sorted.
    let mut sorted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, value) in params {
        sorted.entry(name).or_default().insert(value);
    }
    for (name, values) in sorted {
        for value in values {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    mac
}

/// `url` as given, plus the same URL without its port, or with the scheme's default port when
/// it has none (443 for https, 80 otherwise).
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else { return variants };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (format!("{userinfo}@"), host_port),
        None => (String::new(), authority),
    };
    // A port follows the last colon, unless that colon is inside an IPv6 literal (`[::1]`).
    let port_at = host_port.rfind(':').filter(|&colon| !host_port[colon..].contains(']'));
    let variant = match port_at {
        Some(colon) => format!("{scheme}://{userinfo}{}{tail}", &host_port[..colon]),
        None => {
            let port = if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 };
            format!("{scheme}://{userinfo}{host_port}:{port}{tail}")
        }
    };
    variants.push(variant);
    variants
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;
    use crate::fuzzing::{self, awkward_text};

    #[derive(Deserialize)]
    struct Vectors {
        auth_token: String,
        vectors: Vec<Vector>,
    }

    #[derive(Deserialize)]
    struct Vector {
        url: String,
        params: Vec<(String, String)>,
        signature: String,
        valid: bool,
        note: String,
    }

    #[test]
    fn the_conformance_vectors_pass() {
        let vectors: Vectors =
            serde_json::from_str(include_str!("../../tests/conformance/signatures.json")).unwrap();
        assert!(vectors.vectors.len() >= 18);
        for vector in &vectors.vectors {
            let valid = is_valid(&vectors.auth_token, &vector.url, &vector.params, &vector.signature);
            assert_eq!(valid, vector.valid, "{}: {}", vector.note, vector.url);
        }
    }

    fn check(url: &str, expected: &[&str]) {
        assert_eq!(url_variants(url), expected, "{url}");
    }

    #[test]
    fn ports_are_removed_or_added() {
        check("https://a.example/x?y=1", &["https://a.example/x?y=1", "https://a.example:443/x?y=1"]);
        check("http://a.example/x", &["http://a.example/x", "http://a.example:80/x"]);
        check("https://a.example:8443/x", &["https://a.example:8443/x", "https://a.example/x"]);
        check("https://u:p@a.example/x", &["https://u:p@a.example/x", "https://u:p@a.example:443/x"]);
        check("https://a.example", &["https://a.example", "https://a.example:443"]);
        check("http://[::1]:8080/x", &["http://[::1]:8080/x", "http://[::1]/x"]);
        check("http://[::1]/x", &["http://[::1]/x", "http://[::1]:80/x"]);
        check("not a url", &["not a url"]);
    }

    #[test]
    fn a_signature_made_here_validates_and_tampering_does_not() {
        let params = vec![("Digits".to_owned(), "1".to_owned()), ("CallSid".to_owned(), "CA1".to_owned())];
        let url = "https://switchboard.example/voice/ivr?step=main";
        let signature = sign("token", url, &params);
        assert_eq!(signature.len(), 28);
        assert!(is_valid("token", url, &params, &signature));
        assert!(!is_valid("other", url, &params, &signature));
        let pressed_2 = vec![("Digits".to_owned(), "2".to_owned()), ("CallSid".to_owned(), "CA1".to_owned())];
        assert!(!is_valid("token", url, &pressed_2, &signature));
        assert!(!is_valid("token", url, &params, "not base64!"));
    }

    /// URLs as webhooks are configured (schemes, user info, ports, IPv6 hosts) and arbitrary text.
    fn url() -> impl Strategy<Value = String> {
        let scheme = prop::sample::select(vec!["https://", "http://", "HTTPS://", "", "://"]);
        let authority = prop::sample::select(vec![
            "a.example",
            "a.example:8443",
            "u:p@a.example",
            "[::1]",
            "[::1]:8080",
            "[::1",
            "a:b:c",
            "@",
            ":",
        ]);
        let tail = prop::sample::select(vec!["", "/", "/voice/ivr?menu=main", "?x=1:2", "#f", "/é/😀"]);
        prop_oneof![
            3 => (scheme, authority, tail)
                .prop_map(|(scheme, authority, tail)| format!("{scheme}{authority}{tail}")),
            1 => any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(fuzzing::config(1_000))]

        /// Fuzz target (see `crate::fuzzing`): any token, URL, parameters and signature text are
        /// checked without panicking; what `sign` makes validates, whatever the order of the
        /// parameters, and when it signs the URL with its port left out or the default one added.
        #[test]
        fn fuzz_signature_check(
            token in awkward_text(),
            url in url(),
            params in prop::collection::vec((awkward_text(), awkward_text()), 0..6),
            other_signature in awkward_text(),
        ) {
            let variants = url_variants(&url);
            prop_assert_eq!(&variants[0], &url);
            let signature = sign(&token, &url, &params);
            let reversed: Vec<_> = params.iter().rev().cloned().collect();
            prop_assert!(is_valid(&token, &url, &reversed, &signature));
            for variant in &variants {
                prop_assert!(is_valid(&token, &url, &params, &sign(&token, variant, &params)), "{}", variant);
            }
            let _ = is_valid(&token, &url, &params, &other_signature);
        }
    }
}
