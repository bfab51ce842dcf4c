//! The agent page's API against the real server: signing in with the admin-issued secret, the
//! session cookie and its CSRF token, the agent's state, and that an agent acts only on their
//! own offers and tasks.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{SignedIn, TestApp};
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN, Api, spawn_api};

/// A new sign-in secret for the worker named `name`, issued through the admin API.
pub(crate) async fn issue_secret(app: &TestApp, name: &str) -> String {
    crate::helpers::issue_secret(&app.client, &app.url(""), &worker_sid(app, name)).await
}

fn worker_sid(app: &TestApp, name: &str) -> String {
    app.engine.read(|engine| engine.worker_by_name(name).unwrap().sid.to_string())
}

/// A signed-in agent: their cookie and CSRF token.
struct Agent<'a> {
    app: &'a TestApp,
    cookie: String,
    csrf: String,
}

impl<'a> Agent<'a> {
    /// Issues `name` a secret through the admin API and signs in with it.
    async fn sign_in(app: &'a TestApp, name: &str) -> Agent<'a> {
        let SignedIn { cookie, csrf } =
            SignedIn::agent(&app.client, &app.url(""), &worker_sid(app, name), name).await;
        Agent { app, cookie, csrf }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        form: &[(&str, &str)],
        csrf: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.app.client.request(method, self.app.url(path)).header("cookie", &self.cookie);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if !form.is_empty() {
            request = request.form(form);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn state(&self) -> Value {
        let (status, state) = self.call(Method::GET, "/agent/api/state", &[], None).await;
        assert_eq!(status, StatusCode::OK, "{state}");
        state
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        self.call(Method::POST, path, form, Some(&self.csrf.clone())).await
    }
}

#[tokio::test]
async fn an_agent_signs_in_sees_their_offer_and_only_they_can_answer_it() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let alice = Agent::sign_in(&app, "alice").await;
    let bob = Agent::sign_in(&app, "bob").await;

    let state = alice.state().await;
    assert_eq!(state["worker"]["friendly_name"], "alice");
    assert_eq!(state["csrf_token"], alice.csrf.as_str(), "a reloaded page gets its CSRF token back");
    let available = state["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["friendly_name"] == "Available")
        .unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    // A write without the CSRF token, or with another session's, is refused and changes nothing.
    let activity = [("ActivitySid", available.as_str())];
    for csrf in [None, Some(bob.csrf.as_str()), Some("00")] {
        let (status, body) = alice.call(Method::POST, "/agent/api/activity", &activity, csrf).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{csrf:?}: {body}");
    }
    assert_ne!(alice.state().await["worker"]["activity_name"], "Available");
    let (status, state) = alice.post("/agent/api/activity", &activity).await;
    assert_eq!((status, state["worker"]["activity_name"].as_str()), (StatusCode::OK, Some("Available")));

    // A Sales call's task is offered to alice, with what the caller did.
    let workflow = app.engine.read(|engine| engine.workflows()[0].sid.to_string());
    let attributes =
        r#"{"skillsNeeded": ["Sales"], "from": "+15551230000", "ivr_path": "1", "channel": "voice"}"#;
    api.post("/Tasks", &[("WorkflowSid", &workflow), ("Attributes", attributes), ("TaskChannel", "voice")])
        .await;
    let offers = alice.state().await["offers"].clone();
    assert_eq!(offers.as_array().unwrap().len(), 1, "{offers}");
    let offer = &offers[0];
    assert_eq!((offer["caller"].as_str(), offer["ivr_path"].as_str()), (Some("+15551230000"), Some("1")));
    assert_eq!(offer["skills_needed"], serde_json::json!(["Sales"]));
    let expires = offer["expires_in_ms"].as_i64().unwrap();
    assert!(expires > 0, "{offer}");
    let (reservation, task) =
        (offer["reservation_sid"].as_str().unwrap(), offer["task_sid"].as_str().unwrap());

    // Bob cannot answer alice's offer nor finish her task.
    let accept = [("ReservationStatus", "accepted")];
    let (status, body) = bob.post(&format!("/agent/api/reservations/{reservation}"), &accept).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, state) = alice.post(&format!("/agent/api/reservations/{reservation}"), &accept).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["tasks"][0]["task_sid"], task);
    let (status, body) =
        bob.post(&format!("/agent/api/tasks/{task}"), &[("AssignmentStatus", "completed")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = alice.post(&format!("/agent/api/reservations/{reservation}"), &accept).await;
    assert_eq!(status, StatusCode::GONE, "a second answer comes too late: {body}");
    let (status, state) =
        alice.post(&format!("/agent/api/tasks/{task}"), &[("AssignmentStatus", "completed")]).await;
    assert_eq!((status, state["tasks"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));

    // Signing out ends the session for that browser; a new secret ends it everywhere.
    let (status, _) = alice.call(Method::DELETE, "/agent/api/session", &[], None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let _renewed = Agent::sign_in(&app, "bob").await;
    let (status, body) = bob.call(Method::GET, "/agent/api/state", &[], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old session is bound to the old secret: {body}");
}

#[tokio::test]
async fn signing_in_needs_the_right_secret_and_the_agent_api_a_session() {
    let app = spawn_api().await;
    let wrong =
        app.client.post(app.url("/agent/api/session")).form(&[("Name", "alice"), ("Secret", "guess")]);
    assert_eq!(wrong.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let no_secret_yet =
        app.client.post(app.url("/agent/api/session")).form(&[("Name", "bob"), ("Secret", "")]);
    assert_eq!(no_secret_yet.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    for path in ["/agent/api/state", "/agent/api/events"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let forged = app
        .client
        .get(app.url("/agent/api/state"))
        .header("cookie", "switchboard_agent=agent.WK1.99999999999999.n.00");
    assert_eq!(forged.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let page = app.client.get(app.url("/agent")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
}

#[tokio::test]
async fn the_admin_signs_in_once_and_the_rest_api_takes_the_session_with_its_csrf_token() {
    let app = spawn_api().await;
    let response = app
        .client
        .post(app.url("/admin/api/session"))
        .form(&[("AccountSid", ACCOUNT_SID), ("AuthToken", AUTH_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = response.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_owned();
    let workspace = app.engine.read(|engine| engine.workspace_sid().to_string());
    let activities = format!("/v1/Workspaces/{workspace}/Activities");
    let read = app.client.get(app.url(&activities)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let form = [("FriendlyName", "Coaching")];
    let unprotected = app.client.post(app.url(&activities)).header("cookie", &cookie).form(&form);
    assert_eq!(unprotected.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let protected = app
        .client
        .post(app.url(&activities))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .form(&form);
    assert_eq!(protected.send().await.unwrap().status(), StatusCode::CREATED);
    let wrong = app
        .client
        .post(app.url("/admin/api/session"))
        .form(&[("AccountSid", ACCOUNT_SID), ("AuthToken", "no")]);
    assert_eq!(wrong.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // An ended session gets a 401 without a Basic challenge, which would make the browser prompt.
    let ended = "switchboard_admin=admin.AC0123456789abcdef0123456789abcdef.1.n.00";
    let refused = app.client.get(app.url(&activities)).header("cookie", ended).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get("www-authenticate").is_none());
    let anonymous = app.client.get(app.url(&activities)).send().await.unwrap();
    assert!(anonymous.headers().get("www-authenticate").is_some(), "API clients still get the challenge");
}

#[tokio::test]
async fn a_new_secret_ends_the_agent_s_live_stream_and_conversations_are_their_own() {
    let app = spawn_api().await;
    let alice = Agent::sign_in(&app, "alice").await;
    let bob = Agent::sign_in(&app, "bob").await;
    let mut live =
        app.client.get(app.url("/agent/api/events")).header("cookie", &alice.cookie).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(live.headers()["x-accel-buffering"], "no");
    let first = String::from_utf8_lossy(&live.chunk().await.unwrap().unwrap()).into_owned();
    assert!(first.starts_with("event: state\n"), "{first}");

    // A new secret, then a change that concerns alice: the stream ends instead of pushing it.
    let _renewed = Agent::sign_in(&app, "alice").await;
    let (worker, available) = app.engine.read(|engine| {
        (engine.worker_by_name("alice").unwrap().sid, engine.activity_by_name("Available").unwrap().sid)
    });
    let command = switchboard::routing::Command::SetWorkerActivity {
        worker,
        activity: available,
        reject_pending: false,
    };
    app.engine.execute(command).await.unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(20), live.chunk())
        .await
        .expect("the stream ends");
    assert!(matches!(ended, Ok(None)), "no more data: {ended:?}");

    // Bob's session reaches no conversation he did not take, and a write needs the CSRF token.
    let task = format!("WT{}", "0".repeat(32));
    for (method, path) in [
        (Method::GET, format!("/agent/api/conversations/{task}")),
        (Method::POST, format!("/agent/api/conversations/{task}/close")),
    ] {
        let (status, body) = bob.call(method, &path, &[], Some(&bob.csrf.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    let (status, body) = bob
        .call(Method::POST, &format!("/agent/api/conversations/{task}/messages"), &[("Body", "hi")], None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "without the CSRF token: {body}");
}

#[tokio::test]
async fn browsers_are_never_challenged_and_other_sites_cannot_use_the_credentials() {
    let app = spawn_api().await;
    let workspace = app.engine.read(|engine| engine.workspace_sid().to_string());
    let activities = app.url(&format!("/v1/Workspaces/{workspace}/Activities"));
    // A page's fetch without credentials: 401, but no challenge that would make it prompt.
    let fetched = app.client.get(&activities).header("sec-fetch-mode", "cors").send().await.unwrap();
    assert_eq!(fetched.status(), StatusCode::UNAUTHORIZED);
    assert!(fetched.headers().get("www-authenticate").is_none());
    // Credentials another site's form sends along are refused, and nothing is created.
    let forged = app
        .client
        .post(&activities)
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .header("sec-fetch-site", "cross-site")
        .form(&[("FriendlyName", "Forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert!(app.engine.read(|engine| engine.activity_by_name("Forged").is_none()));
    // Nor can another site's page sign a browser in.
    let signed = app
        .client
        .post(app.url("/admin/api/session"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("AccountSid", ACCOUNT_SID), ("AuthToken", AUTH_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::FORBIDDEN);
    assert!(signed.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn an_agent_completes_with_one_of_the_queues_dispositions_and_the_wrap_up_limit_frees_them() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let alice = Agent::sign_in(&app, "alice").await;
    let sales = api.find("/TaskQueues", "task_queues", "friendly_name", "Sales").await;
    let workflow = crate::taskrouter::sales_and_support(&app);
    let available = api.find("/Activities", "activities", "friendly_name", "Available").await;
    alice.post("/agent/api/activity", &[("ActivitySid", &available)]).await;

    // The queue's wrap-up rules, through the REST API; a bad one is refused whole.
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/TaskQueues/{sales}"),
            &[("WrapUpLimit", "86401"), ("FriendlyName", "X")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let queue = api.post(&format!("/TaskQueues/{sales}"), &[("DispositionCodes", "Sale,No sale")]).await;
    assert_eq!(queue["friendly_name"], "Sales", "the refused update changed nothing");
    assert_eq!(
        (queue["wrap_up_limit"].as_u64(), &queue["disposition_codes"]),
        (Some(0), &json!(["Sale", "No sale"]))
    );

    // Offered, accepted, wrapped up: the page lists the codes; completing needs one of them.
    let accepted = |state: &Value| state["tasks"].as_array().map(Vec::len) == Some(1);
    let task = take_a_sales_call(&api, &alice, &workflow).await;
    let state = alice.state().await;
    assert!(accepted(&state), "{state}");
    assert_eq!(state["tasks"][0]["dispositions"], json!(["Sale", "No sale"]));
    let path = format!("/agent/api/tasks/{task}");
    let finish = |form: &'static [(&'static str, &'static str)]| alice.post(&path, form);
    let (status, state) = finish(&[("AssignmentStatus", "wrapping")]).await;
    assert_eq!(
        (status, state["tasks"][0]["wrap_up_ends_in_ms"].clone()),
        (StatusCode::OK, Value::Null),
        "no limit"
    );
    for (form, expected) in [
        (&[("AssignmentStatus", "completed")][..], "disposition: pick a disposition: Sale, No sale"),
        (
            &[("AssignmentStatus", "completed"), ("Disposition", "Maybe")][..],
            r#"disposition: "Maybe" is not one of Sales's codes: Sale, No sale"#,
        ),
    ] {
        let (status, body) = finish(form).await;
        assert_eq!((status, body["message"].as_str()), (StatusCode::BAD_REQUEST, Some(expected)));
    }
    let (status, state) = finish(&[("AssignmentStatus", "completed"), ("Disposition", "No sale")]).await;
    assert_eq!((status, state["tasks"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{state}");
    let completed = api.get(&format!("/Tasks/{task}")).await;
    assert_eq!(completed["assignment_status"], "completed");
    let attributes: Value = serde_json::from_str(completed["attributes"].as_str().unwrap()).unwrap();
    assert_eq!(attributes["conversations"]["outcome"], "No sale", "where Flex Insights reads it");
    let statistics = api.get(&format!("/TaskQueues/{sales}/CumulativeStatistics")).await;
    assert_eq!(statistics["tasks_completed_by_disposition"], json!({"No sale": 1}));
    let events = api.get(&format!("/Events?TaskSid={task}&EventType=task.completed")).await;
    assert_eq!(events["events"][0]["event_data"]["disposition"], "No sale");

    // With a limit, a task left wrapping completes by itself and the agent is free again.
    api.post(&format!("/TaskQueues/{sales}"), &[("WrapUpLimit", "1")]).await;
    let task = take_a_sales_call(&api, &alice, &workflow).await;
    let (_, state) =
        alice.post(&format!("/agent/api/tasks/{task}"), &[("AssignmentStatus", "wrapping")]).await;
    assert!(state["tasks"][0]["wrap_up_ends_in_ms"].as_i64().is_some_and(|left| left <= 1000), "{state}");
    let mut reason = Value::Null;
    for _ in 0..100 {
        reason = api.get(&format!("/Tasks/{task}")).await["reason"].clone();
        if !reason.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(reason, "wrap-up time limit reached");
    assert_eq!(alice.state().await["tasks"], json!([]), "alice is free for the next call");
    app.shut_down().await.unwrap();
}

/// A Sales call offered to `agent`, who accepts it: its task SID.
async fn take_a_sales_call(api: &Api<'_>, agent: &Agent<'_>, workflow: &str) -> String {
    let attributes = r#"{"skillsNeeded": ["Sales"], "from": "+15551230000"}"#;
    let task = api
        .post("/Tasks", &[("WorkflowSid", workflow), ("Attributes", attributes), ("TaskChannel", "voice")])
        .await;
    let task = task["sid"].as_str().unwrap().to_owned();
    let offers = agent.state().await["offers"].clone();
    let offer = offers.as_array().unwrap().iter().find(|offer| offer["task_sid"] == task.as_str());
    let reservation =
        offer.unwrap_or_else(|| panic!("no offer of {task}: {offers}"))["reservation_sid"].clone();
    let (status, body) = agent
        .post(
            &format!("/agent/api/reservations/{}", reservation.as_str().unwrap()),
            &[("ReservationStatus", "accepted")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    task
}
