//! The TaskRouter REST API against the real server: Basic auth, Twilio's JSON shapes and error
//! shape, paging, filters, and the task → reservation → accept → complete path.

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{TestApp, json_as_account, spawn_app_with};

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "test-token";

pub(crate) async fn spawn_api() -> TestApp {
    spawn_api_with(|_| {}).await
}

/// The server with the test account's credentials, and `adjust` applied to its settings.
pub(crate) async fn spawn_api_with(adjust: impl FnOnce(&mut switchboard::config::Settings)) -> TestApp {
    spawn_app_with(|settings| {
        settings.twilio.account_sid = ACCOUNT_SID.into();
        settings.twilio.auth_token = AUTH_TOKEN.into();
        adjust(settings);
    })
    .await
}

/// The API client of these tests: authenticated, with paths relative to the workspace.
pub(crate) struct Api<'a> {
    pub(crate) app: &'a TestApp,
    pub(crate) workspace: String,
}

impl<'a> Api<'a> {
    pub(crate) async fn new(app: &'a TestApp) -> Api<'a> {
        let workspace = app.engine.read(|engine| engine.workspace_sid().to_string());
        Api { app, workspace }
    }

    /// Sends `method` to `/v1/Workspaces/{WS}{path}` with `form` and returns status and JSON.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let url = self.app.url(&format!("/v1/Workspaces/{}{path}", self.workspace));
        let mut request = self.app.client.request(method, url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN));
        if !form.is_empty() {
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(form).unwrap());
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        // A deletion answers 204 with no body.
        let body = response.bytes().await.expect("a body");
        (
            status,
            if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).expect("a JSON body") },
        )
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, &[]).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let (status, body) = self.call(Method::POST, path, form).await;
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    /// A task of `workflow` needing `skill`.
    async fn task_needing(&self, workflow: &str, skill: &str) -> Value {
        let attributes = format!(r#"{{"skillsNeeded": ["{skill}"]}}"#);
        self.post("/Tasks", &[("WorkflowSid", workflow), ("Attributes", &attributes)]).await
    }

    /// The SID of the item of list `path` (key `key`) whose `field` is `value`.
    pub async fn find(&self, path: &str, key: &str, field: &str, value: &str) -> String {
        let list = self.get(path).await;
        let item = list[key].as_array().unwrap().iter().find(|item| item[field] == value);
        item.unwrap_or_else(|| panic!("no {key} with {field} = {value} in {list}"))["sid"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// The SID of the default workspace's "Sales and Support Workflow".
pub fn sales_and_support(app: &TestApp) -> String {
    app.engine.read(|engine| {
        let workflows = engine.workflows().iter();
        workflows
            .filter(|w| w.friendly_name == "Sales and Support Workflow")
            .map(|w| w.sid.to_string())
            .collect()
    })
}

/// Checks a Twilio error answer: status, code, and a message containing `message`.
pub(crate) fn check_error(
    (status, body): (StatusCode, Value),
    expected_status: u16,
    code: u64,
    message: &str,
) {
    assert_eq!(status.as_u16(), expected_status, "{body}");
    assert_eq!(body["status"], expected_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["more_info"], format!("https://www.twilio.com/docs/errors/{code}"), "{body}");
    let text = body["message"].as_str().unwrap_or_default();
    assert!(text.contains(message), "expected {message:?} in {text:?}");
}

#[tokio::test]
async fn nothing_is_readable_without_the_account_credentials() {
    let app = spawn_api().await;
    let workspace = app.engine.read(|engine| engine.workspace_sid().to_string());
    for path in ["/v1/Workspaces".to_owned(), format!("/v1/Workspaces/{workspace}/Tasks")] {
        for credentials in [None, Some((ACCOUNT_SID, "wrong")), Some(("ACwrong", AUTH_TOKEN))] {
            let mut request = app.client.get(app.url(&path));
            if let Some((user, password)) = credentials {
                request = request.basic_auth(user, Some(password));
            }
            let response = request.send().await.unwrap();
            let challenge = response.headers().get("www-authenticate").cloned();
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["status"], 401, "{path} {credentials:?}: {body}");
            assert_eq!(body["code"], 20003);
            assert_eq!(challenge.unwrap(), "Basic realm=\"Switchboard\"");
        }
    }
}

#[tokio::test]
async fn the_workspace_and_its_activities_have_taskrouter_shapes() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let url = |path: &str| app.url(&format!("/v1/Workspaces/{}{path}", api.workspace));

    let list = app.client.get(app.url("/v1/Workspaces")).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN));
    let list: Value = list.send().await.unwrap().json().await.unwrap();
    assert_eq!(list["workspaces"][0]["sid"], api.workspace.as_str());
    assert_eq!(list["meta"]["key"], "workspaces");

    let workspace = api.get("").await;
    assert_eq!(workspace["friendly_name"], "Switchboard");
    assert_eq!(workspace["account_sid"], ACCOUNT_SID);
    assert_eq!(workspace["default_activity_name"], "Offline");
    assert_eq!(workspace["url"], url(""));
    assert_eq!(workspace["links"]["tasks"], url("/Tasks"));

    let activities = api.get("/Activities").await;
    let names: Vec<&str> = activities["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["friendly_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Offline", "Available", "Unavailable", "Break"]);
    let available = api.get("/Activities?Available=true").await;
    assert_eq!(available["activities"].as_array().unwrap().len(), 1);
    let sid = available["activities"][0]["sid"].as_str().unwrap();
    assert_eq!(api.get(&format!("/Activities/{sid}")).await["friendly_name"], "Available");
    check_error(api.call(Method::GET, "/Activities/WA123", &[]).await, 404, 20404, "was not found");
}

#[tokio::test]
async fn a_task_is_created_reserved_accepted_and_completed_through_the_api() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let available = api.find("/Activities", "activities", "friendly_name", "Available").await;
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    let workflow = sales_and_support(&app);

    // Alice becomes available; a sales task arrives.
    let worker = api.post(&format!("/Workers/{alice}"), &[("ActivitySid", &available)]).await;
    assert_eq!(worker["activity_name"], "Available");
    assert_eq!(worker["available"], true);
    let attributes = r#"{"skillsNeeded":["Sales"],"caller":"+15551230000"}"#;
    let (status, task) = api
        .call(
            Method::POST,
            "/Tasks",
            &[("Attributes", attributes), ("WorkflowSid", &workflow), ("Priority", "5")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let task_sid = task["sid"].as_str().unwrap().to_owned();
    assert!(task_sid.starts_with("WT") && task_sid.len() == 34);
    assert_eq!(task["assignment_status"], "reserved");
    assert_eq!(task["priority"], 5);
    assert_eq!(task["task_queue_friendly_name"], "Sales");
    assert_eq!(task["workflow_friendly_name"], "Sales and Support Workflow");
    assert_eq!(task["task_channel_unique_name"], "default");
    let stored: Value = serde_json::from_str(task["attributes"].as_str().unwrap()).unwrap();
    assert_eq!(stored["caller"], "+15551230000");
    let created = task["date_created"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.as_bytes()[10] == b'T' && created.ends_with('Z'),
        "ISO 8601: {task}"
    );

    // The reservation is offered to Alice, seen from the task and from the worker.
    let reservations = api.get(&format!("/Tasks/{task_sid}/Reservations")).await;
    let reservation = &reservations["reservations"][0];
    assert_eq!(reservation["worker_name"], "alice");
    assert_eq!(reservation["reservation_status"], "pending");
    let reservation_sid = reservation["sid"].as_str().unwrap().to_owned();
    let mine = api.get(&format!("/Workers/{alice}/Reservations?ReservationStatus=pending")).await;
    assert_eq!(mine["reservations"][0]["sid"], reservation_sid.as_str());
    assert_eq!(
        mine["reservations"][0]["url"],
        app.url(&format!("/v1/Workspaces/{}/Workers/{alice}/Reservations/{reservation_sid}", api.workspace))
    );

    // Alice accepts; the task is assigned; completing needs a reason.
    let accepted = api
        .post(
            &format!("/Workers/{alice}/Reservations/{reservation_sid}"),
            &[("ReservationStatus", "accepted")],
        )
        .await;
    assert_eq!(accepted["reservation_status"], "accepted");
    assert_eq!(api.get(&format!("/Tasks/{task_sid}")).await["assignment_status"], "assigned");
    check_error(
        api.call(Method::POST, &format!("/Tasks/{task_sid}"), &[("AssignmentStatus", "completed")]).await,
        400,
        20001,
        "Reason is required",
    );
    let completed = api
        .post(&format!("/Tasks/{task_sid}"), &[("AssignmentStatus", "completed"), ("Reason", "call ended")])
        .await;
    assert_eq!(completed["assignment_status"], "completed");
    assert_eq!(completed["reason"], "call ended");
    let reservation = api.get(&format!("/Tasks/{task_sid}/Reservations/{reservation_sid}")).await;
    assert_eq!(reservation["reservation_status"], "completed");
}

#[tokio::test]
async fn bad_requests_get_twilio_errors_naming_the_field() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    let unknown_task = "/Tasks/WT00000000000000000000000000000000";
    for (method, path, form, status, code, message) in [
        (Method::POST, "/Tasks", vec![("Attributes", "{}")], 400, 20001, "WorkflowSid: required"),
        (Method::POST, "/Tasks", vec![("Attributes", "[1]")], 400, 20001, "Attributes must be a JSON object"),
        (
            Method::POST,
            "/Tasks",
            vec![("Attributes", "{"), ("Priority", "1")],
            400,
            20001,
            "Attributes is not valid JSON",
        ),
        (Method::POST, "/Tasks", vec![("Priority", "high")], 400, 20001, "Priority must be a whole number"),
        (
            Method::POST,
            "/Tasks",
            vec![("WorkflowSid", "WW1")],
            400,
            20001,
            "WorkflowSid: `WW1` is not a workflow SID",
        ),
        (Method::GET, unknown_task, vec![], 404, 20404, "was not found"),
        (Method::GET, "/Tasks/not-a-sid", vec![], 404, 20404, "was not found"),
        (Method::GET, "/Tasks?AssignmentStatus=lost", vec![], 400, 20001, "AssignmentStatus: \"lost\""),
        (
            Method::GET,
            "/Workers?TargetWorkersExpression=skill-level%20%3E%203",
            vec![],
            400,
            20001,
            "TargetWorkersExpression: column 6",
        ),
        (
            Method::POST,
            "/Workers",
            vec![("Attributes", "{}")],
            400,
            20001,
            "Missing required parameter FriendlyName",
        ),
        (
            Method::POST,
            "/Workers",
            vec![("FriendlyName", "ALICE")],
            400,
            20001,
            "FriendlyName: a worker named \"ALICE\" exists",
        ),
        (
            Method::POST,
            &format!("/Workers/{alice}"),
            vec![("ActivitySid", "WA00000000000000000000000000000000")],
            400,
            20001,
            "ActivitySid: activity WA00000000000000000000000000000000 does not exist",
        ),
        (
            Method::POST,
            "/Tasks",
            vec![("VirtualStartTime", "2026-11-24T00:00:00Z")],
            400,
            20001,
            "VirtualStartTime is not supported yet",
        ),
        (
            Method::POST,
            "/Tasks",
            vec![("WorkflowSid", "WW00000000000000000000000000000000")],
            400,
            20001,
            "WorkflowSid: workflow WW00000000000000000000000000000000 does not exist",
        ),
        (
            Method::GET,
            "/Workers?PageSize=0",
            vec![],
            400,
            20001,
            "PageSize must be a whole number from 1 to 1000",
        ),
    ] {
        let answer = api.call(method.clone(), path, &form).await;
        check_error(answer, status, code, message);
    }
    let other_workspace = app.client.get(app.url("/v1/Workspaces/WS00000000000000000000000000000000/Tasks"));
    let answer = other_workspace.basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)).send().await.unwrap();
    check_error((answer.status(), answer.json().await.unwrap()), 404, 20404, "was not found");
}

#[tokio::test]
async fn lists_filter_and_page_like_twilio() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let available = api.find("/Activities", "activities", "friendly_name", "Available").await;
    let workflow = app.engine.read(|engine| engine.workflows()[0].sid.to_string());
    for name in ["carol", "dave", "erin"] {
        let attributes =
            format!(r#"{{"routing":{{"skills":["Support"],"levels":{{"Support":{}}}}}}}"#, name.len());
        let worker = api.post("/Workers", &[("FriendlyName", name), ("Attributes", &attributes)]).await;
        assert_eq!(worker["activity_name"], "Offline");
    }
    let bob = api.find("/Workers", "workers", "friendly_name", "bob").await;
    api.post(&format!("/Workers/{bob}"), &[("ActivitySid", &available)]).await;
    for priority in ["1", "9", "5"] {
        api.post(
            "/Tasks",
            &[("WorkflowSid", &workflow), ("Priority", priority), ("Attributes", r#"{"lang":"es"}"#)],
        )
        .await;
    }

    let names = |list: &Value, key: &str, field: &str| -> Vec<String> {
        list[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item[field].to_string().trim_matches('"').to_owned())
            .collect()
    };
    for (query, expected) in [
        ("", vec!["alice", "bob", "carol", "dave", "erin"]),
        ("?ActivityName=Available", vec!["bob"]),
        ("?Available=false", vec!["alice", "carol", "dave", "erin"]),
        ("?FriendlyName=CAROL", vec!["carol"]),
        ("?TaskQueueName=Support", vec!["bob", "carol", "dave", "erin"]),
        ("?TargetWorkersExpression=routing.levels.Support%20%3E%3D%205", vec!["bob", "carol"]),
    ] {
        assert_eq!(
            names(&api.get(&format!("/Workers{query}")).await, "workers", "friendly_name"),
            expected,
            "{query}"
        );
    }
    for (query, expected) in [
        ("", vec!["1", "9", "5"]),
        ("?Ordering=Priority:desc", vec!["9", "5", "1"]),
        ("?AssignmentStatus=reserved", vec!["1"]),
        ("?AssignmentStatus=pending,reserved", vec!["1", "9", "5"]),
        ("?AssignmentStatus=canceled", vec![]),
        ("?EvaluateTaskAttributes=lang%20%3D%3D%20%22es%22", vec!["1", "9", "5"]),
        ("?EvaluateTaskAttributes=lang%20%3D%3D%20%22en%22", vec![]),
    ] {
        assert_eq!(
            names(&api.get(&format!("/Tasks{query}")).await, "tasks", "priority"),
            expected,
            "{query}"
        );
    }

    // Paging: follow next_page_url to the end, as the SDKs do.
    let mut url = app.url(&format!("/v1/Workspaces/{}/Workers?Available=false&PageSize=3", api.workspace));
    let mut pages = Vec::new();
    loop {
        let page: Value = json_as_account(app.client.get(&url)).await;
        pages.push(names(&page, "workers", "friendly_name"));
        assert_eq!(page["meta"]["page_size"], 3);
        assert_eq!(page["meta"]["key"], "workers");
        match page["meta"]["next_page_url"].as_str() {
            Some(next) => {
                assert!(next.contains("Available=false"), "{next}");
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages, [vec!["alice", "carol", "dave"], vec!["erin"]]);
}

#[tokio::test]
async fn writes_need_credentials_too_and_the_scheme_name_is_case_insensitive() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    let base = format!("/v1/Workspaces/{}", api.workspace);
    for path in ["/Workers".to_owned(), format!("/Workers/{alice}"), "/Tasks".to_owned()] {
        let response =
            app.client.post(app.url(&format!("{base}{path}"))).body("FriendlyName=x").send().await.unwrap();
        assert_eq!(response.status(), 401, "POST {path}");
    }
    let token = format!("{ACCOUNT_SID}:{AUTH_TOKEN}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(token.as_bytes());
    let response = app
        .client
        .get(app.url(&base))
        .header("authorization", format!("basic {encoded}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn only_the_accepted_reservation_speaks_for_the_task_and_late_answers_are_gone() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let available = api.find("/Activities", "activities", "friendly_name", "Available").await;
    let offline = api.find("/Activities", "activities", "friendly_name", "Offline").await;
    for name in ["alice", "bob"] {
        let sid = api.find("/Workers", "workers", "friendly_name", name).await;
        api.post(&format!("/Workers/{sid}"), &[("ActivitySid", &available)]).await;
    }
    let workflow = sales_and_support(&app);
    let task = api
        .post("/Tasks", &[("Attributes", r#"{"skillsNeeded":["Sales"]}"#), ("WorkflowSid", &workflow)])
        .await;
    let task = task["sid"].as_str().unwrap().to_owned();
    let first = api.get(&format!("/Tasks/{task}/Reservations")).await["reservations"][0].clone();
    let (first_sid, first_worker) = (first["sid"].as_str().unwrap(), first["worker_sid"].as_str().unwrap());

    // The first agent declines and goes offline; the offer moves to the other agent.
    let rejected = api
        .post(
            &format!("/Tasks/{task}/Reservations/{first_sid}"),
            &[("ReservationStatus", "rejected"), ("WorkerActivitySid", &offline)],
        )
        .await;
    assert_eq!(rejected["reservation_status"], "rejected");
    assert_eq!(api.get(&format!("/Workers/{first_worker}")).await["activity_name"], "Offline");
    let offers = api.get(&format!("/Tasks/{task}/Reservations?ReservationStatus=pending")).await;
    let second = offers["reservations"][0].clone();
    let (second_sid, second_worker) =
        (second["sid"].as_str().unwrap(), second["worker_sid"].as_str().unwrap());
    assert_ne!(second_worker, first_worker);

    // A reservation is only reachable under its own worker.
    check_error(
        api.call(Method::GET, &format!("/Workers/{first_worker}/Reservations/{second_sid}"), &[]).await,
        404,
        20404,
        "was not found",
    );
    // The declined offer can neither be accepted late nor complete the task.
    let late = api
        .call(
            Method::POST,
            &format!("/Tasks/{task}/Reservations/{first_sid}"),
            &[("ReservationStatus", "accepted")],
        )
        .await;
    check_error(late, 410, 20001, "no longer pending");
    let wrong = api
        .call(
            Method::POST,
            &format!("/Tasks/{task}/Reservations/{first_sid}"),
            &[("ReservationStatus", "completed")],
        )
        .await;
    check_error(wrong, 400, 20001, "a rejected reservation cannot become completed");

    // The accepted one wraps up and completes the task.
    let path = format!("/Workers/{second_worker}/Reservations/{second_sid}");
    assert_eq!(api.post(&path, &[("ReservationStatus", "accepted")]).await["reservation_status"], "accepted");
    assert_eq!(api.post(&path, &[("ReservationStatus", "wrapping")]).await["reservation_status"], "wrapping");
    assert_eq!(api.get(&format!("/Tasks/{task}")).await["assignment_status"], "wrapping");
    assert_eq!(
        api.post(&path, &[("ReservationStatus", "completed")]).await["reservation_status"],
        "completed"
    );
    let completed = api.get(&format!("/Tasks/{task}")).await;
    assert_eq!(
        (completed["assignment_status"].as_str(), completed["reason"].as_str()),
        (Some("completed"), Some("reservation completed"))
    );
}

#[tokio::test]
async fn a_refused_update_changes_nothing() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    let available = api.find("/Activities", "activities", "friendly_name", "Available").await;
    let before = api.get(&format!("/Workers/{alice}")).await;
    for form in [
        vec![("Attributes", r#"{"new":1}"#), ("ActivitySid", "WA00000000000000000000000000000000")],
        vec![
            ("Attributes", r#"{"new":1}"#),
            ("ActivitySid", available.as_str()),
            ("RejectPendingReservations", "true"),
        ],
        vec![("Attributes", r#"{"new":1}"#), ("FriendlyName", "alicia")],
    ] {
        let (status, body) = api.call(Method::POST, &format!("/Workers/{alice}"), &form).await;
        assert_eq!(status, 400, "{form:?}: {body}");
        assert_eq!(api.get(&format!("/Workers/{alice}")).await, before, "{form:?} changed the worker");
    }

    let workflow = app.engine.read(|engine| engine.workflows()[0].sid.to_string());
    let task = api.post("/Tasks", &[("WorkflowSid", &workflow), ("Attributes", r#"{"n":1}"#)]).await;
    let path = format!("/Tasks/{}", task["sid"].as_str().unwrap());
    let canceled = api.post(&path, &[("AssignmentStatus", "canceled"), ("Reason", "caller hung up")]).await;
    assert_eq!(
        (canceled["assignment_status"].as_str(), canceled["reason"].as_str()),
        (Some("canceled"), Some("caller hung up"))
    );
    let refused = api
        .call(
            Method::POST,
            &path,
            &[("Attributes", r#"{"n":2}"#), ("AssignmentStatus", "completed"), ("Reason", "x")],
        )
        .await;
    assert_eq!(refused.0, 400, "{}", refused.1);
    assert_eq!(
        api.get(&path).await["attributes"],
        r#"{"n":1}"#,
        "the refused update must not change the attributes"
    );
}

#[tokio::test]
async fn a_task_update_is_one_command_refused_whole_or_applied_attributes_first() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let workflow = sales_and_support(&app);
    let task = api.task_needing(&workflow, "Sales").await;
    let path = format!("/Tasks/{}", task["sid"].as_str().unwrap());
    let events = async |api: &Api<'_>| -> Vec<String> {
        let events = api.get(&format!("/Events?TaskSid={}", task["sid"].as_str().unwrap())).await;
        let events = events["events"].as_array().unwrap().iter().rev();
        events.map(|event| event["event_type"].as_str().unwrap().to_owned()).collect()
    };
    let before = events(&api).await;
    let update = [
        ("Attributes", r#"{"skillsNeeded":["Sales"],"note":"vip"}"#),
        ("Priority", "7"),
        ("AssignmentStatus", "completed"),
        ("Reason", "done"),
    ];

    // Completing a pending task is refused, and the attributes and priority sent with it are not
    // applied either.
    let refused = api.call(Method::POST, &path, &update).await;
    check_error(refused, 400, 20001, "is pending; only an assigned or wrapping task can be completed");
    let unchanged = api.get(&path).await;
    assert_eq!((&unchanged["attributes"], &unchanged["priority"]), (&task["attributes"], &task["priority"]));
    assert_eq!(events(&api).await, before, "no event for a refused update");

    // Accepted by alice, the same update applies whole: attributes and priority, then the status.
    let available = api.find("/Activities", "activities", "friendly_name", "Available").await;
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    api.post(&format!("/Workers/{alice}"), &[("ActivitySid", &available)]).await;
    let reservation = api.get(&format!("{path}/Reservations")).await["reservations"][0]["sid"].clone();
    let reservation = reservation.as_str().unwrap();
    api.post(&format!("{path}/Reservations/{reservation}"), &[("ReservationStatus", "accepted")]).await;
    let updated = api.post(&path, &update).await;

    assert_eq!(
        (&updated["assignment_status"], &updated["reason"], &updated["priority"], &updated["attributes"]),
        (
            &"completed".into(),
            &"done".into(),
            &7.into(),
            &r#"{"skillsNeeded":["Sales"],"note":"vip"}"#.into()
        )
    );
    let after = events(&api).await;
    assert_eq!(
        after[after.len() - 3..],
        ["task.updated", "task.completed", "reservation.completed"],
        "one update, attributes first: {after:?}"
    );
}

#[tokio::test]
async fn queues_workflows_and_activities_are_created_and_queue_statistics_follow_the_tasks() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;

    // An activity, a Billing queue and a workflow that sends billing tasks to it.
    let training = api.post("/Activities", &[("FriendlyName", "Training"), ("Available", "false")]).await;
    assert_eq!(
        (training["friendly_name"].as_str(), training["available"].as_bool()),
        (Some("Training"), Some(false))
    );
    let queue = api
        .post(
            "/TaskQueues",
            &[
                ("FriendlyName", "Billing"),
                ("TargetWorkers", "routing.skills HAS \"Billing\""),
                ("MaxReservedWorkers", "2"),
            ],
        )
        .await;
    let queue_sid = queue["sid"].as_str().unwrap().to_owned();
    assert_eq!(
        (queue["task_order"].as_str(), queue["max_reserved_workers"].as_u64()),
        (Some("FIFO"), Some(2))
    );
    let configuration = format!(
        r#"{{"task_routing": {{"filters": [{{"filter_friendly_name": "Billing", "expression": "type == 'billing'", "targets": [{{"queue": "{queue_sid}"}}]}}]}}}}"#
    );
    let workflow = api
        .post(
            "/Workflows",
            &[
                ("FriendlyName", "Billing desk"),
                ("Configuration", &configuration),
                ("TaskReservationTimeout", "30"),
            ],
        )
        .await;
    assert_eq!(workflow["task_reservation_timeout"], 30);
    assert_eq!(
        api.get(&format!("/Workflows/{}", workflow["sid"].as_str().unwrap())).await["configuration"],
        configuration
    );

    // A billing agent; the queue list evaluates worker attributes.
    let available = api.find("/Activities", "activities", "friendly_name", "Available").await;
    api.post(
        "/Workers",
        &[
            ("FriendlyName", "bea"),
            ("Attributes", r#"{"routing": {"skills": ["Billing"]}}"#),
            ("ActivitySid", &available),
        ],
    )
    .await;
    let evaluated = api.get("/TaskQueues?EvaluateWorkerAttributes=%7B%22routing%22%3A%7B%22skills%22%3A%5B%22Billing%22%5D%7D%7D").await;
    let names: Vec<&str> = evaluated["task_queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["friendly_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Everyone", "Billing"]);

    // Two billing tasks: bea is offered one, the other waits; the statistics say so.
    for _ in 0..2 {
        api.post(
            "/Tasks",
            &[("WorkflowSid", workflow["sid"].as_str().unwrap()), ("Attributes", r#"{"type": "billing"}"#)],
        )
        .await;
    }
    let statistics = api.get(&format!("/TaskQueues/{queue_sid}/RealTimeStatistics")).await;
    assert_eq!(statistics["total_tasks"], 2);
    assert_eq!(
        (
            statistics["tasks_by_status"]["reserved"].as_u64(),
            statistics["tasks_by_status"]["pending"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        (statistics["total_eligible_workers"].as_u64(), statistics["total_available_workers"].as_u64()),
        (Some(1), Some(1))
    );
    let workspace = api.get("/RealTimeStatistics").await;
    assert_eq!((workspace["total_tasks"].as_u64(), workspace["total_workers"].as_u64()), (Some(2), Some(3)));
    assert_eq!(api.get("/Statistics").await["realtime"]["tasks_by_status"]["pending"], 1);
    let wrapped = api.get(&format!("/TaskQueues/{queue_sid}/Statistics")).await;
    assert_eq!(
        (wrapped["task_queue_sid"].as_str(), &wrapped["realtime"]["total_tasks"]),
        (Some(queue_sid.as_str()), &serde_json::json!(2))
    );
    let by_workflow =
        api.get(&format!("/Workflows/{}/RealTimeStatistics", workflow["sid"].as_str().unwrap())).await;
    assert_eq!(
        (by_workflow["total_tasks"].as_u64(), by_workflow["tasks_by_status"]["pending"].as_u64()),
        (Some(2), Some(1))
    );

    // Updates, and refusals naming the field.
    let updated = api.post(&format!("/TaskQueues/{queue_sid}"), &[("MaxReservedWorkers", "3")]).await;
    assert_eq!(updated["max_reserved_workers"], 3);
    let (status, error) = api.call(Method::POST, "/TaskQueues", &[("FriendlyName", "billing")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "names are unique ignoring case: {error}");
    let duplicate = [("FriendlyName", "BILLING DESK"), ("Configuration", configuration.as_str())];
    assert_eq!(api.call(Method::POST, "/Workflows", &duplicate).await.0, StatusCode::BAD_REQUEST);
    let callback = [
        ("FriendlyName", "Z"),
        ("Configuration", configuration.as_str()),
        ("AssignmentCallbackUrl", "https://x.example"),
    ];
    let (status, error) = api.call(Method::POST, "/Workflows", &callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["message"].as_str().unwrap().starts_with("AssignmentCallbackUrl is not supported"),
        "{error}"
    );
    let unknown = format!("/TaskQueues/WQ{}/RealTimeStatistics", "0".repeat(32));
    assert_eq!(api.call(Method::GET, &unknown, &[]).await.0, StatusCode::NOT_FOUND);
    for path in [
        "/TaskQueues".to_owned(),
        "/Workflows".to_owned(),
        format!("/TaskQueues/{queue_sid}/RealTimeStatistics"),
    ] {
        let url = app.url(&format!("/v1/Workspaces/{}{path}", api.workspace));
        assert_eq!(app.client.get(url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, error) =
        api.call(Method::POST, "/TaskQueues", &[("FriendlyName", "X"), ("TaskOrder", "RANDOM")]).await;
    assert_eq!(
        (status, error["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TaskOrder must be FIFO or LIFO, not \"RANDOM\""))
    );
    let (status, error) = api
        .call(Method::POST, "/TaskQueues", &[("FriendlyName", "Y"), ("TargetWorkers", "skill-level > 3")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["message"].as_str().unwrap().contains("column"), "{error}");
}

#[tokio::test]
async fn explain_says_why_a_worker_is_or_is_not_offered_a_task() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let workflow = sales_and_support(&app);
    let task = api.task_needing(&workflow, "Sales").await;
    let task = task["sid"].as_str().unwrap();
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    let zed = api
        .post(
            "/Workers",
            &[("FriendlyName", "zed"), ("Attributes", r#"{"routing": {"skills": ["Support"]}}"#)],
        )
        .await;
    let explain = |worker: &str| format!("/Tasks/{task}/Explain?WorkerSid={worker}");

    let offline = api.get(&explain(&alice)).await;
    assert_eq!(
        (offline["reason"].as_str(), offline["offered_or_eligible"].as_bool()),
        (Some("activity_unavailable"), Some(false))
    );
    let outsider = api.get(&explain(zed["sid"].as_str().unwrap())).await;
    assert_eq!(outsider["reason"], "not_in_queue", "{outsider}");
    assert_eq!(outsider["failing_clause"], "routing.skills HAS \"Sales\"");
    assert_eq!(outsider["values"]["routing.skills"], "[\"Support\"]", "{outsider}");

    let available = api.find("/Activities", "activities", "friendly_name", "Available").await;
    api.post(&format!("/Workers/{alice}"), &[("ActivitySid", &available)]).await;
    let offered = api.get(&explain(&alice)).await;
    assert_eq!(
        (offered["reason"].as_str(), offered["offered_or_eligible"].as_bool()),
        (Some("offered"), Some(true))
    );

    let (status, error) = api.call(Method::GET, &format!("/Tasks/{task}/Explain"), &[]).await;
    assert_eq!((status, error["message"].as_str()), (StatusCode::BAD_REQUEST, Some("WorkerSid is required")));
}

#[tokio::test]
async fn skills_are_listed_created_deleted_and_assigned_with_levels() {
    let app = spawn_api().await;
    let admin = |method: Method, path: &str, form: &[(&str, &str)]| {
        let mut request = app.client.request(method, app.url(path)).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN));
        if !form.is_empty() {
            request = request.form(form);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (status, listed) = admin(Method::GET, "/admin/api/skills", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed["skills"][0],
        serde_json::json!({"name": "Sales", "levels": {"min": 1, "max": 5}, "queue_expression": "routing.skills HAS \"Sales\"", "workflow_expression": "\"Sales\" IN task.skillsNeeded", "order_by": "worker.routing.levels.Sales DESC"})
    );
    let (status, created) = admin(Method::POST, "/admin/api/skills", &[("Name", "Billing")]).await;
    assert_eq!((status, created["levels"].clone()), (StatusCode::CREATED, Value::Null));
    let (status, error) = admin(Method::POST, "/admin/api/skills", &[("Name", "Tech-Support")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["message"].as_str().unwrap().contains("no spaces or hyphens"), "{error}");

    // Assigning skills writes routing.skills and routing.levels as Flex does, keeping the rest.
    let alice = app.engine.read(|engine| engine.worker_by_name("alice").unwrap().sid.to_string());
    let (status, assigned) = admin(
        Method::POST,
        &format!("/admin/api/workers/{alice}/skills"),
        &[("Skill", "Sales:5"), ("Skill", "Billing")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{assigned}");
    assert_eq!(
        assigned["attributes"]["routing"],
        serde_json::json!({"skills": ["Sales", "Billing"], "levels": {"Sales": 5}})
    );
    assert_eq!(assigned["attributes"]["contact_uri"], "client:alice");
    let (status, error) =
        admin(Method::POST, &format!("/admin/api/workers/{alice}/skills"), &[("Skill", "Sales:9")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["message"].as_str().unwrap().contains("outside the skill's range 1-5"), "{error}");

    // Switching Sales off keeps its level, out of routing's sight; switching it on restores it.
    let (status, switched_off) = admin(
        Method::POST,
        &format!("/admin/api/workers/{alice}/skills"),
        &[("Skill", "Billing"), ("DisabledSkill", "Sales:5")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{switched_off}");
    assert_eq!(
        (&switched_off["attributes"]["routing"], &switched_off["attributes"]["disabled_skills"]),
        (
            &serde_json::json!({"skills": ["Billing"], "levels": {}}),
            &serde_json::json!({"skills": ["Sales"], "levels": {"Sales": 5}})
        )
    );
    let sales_queue = app.engine.read(|engine| engine.queue_by_name("Sales").unwrap().sid);
    let members = app.engine.read(|engine| engine.queue_members(engine.queue(sales_queue).unwrap()));
    assert!(!members.iter().any(|sid| sid.to_string() == alice), "a switched-off skill does not route");

    let twice = [("Skill", "Sales:2"), ("Skill", "sales:3")];
    let (status, _) = admin(Method::POST, &format!("/admin/api/workers/{alice}/skills"), &twice).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a skill given twice");
    let (status, _) = admin(Method::POST, &format!("/admin/api/workers/{alice}/skills"), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no skills at all does not clear them by accident");
    let (status, _) = admin(Method::DELETE, "/admin/api/skills/billing", &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "names match ignoring case, as creating does");
    let (status, _) = admin(Method::DELETE, "/admin/api/skills/Nope", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = admin(Method::GET, "/admin/api/skills", &[]).await;
    assert_eq!(listed["skills"].as_array().unwrap().len(), 2);
    let anonymous = app.client.get(app.url("/admin/api/skills")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_expression_is_checked_where_it_would_be_used_without_saving_and_a_mistake_is_drawn_with_a_caret()
{
    let app = spawn_api().await;
    let check = |form: &[(&str, &str)]| {
        let request = app.client.post(app.url("/admin/api/expressions/check")).form(form);
        async move {
            let response = request.basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)).send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };

    // Each context compiles as a save would: what is valid in one may be refused in another.
    let valid = [
        ("queue", r#"routing.skills HAS "Sales""#),
        ("filter", r#""Sales" IN task.skillsNeeded"#),
        ("target", "worker.routing.levels.Sales >= task.level"),
        ("Filter", "taskrouter.currentHour >= 9"),
    ];
    for (context, expression) in valid {
        let answer = check(&[("Expression", expression), ("Context", context)]).await;
        assert_eq!(answer, (StatusCode::OK, serde_json::json!({"valid": true})), "{context}: {expression}");
    }
    let refused = [
        (
            "queue",
            "routing.skills HAS",
            "column 19: expected a value (a string, number, true, false, null, array or attribute), but the expression ends here\nrouting.skills HAS\n                  ^",
        ),
        (
            "target",
            "level > 3",
            "column 1: `level` names neither the task nor the worker: in a target expression write `task.level` or `worker.level`\nlevel > 3\n^",
        ),
        (
            "queue",
            "taskrouter.currentHour > 9",
            "column 1: `taskrouter.currentHour`: clock variables cannot be used in a queue expression (queue membership does not change with the time of day); use them in a workflow filter or target\ntaskrouter.currentHour > 9\n^",
        ),
        (
            "filter",
            "skill-level > 3",
            "column 6: hyphens are not allowed in attribute names: `skill-level` (TaskRouter cannot reference such a key; rename it, e.g. `skill_level`)\nskill-level > 3\n     ^",
        ),
    ];
    for (context, expression, message) in refused {
        let (status, answer) = check(&[("Expression", expression), ("Context", context)]).await;
        assert_eq!(
            (status, answer["message"].as_str()),
            (StatusCode::BAD_REQUEST, Some(message)),
            "{answer}"
        );
    }
    // The caret stands under the column the message names.
    let (_, answer) = check(&[("Expression", "vip == true AND AND"), ("Context", "filter")]).await;
    let message = answer["message"].as_str().unwrap();
    let lines: Vec<&str> = message.lines().collect();
    assert!(lines[0].starts_with("column 17: "), "{message}");
    assert_eq!((lines[1], lines[2].find('^')), ("vip == true AND AND", Some(16)), "{message}");
    let bad_requests = [
        (&[("Expression", "1 == 1")][..], "Context must be queue"),
        (&[("Expression", "1 == 1"), ("Context", "workflow")][..], "Context must be queue"),
        (&[("Context", "queue")][..], "Expression is required"),
    ];
    for (form, message) in bad_requests {
        let (status, answer) = check(form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}: {answer}");
        assert!(answer["message"].as_str().unwrap().starts_with(message), "{form:?}: {answer}");
    }

    // The admin's credentials or session are needed, and a session's write its CSRF token; an
    // agent's session is refused.
    let form = [("Expression", "1 == 1"), ("Context", "queue")];
    let url = app.url("/admin/api/expressions/check");
    let anonymous = app.client.post(&url).form(&form).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = app.client.post(&url).basic_auth(ACCOUNT_SID, Some("no")).form(&form).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let credentials = [("AccountSid", ACCOUNT_SID), ("AuthToken", AUTH_TOKEN)];
    let signed_in = app.client.post(app.url("/admin/api/session")).form(&credentials).send().await.unwrap();
    let admin = crate::helpers::SignedIn::from_answer(signed_in).await;
    let without_token =
        app.client.post(&url).header("cookie", &admin.cookie).form(&form).send().await.unwrap();
    assert_eq!(without_token.status(), StatusCode::FORBIDDEN);
    let (status, answer) =
        admin.send(&app.client, &app.url(""), Method::POST, "/admin/api/expressions/check", &form).await;
    assert_eq!((status, answer), (StatusCode::OK, serde_json::json!({"valid": true})));
    let alice = app.engine.read(|engine| engine.worker_by_name("alice").unwrap().sid.to_string());
    let agent = crate::helpers::SignedIn::agent(&app.client, &app.url(""), &alice, "alice").await;
    let (status, answer) =
        agent.send(&app.client, &app.url(""), Method::POST, "/admin/api/expressions/check", &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
}

#[tokio::test]
async fn events_list_what_happened_newest_first_with_filters_and_paging() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let workflow = sales_and_support(&app);
    let task = api.task_needing(&workflow, "Sales").await["sid"].as_str().unwrap().to_owned();
    let other = api.task_needing(&workflow, "Support").await;

    let events = api.get(&format!("/Events?TaskSid={task}")).await;
    let types: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["workflow.target-matched", "task.created", "task-queue.entered", "workflow.entered"],
        "newest first"
    );
    let created = &events["events"][1];
    assert_eq!(
        (created["resource_sid"].as_str(), created["resource_type"].as_str()),
        (Some(task.as_str()), Some("task"))
    );
    let fetched = api.get(&format!("/Events/{}", created["sid"].as_str().unwrap())).await;
    assert_eq!(&fetched, created, "one event by its SID");

    let one = api.get("/Events?EventType=task.created&PageSize=1").await;
    assert_eq!(one["events"][0]["resource_sid"], other["sid"], "the newest task first");
    assert!(one["meta"]["next_page_url"].as_str().unwrap().contains("EventType=task.created"));
    let second = api.get("/Events?EventType=task.created&PageSize=1&Page=1").await;
    assert_eq!(
        (second["events"][0]["resource_sid"].as_str(), &second["meta"]["next_page_url"]),
        (Some(task.as_str()), &Value::Null)
    );

    assert_eq!(
        api.get("/Events?Minutes=5&EventType=task.created").await["events"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        api.get("/Events?StartDate=2099-01-01T00:00:00Z").await["events"].as_array().unwrap().len(),
        0
    );
    let (status, error) = api.call(Method::GET, "/Events?StartDate=yesterday", &[]).await;
    assert_eq!(
        (status, error["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("StartDate must be an ISO 8601 date and time, like 2026-11-24T09:30:00Z")
        )
    );
}

#[tokio::test]
async fn queues_and_workflows_are_updated_and_resources_deleted_when_nothing_holds_them() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let api = &api;
    let delete = |path: String| async move { api.call(Method::DELETE, &path, &[]).await };

    let queue = api.post("/TaskQueues", &[("FriendlyName", "Billing"), ("TargetWorkers", "1==1")]).await;
    let queue_sid = queue["sid"].as_str().unwrap().to_owned();
    let renamed = api
        .post(&format!("/TaskQueues/{queue_sid}"), &[("FriendlyName", "Billing desk"), ("TaskOrder", "LIFO")])
        .await;
    assert_eq!(
        (
            renamed["friendly_name"].as_str(),
            renamed["task_order"].as_str(),
            renamed["target_workers"].as_str()
        ),
        (Some("Billing desk"), Some("LIFO"), Some("1==1")),
        "{renamed}"
    );
    check_error(
        api.call(Method::POST, &format!("/TaskQueues/{queue_sid}"), &[("FriendlyName", "sales")]).await,
        400,
        20001,
        "FriendlyName: a task queue named \"sales\" exists",
    );

    let route_to = |queue: &str| {
        format!(r#"{{"task_routing": {{"filters": [], "default_filter": {{"queue": "{queue}"}}}}}}"#)
    };
    let workflow = api
        .post("/Workflows", &[("FriendlyName", "Billing flow"), ("Configuration", &route_to(&queue_sid))])
        .await;
    let workflow_sid = workflow["sid"].as_str().unwrap().to_owned();
    let task = api.post("/Tasks", &[("WorkflowSid", &workflow_sid), ("Attributes", "{}")]).await;
    let task_sid = task["sid"].as_str().unwrap().to_owned();
    assert_eq!(task["task_queue_sid"], queue_sid.as_str());

    // In use: the queue by the workflow, the workflow by its waiting task.
    check_error(
        delete(format!("/TaskQueues/{queue_sid}")).await,
        400,
        20001,
        &format!("task queue {queue_sid} cannot be deleted: workflow {workflow_sid}"),
    );
    check_error(
        delete(format!("/Workflows/{workflow_sid}")).await,
        400,
        20001,
        &format!("task {task_sid} is pending in it"),
    );

    // The workflow now routes to Everyone; re-evaluated, the waiting task follows.
    let everyone = api.find("/TaskQueues", "task_queues", "friendly_name", "Everyone").await;
    let updated = api
        .post(
            &format!("/Workflows/{workflow_sid}"),
            &[
                ("FriendlyName", "Billing overflow"),
                ("Configuration", &route_to(&everyone)),
                ("TaskReservationTimeout", "45"),
                ("ReEvaluateTasks", "true"),
            ],
        )
        .await;
    assert_eq!(
        (updated["friendly_name"].as_str(), updated["task_reservation_timeout"].as_u64()),
        (Some("Billing overflow"), Some(45))
    );
    assert_ne!(updated["date_updated"], Value::Null);
    assert_eq!(api.get(&format!("/Tasks/{task_sid}")).await["task_queue_sid"], everyone.as_str());

    // Nothing holds the queue now; the task is deleted, then the workflow.
    for path in [
        format!("/TaskQueues/{queue_sid}"),
        format!("/Tasks/{task_sid}"),
        format!("/Workflows/{workflow_sid}"),
    ] {
        assert_eq!(delete(path.clone()).await.0, StatusCode::NO_CONTENT, "{path}");
    }
    for path in [
        format!("/TaskQueues/{queue_sid}"),
        format!("/Tasks/{task_sid}"),
        format!("/Workflows/{workflow_sid}"),
    ] {
        check_error(api.call(Method::GET, &path, &[]).await, 404, 20404, "was not found");
        check_error(delete(path).await, 404, 20404, "was not found");
    }

    // An activity is deleted once its last worker is gone; the default one never is.
    let training = api.post("/Activities", &[("FriendlyName", "Training")]).await;
    let training = training["sid"].as_str().unwrap().to_owned();
    let worker = api.post("/Workers", &[("FriendlyName", "temp"), ("ActivitySid", &training)]).await;
    let offline = api.find("/Activities", "activities", "friendly_name", "Offline").await;
    check_error(
        delete(format!("/Activities/{offline}")).await,
        400,
        20001,
        "is the workspace's default activity",
    );
    check_error(
        delete(format!("/Activities/{training}")).await,
        400,
        20001,
        "1 worker(s) are in it; move them to another activity first",
    );
    for path in [format!("/Workers/{}", worker["sid"].as_str().unwrap()), format!("/Activities/{training}")] {
        assert_eq!(delete(path.clone()).await.0, StatusCode::NO_CONTENT, "{path}");
    }
    let events = api.get("/Events?EventType=task-queue.deleted").await;
    assert_eq!(events["events"][0]["resource_sid"], queue_sid.as_str(), "{events}");
}

#[tokio::test]
async fn urls_and_links_start_with_the_configured_public_url() {
    let app =
        spawn_api_with(|settings| settings.voice.public_url = "https://switchboard.example.com".into()).await;
    let api = Api::new(&app).await;
    let workspace = format!("https://switchboard.example.com/v1/Workspaces/{}", api.workspace);
    let activities = api.get("/Activities?PageSize=1").await;
    assert_eq!(
        activities["meta"]["url"],
        format!("{workspace}/Activities?PageSize=1&Page=0"),
        "{activities}"
    );
    let first = &activities["activities"][0];
    assert_eq!(first["url"], format!("{workspace}/Activities/{}", first["sid"].as_str().unwrap()));
    assert_eq!(first["links"]["workspace"], workspace);
}

#[tokio::test]
async fn a_new_worker_s_sign_in_secret_is_shown_once_to_the_admin() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let created = api.post("/Workers", &[("FriendlyName", "nora")]).await;
    let (sid, secret) = (created["sid"].as_str().unwrap().to_owned(), created["sign_in_secret"].clone());
    let secret = secret.as_str().expect("the creation answer carries the secret").to_owned();
    assert_eq!(secret.len(), 32);
    let fetched = api.get(&format!("/Workers/{sid}")).await;
    let listed = api.get("/Workers?FriendlyName=nora").await;
    assert_eq!((fetched.get("sign_in_secret"), listed["workers"][0].get("sign_in_secret")), (None, None));

    let sign_in =
        |name: &str, secret: &str| app.agents.sign_in(&app.engine, name, secret).map(|sid| sid.to_string());
    assert_eq!(sign_in("nora", &secret), Some(sid.clone()));
    assert_eq!(sign_in("NORA", &secret), Some(sid.clone()), "names ignore case");
    assert_eq!(sign_in("nora", "0".repeat(32).as_str()), None);
    assert_eq!(sign_in("alice", &secret), None, "a secret is one worker's");

    // Issued again, the old secret stops working.
    let response = app
        .client
        .post(app.url(&format!("/admin/api/workers/{sid}/secret")))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let issued: Value = response.json().await.unwrap();
    let renewed = issued["sign_in_secret"].as_str().unwrap().to_owned();
    assert_eq!((sign_in("nora", &secret), sign_in("nora", &renewed)), (None, Some(sid.clone())));
    let anonymous =
        app.client.post(app.url(&format!("/admin/api/workers/{sid}/secret"))).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // A deleted worker's secret goes with them.
    assert_eq!(api.call(Method::DELETE, &format!("/Workers/{sid}"), &[]).await.0, StatusCode::NO_CONTENT);
    let stored = app.engine.stored::<switchboard::store::AgentRecord>().unwrap();
    assert!(stored.is_empty(), "{stored:?}");
}

#[tokio::test]
async fn a_create_retried_with_its_idempotency_key_answers_the_first_task_instead_of_making_another() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let workflow = sales_and_support(&app);
    let create = |key: &'static str, header: &'static str, skill: &'static str| {
        let url = app.url(&format!("/v1/Workspaces/{}/Tasks", api.workspace));
        let attributes = format!(r#"{{"skillsNeeded": ["{skill}"]}}"#);
        let form = [("WorkflowSid", workflow.clone()), ("Attributes", attributes)];
        let request =
            app.client.post(url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)).header(header, key).form(&form);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };

    let first = create("order-1", "Idempotency-Key", "Sales").await;
    let again = create("order-1", "Idempotency-Key", "Sales").await;
    let mut at_once = tokio::task::JoinSet::new();
    for _ in 0..8 {
        at_once.spawn(create("order-2", "Idempotency-Key", "Sales"));
    }
    let concurrent = at_once.join_all().await;
    let twilio_token = [
        create("hook-1", "I-Twilio-Idempotency-Token", "Support").await,
        create("hook-1", "I-Twilio-Idempotency-Token", "Support").await,
    ];
    let other_request = create("order-1", "Idempotency-Key", "Support").await;
    let tasks = api.get("/Tasks?PageSize=100").await;

    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    assert_eq!(
        (again.0, &again.1["sid"]),
        (StatusCode::CREATED, &first.1["sid"]),
        "the first task, not another"
    );
    let concurrent_sids: std::collections::BTreeSet<String> =
        concurrent.iter().map(|(_, task)| task["sid"].to_string()).collect();
    assert_eq!(concurrent_sids.len(), 1, "eight at once with one key make one task: {concurrent:?}");
    assert_eq!(twilio_token[0].1["sid"], twilio_token[1].1["sid"]);
    check_error(other_request, 422, 20001, "this key was used for another request");
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 3, "{tasks}");

    // One request, two commands (a worker's attributes, then its activity): each done once.
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    let available = api.find("/Activities", "activities", "friendly_name", "Available").await;
    let update = || {
        let url = app.url(&format!("/v1/Workspaces/{}/Workers/{alice}", api.workspace));
        let form = [("Attributes", r#"{"skills": ["Sales"]}"#), ("ActivitySid", available.as_str())];
        let request =
            app.client.post(url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)).header("Idempotency-Key", "w-1");
        async move { request.form(&form).send().await.unwrap().status() }
    };
    assert_eq!((update().await, update().await), (StatusCode::OK, StatusCode::OK));
}

#[tokio::test]
async fn worker_statistics_count_each_workers_reservations_and_activities_in_twilios_shapes() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let available = api.find("/Activities", "activities", "friendly_name", "Available").await;
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    let workflow = sales_and_support(&app);
    api.post(&format!("/Workers/{alice}"), &[("ActivitySid", &available)]).await;
    let task = api
        .post("/Tasks", &[("Attributes", r#"{"skillsNeeded":["Sales"]}"#), ("WorkflowSid", &workflow)])
        .await;
    let reservations = api.get(&format!("/Tasks/{}/Reservations", task["sid"].as_str().unwrap())).await;
    let reservation = reservations["reservations"][0]["sid"].as_str().unwrap().to_owned();
    api.post(&format!("/Workers/{alice}/Reservations/{reservation}"), &[("ReservationStatus", "accepted")])
        .await;

    let all = api.get("/Workers/Statistics").await;
    let cumulative = api.get("/Workers/CumulativeStatistics?Minutes=60").await;
    let realtime = api.get("/Workers/RealTimeStatistics").await;
    let hers = api.get(&format!("/Workers/{alice}/Statistics?TaskChannel=default")).await;
    let on_voice = api.get(&format!("/Workers/{alice}/Statistics?TaskChannel=voice")).await;
    let sales_only = api.get("/Workers/Statistics?TaskQueueName=Sales").await;
    let bob_only = api.get("/Workers/Statistics?FriendlyName=bob").await;

    let counts = |statistics: &Value| {
        ["created", "accepted", "rejected", "timed_out", "canceled", "rescinded"]
            .map(|outcome| statistics[format!("reservations_{outcome}")].as_u64().unwrap())
    };
    assert_eq!(counts(&all["cumulative"]), [1, 1, 0, 0, 0, 0], "{all}");
    assert_eq!(counts(&cumulative), [1, 1, 0, 0, 0, 0], "{cumulative}");
    assert_eq!(counts(&hers["cumulative"]), [1, 1, 0, 0, 0, 0], "the task is on the default channel: {hers}");
    assert_eq!(counts(&on_voice["cumulative"]), [0; 6], "{on_voice}");
    assert_eq!(counts(&bob_only["cumulative"]), [0; 6], "{bob_only}");
    assert_eq!(hers["worker_sid"], alice.as_str());
    assert!(hers.get("realtime").is_none(), "one worker's statistics are cumulative only, as on Twilio");
    let activities = cumulative["activity_durations"].as_array().unwrap();
    assert_eq!(activities.len(), 4, "every activity, with zeros: {cumulative}");
    for activity in activities {
        for field in ["sid", "friendly_name", "min", "max", "avg", "total"] {
            assert!(activity.get(field).is_some(), "{field} in {activity}");
        }
    }
    let total_workers = realtime["total_workers"].as_u64().unwrap();
    let by_activity: u64 = realtime["activity_statistics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["workers"].as_u64().unwrap())
        .sum();
    assert_eq!((total_workers, by_activity), (total_workers, total_workers), "{realtime}");
    assert_eq!(all["realtime"]["total_workers"], realtime["total_workers"]);
    let sales = api.find("/TaskQueues", "task_queues", "friendly_name", "Sales").await;
    let eligible =
        api.get(&format!("/TaskQueues/{sales}/RealTimeStatistics")).await["total_eligible_workers"].clone();
    assert_eq!(sales_only["realtime"]["total_workers"], eligible, "the workers Sales targets: {sales_only}");
    assert_eq!(bob_only["realtime"]["total_workers"], 1, "{bob_only}");
    assert!(realtime["url"].as_str().unwrap().ends_with("/Workers/RealTimeStatistics"));
    assert!(cumulative["start_time"].as_str().unwrap().ends_with('Z'));
    check_error(
        api.call(Method::GET, "/Workers/RealTimeStatistics?TaskChannel=voice", &[]).await,
        400,
        20001,
        "TaskChannel",
    );
    check_error(
        api.call(Method::GET, "/Workers/Statistics?TaskQueueName=Nope", &[]).await,
        400,
        20001,
        "no task queue is named",
    );
}
