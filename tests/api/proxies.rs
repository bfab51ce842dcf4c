//! Forwarding headers against the real server: with `voice.public_url` empty, the REST API's
//! links and the URL that webhook signatures are checked over follow `X-Forwarded-Host`,
//! `X-Forwarded-Proto` only from a proxy in `http.trusted_proxies`; RFC 7239's `Forwarded`,
//! which a proxy writing the X- headers passes through from the client, never.

use reqwest::StatusCode;

use crate::helpers::signed_webhook;
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN, spawn_api_with};

type Headers = [(&'static str, &'static str)];

/// What a client sends to look like it came through a proxy.
const FORWARDED: [(&str, &str); 2] = [("x-forwarded-host", "evil.example"), ("x-forwarded-proto", "https")];

/// Against a server trusting `trusted`, with these forwarding `headers`: the REST API's
/// workspace `url` (the port written `PORT`, the workspace SID `WORKSPACE`), and the status of
/// an incoming call signed for `https://evil.example/voice/incoming`.
async fn check(trusted: &[&str], headers: &[(&str, &str)], expected: (&str, StatusCode)) {
    let proxies = switchboard::config::TrustedProxies::parse(trusted.iter().copied()).unwrap();
    let app = spawn_api_with(|settings| settings.http.trusted_proxies = proxies).await;
    let workspace = app.engine.read(|engine| engine.workspace_sid().to_string());
    let mut request = app
        .client
        .get(app.url(&format!("/v1/Workspaces/{workspace}")))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN));
    for &(name, value) in headers {
        request = request.header(name, value);
    }
    let body: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
    let url = body["url"].as_str().unwrap().replace(&app.address.port().to_string(), "PORT");
    let url = url.replace(&workspace, "WORKSPACE");

    let call =
        [("CallSid", "CA1"), ("From", "+15551230000"), ("To", "+15559870000"), ("AccountSid", ACCOUNT_SID)];
    let signed_for_evil =
        signed_webhook(&app.client, "https://evil.example/voice/incoming", &call, AUTH_TOKEN);
    // Sent to the server itself, with the headers that claim that URL.
    let mut webhook = signed_for_evil.build().unwrap();
    *webhook.url_mut() = app.url("/voice/incoming").parse().unwrap();
    for &(name, value) in headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap();
        webhook.headers_mut().insert(name, value.parse().unwrap());
    }
    let status = app.client.execute(webhook).await.unwrap().status();
    assert_eq!((url.as_str(), status), (expected.0, expected.1), "trusting {trusted:?}, sent {headers:?}");
}

#[tokio::test]
async fn forwarding_headers_are_believed_only_from_a_trusted_proxy() {
    let own = "http://127.0.0.1:PORT/v1/Workspaces/";
    let forwarded = "https://evil.example/v1/Workspaces/";
    let rfc7239 = [("forwarded", "for=203.0.113.9;proto=https;host=evil.example")];
    let cases: [(&[&str], &Headers, &str, StatusCode); 6] = [
        // By default nobody is trusted: the links are the server's own, the forged URL's
        // signature does not match.
        (&[], &FORWARDED, own, StatusCode::FORBIDDEN),
        (&[], &rfc7239, own, StatusCode::FORBIDDEN),
        (&["10.0.0.0/8"], &FORWARDED, own, StatusCode::FORBIDDEN),
        // From a trusted proxy (the test client is on 127.0.0.1), the forwarded URL is the one.
        (&["127.0.0.1"], &FORWARDED, forwarded, StatusCode::OK),
        (&["127.0.0.0/8", "::1"], &rfc7239, own, StatusCode::FORBIDDEN),
        (&["127.0.0.1"], &[], own, StatusCode::FORBIDDEN),
    ];
    for (trusted, headers, url, status) in cases {
        check(trusted, headers, (&format!("{url}WORKSPACE"), status)).await;
    }
}
