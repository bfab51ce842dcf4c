//! Sessions that end (issue #17, point 3) against the real server: what each answer lets a
//! cache keep, every way a session ends (at once, and across a restart of the real process),
//! the live streams that end with it, and the sign-in throttle.

use reqwest::{RequestBuilder, StatusCode};

use crate::helpers::{SignedIn, SwitchboardProcess, TestApp, fixed_config, issue_secret};
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

/// How a session is ended in [`check_ending`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Not at all: the session holds, across a restart too.
    Nothing,
    /// The browser signs out.
    SignOut,
    /// The admin issues the agent a new secret.
    NewSecret,
    /// The agent's worker is deleted through the REST API.
    WorkerDeleted,
    /// The server restarts with another `twilio.auth_token`.
    NewAuthToken,
}

/// Whose session: the agent alice's (watching `/agent/api/events`) or the admin's (watching
/// the dashboard's stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whose {
    Agent,
    Admin,
}

/// `switchboard serve` in `dir`, started off the async runtime.
async fn serve(dir: &std::path::Path) -> SwitchboardProcess {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || crate::helpers::serve_in(&dir)).await.unwrap()
}

fn config(auth_token: &str) -> String {
    fixed_config(0, ACCOUNT_SID, auth_token)
}

/// Signs `whose` in on the real executable, opens their live stream, ends the session as
/// `ending` says, then renders whether the stream ended, and the status the same cookie (a copy
/// of it) gets now and after the process is killed and started again.
async fn check_ending(whose: Whose, ending: Ending, expected: expect_test::Expect) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("switchboard.toml"), config(AUTH_TOKEN)).unwrap();
    let process = serve(dir.path()).await;
    let client = reqwest::Client::new();
    let base = process.url("");
    let account = |request: RequestBuilder| request.basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN));
    let workspaces: serde_json::Value =
        account(client.get(format!("{base}/v1/Workspaces"))).send().await.unwrap().json().await.unwrap();
    let workspace = format!("{base}/v1/Workspaces/{}", workspaces["workspaces"][0]["sid"].as_str().unwrap());
    let workers: serde_json::Value = account(client.get(format!("{workspace}/Workers?FriendlyName=alice")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alice = workers["workers"][0]["sid"].as_str().unwrap().to_owned();
    let (session, stream_path, session_path) = match whose {
        Whose::Agent => (
            SignedIn::agent(&client, &base, &alice, "alice").await,
            "/agent/api/events",
            "/agent/api/session",
        ),
        Whose::Admin => (admin(&client, &base).await, "/admin/api/dashboard/events", "/admin/api/session"),
    };
    let mut live = with(client.get(format!("{base}{stream_path}")), &session).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert!(live.chunk().await.unwrap().is_some(), "the stream's first push");

    match ending {
        Ending::Nothing | Ending::NewAuthToken => {}
        Ending::SignOut => {
            let signed_out =
                with(client.delete(format!("{base}{session_path}")), &session).send().await.unwrap();
            assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
        }
        Ending::NewSecret => drop(issue_secret(&client, &base, &alice).await),
        Ending::WorkerDeleted => {
            let deleted =
                account(client.delete(format!("{workspace}/Workers/{alice}"))).send().await.unwrap();
            assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        }
    }
    // A change that every live stream pushes (a new activity), so that one that is still open
    // says so at once.
    let poke = account(client.post(format!("{workspace}/Activities"))).form(&[("FriendlyName", "Poke")]);
    assert_eq!(poke.send().await.unwrap().status(), StatusCode::CREATED);
    let next = tokio::time::timeout(std::time::Duration::from_secs(20), live.chunk()).await;
    let stream = match next {
        Ok(Ok(None)) => "stream ended",
        Ok(Ok(Some(_))) => "stream still open",
        Ok(Err(_)) => "stream broken",
        Err(_) => "stream silent",
    };

    // The cookie, as a copy of it would be sent: on the session's own read route.
    let check_path = match whose {
        Whose::Agent => "/agent/api/state",
        Whose::Admin => "/admin/api/session",
    };
    let answer = |base: String| {
        let request = client.get(format!("{base}{check_path}")).header("cookie", &session.cookie);
        async move {
            let answer = request.send().await.unwrap();
            answer.status().as_u16()
        }
    };
    let now = answer(base).await;
    drop(process);
    let token = if ending == Ending::NewAuthToken { "another-token" } else { AUTH_TOKEN };
    std::fs::write(dir.path().join("switchboard.toml"), config(token)).unwrap();
    let restarted = serve(dir.path()).await;
    let after_restart = answer(restarted.url("")).await;
    expected.assert_eq(&format!("{stream}, then {now}, after a restart {after_restart}"));
}

#[tokio::test]
async fn every_way_a_session_ends_ends_it_at_once_and_across_restarts() {
    use Ending::*;
    use Whose::*;
    use expect_test::expect;
    let cases = [
        (Agent, Nothing, expect!["stream still open, then 200, after a restart 200"]),
        (Agent, SignOut, expect!["stream ended, then 401, after a restart 401"]),
        (Agent, NewSecret, expect!["stream ended, then 401, after a restart 401"]),
        (Agent, WorkerDeleted, expect!["stream ended, then 401, after a restart 401"]),
        (Agent, NewAuthToken, expect!["stream still open, then 200, after a restart 401"]),
        (Admin, Nothing, expect!["stream still open, then 200, after a restart 200"]),
        (Admin, SignOut, expect!["stream ended, then 401, after a restart 401"]),
        (Admin, NewAuthToken, expect!["stream still open, then 200, after a restart 401"]),
    ];
    for (whose, ending, expected) in cases {
        check_ending(whose, ending, expected).await;
    }
}

#[tokio::test]
async fn an_agent_s_conversation_stream_ends_when_they_sign_out() {
    let app = spawn_api().await;
    let switchboard = crate::sms::Switchboard { base: app.url(""), client: app.client.clone() };
    switchboard.text("SM1", "hi").await;
    switchboard.text("SM2", "1").await;
    let task = switchboard.alice_accepts().await;
    let alice = SignedIn::agent(&app.client, &app.url(""), &worker(&app, "alice"), "alice").await;
    let events = app.url(&format!("/agent/api/conversations/{task}/events"));
    let mut live = with(app.client.get(&events), &alice).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let ready = live.chunk().await.unwrap().unwrap();
    assert!(ready.starts_with(b"event: ready"), "{ready:?}");

    let signed_out = with(app.client.delete(app.url("/agent/api/session")), &alice).send().await.unwrap();
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
    // The customer's next text would be pushed to a stream still open.
    switchboard.text("SM3", "still there?").await;
    let next = tokio::time::timeout(std::time::Duration::from_secs(20), live.chunk()).await;
    assert!(matches!(next, Ok(Ok(None))), "the stream ended: {next:?}");
    let again = with(app.client.get(&events), &alice).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "and cannot be opened again");
}

/// Sends each of `attempts` (`what`, request) in turn and renders the answers, one line per run
/// of identical ones: `{count}× {what}: {status} Retry-After {seconds} {message}`.
async fn check_attempts(attempts: Vec<(String, RequestBuilder)>, expected: expect_test::Expect) {
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (what, request) in attempts {
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let retry_after = answer.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
        let body: serde_json::Value = answer.json().await.unwrap();
        let said = body["message"].as_str().unwrap_or("(signed in)");
        let retry_after = retry_after.map(|seconds| format!(" Retry-After {seconds}")).unwrap_or_default();
        let line = format!("{what}: {status}{retry_after} {said}");
        match lines.last_mut() {
            Some((count, last)) if *last == line => *count += 1,
            _ => lines.push((1, line)),
        }
    }
    let rendered: Vec<String> = lines.into_iter().map(|(count, line)| format!("{count}× {line}")).collect();
    expected.assert_eq(&(rendered.join("\n") + "\n"));
}

#[tokio::test]
async fn failed_sign_ins_make_the_name_then_the_address_wait_and_the_right_secret_waits_too() {
    // The test client plays a proxy, so that X-Forwarded-For gives each attempt its address.
    let app = crate::taskrouter::spawn_api_with(|settings| {
        settings.http.trusted_proxies = switchboard::config::TrustedProxies::parse(["127.0.0.1"]).unwrap();
    })
    .await;
    let (alice, bob) = (worker(&app, "alice"), worker(&app, "bob"));
    let alice_secret = issue_secret(&app.client, &app.url(""), &alice).await;
    let bob_secret = issue_secret(&app.client, &app.url(""), &bob).await;
    let sign_in = |from: &str, name: &str, secret: &str| {
        let what =
            format!("{name} from {from} with {}", if secret.len() == 32 { "the secret" } else { secret });
        let form = [("Name", name.to_owned()), ("Secret", secret.to_owned())];
        (what, app.client.post(app.url("/agent/api/session")).header("x-forwarded-for", from).form(&form))
    };
    let (here, there) = ("203.0.113.1", "198.51.100.2");
    let mut attempts: Vec<_> = (0..5).map(|_| sign_in(here, "alice", "guess")).collect();
    attempts.push(sign_in(here, "alice", &alice_secret));
    attempts.push(sign_in(there, "alice", &alice_secret));
    // Other names from the same address: 15 more failures make the address wait too.
    for name in ["carol", "dave", "nobody"] {
        attempts.extend((0..5).map(|_| sign_in(here, name, "guess")));
    }
    attempts.push(sign_in(here, "bob", &bob_secret));
    let credentials = [("AccountSid", ACCOUNT_SID), ("AuthToken", AUTH_TOKEN)];
    let admin =
        app.client.post(app.url("/admin/api/session")).header("x-forwarded-for", here).form(&credentials);
    attempts.push((format!("admin from {here} with the token"), admin));
    attempts.push(sign_in(there, "bob", &bob_secret));
    check_attempts(attempts, expect_test::expect![[r#"
        5× alice from 203.0.113.1 with guess: 401 unknown name or wrong secret
        1× alice from 203.0.113.1 with the secret: 429 Retry-After 1 too many failed sign-ins: wait 1 s before trying again
        1× alice from 198.51.100.2 with the secret: 429 Retry-After 1 too many failed sign-ins: wait 1 s before trying again
        5× carol from 203.0.113.1 with guess: 401 unknown name or wrong secret
        5× dave from 203.0.113.1 with guess: 401 unknown name or wrong secret
        5× nobody from 203.0.113.1 with guess: 401 unknown name or wrong secret
        1× bob from 203.0.113.1 with the secret: 429 Retry-After 1 too many failed sign-ins: wait 1 s before trying again
        1× admin from 203.0.113.1 with the token: 429 Retry-After 1 too many failed sign-ins: wait 1 s before trying again
        1× bob from 198.51.100.2 with the secret: 200 (signed in)
    "#]]).await;
}

#[tokio::test]
async fn wrong_api_credentials_make_the_address_wait_and_the_right_ones_wait_too() {
    let app = spawn_api().await;
    let alice = worker(&app, "alice");
    let agent = SignedIn::agent(&app.client, &app.url(""), &alice, "alice").await;
    let bob_secret = issue_secret(&app.client, &app.url(""), &worker(&app, "bob")).await;
    let workspaces = app.url("/v1/Workspaces");
    let mut attempts: Vec<_> = (0..100)
        .map(|_| {
            ("wrong token".to_owned(), app.client.get(&workspaces).basic_auth(ACCOUNT_SID, Some("guess")))
        })
        .collect();
    let right = app.client.get(&workspaces).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN));
    attempts.push(("the token".to_owned(), right));
    // Sessions, and the sign-in forms, are counted apart.
    attempts.push(("alice's session".to_owned(), with(app.client.get(app.url("/agent/api/state")), &agent)));
    let bob =
        app.client.post(app.url("/agent/api/session")).form(&[("Name", "bob"), ("Secret", &bob_secret)]);
    attempts.push(("bob signs in".to_owned(), bob));
    check_attempts(attempts, expect_test::expect![[r#"
        100× wrong token: 401 Authentication Error - invalid username or auth token
        1× the token: 429 Retry-After 1 Too Many Requests - too many wrong credentials from this address: wait 1 s before trying again
        1× alice's session: 200 (signed in)
        1× bob signs in: 200 (signed in)
    "#]]).await;
}
