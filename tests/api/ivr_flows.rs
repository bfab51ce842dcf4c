//! IVR flows with every kind of step on the real server, the provider played by signed
//! webhooks: speech in two languages, a forwarded call, digits collected, a lookup against a
//! real local HTTP server that answers, is slow, fails, answers junk, 100 MB or JSON nested too
//! deep (each call goes on by its `on_error` step), `when` and `set` deciding the task; then
//! reloading the folder through the admin API (a broken folder changes nothing; calls already
//! in a flow carry on), also while calls keep coming; a flow of 10,000 menus, and a file too big
//! to read.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::helpers::TestApp;
use crate::sms::read_request;
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN};
use crate::voice::{action, task_of, webhook};

/// A flow written for these tests, apart from the shipped examples: every kind of step.
fn held_out_flow(crm: &str, welcome: &str) -> String {
    format!(
        r#"start = "hello"
language = "en-US"
languages = ["en-US", "fr-FR"]
workflow = "Sales and Support Workflow"

[steps.hello]
say = "{welcome}"
set = {{ visits = 1 }}
next = "menu"

[steps.menu]
say = {{ en-US = "Say sales or support, or press 1 or 2. Press 4 for the front desk, 5 for your order, 8 pour le français.", fr-FR = "Dites ventes ou assistance." }}
speech = true
on_fail = "bye"
[steps.menu.options]
"1" = {{ step = "sales", keywords = ["sales", "ventes"] }}
"2" = {{ route = {{ skills = ["Support"] }}, keywords = ["support", "assistance"] }}
"4" = {{ step = "desk" }}
"5" = {{ step = "order" }}
"8" = {{ language = "fr-FR" }}

[steps.sales]
say = {{ en-US = "One moment.", fr-FR = "Un instant." }}
route = {{ skills = ["Sales"] }}

[steps.desk]
dial = {{ to = "+15550100777", ring = 15 }}
on_no_answer = "desk-missed"

[steps.desk-missed]
say = "Nobody is at the front desk. Returning to the menu."
next = "menu"

[steps.order]
say = "Enter your order number, then press pound."
collect = {{ into = "order", max_digits = 10, pattern = "[0-9]{{4,10}}" }}
next = "lookup"
on_fail = "menu"

[steps.lookup]
lookup = {{ url = "{crm}", timeout = 1 }}
next = "decide"
on_error = "no-lookup"

[steps.no-lookup]
say = "We could not look up your order."
set = {{ looked_up = false }}
next = "agents"

[steps.decide]
when = [
  {{ if = 'status == "late" AND from IN ["+15550100001"]', next = "first" }},
  {{ if = "total >= 500", next = "first" }},
]
else = "agents"

[steps.first]
say = "Your order {{{{order}}}} is {{{{status}}}}. We will put you first, {{{{name}}}}."
attributes = {{ order_status = "{{{{status}}}}" }}
priority = 50
next = "agents"

[steps.agents]
route = {{ skills = ["Support"] }}

[steps.bye]
hangup = true
"#
    )
}

/// The held-out flow's scenarios: a call through each kind of step, as `ivr test` and a reload
/// run them (the lookup's answers given here; the webhook tests below ask a real server).
const HELD_OUT_SCENARIOS: &str = r#"flow = "main.toml"

[[calls]]
name = "sales"
keys = ["1"]
hears = ["Welcome back.", "Say sales or support, or press 1 or 2. Press 4 for the front desk, 5 for your order, 8 pour le français.", "One moment."]
route = { skills = ["Sales"], workflow = "Sales and Support Workflow" }

[[calls]]
name = "speech in French: assistance"
keys = ["8", { speech = "Assistance, s'il vous plaît" }]
route = { skills = ["Support"], workflow = "Sales and Support Workflow" }
attributes = { language = "fr-FR" }

[[calls]]
name = "the front desk does not answer: back to the menu, then sales by voice"
keys = ["4", { dial = "no-answer" }, { speech = "sales please" }]
dialed = ["+15550100777"]
route = { skills = ["Sales"], workflow = "Sales and Support Workflow" }

[[calls]]
name = "collect, lookup, when and set: a late order goes first"
from = "+15550100001"
keys = ["5", "12345"]
lookup.lookup = { status = "late", name = "Ada" }
variables = { order = "12345", status = "late", name = "Ada", visits = 1 }
route = { skills = ["Support"], workflow = "Sales and Support Workflow", priority = 50 }
attributes = { order_status = "late" }

[[calls]]
name = "a failed lookup goes on by on_error"
keys = ["5", "12345"]
lookup.lookup = "it answered 500"
variables = { looked_up = false, lookup_error = "it answered 500" }
route = { skills = ["Support"], workflow = "Sales and Support Workflow" }

[[calls]]
name = "silence: goodbye"
keys = ["-", "-", "-"]
hangup = true
"#;

/// What the CRM received: each request's form, and whether its signature checked out.
type Seen = Arc<Mutex<Vec<(Vec<(String, String)>, bool)>>>;

/// A CRM on a free local port, answering by order number: `12345` a late order, `22222`
/// after 3 s, `33333` a 500, `44444` HTML, `55555` 100 MB, `66666` JSON nested 10,000 deep.
async fn crm() -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/orders", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let (url_for_server, seen_by_server) = (url.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let (url, seen) = (url_for_server.clone(), seen_by_server.clone());
            tokio::spawn(async move {
                let Some(request) = read_request(&mut stream).await else { return };
                let signed = switchboard::http::signature::is_valid(
                    AUTH_TOKEN,
                    &url,
                    &request.form,
                    &request.signature,
                );
                seen.lock().unwrap().push((request.form.clone(), signed));
                let order = request.field("order").to_owned();
                let answer = |status: &str, body: &str| {
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let reply = match order.as_str() {
                    "12345" => answer(
                        "200 OK",
                        r#"{"name": "Ada", "status": "late", "total": 20, "notes": {"vip": true}}"#,
                    ),
                    "22222" => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        answer("200 OK", r#"{"status": "late"}"#)
                    }
                    "33333" => answer("500 Internal Server Error", r#"{"error": "down"}"#),
                    "44444" => answer("200 OK", "<html>It works!</html>"),
                    "55555" => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 104857600\r\n\r\n";
                        let _ = stream.write_all(head.as_bytes()).await;
                        let chunk = vec![b' '; 64 * 1024];
                        for _ in 0..1600 {
                            if stream.write_all(&chunk).await.is_err() {
                                return;
                            }
                        }
                        return;
                    }
                    "66666" => answer("200 OK", &format!("{{\"a\": {}}}", "[".repeat(10_000))),
                    _ => answer("404 Not Found", "{}"),
                };
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

/// The server on a folder holding `flow` as `main.toml`.
async fn spawn_with_flow(flow: &str) -> (TestApp, tempfile::TempDir) {
    let ivr = tempfile::tempdir().unwrap();
    std::fs::write(ivr.path().join("main.toml"), flow).unwrap();
    let dir = ivr.path().to_owned();
    let app = crate::taskrouter::spawn_api_with(move |settings| settings.voice.ivr_dir = dir).await;
    (app, ivr)
}

/// Where the call `twiml` leads next (its Gather's, Record's or Dial's action).
fn next_action(twiml: &(StatusCode, String)) -> String {
    let verbs = switchboard::twiml::parse(&twiml.1).unwrap();
    match verbs.iter().find(|verb| verb.name == "Dial").and_then(|verb| verb.attribute("action")) {
        Some(action) => action.to_owned(),
        None => action(twiml),
    }
}

/// The texts said in `twiml`, in order.
fn said(twiml: &(StatusCode, String)) -> Vec<String> {
    fn walk(elements: &[switchboard::twiml::Element], out: &mut Vec<String>) {
        for element in elements {
            if element.name == "Say" {
                out.push(element.text.clone());
            }
            walk(&element.children, out);
        }
    }
    let mut out = Vec::new();
    walk(&switchboard::twiml::parse(&twiml.1).unwrap(), &mut out);
    out
}

/// A caller who presses 5 and enters `order`; returns the TwiML answering the order number.
async fn order_call(app: &TestApp, call: &str, order: &str) -> (StatusCode, String) {
    let menu = webhook(app, "/voice/incoming", call, &[]).await;
    let asked = webhook(app, &next_action(&menu), call, &[("Digits", "5")]).await;
    assert_eq!(said(&asked), ["Enter your order number, then press pound."]);
    webhook(app, &next_action(&asked), call, &[("Digits", &format!("{order}#"))]).await
}

#[tokio::test]
async fn a_lookup_that_answers_sends_the_caller_ahead_and_one_that_fails_goes_on_by_on_error() {
    let (crm_url, seen) = crm().await;
    let (app, _ivr) = spawn_with_flow(&held_out_flow(&crm_url, "Welcome to Acme.")).await;

    let answered = order_call(&app, "CA-order", "12345").await;
    assert_eq!(answered.0, StatusCode::OK);
    assert_eq!(said(&answered)[0], "Your order 12345 is late. We will put you first, Ada.");
    let (attributes, _, queue) = task_of(&app, "CA-order");
    assert_eq!(queue, "Support");
    assert_eq!(attributes["order_status"], "late");
    assert_eq!(attributes["ivr_variables"]["order"], "12345");
    assert_eq!(attributes["ivr_variables"]["visits"], 1);
    assert_eq!(attributes["ivr_variables"]["notes"]["vip"], true);
    let priority = app.engine.read(|engine| {
        engine.tasks().find(|task| task.attributes["call_sid"] == "CA-order").unwrap().priority
    });
    assert_eq!(priority, 50);
    {
        let seen = seen.lock().unwrap();
        let (form, signed) = &seen[0];
        assert!(signed, "the lookup is signed with the auth token: {form:?}");
        let field = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
        assert_eq!(field("order"), Some("12345"));
        assert_eq!(field("visits"), Some("1"));
        assert_eq!(field("From"), Some("+15550100001"));
        assert_eq!(field("Step"), Some("lookup"));
    }

    // Slow, failing, junk, huge and deeply nested answers: the call goes on by on_error, with
    // the reason kept for the agent.
    let failures = [
        ("22222", "no answer within"),
        ("33333", "it answered 500"),
        ("44444", "the answer is not JSON"),
        ("55555", "the answer is longer than 65536 bytes"),
        ("66666", "the answer is not JSON: recursion limit exceeded"),
    ];
    for (order, reason) in failures {
        let call = format!("CA-{order}");
        let answered = order_call(&app, &call, order).await;
        assert_eq!(answered.0, StatusCode::OK, "{order}");
        assert_eq!(said(&answered)[0], "We could not look up your order.", "{order}");
        let (attributes, _, queue) = task_of(&app, &call);
        assert_eq!(queue, "Support");
        let error = attributes["ivr_variables"]["lookup_error"].as_str().unwrap_or_default();
        assert!(error.starts_with(reason), "{order}: {error}");
        assert_eq!(attributes["ivr_variables"]["looked_up"], false);
    }
    assert!(seen.lock().unwrap().iter().all(|(_, signed)| *signed));
    app.shut_down().await.unwrap();
}

#[tokio::test]
async fn callers_choose_by_speech_in_two_languages_and_a_forwarded_call_comes_back_to_the_menu() {
    let (app, _ivr) = spawn_with_flow(&held_out_flow("http://127.0.0.1:9/orders", "Welcome to Acme.")).await;

    let menu = webhook(&app, "/voice/incoming", "CA-en", &[]).await;
    assert!(menu.1.contains(r#"input="dtmf speech""#), "{}", menu.1);
    assert!(menu.1.contains(r#"hints="assistance, sales, support, ventes""#), "{}", menu.1);
    let routed = webhook(
        &app,
        &next_action(&menu),
        "CA-en",
        &[("SpeechResult", "I'd like to talk to Sales, please."), ("Confidence", "0.9")],
    )
    .await;
    assert_eq!(said(&routed)[0], "One moment.");
    let (attributes, _, queue) = task_of(&app, "CA-en");
    assert_eq!((queue.as_str(), attributes["language"].as_str()), ("Sales", Some("en-US")));

    let menu = webhook(&app, "/voice/incoming", "CA-fr", &[]).await;
    let french = webhook(&app, &next_action(&menu), "CA-fr", &[("Digits", "8")]).await;
    assert!(french.1.contains(r#"language="fr-FR""#), "{}", french.1);
    assert_eq!(said(&french), ["Dites ventes ou assistance."]);
    let routed =
        webhook(&app, &next_action(&french), "CA-fr", &[("SpeechResult", "Assistance, s'il vous plaît")])
            .await;
    assert_eq!(routed.0, StatusCode::OK);
    let (attributes, _, queue) = task_of(&app, "CA-fr");
    assert_eq!((queue.as_str(), attributes["language"].as_str()), ("Support", Some("fr-FR")));

    // Words that match no option are an invalid answer, asked again.
    let menu = webhook(&app, "/voice/incoming", "CA-mumble", &[]).await;
    let again = webhook(&app, &next_action(&menu), "CA-mumble", &[("SpeechResult", "the weather")]).await;
    assert!(again.1.contains("<Gather"), "{}", again.1);

    // The front desk does not answer: back to the menu, with a word first.
    let menu = webhook(&app, "/voice/incoming", "CA-desk", &[]).await;
    let dialing = webhook(&app, &next_action(&menu), "CA-desk", &[("Digits", "4")]).await;
    let dial = switchboard::twiml::parse(&dialing.1).unwrap();
    let dial = dial.iter().find(|verb| verb.name == "Dial").expect("the call is forwarded");
    assert_eq!(dial.attribute("timeout"), Some("15"));
    assert_eq!(dial.children[0].name, "Number");
    assert_eq!(dial.children[0].text, "+15550100777");
    let back = webhook(&app, &next_action(&dialing), "CA-desk", &[("DialCallStatus", "no-answer")]).await;
    assert_eq!(said(&back)[0], "Nobody is at the front desk. Returning to the menu.");
    assert!(back.1.contains("<Gather"), "{}", back.1);
    app.shut_down().await.unwrap();
}

/// `POST /admin/api/ivr/reload` as the admin: the status and the answer.
async fn reload(app: &TestApp) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/admin/api/ivr/reload"))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_reload_swaps_a_checked_folder_in_and_a_broken_one_changes_nothing() {
    let (app, ivr) = spawn_with_flow(&held_out_flow("http://127.0.0.1:9/orders", "Welcome to Acme.")).await;
    let menu = webhook(&app, "/voice/incoming", "CA-before", &[]).await;
    assert_eq!(said(&menu)[0], "Welcome to Acme.");

    // A broken flow (an expression that does not parse) is refused, with its file and line.
    let broken =
        held_out_flow("http://127.0.0.1:9/orders", "Welcome back.").replace("total >= 500", "total >=");
    std::fs::write(ivr.path().join("main.toml"), &broken).unwrap();
    let (status, answer) = reload(&app).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("main.toml:") && message.contains("when #2"), "{message}");
    assert_eq!(said(&webhook(&app, "/voice/incoming", "CA-during", &[]).await)[0], "Welcome to Acme.");

    // So is a folder whose scenario fails.
    std::fs::write(ivr.path().join("main.toml"), held_out_flow("http://127.0.0.1:9/orders", "Welcome back."))
        .unwrap();
    std::fs::create_dir(ivr.path().join("tests")).unwrap();
    let failing = HELD_OUT_SCENARIOS.replacen(r#"skills = ["Sales"]"#, r#"skills = ["Support"]"#, 1);
    std::fs::write(ivr.path().join("tests/main.toml"), failing).unwrap();
    let (status, answer) = reload(&app).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("scenario \"sales\" failed"), "{answer}");

    // Mended, with a call through each kind of step: swapped in. The call that was in the menu
    // carries on in the new version.
    std::fs::write(ivr.path().join("tests/main.toml"), HELD_OUT_SCENARIOS).unwrap();
    let (status, answer) = reload(&app).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["flows"], serde_json::json!(["main.toml"]));
    assert_eq!(answer["scenarios"], 6);
    assert_eq!(said(&webhook(&app, "/voice/incoming", "CA-after", &[]).await)[0], "Welcome back.");
    let routed = webhook(&app, &next_action(&menu), "CA-before", &[("Digits", "1")]).await;
    assert_eq!(said(&routed)[0], "One moment.");
    assert_eq!(task_of(&app, "CA-before").2, "Sales");

    // The admin page's view: the flow, its picture and its scenario, passed.
    let flows = crate::helpers::json_as_account(app.client.get(app.url("/admin/api/ivr"))).await;
    let flow = &flows["flows"][0];
    assert_eq!(flow["name"], "main.toml");
    assert!(flow["mermaid"].as_str().unwrap().starts_with("flowchart TD"), "{flow}");
    assert_eq!(flow["scenarios"][0]["passed"], true, "{flow}");

    // A broken scenario file is named there, beside the other files' results.
    std::fs::write(ivr.path().join("tests/other.toml"), "flow = \"gone.toml\"\ncalls = []\n").unwrap();
    let flows = crate::helpers::json_as_account(app.client.get(app.url("/admin/api/ivr"))).await;
    assert_eq!(flows["flows"][0]["scenarios"].as_array().map(Vec::len), Some(6));
    let mistake = flows["scenario_error"].as_str().unwrap_or_default();
    assert!(mistake.contains("other.toml: flow \"gone.toml\" is not in"), "{mistake}");
    app.shut_down().await.unwrap();
}

#[tokio::test]
async fn a_reload_under_load_drops_no_call_and_fails_no_request() {
    let (app, ivr) = spawn_with_flow(&held_out_flow("http://127.0.0.1:9/orders", "Welcome A.")).await;
    let app = Arc::new(app);
    let callers: Vec<_> = (0..6)
        .map(|caller| {
            let app = app.clone();
            tokio::spawn(async move {
                for n in 0..25 {
                    let call = format!("CA-load-{caller}-{n}");
                    let menu = webhook(&app, "/voice/incoming", &call, &[]).await;
                    assert_eq!(menu.0, StatusCode::OK, "{}", menu.1);
                    let welcome = said(&menu)[0].clone();
                    assert!(welcome == "Welcome A." || welcome == "Welcome B.", "{welcome}");
                    let routed = webhook(&app, &next_action(&menu), &call, &[("Digits", "1")]).await;
                    assert_eq!(routed.0, StatusCode::OK, "{}", routed.1);
                    assert_eq!(said(&routed)[0], "One moment.", "{}", routed.1);
                }
            })
        })
        .collect();
    let mut reloads = 0;
    while callers.iter().any(|caller| !caller.is_finished()) {
        let welcome = if reloads % 2 == 0 { "Welcome B." } else { "Welcome A." };
        std::fs::write(ivr.path().join("main.toml"), held_out_flow("http://127.0.0.1:9/orders", welcome))
            .unwrap();
        let (status, answer) = reload(&app).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        reloads += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for caller in callers {
        caller.await.expect("every call went through");
    }
    assert!(reloads > 1, "the flows were reloaded while calls came in");
    let sales_tasks = app.engine.read(|engine| {
        engine
            .tasks()
            .filter(|task| {
                task.attributes["call_sid"].as_str().is_some_and(|sid| sid.starts_with("CA-load-"))
            })
            .count()
    });
    assert_eq!(sales_tasks, 150, "one task per call, none dropped");
    Arc::into_inner(app).expect("the callers are done").shut_down().await.unwrap();
}

#[tokio::test]
async fn a_flow_of_ten_thousand_menus_is_walked_and_a_file_past_8_mib_is_refused_by_name() {
    let (app, ivr) = spawn_with_flow(&held_out_flow("http://127.0.0.1:9/orders", "Welcome to Acme.")).await;
    let big = crate::helpers::ten_thousand_menus("+15550109999");
    std::fs::write(ivr.path().join("big.toml"), &big).unwrap();
    let (status, answer) = reload(&app).await;
    assert_eq!((status, &answer["flows"]), (StatusCode::OK, &serde_json::json!(["big.toml", "main.toml"])));

    // A caller to its number goes through three of them, then to Sales.
    let to = [("To", "+15550109999")];
    let mut twiml = webhook(&app, "/voice/incoming", "CA-big", &to).await;
    for n in 0..3 {
        assert_eq!(said(&twiml), [format!("Menu {n}.")]);
        twiml = webhook(&app, &next_action(&twiml), "CA-big", &[to[0], ("Digits", "1")]).await;
    }
    assert_eq!(said(&twiml), ["Menu 3."]);
    webhook(&app, &next_action(&twiml), "CA-big", &[to[0], ("Digits", "2")]).await;
    assert_eq!(task_of(&app, "CA-big").2, "Sales");
    let flows = crate::helpers::json_as_account(app.client.get(app.url("/admin/api/ivr"))).await;
    assert_eq!(flows["flows"][0]["steps"], 10_000);

    // Past 8 MiB a file is a mistake named with its file, not read whole: the flows stay.
    let padding = format!("# {}\n", "x".repeat(1 << 20)).repeat(9);
    std::fs::write(ivr.path().join("huge.toml"), padding + &big).unwrap();
    let (status, answer) = reload(&app).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("huge.toml: larger than the 8 MiB a flow file may have"), "{message}");
    let twiml = webhook(&app, "/voice/incoming", "CA-big-after", &to).await;
    assert_eq!(said(&twiml), ["Menu 0."]);
    app.shut_down().await.unwrap();
}

/// The prompt a new call to the process hears first.
async fn first_words(
    client: &reqwest::Client,
    node: &crate::helpers::SwitchboardProcess,
    call: &str,
) -> String {
    let params =
        [("AccountSid", ACCOUNT_SID), ("CallSid", call), ("From", "+15550100001"), ("To", "+15550100200")];
    let url = node.url("/voice/incoming");
    let answer = crate::helpers::signed_webhook(client, &url, &params, AUTH_TOKEN).send().await.unwrap();
    let twiml = (answer.status(), answer.text().await.unwrap());
    said(&twiml).into_iter().next().unwrap_or_default()
}

#[tokio::test]
async fn sighup_reloads_the_ivr_folder_and_a_broken_folder_is_refused_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[store]\ndata_dir = \"data\"\n[twilio]\naccount_sid = \"{ACCOUNT_SID}\"\nauth_token = \"{AUTH_TOKEN}\"\n[voice]\nbridge = \"dial\"\n"
    );
    std::fs::write(dir.path().join("switchboard.toml"), config).unwrap();
    // The default folder, `ivr/`, beside the configuration.
    std::fs::create_dir(dir.path().join("ivr")).unwrap();
    let flow = dir.path().join("ivr/main.toml");
    std::fs::write(&flow, held_out_flow("http://127.0.0.1:9/orders", "Hello from version one.")).unwrap();
    let node = crate::helpers::serve_in(dir.path());
    let client = reqwest::Client::new();
    assert_eq!(first_words(&client, &node, "CA-1").await, "Hello from version one.");

    std::fs::write(&flow, held_out_flow("http://127.0.0.1:9/orders", "Hello from version two.")).unwrap();
    node.signal(libc::SIGHUP);
    node.wait_for_log(Duration::from_secs(10), "IVR flows reloaded (SIGHUP)").expect("the reload is logged");
    assert_eq!(first_words(&client, &node, "CA-2").await, "Hello from version two.");

    std::fs::write(&flow, "start = \"nowhere\"\n[steps.a]\nhangup = true\n").unwrap();
    node.signal(libc::SIGHUP);
    let refused =
        node.wait_for_log(Duration::from_secs(10), "was not reloaded").expect("the refusal is logged");
    assert!(refused.contains("main.toml:1"), "{refused}");
    assert_eq!(first_words(&client, &node, "CA-3").await, "Hello from version two.");

    // The folder moved away (a deploy that swaps folders by renaming): refused, not replaced by
    // the built-in flow a server started without the folder answers with.
    std::fs::rename(dir.path().join("ivr"), dir.path().join("ivr.old")).unwrap();
    node.signal(libc::SIGHUP);
    let refused =
        node.wait_for_log(Duration::from_secs(10), "cannot read the folder").expect("the refusal is logged");
    assert!(refused.contains("was not reloaded"), "{refused}");
    assert_eq!(first_words(&client, &node, "CA-4").await, "Hello from version two.");
}
