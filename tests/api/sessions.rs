//! Sessions that end (issue #17, point 3) against the real server: what each answer lets a
//! cache keep, every way a session ends (at once, and across a restart of the real process),
//! the live streams that end with it, and the sign-in throttle.

use reqwest::RequestBuilder;

use crate::helpers::{SignedIn, TestApp, issue_secret};
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN, spawn_api};

fn worker(app: &TestApp, name: &str) -> String {
    app.engine.read(|engine| engine.worker_by_name(name).unwrap().sid.to_string())
}

/// The admin's session on the server at `base`.
async fn admin(client: &reqwest::Client, base: &str) -> SignedIn {
    let credentials = [("AccountSid", ACCOUNT_SID), ("AuthToken", AUTH_TOKEN)];
    SignedIn::from_answer(
        client.post(format!("{base}/admin/api/session")).form(&credentials).send().await.unwrap(),
    )
    .await
}

/// `request` with `session`'s cookie and CSRF token.
fn with(request: RequestBuilder, session: &SignedIn) -> RequestBuilder {
    request.header("cookie", &session.cookie).header("x-csrf-token", &session.csrf)
}

/// The status and the caching headers of each answer, one line each:
/// `{status} {Cache-Control} {X-Content-Type-Options} {what} `.
async fn check_headers(requests: Vec<(&str, RequestBuilder)>, expected: expect_test::Expect) {
    let mut lines = Vec::new();
    for (what, request) in requests {
        let answer = request.send().await.unwrap();
        let header = |name: &str| {
            answer.headers().get(name).map_or("-".to_owned(), |value| value.to_str().unwrap().to_owned())
        };
        let status = answer.status().as_u16();
        lines.push(format!(
            "{status} {} {} {what}",
            header("cache-control"),
            header("x-content-type-options")
        ));
    }
    expected.assert_eq(&(lines.join("\n") + "\n"));
}

#[tokio::test]
async fn no_answer_carrying_a_session_a_csrf_token_or_a_secret_may_be_stored_and_none_is_sniffed() {
    let app = spawn_api().await;
    let (client, base) = (&app.client, app.url(""));
    let alice = worker(&app, "alice");
    let secret = issue_secret(client, &base, &worker(&app, "bob")).await;
    let agent = SignedIn::agent(client, &base, &alice, "alice").await;
    let admin = admin(client, &base).await;
    let workspace = app.engine.read(|engine| engine.workspace_sid().to_string());
    let url = |path: &str| app.url(path);
    let credentials = [("AccountSid", ACCOUNT_SID), ("AuthToken", AUTH_TOKEN)];
    check_headers(
        vec![
            (
                "agent sign-in",
                client.post(url("/agent/api/session")).form(&[("Name", "bob"), ("Secret", &secret)]),
            ),
            ("admin sign-in", client.post(url("/admin/api/session")).form(&credentials)),
            ("admin's CSRF token", with(client.get(url("/admin/api/session")), &admin)),
            ("agent's state with its CSRF token", with(client.get(url("/agent/api/state")), &agent)),
            (
                "new secret",
                client
                    .post(url(&format!("/admin/api/workers/{alice}/secret")))
                    .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)),
            ),
            (
                "new worker and its secret",
                client
                    .post(url(&format!("/v1/Workspaces/{workspace}/Workers")))
                    .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
                    .form(&[("FriendlyName", "carol")]),
            ),
            ("sign-out", with(client.delete(url("/admin/api/session")), &admin)),
            ("JSON error", client.get(url("/agent/api/state"))),
            ("REST API error", client.get(url(&format!("/v1/Workspaces/{workspace}")))),
            ("unknown route", client.get(url("/nowhere"))),
            ("health", client.get(url("/healthz"))),
            ("page", client.get(url("/agent"))),
            ("script", client.get(url("/static/agent.js"))),
            ("TwiML refusal", client.post(url("/voice/incoming"))),
        ],
        expect_test::expect![[r#"
            200 no-store nosniff agent sign-in
            200 no-store nosniff admin sign-in
            200 no-store nosniff admin's CSRF token
            200 no-store nosniff agent's state with its CSRF token
            200 no-store nosniff new secret
            201 no-store nosniff new worker and its secret
            204 no-store nosniff sign-out
            401 no-store nosniff JSON error
            401 no-store nosniff REST API error
            404 no-store nosniff unknown route
            200 no-store nosniff health
            200 no-cache nosniff page
            200 no-cache nosniff script
            403 no-store nosniff TwiML refusal
        "#]],
    )
    .await;
}
