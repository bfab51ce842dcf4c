//! Task channels, worker channels and the workspace's settings through the REST API (issue #22
//! item 6): TaskRouter's shapes, a channel or worker channel found by SID or unique name, a
//! new channel routed at once, a channel in use refused whole, capacities that change routing
//! at once, workspace settings with their effect, and all of it kept across a restart.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::callbacks::receiver;
use crate::helpers::TestApp;
use crate::taskrouter::{Api, check_error, spawn_api, spawn_api_with};

/// The fields of a TaskChannel and of a WorkerChannel, as Twilio's spec lists them.
const CHANNEL_FIELDS: [&str; 10] = [
    "account_sid",
    "channel_optimized_routing",
    "date_created",
    "date_updated",
    "friendly_name",
    "links",
    "sid",
    "unique_name",
    "url",
    "workspace_sid",
];
const WORKER_CHANNEL_FIELDS: [&str; 13] = [
    "account_sid",
    "assigned_tasks",
    "available",
    "available_capacity_percentage",
    "configured_capacity",
    "date_created",
    "date_updated",
    "sid",
    "task_channel_sid",
    "task_channel_unique_name",
    "url",
    "worker_sid",
    "workspace_sid",
];

fn fields(resource: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = resource.as_object().unwrap().keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

fn names<'a>(list: &'a Value, key: &str, field: &str) -> Vec<&'a str> {
    list[key].as_array().unwrap().iter().map(|item| item[field].as_str().unwrap()).collect()
}

impl Api<'_> {
    /// A new task channel `unique_name`: its SID.
    async fn channel(&self, unique_name: &str) -> String {
        let (status, created) = self
            .call(Method::POST, "/TaskChannels", &[("FriendlyName", "Email"), ("UniqueName", unique_name)])
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["sid"].as_str().unwrap().to_owned()
    }

    /// Makes `worker` available.
    async fn available(&self, worker: &str) {
        let available = self.find("/Activities", "activities", "friendly_name", "Available").await;
        self.post(&format!("/Workers/{worker}"), &[("ActivitySid", &available)]).await;
    }

    /// A Sales task on `channel`: its SID.
    async fn sales_task(&self, channel: &str) -> String {
        let workflow =
            self.find("/Workflows", "workflows", "friendly_name", "Sales and Support Workflow").await;
        let attributes = r#"{"skillsNeeded": ["Sales"]}"#;
        let form = [("WorkflowSid", workflow.as_str()), ("Attributes", attributes), ("TaskChannel", channel)];
        self.post("/Tasks", &form).await["sid"].as_str().unwrap().to_owned()
    }

    async fn status_of(&self, task: &str) -> String {
        self.get(&format!("/Tasks/{task}")).await["assignment_status"].as_str().unwrap().to_owned()
    }

    /// Accepts `task`'s pending reservation and completes the task.
    async fn accept_and_complete(&self, task: &str) {
        let reservations = self.get(&format!("/Tasks/{task}/Reservations?ReservationStatus=pending")).await;
        let reservation = reservations["reservations"][0]["sid"].as_str().unwrap().to_owned();
        let path = format!("/Tasks/{task}/Reservations/{reservation}");
        self.post(&path, &[("ReservationStatus", "accepted")]).await;
        self.post(&format!("/Tasks/{task}"), &[("AssignmentStatus", "completed"), ("Reason", "done")]).await;
    }
}

#[tokio::test]
async fn task_channels_have_taskrouter_shapes_and_are_found_by_sid_or_unique_name() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let url = |path: &str| app.url(&format!("/v1/Workspaces/{}{path}", api.workspace));

    // The built-in channels, then one created: 201 with Twilio's fields.
    let listed = api.get("/TaskChannels").await;
    assert_eq!(names(&listed, "channels", "unique_name"), ["default", "voice", "sms", "chat", "whatsapp"]);
    assert_eq!(listed["meta"]["key"], "channels");
    let form = [("FriendlyName", "Email"), ("UniqueName", "email"), ("ChannelOptimizedRouting", "True")];
    let (status, email) = api.call(Method::POST, "/TaskChannels", &form).await;
    assert_eq!(status, StatusCode::CREATED, "{email}");
    assert_eq!(fields(&email), CHANNEL_FIELDS);
    let sid = email["sid"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("TC") && sid.len() == 34, "{sid}");
    assert_eq!(email["channel_optimized_routing"], true);
    assert_eq!(email["url"], url(&format!("/TaskChannels/{sid}")));
    assert_eq!(email["links"]["workspace"], url(""));
    let events = api.get("/Events?EventType=task-channel.created").await;
    let event = &events["events"][0];
    assert_eq!(
        (event["resource_sid"].as_str(), event["resource_type"].as_str()),
        (Some(sid.as_str()), Some("task_channel"))
    );
    assert_eq!(event["resource_url"], email["url"]);

    // By SID or by unique name; an update changes what it names and keeps the rest.
    assert_eq!(api.get(&format!("/TaskChannels/{sid}")).await, email);
    assert_eq!(api.get("/TaskChannels/email").await, email);
    let changes = [("FriendlyName", "E-mail"), ("ChannelOptimizedRouting", "false")];
    let updated = api.post("/TaskChannels/email", &changes).await;
    assert_eq!(
        (updated["friendly_name"].as_str(), updated["channel_optimized_routing"].as_bool()),
        (Some("E-mail"), Some(false))
    );
    assert_eq!(updated["unique_name"], "email");

    // Paging walks every channel once, page by page.
    let mut page = api.get("/TaskChannels?PageSize=2").await;
    let mut walked: Vec<String> = Vec::new();
    loop {
        walked.extend(names(&page, "channels", "unique_name").into_iter().map(str::to_owned));
        let Some(next) = page["meta"]["next_page_url"].as_str() else { break };
        let next = next.split_once(&api.workspace).unwrap().1.to_owned();
        page = api.get(&next).await;
    }
    assert_eq!(walked, ["default", "voice", "sms", "chat", "whatsapp", "email"]);

    // Refusals name their parameter; an unknown channel is a 404.
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("FriendlyName", "Mail")], "Missing required parameter UniqueName"),
        (&[("UniqueName", "mail")], "Missing required parameter FriendlyName"),
        (&[("FriendlyName", "Mail"), ("UniqueName", "EMAIL")], "UniqueName: task channel"),
        (
            &[("FriendlyName", "Mail"), ("UniqueName", "e-mail")],
            "UniqueName: \"e-mail\": use 1 to 64 letters",
        ),
        (
            &[("FriendlyName", "Mail"), ("UniqueName", "mail"), ("ChannelOptimizedRouting", "maybe")],
            "ChannelOptimizedRouting must be true or false",
        ),
    ];
    for (form, message) in cases {
        check_error(api.call(Method::POST, "/TaskChannels", form).await, 400, 20001, message);
    }
    check_error(
        api.call(Method::POST, "/TaskChannels/email", &[("UniqueName", "mail")]).await,
        400,
        20001,
        "UniqueName cannot be changed",
    );
    check_error(api.call(Method::GET, "/TaskChannels/fax", &[]).await, 404, 20404, "was not found");
    check_error(api.call(Method::PUT, "/TaskChannels", &[]).await, 405, 20004, "GET, POST");
    assert_eq!(
        names(&api.get("/TaskChannels").await, "channels", "unique_name").len(),
        6,
        "nothing refused was made"
    );
}

#[tokio::test]
async fn worker_channels_have_taskrouter_shapes_and_are_found_by_wc_tc_or_unique_name() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    let bob = api.find("/Workers", "workers", "friendly_name", "bob").await;

    let listed = api.get(&format!("/Workers/{alice}/Channels")).await;
    assert_eq!(
        names(&listed, "channels", "task_channel_unique_name"),
        ["default", "voice", "sms", "chat", "whatsapp"]
    );
    let sms = &listed["channels"][2];
    assert_eq!(fields(sms), WORKER_CHANNEL_FIELDS);
    let wc = sms["sid"].as_str().unwrap().to_owned();
    assert!(wc.starts_with("WC") && wc.len() == 34, "{wc}");
    assert_eq!(
        (&sms["worker_sid"], &sms["configured_capacity"], &sms["available"], &sms["assigned_tasks"]),
        (&Value::from(alice.as_str()), &Value::from(3), &Value::from(true), &Value::from(0))
    );
    assert_eq!(sms["available_capacity_percentage"], 100);
    assert_eq!(
        sms["url"],
        app.url(&format!("/v1/Workspaces/{}/Workers/{alice}/Channels/{wc}", api.workspace))
    );

    // The same worker channel by its WC SID, its task channel's SID, or its unique name.
    let tc = sms["task_channel_sid"].as_str().unwrap();
    for key in [wc.as_str(), tc, "sms"] {
        assert_eq!(&api.get(&format!("/Workers/{alice}/Channels/{key}")).await, sms, "{key}");
    }
    let bobs = api.get(&format!("/Workers/{bob}/Channels/sms")).await;
    assert_ne!(bobs["sid"], wc.as_str(), "each worker's channel has its own SID");
    check_error(
        api.call(Method::GET, &format!("/Workers/{bob}/Channels/{wc}"), &[]).await,
        404,
        20404,
        "was not found",
    );

    // An update answers the channel as it is now; refusals name the parameter.
    let updated = api
        .post(&format!("/Workers/{alice}/Channels/{wc}"), &[("Capacity", "5"), ("Available", "false")])
        .await;
    assert_eq!(
        (&updated["configured_capacity"], &updated["available"]),
        (&Value::from(5), &Value::from(false))
    );
    for (form, message) in [
        (("Capacity", "51"), "Capacity must be a whole number from 0 to 50"),
        (("Capacity", "-1"), "Capacity must be a whole number from 0 to 50"),
        (("Available", "sometimes"), "Available must be true or false"),
    ] {
        check_error(
            api.call(Method::POST, &format!("/Workers/{alice}/Channels/sms"), &[form]).await,
            400,
            20001,
            message,
        );
    }
    check_error(
        api.call(Method::GET, &format!("/Workers/{alice}/Channels/fax"), &[]).await,
        404,
        20404,
        "was not found",
    );
    check_error(
        api.call(Method::DELETE, &format!("/Workers/{alice}/Channels/sms"), &[]).await,
        405,
        20004,
        "GET, POST",
    );
    assert_eq!(api.get(&format!("/Workers/{alice}/Channels/sms")).await["configured_capacity"], 5);
}

#[tokio::test]
async fn a_new_channel_gives_every_worker_capacity_one_and_routes_its_tasks_at_once() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    api.available(&alice).await;

    api.channel("email").await;

    for worker in api.get("/Workers").await["workers"].as_array().unwrap() {
        let sid = worker["sid"].as_str().unwrap();
        let email = api.get(&format!("/Workers/{sid}/Channels/email")).await;
        assert_eq!(
            (&email["configured_capacity"], &email["available"]),
            (&Value::from(1), &Value::from(true)),
            "{worker}"
        );
    }
    let first = api.sales_task("email").await;
    let second = api.sales_task("email").await;
    assert_eq!(
        (api.status_of(&first).await, api.status_of(&second).await),
        ("reserved".into(), "pending".into())
    );
    let email = api.get(&format!("/Workers/{alice}/Channels/email")).await;
    assert_eq!(
        (&email["assigned_tasks"], &email["available_capacity_percentage"]),
        (&Value::from(1), &Value::from(0))
    );
}

#[tokio::test]
async fn deleting_a_channel_in_use_is_refused_with_409_and_changes_nothing() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    let email = api.channel("email").await;
    let task = api.sales_task("email").await;
    let before = (api.get("/TaskChannels").await, api.get(&format!("/Workers/{alice}/Channels")).await);

    let refused = api.call(Method::DELETE, &format!("/TaskChannels/{email}"), &[]).await;
    check_error(refused, 409, 20409, &format!("task {task} is pending on it; complete or cancel it first"));
    let built_in = api.call(Method::DELETE, "/TaskChannels/voice", &[]).await;
    check_error(built_in, 409, 20409, "it is built in");
    let after = (api.get("/TaskChannels").await, api.get(&format!("/Workers/{alice}/Channels")).await);
    assert_eq!(after, before, "a refused deletion changes nothing");

    // Canceled, the task no longer holds it: deleted by its unique name, it is gone everywhere.
    api.post(&format!("/Tasks/{task}"), &[("AssignmentStatus", "canceled"), ("Reason", "test")]).await;
    let (status, body) = api.call(Method::DELETE, "/TaskChannels/email", &[]).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    check_error(
        api.call(Method::GET, &format!("/TaskChannels/{email}"), &[]).await,
        404,
        20404,
        "was not found",
    );
    let channels = api.get(&format!("/Workers/{alice}/Channels")).await;
    assert_eq!(
        names(&channels, "channels", "task_channel_unique_name"),
        ["default", "voice", "sms", "chat", "whatsapp"]
    );
    check_error(api.call(Method::GET, &format!("/Tasks/{task}"), &[]).await, 404, 20404, "was not found");
}

#[tokio::test]
async fn a_capacity_or_availability_change_through_the_api_changes_routing_at_once() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    let chat = format!("/Workers/{alice}/Channels/chat");
    api.post(&chat, &[("Capacity", "1")]).await;
    api.available(&alice).await;
    let first = api.sales_task("chat").await;
    let second = api.sales_task("chat").await;
    assert_eq!(api.status_of(&second).await, "pending", "one chat at a time");

    // Capacity 2: the waiting chat is offered at once.
    api.post(&chat, &[("Capacity", "2")]).await;
    assert_eq!(api.status_of(&second).await, "reserved");

    // Not available on chat: a freed slot takes nothing until she is again.
    api.post(&chat, &[("Available", "false")]).await;
    api.accept_and_complete(&first).await;
    let third = api.sales_task("chat").await;
    assert_eq!(api.status_of(&third).await, "pending", "chat switched off");
    api.post(&chat, &[("Available", "true")]).await;
    assert_eq!(api.status_of(&third).await, "reserved");

    // Capacity 0: no new chat, whatever is free.
    api.post(&chat, &[("Capacity", "0")]).await;
    api.accept_and_complete(&second).await;
    api.accept_and_complete(&third).await;
    let fourth = api.sales_task("chat").await;
    assert_eq!(api.status_of(&fourth).await, "pending", "capacity 0");
    api.post(&chat, &[("Capacity", "1")]).await;
    assert_eq!(api.status_of(&fourth).await, "reserved");
}

/// Waits up to 30 s for `check` to hold.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn workspace_settings_updated_through_the_api_take_effect() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let activity = |name: &'static str| api.find("/Activities", "activities", "friendly_name", name);
    let (unavailable, brk) = (activity("Unavailable").await, activity("Break").await);
    let (first_url, first_received) = receiver(0);
    let (second_url, second_received) = receiver(0);

    // Every setting in one update, answered as the workspace now is.
    let form = [
        ("FriendlyName", "Front desk"),
        ("DefaultActivitySid", unavailable.as_str()),
        ("TimeoutActivitySid", brk.as_str()),
        ("EventCallbackUrl", first_url.as_str()),
        ("EventsFilter", "worker.activity.update"),
        ("PrioritizeQueueOrder", "LIFO"),
        ("MultiTaskEnabled", "true"),
    ];
    let workspace = api.post("", &form).await;
    assert_eq!(
        [
            &workspace["friendly_name"],
            &workspace["default_activity_name"],
            &workspace["timeout_activity_name"],
            &workspace["event_callback_url"],
            &workspace["events_filter"],
            &workspace["prioritize_queue_order"],
        ],
        ["Front desk", "Unavailable", "Break", first_url.as_str(), "worker.activity.update", "LIFO"]
            .map(Value::from)
            .each_ref()
    );
    assert_eq!(api.get("").await, workspace);

    // New workers start in the default activity.
    let (status, carol) = api.call(Method::POST, "/Workers", &[("FriendlyName", "carol")]).await;
    assert_eq!((status, carol["activity_name"].as_str()), (StatusCode::CREATED, Some("Unavailable")));

    // An offer that times out sends its worker to the timeout activity (a 1 s offer here).
    let everyone = api.find("/TaskQueues", "task_queues", "friendly_name", "Everyone").await;
    let configuration = format!(r#"{{"task_routing": {{"default_filter": {{"queue": "{everyone}"}}}}}}"#);
    let quick = [
        ("FriendlyName", "Quick"),
        ("Configuration", configuration.as_str()),
        ("TaskReservationTimeout", "1"),
    ];
    let workflow = api.post("/Workflows", &quick).await["sid"].as_str().unwrap().to_owned();
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    api.available(&alice).await;
    api.post("/Tasks", &[("WorkflowSid", workflow.as_str()), ("Attributes", "{}")]).await;
    eventually("alice moves to Break when her offer times out", || async {
        api.get(&format!("/Workers/{alice}")).await["activity_name"] == "Break"
    })
    .await;

    // Events go to the callback URL, only those the filter names; then to a new URL.
    let received = |bodies: &std::sync::Arc<std::sync::Mutex<Vec<String>>>| bodies.lock().unwrap().clone();
    eventually("the activity updates reach the first receiver", || async {
        received(&first_received).iter().any(|body| body.contains("WorkerActivityName=Break"))
    })
    .await;
    assert!(received(&first_received).iter().all(|body| body.contains("EventType=worker.activity.update")));
    api.post("", &[("EventCallbackUrl", second_url.as_str())]).await;
    let sent_before = received(&first_received).len();
    api.available(&alice).await;
    eventually("the next event reaches the new receiver", || async {
        !received(&second_received).is_empty()
    })
    .await;
    assert_eq!(received(&first_received).len(), sent_before, "nothing more to the old URL");

    // Refusals name their parameter and change nothing.
    let unknown = "WA0123456789abcdef0123456789abcdef";
    let cases: [(&str, &str, &str); 7] = [
        (
            "DefaultActivitySid",
            unknown,
            "DefaultActivitySid: activity WA0123456789abcdef0123456789abcdef does not exist",
        ),
        (
            "TimeoutActivitySid",
            unknown,
            "TimeoutActivitySid: activity WA0123456789abcdef0123456789abcdef does not exist",
        ),
        ("DefaultActivitySid", "WA1", "DefaultActivitySid: `WA1` is not an activity SID"),
        ("PrioritizeQueueOrder", "RANDOM", "PrioritizeQueueOrder must be FIFO or LIFO"),
        (
            "EventCallbackUrl",
            "crm.example.com",
            "EventCallbackUrl: \"crm.example.com\" is not an absolute http or https URL",
        ),
        ("EventsFilter", "task.create", "EventsFilter: unknown event type(s): task.create"),
        ("MultiTaskEnabled", "false", "MultiTaskEnabled: Switchboard always routes with multitasking"),
    ];
    let before = api.get("").await;
    for (name, value, message) in cases {
        let form = [("FriendlyName", "Not this"), (name, value)];
        check_error(api.call(Method::POST, "", &form).await, 400, 20001, message);
    }
    assert_eq!(api.get("").await, before);
}

#[tokio::test]
async fn the_queue_order_set_through_the_api_decides_between_fifo_and_lifo_queues() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let mut queues = Vec::new();
    for (name, order) in [("Fifo", "FIFO"), ("Lifo", "LIFO")] {
        let form =
            [("FriendlyName", name), ("TargetWorkers", "routing.skills HAS \"Sales\""), ("TaskOrder", order)];
        queues.push(api.post("/TaskQueues", &form).await["sid"].as_str().unwrap().to_owned());
    }
    let configuration = format!(
        r#"{{"task_routing": {{"filters": [
            {{"expression": "kind == 'f'", "targets": [{{"queue": "{}"}}]}},
            {{"expression": "kind == 'l'", "targets": [{{"queue": "{}"}}]}}]}}}}"#,
        queues[0], queues[1]
    );
    let workflow =
        api.post("/Workflows", &[("FriendlyName", "Both"), ("Configuration", &configuration)]).await;
    let workflow = workflow["sid"].as_str().unwrap().to_owned();
    api.post("", &[("PrioritizeQueueOrder", "LIFO")]).await;
    let mut tasks = Vec::new();
    for kind in ["l", "f", "l"] {
        let attributes = format!(r#"{{"kind": "{kind}"}}"#);
        let task =
            api.post("/Tasks", &[("WorkflowSid", workflow.as_str()), ("Attributes", &attributes)]).await;
        tasks.push(task["sid"].as_str().unwrap().to_owned());
    }

    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    api.available(&alice).await;

    let statuses =
        [api.status_of(&tasks[0]).await, api.status_of(&tasks[1]).await, api.status_of(&tasks[2]).await];
    assert_eq!(statuses, ["pending", "pending", "reserved"], "LIFO queues first, newest first");
}

#[tokio::test]
async fn channels_capacities_and_workspace_settings_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let start = |snapshot_every: u64| {
        let dir = data.path().to_owned();
        spawn_api_with(move |settings| {
            settings.store.data_dir = dir;
            settings.store.snapshot_every = snapshot_every;
        })
    };
    // A snapshot every 3 commands: the restart reads one and replays the log after it.
    let app: TestApp = start(3).await;
    let api = Api::new(&app).await;
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    let brk = api.find("/Activities", "activities", "friendly_name", "Break").await;
    api.channel("email").await;
    api.post("/TaskChannels/email", &[("FriendlyName", "Mail"), ("ChannelOptimizedRouting", "true")]).await;
    api.post(&format!("/Workers/{alice}/Channels/email"), &[("Capacity", "4"), ("Available", "false")]).await;
    let form = [
        ("FriendlyName", "Kept"),
        ("TimeoutActivitySid", brk.as_str()),
        ("EventCallbackUrl", "https://crm.example.com/events"),
        ("EventsFilter", "task.created"),
        ("PrioritizeQueueOrder", "LIFO"),
    ];
    api.post("", &form).await;
    let channel = api.get("/TaskChannels/email").await;
    let capacity = api.get(&format!("/Workers/{alice}/Channels/email")).await;
    let workspace = api.get("").await;
    let before = app.url("");
    app.shut_down().await.unwrap();

    let app = start(1000).await;
    let api = Api::new(&app).await;

    // The same resources, at the new server's address.
    let moved = |resource: &Value| -> Value {
        serde_json::from_str(&resource.to_string().replace(&before, &app.url(""))).unwrap()
    };
    assert_eq!(api.get("/TaskChannels/email").await, moved(&channel));
    assert_eq!(api.get(&format!("/Workers/{alice}/Channels/email")).await, moved(&capacity));
    assert_eq!(api.get("").await, moved(&workspace));
    assert_eq!(
        (&capacity["configured_capacity"], &capacity["available"], &workspace["timeout_activity_name"]),
        (&Value::from(4), &Value::from(false), &Value::from("Break"))
    );
    app.shut_down().await.unwrap();
}
