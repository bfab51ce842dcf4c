//! Cumulative statistics through the REST API against the real server: the counts after
//! tasks are created, accepted, rejected, completed and canceled through the API, for the
//! workspace, a queue and a workflow; the window (counted in whole minutes), channel and split
//! parameters; `Statistics` with both its parts; errors naming the parameter. Waits run on the
//! wall clock, so only how their figures relate is checked, never their size.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::TestApp;
use crate::taskrouter::{Api, check_error, sales_and_support, spawn_api};

/// What the tests look the statistics up by.
struct Morning {
    sales: String,
    support: String,
    workflow: String,
    /// The SID of the `sms` channel, which the one support task came in on.
    sms: String,
}

/// Alice (Sales) accepts and completes a sales task, then rejects a second one, which the
/// caller abandons; a support task on `sms` waits, as Bob (Support) is offline.
async fn a_morning(app: &TestApp, api: &Api<'_>) -> Morning {
    let available = api.find("/Activities", "activities", "friendly_name", "Available").await;
    let alice = api.find("/Workers", "workers", "friendly_name", "alice").await;
    api.post(&format!("/Workers/{alice}"), &[("ActivitySid", &available)]).await;
    let workflow = sales_and_support(app);
    let sales_task = [("WorkflowSid", workflow.as_str()), ("Attributes", r#"{"skillsNeeded": ["Sales"]}"#)];

    let first = api.post("/Tasks", &sales_task).await["sid"].as_str().unwrap().to_owned();
    let accepted = pending_offer(api, &first).await;
    api.post(&format!("/Tasks/{first}/Reservations/{accepted}"), &[("ReservationStatus", "accepted")]).await;
    api.post(&format!("/Tasks/{first}"), &[("AssignmentStatus", "completed"), ("Reason", "resolved")]).await;

    let second = api.post("/Tasks", &sales_task).await["sid"].as_str().unwrap().to_owned();
    let rejected = pending_offer(api, &second).await;
    api.post(&format!("/Tasks/{second}/Reservations/{rejected}"), &[("ReservationStatus", "rejected")]).await;
    api.post(&format!("/Tasks/{second}"), &[("AssignmentStatus", "canceled"), ("Reason", "hung up")]).await;

    let support_task = [
        ("WorkflowSid", workflow.as_str()),
        ("Attributes", r#"{"skillsNeeded": ["Support"]}"#),
        ("TaskChannel", "sms"),
    ];
    let waiting = api.post("/Tasks", &support_task).await;
    assert_eq!(waiting["assignment_status"], "pending", "{waiting}");
    Morning {
        sales: api.find("/TaskQueues", "task_queues", "friendly_name", "Sales").await,
        support: api.find("/TaskQueues", "task_queues", "friendly_name", "Support").await,
        workflow,
        sms: waiting["task_channel_sid"].as_str().unwrap().to_owned(),
    }
}

/// The SID of the task's pending reservation.
async fn pending_offer(api: &Api<'_>, task: &str) -> String {
    let offers = api.get(&format!("/Tasks/{task}/Reservations?ReservationStatus=pending")).await;
    offers["reservations"][0]["sid"].as_str().unwrap_or_else(|| panic!("no offer: {offers}")).to_owned()
}

/// Checks the fields named in `expected` (`tasks_created=3 tasks_moved=0`) against `statistics`.
fn check_fields(statistics: &Value, expected: &str) {
    let actual: Vec<String> = expected
        .split_whitespace()
        .map(|pair| {
            let field = pair.split('=').next().unwrap();
            format!("{field}={}", statistics[field])
        })
        .collect();
    assert_eq!(actual.join(" "), expected, "{statistics}");
}

/// One wait: the average, shortest, longest and total are the same number.
fn check_one_wait(durations: &Value) {
    let figures: Vec<&Value> = ["avg", "min", "max", "total"].iter().map(|name| &durations[*name]).collect();
    assert!(figures[0].is_i64(), "{durations}");
    assert!(figures.iter().all(|figure| *figure == figures[0]), "{durations}");
}

#[tokio::test]
async fn cumulative_statistics_count_what_happened_for_the_workspace_a_queue_and_a_workflow() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let morning = a_morning(&app, &api).await;

    let workspace = api.get("/CumulativeStatistics").await;
    check_fields(
        &workspace,
        "tasks_created=3 tasks_completed=1 tasks_canceled=1 tasks_deleted=0 tasks_moved=0 \
         tasks_timed_out_in_workflow=0 reservations_created=2 reservations_accepted=1 \
         reservations_rejected=1 reservations_timed_out=0 reservations_canceled=0 \
         reservations_rescinded=0 split_by_wait_time=null tasks_entered=null",
    );
    check_one_wait(&workspace["wait_duration_until_accepted"]);
    check_one_wait(&workspace["wait_duration_until_canceled"]);
    assert_eq!(workspace["avg_task_acceptance_time"], workspace["wait_duration_until_accepted"]["avg"]);
    assert_eq!(workspace["url"], app.url(&format!("/v1/Workspaces/{}/CumulativeStatistics", api.workspace)));
    assert_eq!(workspace["account_sid"], crate::taskrouter::ACCOUNT_SID);
    // By default the last 15 minutes, as on Twilio.
    let time = |field: &str| workspace[field].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    assert_eq!(time("end_time").as_second() - time("start_time").as_second(), 15 * 60);

    let sales = api.get(&format!("/TaskQueues/{}/CumulativeStatistics", morning.sales)).await;
    check_fields(
        &sales,
        "tasks_entered=2 tasks_completed=1 tasks_canceled=1 reservations_created=2 \
         reservations_accepted=1 reservations_rejected=1 tasks_created=null tasks_timed_out_in_workflow=null",
    );
    assert_eq!(sales["task_queue_sid"], morning.sales.as_str());
    check_one_wait(&sales["wait_duration_in_queue_until_accepted"]);
    let support = api.get(&format!("/TaskQueues/{}/CumulativeStatistics", morning.support)).await;
    check_fields(&support, "tasks_entered=1 tasks_completed=0 tasks_canceled=0 reservations_created=0");
    assert_eq!(
        support["wait_duration_in_queue_until_accepted"],
        serde_json::json!({"avg": 0, "min": 0, "max": 0, "total": 0})
    );

    let workflow = api.get(&format!("/Workflows/{}/CumulativeStatistics", morning.workflow)).await;
    check_fields(
        &workflow,
        "tasks_entered=3 tasks_completed=1 tasks_canceled=1 tasks_timed_out_in_workflow=0 \
         reservations_accepted=1 wait_duration_in_queue_until_accepted=null",
    );
    assert_eq!(workflow["workflow_sid"], morning.workflow.as_str());

    // Queues and workflows link to the statistics now served.
    let queue = api.get(&format!("/TaskQueues/{}", morning.sales)).await;
    assert_eq!(queue["links"]["cumulative_statistics"], sales["url"]);
    let linked =
        api.get(&format!("/Workflows/{}", morning.workflow)).await["links"]["cumulative_statistics"].clone();
    assert_eq!(linked, workflow["url"]);
}

#[tokio::test]
async fn statistics_join_the_realtime_and_cumulative_parts() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let morning = a_morning(&app, &api).await;

    let workspace = api.get("/Statistics").await;
    check_fields(&workspace["realtime"], "total_tasks=1");
    check_fields(&workspace["cumulative"], "tasks_created=3 reservations_accepted=1");
    assert_eq!(workspace["workspace_sid"], api.workspace.as_str());
    let queue = api.get(&format!("/TaskQueues/{}/Statistics?SplitByWaitTime=10", morning.sales)).await;
    check_fields(&queue["realtime"], "total_tasks=0");
    check_fields(&queue["cumulative"], "tasks_entered=2 tasks_canceled=1");
    assert_eq!(
        (queue["task_queue_sid"].as_str(), queue["cumulative"]["split_by_wait_time"]["10"].is_object()),
        (Some(morning.sales.as_str()), true)
    );
    let workflow = api.get(&format!("/Workflows/{}/Statistics?TaskChannel=sms", morning.workflow)).await;
    check_fields(&workflow["realtime"], "total_tasks=1");
    check_fields(&workflow["cumulative"], "tasks_entered=1 tasks_completed=0");
    // The parameters are the cumulative part's: a bad one is refused here too.
    check_error(
        api.call(Method::GET, "/Statistics?EndDate=tomorrow", &[]).await,
        400,
        20001,
        "EndDate must be an ISO 8601 date and time",
    );
    // Real-time statistics alone are unchanged.
    assert!(api.get("/RealTimeStatistics").await.get("cumulative").is_none());
}

#[tokio::test]
async fn the_query_chooses_the_window_the_channel_and_the_split() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let morning = a_morning(&app, &api).await;

    let long_ago =
        api.get("/CumulativeStatistics?StartDate=2000-01-01T00:00:00Z&EndDate=2000-01-02T00:00:00Z").await;
    check_fields(
        &long_ago,
        r#"start_time="2000-01-01T00:00:00Z" end_time="2000-01-02T00:00:00Z" tasks_created=0 reservations_created=0"#,
    );
    let since = api.get("/CumulativeStatistics?StartDate=2000-01-01T00:00:00Z").await;
    check_fields(&since, r#"start_time="2000-01-01T00:00:00Z" tasks_created=3 tasks_completed=1"#);
    let until =
        api.get("/CumulativeStatistics?EndDate=2999-01-01T00:00:00Z&StartDate=2000-01-01T00:00:00Z").await;
    check_fields(&until, r#"end_time="2999-01-01T00:00:00Z" tasks_created=3 tasks_canceled=1"#);
    check_fields(
        &api.get("/CumulativeStatistics?Minutes=60").await,
        "tasks_created=3 reservations_rejected=1",
    );

    let by_name = api.get("/CumulativeStatistics?TaskChannel=sms").await;
    check_fields(&by_name, "tasks_created=1 tasks_completed=0 reservations_created=0");
    let by_sid = api.get(&format!("/CumulativeStatistics?TaskChannel={}", morning.sms)).await;
    assert_eq!(by_sid, by_name);
    let default = api.get("/CumulativeStatistics?TaskChannel=default").await;
    check_fields(&default, "tasks_created=2 tasks_completed=1 tasks_canceled=1 reservations_created=2");

    // Each acceptance and cancellation is on one side of each threshold.
    let split =
        api.get(&format!("/TaskQueues/{}/CumulativeStatistics?SplitByWaitTime=5,30", morning.sales)).await;
    let thresholds = split["split_by_wait_time"].as_object().unwrap();
    assert_eq!(thresholds.keys().collect::<Vec<_>>(), ["5", "30"], "{split}");
    for sides in thresholds.values() {
        for field in ["reservations_accepted", "tasks_canceled"] {
            let (above, below) = (sides["above"][field].as_u64(), sides["below"][field].as_u64());
            assert_eq!(above.zip(below).map(|(above, below)| above + below), Some(1), "{field}: {sides}");
        }
    }
}

#[tokio::test]
async fn bad_parameters_get_errors_naming_them() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    let workflow = sales_and_support(&app);
    for (query, message) in [
        ("StartDate=yesterday", "StartDate must be an ISO 8601 date and time, like 2026-11-24T09:30:00Z"),
        ("Minutes=10&StartDate=2026-01-01T00:00:00Z", "Minutes cannot be used with StartDate or EndDate"),
        ("Minutes=0", "Minutes must be a whole number from 1 to 43200"),
        (
            "StartDate=2026-01-02T00:00:00Z&EndDate=2026-01-01T00:00:00Z",
            "StartDate must not be after EndDate",
        ),
        ("SplitByWaitTime=5,soon", "SplitByWaitTime must be whole numbers of seconds separated by commas"),
        (
            "TaskChannel=fax",
            r#"TaskChannel "fax" is not a task channel (known: default, voice, sms, chat, whatsapp)"#,
        ),
    ] {
        check_error(
            api.call(Method::GET, &format!("/CumulativeStatistics?{query}"), &[]).await,
            400,
            20001,
            message,
        );
        let path = format!("/Workflows/{workflow}/CumulativeStatistics?{query}");
        check_error(api.call(Method::GET, &path, &[]).await, 400, 20001, message);
    }
    let unknown_queue = format!("/TaskQueues/WQ{}/CumulativeStatistics", "0".repeat(32));
    check_error(api.call(Method::GET, &unknown_queue, &[]).await, 404, 20404, "was not found");
    let unknown_workflow = format!("/Workflows/WW{}/CumulativeStatistics", "0".repeat(32));
    check_error(api.call(Method::GET, &unknown_workflow, &[]).await, 404, 20404, "was not found");
    check_error(api.call(Method::POST, "/CumulativeStatistics", &[]).await, 405, 20004, "");
}

#[tokio::test]
async fn a_window_counts_the_whole_minutes_it_touches() {
    let app = spawn_api().await;
    let api = Api::new(&app).await;
    a_morning(&app, &api).await;
    // The minute the first task was created in, and how many were created in it.
    let created = api.get("/Events?EventType=task.created&PageSize=1000").await;
    let minutes: Vec<i64> = created["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["event_date_ms"].as_i64().unwrap().div_euclid(60_000))
        .collect();
    let first = *minutes.last().unwrap();
    let in_first = minutes.iter().filter(|&&minute| minute == first).count();
    let iso = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap().to_string();

    // A window of one instant, the start of that minute, counts the whole minute.
    let instant = iso(first * 60_000);
    let statistics = api.get(&format!("/CumulativeStatistics?StartDate={instant}&EndDate={instant}")).await;
    check_fields(
        &statistics,
        &format!(r#"start_time="{instant}" end_time="{instant}" tasks_created={in_first}"#),
    );
    // The minute before it counts nothing.
    let before = iso(first * 60_000 - 1);
    let statistics = api.get(&format!("/CumulativeStatistics?StartDate={before}&EndDate={before}")).await;
    check_fields(&statistics, "tasks_created=0");
}
