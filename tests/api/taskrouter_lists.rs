//! The TaskRouter REST lists against the real server, resource by resource: every filter each
//! list implements (matching, not matching, combined with others), a bad value of each
//! (Twilio's error JSON naming the parameter), and paging (`PageSize` and its bounds, the `meta`
//! links followed page by page until `next_page_url` is null, the pages together being the
//! whole list with each item once).
//!
//! Every test builds the same workspace through the API ([`Fixture::build`]) and checks lists
//! by names: friendly names, `t1`..`t5` for tasks, `t3>carol` for a reservation (task, worker),
//! `task.created t1` for an event (type, resource). Paths name SIDs the same way, in braces:
//! `/Tasks/{t3}/Reservations`, `/Workers?ActivitySid={Offline}`.

use std::collections::{BTreeMap, HashMap, HashSet};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN, Api, check_error, spawn_api};

/// The workspace of these tests, and names for its SIDs.
struct Fixture<'a> {
    api: Api<'a>,
    /// SIDs by the name paths give them in braces.
    sids: BTreeMap<String, String>,
    /// Names by SID, to show lists by name.
    names: HashMap<String, String>,
}

impl<'a> Fixture<'a> {
    /// The default workspace (activities Offline, Available, Unavailable, Break; queues Everyone,
    /// Sales, Support; workflows "Assign to Anyone" and "Sales and Support Workflow"; workers
    /// alice [Sales] and bob [Support, Sales]) and, through the API:
    ///
    /// - workers carol [Support, lang es], dave [no skills, lang en], erin [Support];
    /// - a queue Spanish (`lang == "es"`) and a workflow Routed (Sales and Support by
    ///   `skillsNeeded`, else Everyone) whose offers do not time out while a test runs;
    /// - t1 (Sales, priority 3): offered to alice, accepted, completed;
    /// - t2 (Sales, 7): offered to alice, accepted, then wrapping;
    /// - t3 (Support, 1, lang es): offered to erin, who rejects it (going on Break), then to
    ///   carol, pending;
    /// - t4 (Sales, 5): pending (alice busy, bob offline);
    /// - t5 ("Assign to Anyone", 0): pending, then canceled.
    ///
    /// So alice and carol are Available, bob and dave Offline, erin on Break.
    async fn build(app: &'a TestApp) -> Fixture<'a> {
        let mut f = Fixture { api: Api::new(app).await, sids: BTreeMap::new(), names: HashMap::new() };
        for (name, attributes) in [
            ("carol", r#"{"routing": {"skills": ["Support"], "levels": {"Support": 3}}, "lang": "es"}"#),
            ("dave", r#"{"routing": {"skills": []}, "lang": "en"}"#),
            ("erin", r#"{"routing": {"skills": ["Support"], "levels": {"Support": 1}}}"#),
        ] {
            f.api.post("/Workers", &[("FriendlyName", name), ("Attributes", attributes)]).await;
        }
        f.api.post("/TaskQueues", &[("FriendlyName", "Spanish"), ("TargetWorkers", r#"lang == "es""#)]).await;
        f.learn("/TaskQueues").await;
        let configuration = serde_json::json!({"task_routing": {
            "filters": [
                {"filter_friendly_name": "Sales", "expression": r#""Sales" IN skillsNeeded"#,
                 "targets": [{"queue": f.sids["Sales"]}]},
                {"filter_friendly_name": "Support", "expression": r#""Support" IN skillsNeeded"#,
                 "targets": [{"queue": f.sids["Support"]}]},
            ],
            "default_filter": {"queue": f.sids["Everyone"]},
        }});
        let form = [
            ("FriendlyName", "Routed"),
            ("Configuration", &configuration.to_string()),
            ("TaskReservationTimeout", "86400"),
        ];
        f.api.post("/Workflows", &form).await;
        for list in ["/Activities", "/Workers", "/Workflows"] {
            f.learn(list).await;
        }

        f.activity("alice", "Available").await;
        f.task("t1", "Routed", r#"{"skillsNeeded": ["Sales"]}"#, "3").await;
        f.post("/Workers/{alice}/Reservations/{t1>alice}", &[("ReservationStatus", "accepted")]).await;
        f.post("/Tasks/{t1}", &[("AssignmentStatus", "completed"), ("Reason", "done")]).await;
        f.task("t2", "Routed", r#"{"skillsNeeded": ["Sales"]}"#, "7").await;
        f.post("/Tasks/{t2}/Reservations/{t2>alice}", &[("ReservationStatus", "accepted")]).await;
        f.task("t3", "Routed", r#"{"skillsNeeded": ["Support"], "lang": "es"}"#, "1").await;
        f.task("t4", "Routed", r#"{"skillsNeeded": ["Sales"]}"#, "5").await;
        f.activity("erin", "Available").await;
        f.learn_reservations("t3").await;
        let rejected = [("ReservationStatus", "rejected"), ("WorkerActivitySid", f.sids["Break"].as_str())];
        f.post("/Tasks/{t3}/Reservations/{t3>erin}", &rejected).await;
        f.activity("carol", "Available").await;
        f.task("t5", "Assign to Anyone", r#"{"lang": "en"}"#, "0").await;
        f.post("/Tasks/{t5}", &[("AssignmentStatus", "canceled"), ("Reason", "caller hung up")]).await;
        f.post("/Tasks/{t2}", &[("AssignmentStatus", "wrapping")]).await;
        for task in ["t1", "t2", "t3", "t4", "t5"] {
            f.learn_reservations(task).await;
        }
        f
    }

    fn name(&mut self, sid: &str, name: &str) {
        self.sids.insert(name.to_owned(), sid.to_owned());
        self.names.insert(sid.to_owned(), name.to_owned());
    }

    /// Names every item of a list by its friendly name.
    async fn learn(&mut self, path: &str) {
        let list = self.api.get(&format!("{path}?PageSize=1000")).await;
        let key = list["meta"]["key"].as_str().unwrap().to_owned();
        for item in list[&key].as_array().unwrap() {
            self.name(item["sid"].as_str().unwrap(), item["friendly_name"].as_str().unwrap());
        }
    }

    /// Names the reservations of `task` `task>worker`.
    async fn learn_reservations(&mut self, task: &str) {
        let list = self.api.get(&format!("/Tasks/{}/Reservations", self.sids[task])).await;
        for reservation in list["reservations"].as_array().unwrap() {
            let name = format!("{task}>{}", reservation["worker_name"].as_str().unwrap());
            self.name(reservation["sid"].as_str().unwrap(), &name);
        }
    }

    /// Creates task `name` in `workflow`, and names the reservation it is offered at once.
    async fn task(&mut self, name: &str, workflow: &str, attributes: &str, priority: &str) {
        let form = [
            ("WorkflowSid", self.sids[workflow].as_str()),
            ("Attributes", attributes),
            ("Priority", priority),
        ];
        let task = self.api.post("/Tasks", &form).await;
        self.name(task["sid"].as_str().unwrap(), name);
        self.learn_reservations(name).await;
    }

    async fn activity(&self, worker: &str, activity: &str) {
        let path = format!("/Workers/{}", self.sids[worker]);
        let worker = self.api.post(&path, &[("ActivitySid", self.sids[activity].as_str())]).await;
        assert_eq!(worker["activity_name"], activity, "{worker}");
    }

    /// Posts `form` to `template` (see [`Fixture::url`]).
    async fn post(&self, template: &str, form: &[(&str, &str)]) {
        let path = self.url(template);
        let path = path.split_once(&self.api.workspace).unwrap().1;
        self.api.post(path, form).await;
    }

    /// The absolute URL of `template`: a path under the workspace, or from the root when it
    /// starts with `/v1/`; `{name}` stands for that name's SID; the query is written as read
    /// (`EvaluateTaskAttributes=lang == "es"`) and encoded here.
    fn url(&self, template: &str) -> String {
        let mut text = template.to_owned();
        for (name, sid) in &self.sids {
            text = text.replace(&format!("{{{name}}}"), sid);
        }
        let (path, query) = text.split_once('?').unwrap_or((&text, ""));
        let pairs: Vec<(&str, &str)> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .collect();
        let query = serde_urlencoded::to_string(&pairs).unwrap();
        let path = if path.starts_with("/v1/") {
            path.to_owned()
        } else {
            format!("/v1/Workspaces/{}{path}", self.api.workspace)
        };
        let path = if query.is_empty() { path } else { format!("{path}?{query}") };
        self.api.app.url(&path)
    }

    /// GETs an absolute URL, as an SDK follows `next_page_url`.
    async fn fetch(&self, url: &str) -> (StatusCode, Value) {
        let request = self.api.app.client.get(url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN));
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    async fn list(&self, url: &str) -> Value {
        let (status, body) = self.fetch(url).await;
        assert_eq!(status, StatusCode::OK, "GET {url}: {body}");
        body
    }

    /// The `meta` of list `template`.
    async fn meta(&self, template: &str) -> Value {
        self.list(&self.url(template)).await["meta"].clone()
    }

    /// An item's name: its friendly name, else the name of its SID; an event is its type and
    /// its resource's name.
    fn label(&self, item: &Value) -> String {
        let name_of = |sid: &Value| {
            let sid = sid.as_str().unwrap_or_default();
            self.names.get(sid).cloned().unwrap_or_else(|| sid.to_owned())
        };
        if let Some(name) = item["friendly_name"].as_str() {
            name.to_owned()
        } else if let Some(kind) = item["event_type"].as_str() {
            format!("{kind} {}", name_of(&item["resource_sid"]))
        } else {
            name_of(&item["sid"])
        }
    }

    /// The items of a list page, by name.
    fn labels(&self, page: &Value) -> Vec<String> {
        let key = page["meta"]["key"].as_str().expect("a list has meta.key");
        page[key]
            .as_array()
            .expect("the items are under meta.key")
            .iter()
            .map(|item| self.label(item))
            .collect()
    }

    /// Checks that list `template` (one page) holds `expected`, in that order.
    async fn check(&self, template: &str, expected: &[&str]) {
        let page = self.list(&self.url(template)).await;
        assert_eq!(self.labels(&page), expected, "GET {template}");
    }

    /// Checks that `template` is refused with Twilio's 400 (code 20001) and a message
    /// starting with `message`, which names the parameter.
    async fn refused(&self, template: &str, message: &str) {
        let (status, body) = self.fetch(&self.url(template)).await;
        let text = body["message"].as_str().unwrap_or_default().to_owned();
        check_error((status, body), 400, 20001, message);
        assert!(text.starts_with(message), "GET {template}: {text:?} does not start with {message:?}");
    }

    /// Reads list `template` `size` items a page, following `next_page_url` until it is null,
    /// and checks every page's `meta` (key, page, page_size, and the absolute links, which
    /// keep the filters); the pages together must be the list as one page of 1,000 shows it,
    /// each item once. Answers the pages' items by name.
    async fn pages(&self, template: &str, size: usize) -> Vec<Vec<String>> {
        let join = if template.contains('?') { '&' } else { '?' };
        let whole = self.list(&self.url(&format!("{template}{join}PageSize=1000"))).await;
        let key = whole["meta"]["key"].as_str().unwrap().to_owned();
        let link = |page: usize| self.url(&format!("{template}{join}PageSize={size}&Page={page}"));
        let mut url = self.url(&format!("{template}{join}PageSize={size}"));
        let (mut pages, mut sids) = (Vec::new(), Vec::new());
        loop {
            let page = self.list(&url).await;
            let number = pages.len();
            let meta = &page["meta"];
            assert_eq!(
                (meta["key"].as_str(), meta["page"].as_u64(), meta["page_size"].as_u64()),
                (Some(key.as_str()), Some(number as u64), Some(size as u64)),
                "{url}: {meta}"
            );
            assert_eq!(meta["first_page_url"], link(0), "{url}");
            let this = if number == 0 { link(0) } else { url.clone() };
            assert_eq!(meta["url"], this, "{url}");
            let previous = if number == 0 { Value::Null } else { Value::String(link(number - 1)) };
            assert_eq!(meta["previous_page_url"], previous, "{url}");
            let items = page[&key].as_array().unwrap();
            assert!(!items.is_empty() || number == 0, "{url}: an empty page after the first");
            assert!(number < 100, "{url}: next_page_url does not come to an end");
            sids.extend(items.iter().map(|item| item["sid"].as_str().unwrap().to_owned()));
            pages.push(self.labels(&page));
            match meta["next_page_url"].as_str() {
                Some(next) => {
                    // The page after the last item shown, by position: `PA` and the SID in a
                    // list by SID, `PD` and the sequence in the events' list (newest first).
                    let last = items.last().unwrap()["sid"].as_str().unwrap();
                    let token = match key.as_str() {
                        "events" => format!("PD{:020}", u64::from_str_radix(&last[2..], 16).unwrap()),
                        _ if template.contains("Ordering=Priority") => {
                            let token = next.split("PageToken=").nth(1).unwrap();
                            assert!(token.starts_with("PA") || token.starts_with("PD"), "{next}");
                            token.to_owned()
                        }
                        _ if template.contains(":desc") => format!("PD{last}"),
                        _ => format!("PA{last}"),
                    };
                    assert_eq!(next, format!("{}&PageToken={token}", link(number + 1)), "{url}");
                    assert_eq!(items.len(), size, "{url}: only the last page may be short");
                    url = next.to_owned();
                }
                None => break,
            }
        }
        let all: Vec<&str> =
            whole[&key].as_array().unwrap().iter().map(|item| item["sid"].as_str().unwrap()).collect();
        assert_eq!(sids, all, "{template}: the pages together are the whole list, in order");
        assert_eq!(sids.iter().collect::<HashSet<_>>().len(), sids.len(), "{template}: an item twice");
        pages
    }
}

#[tokio::test]
async fn workspaces_activities_queues_and_workflows_filter_by_name_and_availability() {
    let app = spawn_api().await;
    let f = Fixture::build(&app).await;

    f.check("/v1/Workspaces", &["Switchboard"]).await;
    f.check("/v1/Workspaces?FriendlyName=Switchboard", &["Switchboard"]).await;
    f.check("/v1/Workspaces?FriendlyName=Other", &[]).await;
    f.check("/v1/Workspaces?FriendlyName=switchboard", &["Switchboard"]).await;

    f.check("/Activities", &["Offline", "Available", "Unavailable", "Break"]).await;
    f.check("/Activities?FriendlyName=Break", &["Break"]).await;
    f.check("/Activities?FriendlyName=break", &["Break"]).await;
    f.check("/Activities?FriendlyName=Lunch", &[]).await;
    f.check("/Activities?Available=true", &["Available"]).await;
    f.check("/Activities?Available=True", &["Available"]).await;
    f.check("/Activities?Available=1", &["Available"]).await;
    f.check("/Activities?Available=false", &["Offline", "Unavailable", "Break"]).await;
    f.check("/Activities?Available=no", &["Offline", "Unavailable", "Break"]).await;
    f.check("/Activities?Available=false&FriendlyName=Break", &["Break"]).await;
    f.check("/Activities?Available=true&FriendlyName=Break", &[]).await;

    f.check("/TaskQueues", &["Everyone", "Sales", "Support", "Spanish"]).await;
    f.check("/TaskQueues?FriendlyName=Support", &["Support"]).await;
    f.check("/TaskQueues?FriendlyName=SPANISH", &["Spanish"]).await;
    f.check("/TaskQueues?FriendlyName=Billing", &[]).await;
    f.check("/TaskQueues?EvaluateWorkerAttributes={}", &["Everyone"]).await;
    f.check("/TaskQueues?WorkerSid={carol}", &["Everyone", "Support", "Spanish"]).await;
    f.check("/TaskQueues?WorkerSid={dave}&FriendlyName=everyone", &["Everyone"]).await;
    f.check(
        r#"/TaskQueues?EvaluateWorkerAttributes={"routing": {"skills": ["Sales"]}}"#,
        &["Everyone", "Sales"],
    )
    .await;
    f.check(
        r#"/TaskQueues?EvaluateWorkerAttributes={"routing": {"skills": ["Support", "Sales"]}, "lang": "es"}"#,
        &["Everyone", "Sales", "Support", "Spanish"],
    )
    .await;
    f.check(r#"/TaskQueues?EvaluateWorkerAttributes={"lang": "es"}&FriendlyName=Spanish"#, &["Spanish"])
        .await;
    f.check(r#"/TaskQueues?EvaluateWorkerAttributes={"lang": "en"}&FriendlyName=Spanish"#, &[]).await;

    f.check("/Workflows", &["Assign to Anyone", "Sales and Support Workflow", "Routed"]).await;
    f.check("/Workflows?FriendlyName=Routed", &["Routed"]).await;
    f.check("/Workflows?FriendlyName=assign to anyone", &["Assign to Anyone"]).await;
    f.check("/Workflows?FriendlyName=Assign", &[]).await;
}

#[tokio::test]
async fn workers_filter_by_activity_availability_name_expression_and_queue() {
    let app = spawn_api().await;
    let f = Fixture::build(&app).await;

    f.check("/Workers", &["alice", "bob", "carol", "dave", "erin"]).await;
    f.check("/Workers?ActivityName=Available", &["alice", "carol"]).await;
    f.check("/Workers?ActivityName=available", &["alice", "carol"]).await;
    f.check("/Workers?ActivityName=Break", &["erin"]).await;
    f.check("/Workers?ActivityName=Unavailable", &[]).await;
    f.check("/Workers?ActivityName=Lunch", &[]).await;
    f.check("/Workers?ActivitySid={Offline}", &["bob", "dave"]).await;
    f.check("/Workers?ActivitySid={Unavailable}", &[]).await;
    f.check("/Workers?ActivitySid=WA00000000000000000000000000000000", &[]).await;
    f.check("/Workers?Available=true", &["alice", "carol"]).await;
    f.check("/Workers?Available=yes", &["alice", "carol"]).await;
    f.check("/Workers?Available=false", &["bob", "dave", "erin"]).await;
    f.check("/Workers?Available=0", &["bob", "dave", "erin"]).await;
    f.check("/Workers?FriendlyName=carol", &["carol"]).await;
    f.check("/Workers?FriendlyName=CAROL", &["carol"]).await;
    f.check("/Workers?FriendlyName=car", &[]).await;
    f.check(r#"/Workers?TargetWorkersExpression=routing.skills HAS "Support""#, &["bob", "carol", "erin"])
        .await;
    f.check("/Workers?TargetWorkersExpression=routing.levels.Support >= 3", &["bob", "carol"]).await;
    f.check(r#"/Workers?TargetWorkersExpression=lang IN ["es", "en"]"#, &["carol", "dave"]).await;
    f.check("/Workers?TargetWorkersExpression=1==1", &["alice", "bob", "carol", "dave", "erin"]).await;
    f.check("/Workers?TargetWorkersExpression=", &["alice", "bob", "carol", "dave", "erin"]).await;
    f.check("/Workers?TaskQueueName=Sales", &["alice", "bob"]).await;
    f.check("/Workers?TaskQueueName=Spanish", &["carol"]).await;
    f.check("/Workers?TaskQueueName=Everyone", &["alice", "bob", "carol", "dave", "erin"]).await;
    f.check("/Workers?TaskQueueName=Billing", &[]).await;
    f.check("/Workers?TaskQueueName=sales", &["alice", "bob"]).await;
    f.check("/Workers?TaskQueueSid={Support}", &["bob", "carol", "erin"]).await;
    f.check("/Workers?TaskQueueSid=WQ00000000000000000000000000000000", &[]).await;
    f.check("/Workers?TaskQueueName=Support&Available=true", &["carol"]).await;
    f.check("/Workers?TaskQueueSid={Sales}&ActivityName=Offline", &["bob"]).await;
    f.check("/Workers?ActivitySid={Available}&FriendlyName=alice", &["alice"]).await;
    f.check(r#"/Workers?TargetWorkersExpression=routing.skills HAS "Sales"&Available=false"#, &["bob"]).await;
}

#[tokio::test]
async fn tasks_filter_by_status_workflow_queue_and_attributes_in_the_order_asked() {
    let app = spawn_api().await;
    let f = Fixture::build(&app).await;

    f.check("/Tasks", &["t1", "t2", "t3", "t4", "t5"]).await;
    f.check("/Tasks?AssignmentStatus=pending", &["t4"]).await;
    f.check("/Tasks?AssignmentStatus=reserved", &["t3"]).await;
    f.check("/Tasks?AssignmentStatus=assigned", &[]).await;
    f.check("/Tasks?AssignmentStatus=wrapping", &["t2"]).await;
    f.check("/Tasks?AssignmentStatus=completed", &["t1"]).await;
    f.check("/Tasks?AssignmentStatus=canceled", &["t5"]).await;
    f.check("/Tasks?AssignmentStatus=pending,reserved", &["t3", "t4"]).await;
    f.check("/Tasks?AssignmentStatus=pending&AssignmentStatus=canceled", &["t4", "t5"]).await;
    f.check("/Tasks?AssignmentStatus=completed, canceled,&AssignmentStatus=wrapping", &["t1", "t2", "t5"])
        .await;
    f.check("/Tasks?AssignmentStatus=", &["t1", "t2", "t3", "t4", "t5"]).await;
    f.check("/Tasks?Priority=7", &["t2"]).await;
    f.check("/Tasks?Priority=0", &["t5"]).await;
    f.check("/Tasks?Priority=2", &[]).await;
    f.check("/Tasks?WorkflowSid={Routed}", &["t1", "t2", "t3", "t4"]).await;
    f.check("/Tasks?WorkflowSid={Assign to Anyone}", &["t5"]).await;
    f.check("/Tasks?WorkflowSid={Sales and Support Workflow}", &[]).await;
    f.check("/Tasks?WorkflowName=Routed", &["t1", "t2", "t3", "t4"]).await;
    f.check("/Tasks?WorkflowName=Assign to Anyone", &["t5"]).await;
    f.check("/Tasks?WorkflowName=Nowhere", &[]).await;
    f.check("/Tasks?WorkflowName=assign to anyone", &["t5"]).await;
    f.check("/Tasks?TaskQueueSid={Sales}", &["t1", "t2", "t4"]).await;
    f.check("/Tasks?TaskQueueSid={Spanish}", &[]).await;
    f.check("/Tasks?TaskQueueName=Support", &["t3"]).await;
    f.check("/Tasks?TaskQueueName=Everyone", &["t5"]).await;
    f.check("/Tasks?TaskQueueName=Nowhere", &[]).await;
    f.check("/Tasks?TaskQueueName=SUPPORT", &["t3"]).await;
    f.check(r#"/Tasks?EvaluateTaskAttributes=lang == "es""#, &["t3"]).await;
    f.check(r#"/Tasks?EvaluateTaskAttributes="Sales" IN skillsNeeded"#, &["t1", "t2", "t4"]).await;
    f.check(r#"/Tasks?EvaluateTaskAttributes=lang == "fr""#, &[]).await;
    f.check("/Tasks?EvaluateTaskAttributes=", &["t1", "t2", "t3", "t4", "t5"]).await;
    f.check("/Tasks?Ordering=DateCreated:asc", &["t1", "t2", "t3", "t4", "t5"]).await;
    f.check("/Tasks?Ordering=DateCreated:desc", &["t5", "t4", "t3", "t2", "t1"]).await;
    f.check("/Tasks?Ordering=Priority:desc", &["t2", "t4", "t1", "t3", "t5"]).await;
    f.check("/Tasks?Ordering=Priority:asc", &["t5", "t3", "t1", "t4", "t2"]).await;
    f.check("/Tasks?AssignmentStatus=pending,reserved&Ordering=Priority:desc", &["t4", "t3"]).await;
    f.check("/Tasks?WorkflowName=Routed&TaskQueueName=Sales&AssignmentStatus=wrapping", &["t2"]).await;
    f.check(r#"/Tasks?EvaluateTaskAttributes=lang == "es"&AssignmentStatus=pending"#, &[]).await;
}

#[tokio::test]
async fn reservations_filter_by_status_under_their_task_and_their_worker() {
    let app = spawn_api().await;
    let f = Fixture::build(&app).await;

    f.check("/Tasks/{t1}/Reservations", &["t1>alice"]).await;
    f.check("/Tasks/{t3}/Reservations", &["t3>erin", "t3>carol"]).await;
    f.check("/Tasks/{t4}/Reservations", &[]).await;
    f.check("/Tasks/{t3}/Reservations?ReservationStatus=pending", &["t3>carol"]).await;
    f.check("/Tasks/{t3}/Reservations?ReservationStatus=rejected", &["t3>erin"]).await;
    f.check("/Tasks/{t3}/Reservations?ReservationStatus=accepted", &[]).await;
    f.check("/Tasks/{t1}/Reservations?ReservationStatus=completed", &["t1>alice"]).await;
    f.check("/Tasks/{t2}/Reservations?ReservationStatus=wrapping", &["t2>alice"]).await;
    f.check("/Tasks/{t2}/Reservations?ReservationStatus=accepted", &[]).await;

    f.check("/Workers/{alice}/Reservations", &["t1>alice", "t2>alice"]).await;
    f.check("/Workers/{alice}/Reservations?ReservationStatus=completed", &["t1>alice"]).await;
    f.check("/Workers/{alice}/Reservations?ReservationStatus=wrapping", &["t2>alice"]).await;
    f.check("/Workers/{alice}/Reservations?ReservationStatus=pending", &[]).await;
    f.check("/Workers/{carol}/Reservations?ReservationStatus=pending", &["t3>carol"]).await;
    f.check("/Workers/{erin}/Reservations", &["t3>erin"]).await;
    f.check("/Workers/{erin}/Reservations?ReservationStatus=rejected", &["t3>erin"]).await;
    f.check("/Workers/{bob}/Reservations", &[]).await;
    f.check("/Workers/{erin}/Reservations?ReservationStatus=", &["t3>erin"]).await;
    f.check("/Tasks/{t3}/Reservations?WorkerSid={erin}", &["t3>erin"]).await;
    f.check("/Tasks/{t3}/Reservations?WorkerSid={carol}&ReservationStatus=pending", &["t3>carol"]).await;
    f.check("/Tasks/{t3}/Reservations?WorkerSid={alice}", &[]).await;

    let unknown = "/Tasks/WT00000000000000000000000000000000/Reservations";
    check_error(f.fetch(&f.url(unknown)).await, 404, 20404, "was not found");
    let unknown = "/Workers/WK00000000000000000000000000000000/Reservations";
    check_error(f.fetch(&f.url(unknown)).await, 404, 20404, "was not found");
}

#[tokio::test]
async fn events_filter_by_type_resource_and_time_newest_first() {
    let app = spawn_api().await;
    let f = Fixture::build(&app).await;

    let created =
        ["task.created t5", "task.created t4", "task.created t3", "task.created t2", "task.created t1"];
    f.check("/Events?EventType=task.created", &created).await;
    f.check("/Events?EventType=task.canceled", &["task.canceled t5"]).await;
    f.check("/Events?EventType=reservation.rejected", &["reservation.rejected t3>erin"]).await;
    f.check("/Events?EventType=task.deleted", &[]).await;
    let canceled = f.list(&f.url("/Events?EventType=task.canceled")).await;
    let sid = canceled["events"][0]["sid"].as_str().unwrap().to_owned();
    f.check(&format!("/Events?Sid={sid}"), &["task.canceled t5"]).await;
    f.check(&format!("/Events?Sid={sid}&EventType=task.created"), &[]).await;
    f.check(
        "/Events?ResourceSid={t1}",
        &["task.completed t1", "task.updated t1", "task.created t1", "workflow.entered t1"],
    )
    .await;
    f.check(
        "/Events?ResourceSid={t3>erin}",
        &["reservation.rejected t3>erin", "reservation.created t3>erin"],
    )
    .await;
    f.check("/Events?ResourceSid=nothing", &[]).await;
    f.check(
        "/Events?TaskSid={t3}&EventType=reservation.created",
        &["reservation.created t3>carol", "reservation.created t3>erin"],
    )
    .await;
    f.check(
        "/Events?WorkerSid={erin}",
        &[
            "worker.activity.update erin",
            "reservation.rejected t3>erin",
            "reservation.created t3>erin",
            "worker.activity.update erin",
            "worker.created erin",
        ],
    )
    .await;
    f.check("/Events?ReservationSid={t3>carol}", &["reservation.created t3>carol"]).await;
    f.check("/Events?TaskQueueSid={Support}&EventType=task-queue.entered", &["task-queue.entered Support"])
        .await;
    f.check("/Events?TaskQueueSid={Spanish}&EventType=task-queue.entered", &[]).await;
    f.check("/Events?WorkflowSid={Assign to Anyone}&EventType=workflow.entered", &["workflow.entered t5"])
        .await;
    f.check("/Events?WorkflowSid={Routed}&TaskSid={t5}", &[]).await;
    f.check("/Events?Minutes=60&EventType=task.created", &created).await;
    f.check("/Events?Minutes=43200&EventType=task.canceled", &["task.canceled t5"]).await;
    f.check("/Events?StartDate=2000-01-01T00:00:00Z&EventType=task.created", &created).await;
    f.check("/Events?StartDate=2099-01-01T00:00:00Z", &[]).await;
    f.check("/Events?EndDate=2099-01-01T00:00:00Z&EventType=task.created", &created).await;
    f.check("/Events?EndDate=2000-01-01T00:00:00Z", &[]).await;
    f.check(
        "/Events?StartDate=2000-01-01T00:00:00Z&EndDate=2099-01-01T00:00:00Z&EventType=task.canceled",
        &["task.canceled t5"],
    )
    .await;
}

#[tokio::test]
async fn a_bad_filter_value_is_refused_with_twilio_error_naming_the_parameter() {
    let app = spawn_api().await;
    let f = Fixture::build(&app).await;

    f.refused("/Activities?Available=perhaps", r#"Available must be true or false, not "perhaps""#).await;
    f.refused("/TaskQueues?EvaluateWorkerAttributes=[1]", "EvaluateWorkerAttributes must be a JSON object")
        .await;
    f.refused("/TaskQueues?EvaluateWorkerAttributes={", "EvaluateWorkerAttributes is not valid JSON").await;
    f.refused("/Workers?Available=maybe", r#"Available must be true or false, not "maybe""#).await;
    f.refused("/Workers?ActivitySid=WA1", "ActivitySid: `WA1` is not an activity SID").await;
    f.refused("/Workers?ActivitySid={Sales}", "ActivitySid: ").await;
    f.refused("/Workers?TaskQueueSid=WQ1", "TaskQueueSid: `WQ1` is not a task queue SID").await;
    f.refused("/Workers?TargetWorkersExpression=skill-level > 3", "TargetWorkersExpression: ").await;
    f.refused("/Workers?TargetWorkersExpression=lang ==", "TargetWorkersExpression: ").await;
    let statuses = "is not one of pending, reserved, assigned, wrapping, completed, canceled";
    f.refused("/Tasks?AssignmentStatus=lost", &format!(r#"AssignmentStatus: "lost" {statuses}"#)).await;
    f.refused("/Tasks?AssignmentStatus=pending,Reserved", r#"AssignmentStatus: "Reserved""#).await;
    f.refused("/Tasks?WorkflowSid=WW1", "WorkflowSid: `WW1` is not a workflow SID").await;
    f.refused("/Tasks?WorkflowSid={Sales}", "WorkflowSid: ").await;
    f.refused("/Tasks?TaskQueueSid=queue", "TaskQueueSid: `queue` is not a task queue SID").await;
    f.refused("/Tasks?EvaluateTaskAttributes=lang ==", "EvaluateTaskAttributes: ").await;
    f.refused("/Tasks?Ordering=Age:asc", r#"Ordering: "Age:asc" is not DateCreated:asc"#).await;
    f.refused("/Tasks?Ordering=priority:desc", r#"Ordering: "priority:desc""#).await;
    let reservation_statuses =
        "is not one of pending, accepted, rejected, timeout, canceled, rescinded, wrapping, completed";
    let lost = format!(r#"ReservationStatus: "lost" {reservation_statuses}"#);
    f.refused("/Tasks/{t3}/Reservations?ReservationStatus=lost", &lost).await;
    f.refused("/Workers/{alice}/Reservations?ReservationStatus=Pending", r#"ReservationStatus: "Pending""#)
        .await;
    f.refused("/Events?Minutes=0", r#"Minutes must be a whole number from 1 to 43200, not "0""#).await;
    f.refused("/Events?Minutes=43201", r#"Minutes must be a whole number from 1 to 43200, not "43201""#)
        .await;
    f.refused("/Events?Minutes=an hour", "Minutes must be a whole number").await;
    f.refused("/Events?StartDate=yesterday", "StartDate must be an ISO 8601 date and time").await;
    f.refused("/Events?EndDate=2026-13-01", "EndDate must be an ISO 8601 date and time").await;
    f.refused("/Events?TaskSid=WT1", "TaskSid: `WT1` is not a task SID").await;
    f.refused("/Events?TaskSid={alice}", "TaskSid: ").await;
    f.refused("/Events?WorkerSid=alice", "WorkerSid: `alice` is not a worker SID").await;
    f.refused(
        "/Events?TaskChannel=voice",
        "TaskChannel is not supported by Switchboard; events do not record",
    )
    .await;
    f.refused("/Events?Sid=WT0", "Sid: `WT0` is not an event SID").await;
    f.refused("/Tasks?HasAddons=true", "HasAddons is not supported by Switchboard").await;
    f.refused(
        "/TaskQueues/{Sales}/RealTimeStatistics?TaskChannel=voice",
        "TaskChannel is not supported by Switchboard",
    )
    .await;
    f.refused("/Tasks?Priority=high", "Priority must be a whole number").await;
    f.refused("/TaskQueues?WorkerSid=WK1", "WorkerSid: `WK1` is not a worker SID").await;
    f.refused("/Tasks/{t3}/Reservations?WorkerSid=erin", "WorkerSid: `erin` is not a worker SID").await;
    f.refused("/Events?ReservationSid=WR1", "ReservationSid: `WR1` is not a reservation SID").await;
    f.refused("/Events?TaskQueueSid=WQ1", "TaskQueueSid: `WQ1` is not a task queue SID").await;
    f.refused("/Events?WorkflowSid=WW1", "WorkflowSid: `WW1` is not a workflow SID").await;
}

#[tokio::test]
async fn every_list_pages_through_its_meta_links_to_the_whole_list() {
    let app = spawn_api().await;
    let f = Fixture::build(&app).await;
    let pages = |template: &'static str, size: usize| f.pages(template, size);

    assert_eq!(pages("/v1/Workspaces", 1).await, [["Switchboard"]]);
    assert_eq!(pages("/Activities", 3).await, [vec!["Offline", "Available", "Unavailable"], vec!["Break"]]);
    assert_eq!(pages("/Activities?Available=false", 1).await, [["Offline"], ["Unavailable"], ["Break"]]);
    assert_eq!(pages("/TaskQueues", 2).await, [["Everyone", "Sales"], ["Support", "Spanish"]]);
    assert_eq!(
        pages(r#"/TaskQueues?EvaluateWorkerAttributes={"lang": "es"}"#, 1).await,
        [["Everyone"], ["Spanish"]]
    );
    assert_eq!(
        pages("/Workflows", 2).await,
        [vec!["Assign to Anyone", "Sales and Support Workflow"], vec!["Routed"]]
    );
    assert_eq!(pages("/Workflows?FriendlyName=Routed", 1).await, [["Routed"]]);
    assert_eq!(pages("/Workers", 2).await, [vec!["alice", "bob"], vec!["carol", "dave"], vec!["erin"]]);
    assert_eq!(pages("/Workers", 5).await, [["alice", "bob", "carol", "dave", "erin"]]);
    assert_eq!(
        pages(r#"/Workers?TargetWorkersExpression=routing.skills HAS "Support"&Available=false"#, 1).await,
        [["bob"], ["erin"]]
    );
    assert_eq!(
        pages("/Tasks?Ordering=Priority:desc", 2).await,
        [vec!["t2", "t4"], vec!["t1", "t3"], vec!["t5"]]
    );
    assert_eq!(
        pages(r#"/Tasks?AssignmentStatus=pending,reserved&EvaluateTaskAttributes="Sales" IN skillsNeeded OR lang == "es""#, 1)
            .await,
        [["t3"], ["t4"]]
    );
    assert_eq!(pages("/Tasks/{t3}/Reservations", 1).await, [["t3>erin"], ["t3>carol"]]);
    assert_eq!(pages("/Workers/{alice}/Reservations?ReservationStatus=completed", 1).await, [["t1>alice"]]);
    assert_eq!(pages("/Workers/{alice}/Reservations", 1).await, [["t1>alice"], ["t2>alice"]]);
    assert_eq!(
        pages("/Events?EventType=task.created", 2).await,
        [
            vec!["task.created t5", "task.created t4"],
            vec!["task.created t3", "task.created t2"],
            vec!["task.created t1"]
        ]
    );
    assert_eq!(pages("/Events?TaskSid={t5}&EventType=task.canceled", 1).await, [["task.canceled t5"]]);
    // Every event, a few a page: the newest first, each once.
    let events = pages("/Events", 7).await;
    assert!(events.len() > 3, "{events:?}");
    assert_eq!(events[0][0], "reservation.wrapup t2>alice", "the newest first");
    assert_eq!(events.concat().last().map(String::as_str), Some("worker.created carol"));
}

#[tokio::test]
async fn page_size_and_page_have_bounds_and_a_page_past_the_end_is_empty() {
    let app = spawn_api().await;
    let f = Fixture::build(&app).await;

    assert_eq!(f.meta("/Workers").await["page_size"], 50, "Twilio's default");
    assert_eq!(f.meta("/Workers?PageSize=1000").await["page_size"], 1000);
    f.check("/Workers?PageSize=1&Page=4", &["erin"]).await;
    f.check("/Tasks?PageSize=2&Page=1&Ordering=DateCreated:desc", &["t3", "t2"]).await;
    f.check("/Events?PageSize=1&Page=1&EventType=task.created", &["task.created t4"]).await;
    f.check("/Workers?PageSize=2&Page=3", &[]).await;
    f.check("/Events?PageSize=3&Page=9&EventType=task.created", &[]).await;
    let past = f.meta("/Workers?PageSize=2&Page=5").await;
    assert_eq!(
        (&past["page"], &past["next_page_url"], past["previous_page_url"].as_str()),
        (&Value::from(5), &Value::Null, Some(f.url("/Workers?PageSize=2&Page=4").as_str()))
    );
    // The last given value counts, as for every parameter.
    f.check("/Workers?PageSize=1&PageSize=2&Page=0&Page=1", &["carol", "dave"]).await;

    let page_size = "PageSize must be a whole number from 1 to 1000, not";
    for (template, value) in [
        ("/Workers?PageSize=0", "0"),
        ("/Tasks?PageSize=1001", "1001"),
        ("/Activities?PageSize=-1", "-1"),
        ("/Events?PageSize=ten", "ten"),
        ("/TaskQueues?PageSize=", ""),
        ("/Workflows?PageSize=2.5", "2.5"),
        ("/v1/Workspaces?PageSize=0", "0"),
        ("/Tasks/{t3}/Reservations?PageSize=0", "0"),
        ("/Workers/{alice}/Reservations?PageSize=5000", "5000"),
    ] {
        f.refused(template, &format!("{page_size} {value:?}")).await;
    }
    f.refused("/Workers?Page=-1", r#"Page must be a whole number from 0 to 4294967295, not "-1""#).await;
    f.refused("/Events?Page=first", r#"Page must be a whole number from 0 to 4294967295, not "first""#).await;
}

#[tokio::test]
async fn following_next_page_url_neither_skips_nor_repeats_while_the_list_changes() {
    let app = spawn_api().await;
    let f = Fixture::build(&app).await;
    let workflow = f.sids["Routed"].as_str();
    let new_task = async || {
        let attributes = r#"{"skillsNeeded": ["Sales"]}"#;
        f.api.post("/Tasks", &[("WorkflowSid", workflow), ("Attributes", attributes)]).await
    };
    let sids = |page: &Value, key: &str| -> Vec<String> {
        page[key].as_array().unwrap().iter().map(|item| item["sid"].as_str().unwrap().to_owned()).collect()
    };
    // t1..t5, two a page: t1 goes while the first page is read, and a new task comes.
    let first = f.list(&f.url("/Tasks?PageSize=2")).await;
    assert_eq!(f.labels(&first), ["t1", "t2"]);
    let (status, _) = f.api.call(reqwest::Method::DELETE, &format!("/Tasks/{}", f.sids["t1"]), &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let created = new_task().await["sid"].as_str().unwrap().to_owned();
    let second = f.list(first["meta"]["next_page_url"].as_str().unwrap()).await;
    assert_eq!(f.labels(&second), ["t3", "t4"], "the page after t2, not after the second item now");
    let third = f.list(second["meta"]["next_page_url"].as_str().unwrap()).await;
    assert_eq!(sids(&third, "tasks"), [f.sids["t5"].clone(), created]);
    assert!(third["meta"]["next_page_url"].is_null());

    // Events, newest first: new ones while paging do not push old ones onto the next page.
    let before = sids(&f.list(&f.url("/Events?PageSize=1000")).await, "events");
    let first = f.list(&f.url("/Events?PageSize=3")).await;
    assert_eq!(sids(&first, "events"), before[..3]);
    new_task().await;
    let second = f.list(first["meta"]["next_page_url"].as_str().unwrap()).await;
    assert_eq!(sids(&second, "events"), before[3..6], "the three after the first page");

    // A token this server never gave.
    f.refused("/Tasks?PageToken=PB123", r#"PageToken: "PB123" is not a token from a next_page_url"#).await;
    f.refused("/Tasks?PageToken=PA-x", r#"PageToken: "PA-x" is not a token from a next_page_url"#).await;
}
