//! The agent and admin pages in headless Chromium, used as people use them: an admin follows
//! the onboarding guide on the admin page, an agent takes a call on the agent page, and a
//! hostile text message shows as text. Screenshots of both pages go to `target/screenshots/`.

use std::time::Duration;

use crate::agent::issue_secret;
use crate::browser::Browser;
use crate::helpers::{
    Balancer, SwitchboardProcess, TestApp, fixed_config, json_as_account, serve_in, serve_on_postgres,
    until_ready,
};
use crate::sms::Switchboard;
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN, spawn_api_with};
use crate::voice::{action, webhook};

/// The server on its first day: the account's credentials, one agent without skills, and no
/// skills, queues or workflows (the admin makes them).
async fn first_day() -> TestApp {
    spawn_api_with(|settings| {
        settings.workspace = toml::from_str(
            r#"
            [[workers]]
            name = "alice"
            attributes = { contact_uri = "client:alice" }
            "#,
        )
        .expect("a workspace");
    })
    .await
}

/// Sets the text of the input `css` to `text`, once it is shown.
async fn fill(browser: &Browser, css: &str, text: &str) {
    let input = browser.find(css).await;
    browser
        .wait_until(&format!("`{css}` to be shown"), async |_| input.is_displayed().await.unwrap_or(false))
        .await;
    input.clear().await.unwrap_or_else(|err| panic!("clearing `{css}`: {err}"));
    input.send_keys(text).await.unwrap_or_else(|err| panic!("typing into `{css}`: {err}"));
}

/// Runs `script` in the page and returns what it returns.
async fn script(browser: &Browser, script: &str) -> serde_json::Value {
    browser.client().execute(script, vec![]).await.unwrap_or_else(|err| panic!("{script}: {err}"))
}

/// A voice task with `attributes` made through the Sales and Support Workflow, as a call that
/// went through the IVR would be.
async fn voice_task_waits(app: &TestApp, attributes: serde_json::Value) {
    let workflow = app.engine.read(|engine| {
        engine.workflows().iter().find(|w| w.friendly_name == "Sales and Support Workflow").unwrap().sid
    });
    let task = switchboard::routing::NewTask {
        attributes,
        priority: None,
        timeout: None,
        workflow: Some(workflow),
        channel: Some("voice".into()),
    };
    app.engine.execute(switchboard::routing::Command::CreateTask(task)).await.unwrap();
}

/// Signs in on the admin page.
async fn admin_signs_in(app: &TestApp) -> Browser {
    let admin = Browser::start().await;
    admin.open(&app.url("/admin")).await;
    fill(&admin, "#account-sid", ACCOUNT_SID).await;
    fill(&admin, "#auth-token", AUTH_TOKEN).await;
    admin.click("#sign-in-form button").await;
    admin
        .wait_until("the admin page's menu", async |browser| {
            script(browser, "return !document.querySelector('#nav').hidden").await == true
        })
        .await;
    admin
}

/// Signs `name` in on the agent page at `base` with `secret`, and makes them Available there.
async fn agent_signs_in(base: &str, name: &str, secret: &str) -> Browser {
    let agent = Browser::start().await;
    agent.open(&format!("{base}/agent")).await;
    fill(&agent, "#name", name).await;
    fill(&agent, "#secret", secret).await;
    agent.click("#sign-in-form button").await;
    agent.wait_for_text("#who", name).await;
    let choose = "const menu = document.querySelector('#activity'); \
        menu.value = [...menu.options].find((option) => option.text === 'Available').value; \
        menu.dispatchEvent(new Event('change')); return null";
    script(&agent, choose).await;
    // The page shows the activity the server answered with.
    agent.find("#who[data-activity='Available']").await;
    agent
}

#[tokio::test]
async fn an_admin_sets_up_sales_and_an_agent_takes_the_call_on_the_live_page() {
    let app = first_day().await;
    let admin = admin_signs_in(&app).await;

    // Skills: Sales with levels, and the two expressions the guide has you paste.
    admin.click("a[href='#skills']").await;
    fill(&admin, "#skill-name", "Sales").await;
    admin.click("#skill-levels").await;
    admin.click("#skill-form button[type=submit]").await;
    let queue_expression = admin.text("tr[data-skill='Sales'] .queue-expression").await;
    let workflow_expression = admin.text("tr[data-skill='Sales'] .workflow-expression").await;
    assert_eq!(queue_expression, r#"routing.skills HAS "Sales""#);
    assert_eq!(workflow_expression, r#""Sales" IN task.skillsNeeded"#);

    // Team: alice gets the skill, chosen then added.
    admin.click("a[href='#team']").await;
    admin.click("tr[data-worker='alice'] select.add-skill option[value='Sales']").await;
    admin.click("tr[data-worker='alice'] .add-skill-button").await;
    admin.find("tr[data-worker='alice'] .chip[data-skill='Sales']").await;
    let attributes = app.engine.read(|engine| engine.worker_by_name("alice").unwrap().attributes.clone());
    assert_eq!(attributes["routing"]["skills"], serde_json::json!(["Sales"]), "{attributes}");

    // Task queues: the expression is checked as it is typed, the mistake drawn with a caret;
    // the queue starts from the skill's expression (and name), which matches alice.
    admin.click("a[href='#queues']").await;
    fill(&admin, "#queue-target", "routing.skills HAS").await;
    let refusal = admin.wait_for_text("#queue-target-check", "column 19").await;
    assert!(
        refusal.ends_with("routing.skills HAS\n                  ^"),
        "the error says where: {refusal:?}"
    );
    admin.click("#queue-skill option[value='Sales']").await;
    admin.wait_for_text("#queue-target-check", "valid expression").await;
    let filled = script(
        &admin,
        "return [document.querySelector('#queue-target').value, document.querySelector('#queue-name').value]",
    )
    .await;
    assert_eq!(filled, serde_json::json!([queue_expression, "Sales"]));
    assert_eq!(admin.wait_for_text("#queue-matching", "alice").await, "alice");
    admin.click("#queue-form button[type=submit]").await;
    admin.find("tr[data-queue='Sales']").await;
    admin.wait_for_text("#queue-form .saved", "Saved").await;

    // Workflows: one filter to Sales, built in the form; the JSON beside it follows.
    admin.click("a[href='#workflows']").await;
    fill(&admin, "#workflow-name", "Sales and Support Workflow").await;
    fill(&admin, "#workflow-timeout", "30").await;
    admin.click("#add-filter").await;
    fill(&admin, "#filters .filter-name", "Send to Sales").await;
    fill(&admin, "#filters .filter-expression", &workflow_expression).await;
    admin.wait_for_text("#filters .filter > .check", "valid expression").await;
    let json = script(&admin, "return document.querySelector('#workflow-json').value").await;
    assert!(json.as_str().unwrap().contains(r#""expression": "\"Sales\" IN task.skillsNeeded""#), "{json}");
    admin.click("#workflow-form button[type=submit]").await;
    admin.find("tr[data-workflow='Sales and Support Workflow']").await;
    let configuration = app.engine.read(|engine| engine.workflows()[0].configuration.clone());
    let sales = app.engine.read(|engine| engine.queue_by_name("Sales").unwrap().sid.to_string());
    assert!(configuration.contains(&sales), "{configuration}");

    // The admin gives alice her secret, once asked to confirm; she signs in on her own page.
    admin.click("a[href='#team']").await;
    admin.click("tr[data-worker='alice'] button.new-secret").await;
    admin.click("#secret-dialog[open] #secret-confirm").await;
    let shown = admin.wait_for_text("#secret-issued", "shown once").await;
    admin.screenshot("admin-new-secret").await;
    admin.click("#secret-close").await;
    let secret = shown.rsplit(' ').next().unwrap().to_owned();
    let agent = agent_signs_in(&app.url(""), "alice", &secret).await;
    script(&agent, "window.notReloaded = true; return null").await;

    // A signed call: the caller presses 1. The offer shows on alice's page within a second.
    let menu = webhook(&app, "/voice/incoming", "CA1", &[("CallStatus", "ringing")]).await;
    webhook(&app, &action(&menu), "CA1", &[("Digits", "1")]).await;
    // Measured in the page: when the offer was drawn, against when the engine made it, so that
    // the browser driver's own delays do not count.
    agent.find(".offer").await;
    let shown_at =
        script(&agent, "return Number(document.body.dataset.offerShownAt)").await.as_i64().unwrap();
    let offered_at = app.engine.read(|engine| engine.reservations().map(|r| r.created_at).max().unwrap());
    let delay = Duration::from_millis((shown_at - offered_at).max(0) as u64);
    eprintln!("the offer showed {delay:?} after it was made");
    assert!(delay < Duration::from_secs(1), "the offer shows within one second: {delay:?}");
    assert_eq!(script(&agent, "return window.notReloaded === true").await, true, "no reload");
    assert_eq!(agent.text(".offer .caller").await, "+15550100001");
    assert_eq!(agent.text(".offer .ivr-path").await, "1");
    assert_eq!(agent.text(".offer .skills").await, "Sales");
    assert!(agent.text(".offer .countdown").await.ends_with(" s"));
    agent.screenshot("agent-offer").await;

    // Alice accepts; the caller's next hold-loop request is bridged to her.
    agent.click(".offer .accept").await;
    agent.find(".task").await;
    let bridge = webhook(&app, "/voice/wait", "CA1", &[]).await;
    assert!(bridge.1.contains("<Dial") && bridge.1.contains("<Client>alice</Client>"), "{}", bridge.1);
    agent.screenshot("agent-task").await;

    // The dashboard shows the queue and alice busy with the call.
    admin.click("a[href='#dashboard']").await;
    admin.wait_for_text("#dashboard-queues tr[data-queue='Sales']", "Sales").await;
    admin.screenshot("admin-dashboard").await;
    admin.click("a[href='#workflows']").await;
    admin.click("tr[data-workflow='Sales and Support Workflow'] button").await;
    admin.wait_for_text("#workflow-form-title", "Edit Sales and Support Workflow").await;
    admin.screenshot("admin-workflow").await;
    admin.click("a[href='#team']").await;
    admin.screenshot("admin-team").await;
}

#[tokio::test]
async fn a_hostile_text_message_shows_as_text_and_runs_nothing() {
    // Nothing listens at that API base: the replies wait in the outbox rather than leave the
    // machine.
    let app = spawn_api_with(|settings| settings.sms.api_base = "http://127.0.0.1:9".into()).await;
    let secret = issue_secret(&app, "alice").await;
    let agent = agent_signs_in(&app.url(""), "alice", &secret).await;
    let customer = Switchboard { base: app.url(""), client: reqwest::Client::new() };
    // Anything the page tried to run would be blocked by its CSP, and reported here.
    let watch = "window.violations = []; \
        document.addEventListener('securitypolicyviolation', (event) => window.violations.push(event.violatedDirective)); \
        return null";
    script(&agent, watch).await;
    let images = "return document.querySelectorAll('img').length";

    // The texter opens with the payload, then chooses sales: the offer's attributes carry the
    // conversation so far.
    let payload = "<img src=x onerror=alert(1)>";
    customer.text("SM1", payload).await;
    customer.text("SM2", "1").await;
    agent.find(".offer").await;
    // The attributes sit in a folded <details>: read what the page holds, shown or not.
    let attributes = script(&agent, "return document.querySelector('.offer .attributes').textContent").await;
    assert!(attributes.as_str().unwrap().contains(payload), "{attributes}");
    assert_eq!(script(&agent, images).await, 0, "the attributes are text, not elements");
    agent.click(".offer .accept").await;
    agent.find(".task .conversation").await;
    customer.text("SM3", payload).await;

    agent
        .wait_until("the second payload in the conversation", async |browser| {
            let bodies = script(
                browser,
                "return [...document.querySelectorAll('.conversation .body')].map(b => b.textContent)",
            )
            .await;
            bodies.as_array().is_some_and(|bodies| bodies.iter().filter(|body| *body == payload).count() == 2)
        })
        .await;
    let images =
        script(&agent, "return document.querySelectorAll('.conversation img, .task img').length").await;
    assert_eq!(images, 0, "the body is text, not an element");
    assert!(agent.client().get_alert_text().await.is_err(), "no alert ran");
    agent.screenshot("agent-hostile-text").await;
    agent.audit("agent-conversation").await;

    // A picture (with a hostile type) shows as a link to it, as text.
    let picture = [
        ("MessageSid", "SM4"),
        ("From", "+15550100007"),
        ("To", "+15550100200"),
        ("Body", ""),
        ("NumMedia", "1"),
        ("MediaUrl0", "https://media.example/photo.jpg"),
        ("MediaContentType0", "<img src=x onerror=alert(2)>"),
    ];
    customer.text_with(&picture).await;
    let link = agent.find(".conversation a.media").await;
    assert_eq!(link.attr("href").await.unwrap().as_deref(), Some("https://media.example/photo.jpg"));
    assert!(link.text().await.unwrap().contains("<img src=x"), "the type is text");
    assert_eq!(script(&agent, "return document.querySelectorAll('img').length").await, 0);
    agent.screenshot("agent-picture-message").await;

    // The same customer on WhatsApp: an offer on its own channel, then a conversation of its own.
    let whatsapp = |sid: &'static str, body: &'static str| {
        [
            ("MessageSid", sid),
            ("From", "whatsapp:+15550100007"),
            ("To", "whatsapp:+15550100200"),
            ("Body", body),
        ]
    };
    customer.text_with(&whatsapp("SMW1", "hello")).await;
    customer.text_with(&whatsapp("SMW2", "sales")).await;
    agent.wait_for_text(".offer .channel-name[data-channel='whatsapp']", "WhatsApp").await;
    agent.click(".offer .accept").await;
    agent.wait_for_text(".task .channel-name[data-channel='whatsapp']", "WhatsApp").await;
    customer.text_with(&whatsapp("SMW3", "Is the blue one in stock?")).await;
    agent
        .wait_until("two conversations, the WhatsApp one with its message", async |browser| {
            let script_text = "return [...document.querySelectorAll('.task .conversation')].length";
            script(browser, script_text).await == 2
                && script(browser, "return document.body.textContent.includes('Is the blue one in stock?')")
                    .await
                    == true
        })
        .await;
    agent.screenshot("agent-whatsapp-conversation").await;
}

/// The real server on a fixed port and data directory, so that a restart comes back where the
/// page left it.
fn serve_on(dir: &std::path::Path, port: u16) -> SwitchboardProcess {
    std::fs::write(dir.join("switchboard.toml"), fixed_config(port, ACCOUNT_SID, AUTH_TOKEN)).unwrap();
    serve_in(dir)
}

/// `method` on `url` with the account's credentials and `form`; the JSON answer.
async fn as_admin(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    form: &[(&str, &str)],
) -> serde_json::Value {
    let request = client.request(method, url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)).form(form);
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.json().await.unwrap()
}

/// Alice signed in on the agent page of the server at `base` (Available, the page marked so
/// that a reload would show), the workspace's URL, and the Sales and Support workflow's SID.
async fn alice_on_the_page(client: &reqwest::Client, base: &str) -> (Browser, String, String) {
    use reqwest::Method;
    let workspaces = as_admin(client, Method::GET, &format!("{base}/v1/Workspaces"), &[]).await;
    let workspace = format!("{base}/v1/Workspaces/{}", workspaces["workspaces"][0]["sid"].as_str().unwrap());
    let workers =
        as_admin(client, Method::GET, &format!("{workspace}/Workers?FriendlyName=alice"), &[]).await;
    let alice = workers["workers"][0]["sid"].as_str().unwrap();
    let issued =
        as_admin(client, Method::POST, &format!("{base}/admin/api/workers/{alice}/secret"), &[]).await;
    let workflows = as_admin(
        client,
        Method::GET,
        &format!("{workspace}/Workflows?FriendlyName=Sales and Support Workflow"),
        &[],
    )
    .await;
    let workflow = workflows["workflows"][0]["sid"].as_str().unwrap().to_owned();
    let agent = agent_signs_in(base, "alice", issued["sign_in_secret"].as_str().unwrap()).await;
    script(&agent, "window.notReloaded = true; return null").await;
    (agent, workspace, workflow)
}

#[tokio::test]
async fn the_agent_page_reconnects_after_a_crash_and_catches_up_without_a_reload() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = serve_on(dir.path(), port);
    let base = server.url("");
    let client = reqwest::Client::new();
    let (agent, workspace, workflow) = alice_on_the_page(&client, &base).await;

    // The server dies: the page says it is reconnecting.
    server.signal(libc::SIGKILL);
    drop(server);
    agent.find("#connection.down").await;

    // It comes back (same port, same data, the session still good), and a Sales task arrives:
    // the page reconnects by itself and shows the offer.
    let _server = serve_on(dir.path(), port);
    let attributes = r#"{"skillsNeeded": ["Sales"], "from": "+15550100042"}"#;
    let form = [("Attributes", attributes), ("WorkflowSid", workflow.as_str())];
    as_admin(&client, Method::POST, &format!("{workspace}/Tasks"), &form).await;
    assert_eq!(agent.wait_for_text(".offer .caller", "+15550100042").await, "+15550100042");
    agent.find("#connection:not(.down)").await;
    assert_eq!(script(&agent, "return window.notReloaded === true").await, true, "no reload");
    agent.screenshot("agent-after-restart").await;
}

#[tokio::test]
async fn the_admin_page_edits_skills_queues_and_workflows_and_explains_a_waiting_task() {
    let app = spawn_api_with(|_| {}).await;
    let admin = admin_signs_in(&app).await;
    let alice = app.engine.read(|engine| engine.worker_by_name("alice").unwrap().sid);

    // Team: alice's Sales is switched off (kept with its level), then set to level 4 and on.
    admin.click("a[href='#team']").await;
    let sales = "tr[data-worker='alice'] .chip[data-skill='Sales']";
    admin.click(&format!("{sales} input[type=checkbox]")).await;
    admin.find("tr[data-worker='alice'] .chip.disabled[data-skill='Sales']").await;
    let attributes = app.engine.read(|engine| engine.worker(alice).unwrap().attributes.clone());
    assert_eq!(attributes["disabled_skills"]["skills"], serde_json::json!(["Sales"]), "{attributes}");
    assert!(attributes["disabled_skills"]["levels"]["Sales"].is_u64(), "the level is kept: {attributes}");
    admin.click(&format!("{sales} input[type=checkbox]")).await;
    admin.find("tr[data-worker='alice'] .chip:not(.disabled)[data-skill='Sales']").await;
    // The level is saved on change, which redraws the row: set it the way a spin button does.
    let level = format!(
        "const input = document.querySelector(\"{sales} input[type=number]\"); input.value = '4'; \
         input.dispatchEvent(new Event('change')); return null"
    );
    script(&admin, &level).await;
    admin
        .wait_until("alice's Sales level to be 4", async |_| {
            app.engine
                .read(|engine| engine.worker(alice).unwrap().attributes["routing"]["levels"]["Sales"] == 4)
        })
        .await;

    // Task queues: Sales edited to reserve two workers at a time.
    admin.click("a[href='#queues']").await;
    admin.click("tr[data-queue='Sales'] button").await;
    admin.wait_for_text("#queue-form-title", "Edit Sales").await;
    fill(&admin, "#queue-max", "2").await;
    admin.click("#queue-form button[type=submit]").await;
    admin
        .wait_until("the Sales queue to reserve two", async |_| {
            app.engine.read(|engine| engine.queue_by_name("Sales").unwrap().max_reserved_workers == 2)
        })
        .await;

    // Workflows: JSON typed beside the form draws the form; an order_by the form does not edit
    // is kept when the form is used.
    admin.click("a[href='#workflows']").await;
    admin.click("tr[data-workflow='Assign to Anyone'] button").await;
    let everyone = app.engine.read(|engine| engine.queue_by_name("Everyone").unwrap().sid);
    let typed = format!(
        r#"{{"task_routing": {{"filters": [{{"filter_friendly_name": "VIP", "expression": "vip == true", "targets": [{{"queue": "{everyone}", "order_by": "worker.level DESC"}}]}}], "default_filter": {{"queue": "{everyone}"}}}}}}"#
    );
    script(&admin, &format!("const box = document.querySelector('#workflow-json'); box.value = {typed:?}; box.dispatchEvent(new Event('input')); return null")).await;
    admin.find("#filters .filter").await;
    assert_eq!(script(&admin, "return document.querySelector('#filters .filter-name').value").await, "VIP");
    fill(&admin, "#filters .target-priority", "5").await;
    admin.click("#workflow-form button[type=submit]").await;
    admin
        .wait_until("the workflow to be saved", async |_| {
            app.engine.read(|engine| {
                let workflow =
                    engine.workflows().iter().find(|w| w.friendly_name == "Assign to Anyone").unwrap();
                let configuration: serde_json::Value = serde_json::from_str(&workflow.configuration).unwrap();
                configuration["task_routing"]["filters"][0]["targets"][0]["priority"] == 5
            })
        })
        .await;
    let saved = app.engine.read(|engine| {
        engine
            .workflows()
            .iter()
            .find(|w| w.friendly_name == "Assign to Anyone")
            .unwrap()
            .configuration
            .clone()
    });
    assert!(saved.contains("worker.level DESC"), "order_by kept: {saved}");

    // A filter generated for a levelled skill offers its task to the highest level first.
    admin.click("tr[data-workflow='Assign to Anyone'] button").await;
    admin.find("#filters .filter").await;
    admin.click("#filter-skill option[value='Sales']").await;
    admin.click("#add-skill-filter").await;
    let generated = "#filters .filter:nth-child(2) .target-order-by";
    assert_eq!(
        script(&admin, &format!("return document.querySelector('{generated}').value")).await,
        "worker.routing.levels.Sales DESC"
    );
    admin.click("#workflow-form button[type=submit]").await;
    admin
        .wait_until("the generated filter to be saved", async |_| {
            app.engine.read(|engine| {
                let workflow =
                    engine.workflows().iter().find(|w| w.friendly_name == "Assign to Anyone").unwrap();
                let configuration: serde_json::Value = serde_json::from_str(&workflow.configuration).unwrap();
                let sales = engine.queue_by_name("Sales").unwrap().sid.to_string();
                let filter = &configuration["task_routing"]["filters"][1];
                filter["expression"] == "\"Sales\" IN task.skillsNeeded"
                    && filter["targets"][0]["queue"] == sales.as_str()
                    && filter["targets"][0]["order_by"] == "worker.routing.levels.Sales DESC"
            })
        })
        .await;
    admin.click("a[href='#skills']").await;
    admin.wait_for_text("tr[data-skill='Sales'] .order-by", "worker.routing.levels.Sales DESC").await;
    admin.click("a[href='#workflows']").await;

    // The dashboard counts a waiting Sales call; "why not alice" says she is offline.
    voice_task_waits(&app, serde_json::json!({"skillsNeeded": ["Sales"], "from": "+15550100099"})).await;
    admin.click("a[href='#dashboard']").await;
    admin.wait_for_text("#dashboard-queues tr[data-queue='Sales'] .waiting", "1").await;
    admin.wait_for_text("#explain-task", "+15550100099").await;
    admin.click(&format!("#explain-worker option[value='{alice}']")).await;
    admin.click("#explain-form button").await;
    let explanation = admin.wait_for_text("#explanation", "not offered").await;
    assert!(explanation.contains("Offline"), "{explanation}");
    admin.screenshot("admin-explain").await;
}

#[tokio::test]
async fn the_admin_page_sets_an_agents_capacity_and_availability_per_channel_through_the_api() {
    let app = spawn_api_with(|_| {}).await;
    let admin = admin_signs_in(&app).await;
    let workspace = app.engine.read(|engine| engine.workspace_sid());
    let alice = app.engine.read(|engine| engine.worker_by_name("alice").unwrap().sid);
    let channel = |name: &'static str| {
        let url = app.url(&format!("/v1/Workspaces/{workspace}/Workers/{alice}/Channels/{name}"));
        let client = app.client.clone();
        async move { json_as_account(client.get(url)).await }
    };

    // Team: alice's chat capacity set to 2, the way a spin button does (a change redraws the row).
    admin.click("a[href='#team']").await;
    let chat = "tr[data-worker='alice'] .channel[data-channel='chat']";
    admin.find(&format!("{chat} input.channel-capacity")).await;
    let capacity = format!(
        "const input = document.querySelector(\"{chat} input.channel-capacity\"); input.value = '2'; \
         input.dispatchEvent(new Event('change')); return null"
    );
    script(&admin, &capacity).await;
    admin
        .wait_until("alice's chat capacity to be 2 in the REST API", async |_| {
            channel("chat").await["configured_capacity"] == 2
        })
        .await;

    // Voice switched off: the API says so, and the page shows it off once redrawn.
    // Clicked in the page: the row may be redrawn (by the save above) between a find and a click.
    let voice = "tr[data-worker='alice'] .channel[data-channel='voice'] input.channel-available";
    script(&admin, &format!("document.querySelector(\"{voice}\").click(); return null")).await;
    admin
        .wait_until("alice's voice channel to be unavailable in the REST API", async |_| {
            channel("voice").await["available"] == false
        })
        .await;
    admin.find("tr[data-worker='alice'] .channel.disabled[data-channel='voice']").await;
    let shown =
        script(&admin, &format!("return document.querySelector(\"{chat} input.channel-capacity\").value"))
            .await;
    assert_eq!(shown, "2", "the page shows what was saved");
    admin.screenshot("admin-team-channels").await;
}

/// Whether the player `css` loads its audio through the server and knows its length (the
/// page's CSP, the server's fetch from the provider and the WAV all hold): its duration.
async fn playable(browser: &Browser, css: &str) -> serde_json::Value {
    let load = format!(
        "const audio = document.querySelector({css:?}); \
         return new Promise((resolve) => {{ \
           audio.addEventListener('loadedmetadata', () => resolve(audio.duration), {{ once: true }}); \
           audio.addEventListener('error', () => resolve('error ' + (audio.error && audio.error.code)), {{ once: true }}); \
           audio.load(); }})"
    );
    script(browser, &load).await
}

#[tokio::test]
async fn an_agent_holds_records_and_hangs_up_a_bridged_call_on_the_page_and_the_recording_plays() {
    let (app, provider) = crate::emulator::conference_bridging().await;
    let secret = issue_secret(&app, "alice").await;
    let agent = agent_signs_in(&app.url(""), "alice", &secret).await;

    // A caller presses 1; alice accepts on her page, and the call's state follows there.
    let call = provider.call(&["1"]).await;
    agent.click(".offer .accept").await;
    agent.wait_for_text(".task .call .call-state", "On the call").await;
    agent.click(".task .call [data-action='hold']").await;
    agent.wait_for_text(".task .call .call-state", "caller on hold").await;
    agent.screenshot("agent-call-on-hold").await;
    agent.audit("agent-call-on-hold").await;
    agent.click(".task .call [data-action='resume']").await;
    agent.find(".task .call [data-action='hold']").await;
    agent.click(".task .call [data-action='mute']").await;
    agent.wait_for_text(".task .call .call-state", "you are muted").await;
    agent.click(".task .call [data-action='record']").await;
    agent.wait_for_text(".task .call .call-state", "recording").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    agent.click(".task .call [data-action='stop-recording']").await;

    // The finished recording is stored with the task and plays on her page.
    agent.find(".task .recordings audio").await;
    let on_agent_page = playable(&agent, ".task .recordings audio").await;
    agent.screenshot("agent-call-recording").await;
    agent.click(".task .call [data-action='hangup']").await;
    let ended = provider
        .wait_for(&call, "the caller's call to end", |summary| summary["status"] == "completed")
        .await;
    agent.wait_for_text(".task .status", "wrapping").await;

    // And on the admin page's recordings.
    let admin = admin_signs_in(&app).await;
    admin.click("a[href='#recordings']").await;
    admin.find("#recording-rows audio").await;
    let on_admin_page = playable(&admin, "#recording-rows audio").await;
    admin.screenshot("admin-recordings").await;

    assert!(on_agent_page.as_f64().is_some_and(|seconds| seconds > 0.0), "{on_agent_page}");
    assert!(on_admin_page.as_f64().is_some_and(|seconds| seconds > 0.0), "{on_admin_page}");
    assert!(crate::emulator::heard(&ended, "is put on hold"), "{ended:#}");
}

#[tokio::test]
async fn the_agent_page_follows_a_failover_to_the_standby_without_signing_in_again() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("switchboard.toml"), fixed_config(0, ACCOUNT_SID, AUTH_TOKEN)).unwrap();
    let database = crate::test_postgres::new_database();
    let client = reqwest::Client::new();
    let first = serve_on_postgres(dir.path(), &database);
    until_ready(&client, &first).await;
    let second = serve_on_postgres(dir.path(), &database);
    let balancer = Balancer::start(vec![first.address, second.address]).await;
    let base = balancer.url("");
    let (agent, workspace, workflow) = alice_on_the_page(&client, &base).await;

    // The leader dies; the standby takes over behind the balancer; a Sales task arrives there.
    first.signal(libc::SIGKILL);
    drop(first);
    until_ready(&client, &second).await;
    let attributes = r#"{"skillsNeeded": ["Sales"], "from": "+15550100043"}"#;
    let form = [("Attributes", attributes), ("WorkflowSid", workflow.as_str())];
    as_admin(&client, Method::POST, &format!("{workspace}/Tasks"), &form).await;

    // The page reconnected by itself, to the new leader, with the same session.
    assert_eq!(agent.wait_for_text(".offer .caller", "+15550100043").await, "+15550100043");
    agent.find("#connection:not(.down)").await;
    assert_eq!(script(&agent, "return window.notReloaded === true").await, true, "no reload");
    agent.screenshot("agent-after-failover").await;
}

#[tokio::test]
async fn two_agents_transfer_a_call_warm_on_their_pages_and_the_caller_ends_up_with_the_second() {
    let (app, provider) = crate::emulator::conference_bridging().await;
    let alice = agent_signs_in(&app.url(""), "alice", &issue_secret(&app, "alice").await).await;
    let call = provider.call(&["1"]).await;
    alice.click(".offer .accept").await;
    alice.wait_for_text(".task .call .call-state", "On the call").await;
    let room = app.engine.read(|engine| {
        let task = engine.tasks().find(|task| task.attributes["call_sid"] == call.as_str()).unwrap();
        task.sid.to_string()
    });
    let bob = agent_signs_in(&app.url(""), "bob", &issue_secret(&app, "bob").await).await;

    // The dialog lists bob (available) with the queues; alice transfers warm to him.
    alice.click(".task .call [data-action='transfer']").await;
    alice.find("#transfer-dialog[open] [data-target='bob'] input:not([disabled])").await;
    alice.find("#transfer-queues [data-target='Support']").await;
    alice.screenshot("agent-transfer-dialog").await;
    alice.audit("agent-transfer-dialog").await;
    alice.click("#transfer-dialog [data-target='bob'] input").await;
    alice.click("#transfer-form input[value='warm']").await;
    alice.click("#transfer-go").await;
    alice.wait_for_text(".task .call .call-state", "waiting for them to join").await;
    bob.click(".offer .accept").await;
    alice.wait_for_text(".task .call .call-state", "they are on the line").await;
    alice.screenshot("agent-warm-transfer-consulting").await;
    let consulting = crate::transfers::until_hearing(&provider, &room, &call, &[]).await;
    assert_eq!(consulting["participants"].as_array().map(Vec::len), Some(3), "{consulting:#}");

    // She leaves them together: the caller hears bob, and her task wraps up.
    alice.click(".task .call [data-action='complete-transfer']").await;
    bob.wait_for_text(".task .call .call-state", "On the call").await;
    alice.wait_for_text(".task .status", "wrapping").await;
    let together = crate::transfers::until_hearing(&provider, &room, &call, &["agent"]).await;
    assert_eq!(crate::transfers::hearing(&together).len(), 2, "{together:#}");
    bob.screenshot("agent-after-transfer").await;
}

#[tokio::test]
async fn a_supervisor_monitors_whispers_and_barges_from_their_page_while_an_agent_talks() {
    let (app, provider) = crate::emulator::conference_bridging().await;
    let api = crate::taskrouter::Api::new(&app).await;
    let attributes = r#"{"contact_uri": "client:sam", "roles": ["supervisor"]}"#;
    let sam = api.post("/Workers", &[("FriendlyName", "sam"), ("Attributes", attributes)]).await;
    let secret = crate::helpers::issue_secret(&app.client, &app.url(""), sam["sid"].as_str().unwrap()).await;
    let supervisor = Browser::start().await;
    supervisor.open(&app.url("/supervisor")).await;
    fill(&supervisor, "#name", "sam").await;
    fill(&supervisor, "#secret", &secret).await;
    supervisor.click("#sign-in-form button").await;
    supervisor.wait_for_text("#who", "sam").await;

    // Alice takes a call; it shows on the supervisor's page within a refresh.
    let alice = agent_signs_in(&app.url(""), "alice", &issue_secret(&app, "alice").await).await;
    let call = provider.call(&["1"]).await;
    alice.click(".offer .accept").await;
    alice.wait_for_text(".task .call .call-state", "On the call").await;
    let room = app.engine.read(|engine| {
        engine.tasks().find(|task| task.attributes["call_sid"] == call.as_str()).unwrap().sid.to_string()
    });
    let row = format!("#calls tr[data-task='{room}']");
    supervisor.wait_for_text(&format!("{row} .state"), "talking").await;
    supervisor.find("#agents tr[data-agent='alice'] .handled").await;

    // Monitor, then whisper, then barge: each as the emulator mixes it.
    let heard_by = |conference: &serde_json::Value, who: &str| {
        crate::transfers::hearing(conference)
            .into_iter()
            .find(|(label, _)| label.starts_with(who))
            .map(|(_, hears)| hears.len())
    };
    supervisor.click(&format!("{row} [data-mode='monitor']")).await;
    supervisor.find(&format!("{row} [data-mode='monitor'][aria-pressed='true']")).await;
    let monitoring = provider
        .wait_for_conference("sam listening", |c| {
            c["friendly_name"] == room.as_str() && heard_by(c, "supervisor") == Some(2)
        })
        .await;
    supervisor.screenshot("supervisor-view-monitoring").await;
    supervisor.find("#agents tr[data-agent='alice'] .activity .tone[data-tone]").await;
    assert_eq!(supervisor.text(&format!("{row} td:nth-child(6)")).await, "sam: monitor");
    supervisor.audit("supervisor-monitoring").await;
    supervisor.click(&format!("{row} [data-mode='whisper']")).await;
    supervisor.find(&format!("{row} [data-mode='whisper'][aria-pressed='true']")).await;
    let whispering = provider
        .wait_for_conference("sam coaching", |c| {
            c["friendly_name"] == room.as_str() && heard_by(c, "agent") == Some(2)
        })
        .await;
    supervisor.click(&format!("{row} [data-mode='barge']")).await;
    supervisor.find(&format!("{row} [data-mode='barge'][aria-pressed='true']")).await;
    let barged = provider
        .wait_for_conference("sam in the call", |c| {
            c["friendly_name"] == room.as_str() && heard_by(c, "customer") == Some(2)
        })
        .await;
    supervisor.click(&format!("{row} [data-mode='leave']")).await;
    supervisor.find(&format!("{row} [data-mode='monitor'][aria-pressed='false']")).await;

    assert_eq!(
        (heard_by(&monitoring, "customer"), heard_by(&monitoring, "agent")),
        (Some(1), Some(1)),
        "{monitoring:#}"
    );
    assert_eq!(
        heard_by(&whispering, "customer"),
        Some(1),
        "the caller does not hear the coach: {whispering:#}"
    );
    assert_eq!(heard_by(&barged, "agent"), Some(2), "{barged:#}");
}

#[tokio::test]
async fn an_agent_calls_a_number_from_the_page_and_talks_in_a_conference() {
    let (app, provider) = crate::emulator::conference_bridging_with("50", |settings| {
        settings.voice.caller_id = "+15550100200".into();
    })
    .await;
    let alice = agent_signs_in(&app.url(""), "alice", &issue_secret(&app, "alice").await).await;
    fill(&alice, "#dial-number", "+15550107777").await;
    alice.click("#dial-form button").await;
    alice.wait_for_text(".task .call .call-state", "On the call").await;
    alice.screenshot("agent-outbound-call").await;
    let (task, call) = app.engine.read(|engine| {
        let task = engine.tasks().find(|task| task.attributes["direction"] == "outbound").unwrap();
        (task.sid.to_string(), task.attributes["call_sid"].as_str().unwrap().to_owned())
    });
    crate::transfers::until_hearing(&provider, &task, &call, &["agent"]).await;
    alice.click(".task .call [data-action='hangup']").await;
    alice.wait_for_text(".task .status", "wrapping").await;
}

#[tokio::test]
async fn an_agent_cancels_a_warm_transfer_then_transfers_cold_to_a_queue_and_to_an_outside_number() {
    let (app, provider) = crate::emulator::conference_bridging().await;
    let alice = agent_signs_in(&app.url(""), "alice", &issue_secret(&app, "alice").await).await;
    let call = provider.call(&["1"]).await;
    alice.click(".offer .accept").await;
    alice.wait_for_text(".task .call .call-state", "On the call").await;
    let bob = agent_signs_in(&app.url(""), "bob", &issue_secret(&app, "bob").await).await;

    // Warm to bob, canceled before he answers: alice has the caller again.
    alice.click(".task .call [data-action='transfer']").await;
    alice.find("#transfer-dialog[open]").await;
    alice.click("#transfer-dialog [data-target='bob'] input").await;
    alice.click("#transfer-form input[value='warm']").await;
    alice.click("#transfer-go").await;
    alice.wait_for_text(".task .call .call-state", "waiting for them to join").await;
    bob.find(".offer .accept").await;
    alice.click(".task .call [data-action='cancel-transfer']").await;
    alice.wait_for_text(".task .call .call-state", "On the call").await;
    bob.wait_for_text("#no-offers", "No offer right now.").await;

    // Cold to the Support queue: alice wraps up at once; bob (Support) takes it.
    alice.click(".task .call [data-action='transfer']").await;
    alice.find("#transfer-dialog[open]").await;
    alice.click("#transfer-dialog [data-target='Support'] input").await;
    alice.click("#transfer-go").await;
    alice.wait_for_text(".task .status", "wrapping").await;
    bob.click(".offer .accept").await;
    bob.wait_for_text(".task .call .call-state", "On the call").await;
    let room = app.engine.read(|engine| {
        let mut tasks: Vec<_> =
            engine.tasks().filter(|task| task.attributes["call_sid"] == call.as_str()).collect();
        tasks.sort_by_key(|task| task.created_at);
        tasks[0].sid.to_string()
    });
    crate::transfers::until_hearing(&provider, &room, &call, &["agent"]).await;
    alice.click(".task .complete").await;
    alice.wait_for_text("#no-tasks", "No task in hand.").await;

    // A second caller, whom alice sends to an outside number.
    let second = provider.call(&["1"]).await;
    alice.click(".offer .accept").await;
    alice.wait_for_text(".task .call .call-state", "On the call").await;
    alice.click(".task .call [data-action='transfer']").await;
    alice.find("#transfer-dialog[open]").await;
    fill(&alice, "#transfer-number", "+15550109999").await;
    alice.click("#transfer-go").await;
    alice.wait_for_text(".task .status", "wrapping").await;
    let dialled = provider
        .wait_for(&second, "the caller put through to the number", |summary| {
            crate::emulator::heard(summary, "+15550109999")
        })
        .await;
    assert!(crate::emulator::heard(&dialled, "+15550109999"), "{dialled:#}");
}

#[tokio::test]
async fn a_callback_request_is_offered_ahead_of_a_later_caller_and_connects_when_accepted() {
    let ivr = crate::helpers::ivr_with_callbacks();
    let (app, provider) = crate::emulator::conference_bridging_with("50", |settings| {
        settings.voice.ivr_dir = ivr.path().to_owned();
    })
    .await;
    // The first caller asks to be called back; a second caller waits on hold after them.
    let asked = provider.call_from("+15550100031", &["1", "1"]).await;
    provider.wait_for(&asked, "the first caller thanked", |summary| summary["status"] == "completed").await;
    let later = provider.call_from("+15550100032", &["1"]).await;
    let waiting = |engine: &switchboard::routing::Engine| {
        engine.tasks().filter(|task| task.status == switchboard::routing::TaskStatus::Pending).count()
    };
    while app.engine.read(waiting) < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Alice signs in: the callback is her first offer, with its progress.
    let alice = agent_signs_in(&app.url(""), "alice", &issue_secret(&app, "alice").await).await;
    assert_eq!(alice.wait_for_text(".offer .caller", "+15550100031").await, "+15550100031");
    alice.wait_for_text(".offer .callback", "waiting (try 0 of 2)").await;
    alice.screenshot("agent-callback-offer").await;
    alice.click(".offer .accept").await;
    alice.wait_for_text(".task .call .call-state", "On the call").await;
    alice.wait_for_text(".task .callback", "calling (try 1 of 2)").await;
    let (task, customer) = app.engine.read(|engine| {
        let task = engine.tasks().find(|task| task.attributes["from"] == "+15550100031").unwrap();
        (task.sid.to_string(), task.attributes["call_sid"].as_str().unwrap().to_owned())
    });
    crate::transfers::until_hearing(&provider, &task, &customer, &["agent"]).await;
    assert_eq!(provider.summary(&later).await["status"], "in-progress", "the later caller still waits");
}

/// A copy of the shipped IVR folder (flows and scenarios), to change under a running server.
fn shipped_ivr_copy() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr");
    std::fs::create_dir(copy.path().join("tests")).unwrap();
    for file in ["main.toml", "account.toml", "tests/main.toml", "tests/account.toml"] {
        std::fs::copy(shipped.join(file), copy.path().join(file)).unwrap();
    }
    copy
}

#[tokio::test]
async fn the_admin_page_draws_each_ivr_flow_with_its_scenarios_and_reloads_the_folder() {
    let ivr = shipped_ivr_copy();
    let dir = ivr.path().to_owned();
    let app = spawn_api_with(move |settings| settings.voice.ivr_dir = dir).await;
    let admin = admin_signs_in(&app).await;
    admin.click("#nav a[href='#ivr']").await;
    // Each flow drawn by Graphviz (WebAssembly, under the page's CSP), with its scenarios passed.
    for flow in ["account.toml", "main.toml"] {
        admin.find(&format!(".flow[data-flow='{flow}'] .flow-diagram svg")).await;
    }
    let drawn = script(
        &admin,
        "return [...document.querySelectorAll(\".flow[data-flow='account.toml'] svg g.node title\")].map((t) => t.textContent)",
    )
    .await;
    let nodes: Vec<&str> = drawn.as_array().unwrap().iter().filter_map(|node| node.as_str()).collect();
    assert!(
        nodes.contains(&"step_crm") && nodes.contains(&"step_sort") && nodes.contains(&"step_partner"),
        "{drawn}"
    );
    let heading =
        admin.wait_for_text(".flow[data-flow='account.toml'] h4", "Scenarios: 14 of 14 passed").await;
    assert!(heading.contains("14 of 14"), "{heading}");
    let failed =
        script(&admin, "return document.querySelectorAll(\"#ivr-flows tr[data-passed='false']\").length")
            .await;
    assert_eq!(failed, 0);
    admin.screenshot("admin-ivr-flows").await;

    // A scenario that now fails: the reload is refused, says where, and the flows stay.
    let failing = std::fs::read_to_string(ivr.path().join("tests/main.toml")).unwrap().replacen(
        "route = { skills = [\"Sales\"]",
        "route = { skills = [\"Support\"]",
        1,
    );
    std::fs::write(ivr.path().join("tests/main.toml"), failing).unwrap();
    admin.click("#ivr-reload").await;
    let refused = admin.wait_for_text("#ivr-reload-result", "the flows in use stay").await;
    assert!(refused.contains("tests/main.toml:") && refused.contains("failed"), "{refused}");
    admin.screenshot("admin-ivr-reload-refused").await;

    // Mended, with a new greeting: reloaded, and a new call hears it.
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr/tests/main.toml"),
        ivr.path().join("tests/main.toml"),
    )
    .unwrap();
    admin.click("#ivr-reload").await;
    admin
        .wait_for_text(
            "#ivr-reload-result",
            "Reloaded: account.toml, main.toml in use; 18 scenario calls passed.",
        )
        .await;

    // A flow of 10,000 menus is listed, not laid out (that would hold the page for minutes).
    std::fs::write(ivr.path().join("big.toml"), crate::helpers::ten_thousand_menus("+15550109999")).unwrap();
    admin.click("#ivr-reload").await;
    admin.wait_for_text("#ivr-reload-result", "Reloaded: account.toml, big.toml, main.toml in use").await;
    let note =
        admin.wait_for_text(".flow[data-flow='big.toml'] .too-large", "10000 steps are too many").await;
    assert!(note.contains("switchboard ivr graph big.toml --format dot"), "{note}");
    admin.find(".flow[data-flow='main.toml'] .flow-diagram svg").await;
    script(&admin, "document.querySelector(\".flow[data-flow='big.toml']\").scrollIntoView(); return null")
        .await;
    admin.screenshot("admin-ivr-large-flow").await;
}

#[tokio::test]
async fn the_admin_dashboard_charts_the_last_hours_from_the_stored_events_and_boards_the_agents() {
    let app = spawn_api_with(|_| {}).await;
    let api = crate::taskrouter::Api::new(&app).await;
    crate::voice::set_activity(&app, "alice", "Available").await;
    let workflow = crate::taskrouter::sales_and_support(&app);
    let sales_task = async || {
        let form = [("WorkflowSid", workflow.as_str()), ("Attributes", r#"{"skillsNeeded": ["Sales"]}"#)];
        api.post("/Tasks", &form).await["sid"].as_str().unwrap().to_owned()
    };
    // One answered at once, one abandoned, one still waiting (alice is busy with the first).
    let answered = sales_task().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let reservation = loop {
        let pending = api.get(&format!("/Tasks/{answered}/Reservations?ReservationStatus=pending")).await;
        if let Some(sid) = pending["reservations"][0]["sid"].as_str() {
            break sid.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "the task was never offered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    api.post(&format!("/Tasks/{answered}/Reservations/{reservation}"), &[("ReservationStatus", "accepted")])
        .await;
    let abandoned = sales_task().await;
    api.post(&format!("/Tasks/{abandoned}"), &[("AssignmentStatus", "canceled"), ("Reason", "hung up")])
        .await;
    sales_task().await;

    let url = app.url("/admin/api/dashboard/history?hours=1");
    let history = crate::helpers::json_as_account(app.client.get(&url)).await;
    let sales =
        history["queues"].as_array().unwrap().iter().find(|queue| queue["friendly_name"] == "Sales").unwrap();
    let last = |series: &str| sales[series].as_array().unwrap().last().unwrap().clone();
    let sum = |series: &str| {
        sales[series].as_array().unwrap().iter().filter_map(serde_json::Value::as_u64).sum::<u64>()
    };
    assert_eq!(history["times"].as_array().unwrap().len(), 60, "an hour, a point a minute: {sales}");
    assert_eq!(
        (last("waiting"), sum("abandoned"), last("service_level")),
        (serde_json::json!(1), 1, serde_json::json!(1.0))
    );
    let available = history["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|activity| activity["friendly_name"] == "Available");
    assert_eq!(available.unwrap()["workers"].as_array().unwrap().last(), Some(&serde_json::json!(1)));
    let refused = app
        .client
        .get(app.url("/admin/api/dashboard/history?hours=0"))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN));
    assert_eq!(refused.send().await.unwrap().status(), 400);
    assert_eq!(
        app.client.get(&url).send().await.unwrap().status(),
        401,
        "the admin's credentials are needed"
    );

    let admin = admin_signs_in(&app).await;
    admin.find("#chart-waiting canvas").await;
    admin.find("#chart-activities canvas").await;
    admin.wait_for_text("#agents-board tr[data-worker='alice']", "Available").await;
    let label =
        script(&admin, "return document.querySelector('#chart-waiting').getAttribute('aria-label')").await;
    assert!(label.as_str().unwrap().contains("Sales now 1"), "{label}");
    script(&admin, "document.querySelector('#chart-hours').scrollIntoView(); return null").await;
    admin.screenshot("admin-dashboard-charts").await;
    admin.audit("admin-dashboard-charts").await;
}

#[tokio::test]
async fn the_front_door_and_the_signed_out_pages_pass_the_accessibility_audit_and_show_no_empty_menu() {
    let app = spawn_api_with(|_| {}).await;
    let browser = Browser::start().await;

    browser.open(&app.url("/")).await;
    browser.find("#health").await;
    browser.audit("front-door").await;

    // The agent page before sign-in: the form, and no Activity menu (it has nothing to offer).
    browser.open(&app.url("/agent")).await;
    let form = browser.find("#sign-in").await;
    browser.wait_until("the sign-in form", async |_| form.is_displayed().await.unwrap_or(false)).await;
    let menu = browser.find("#activity-box").await;
    assert!(!menu.is_displayed().await.unwrap(), "no Activity menu before sign-in");
    browser.audit("agent-signed-out").await;

    for page in ["supervisor", "admin"] {
        browser.open(&app.url(&format!("/{page}"))).await;
        let form = browser.find("#sign-in").await;
        browser.wait_until("the sign-in form", async |_| form.is_displayed().await.unwrap_or(false)).await;
        browser.audit(&format!("{page}-signed-out")).await;
    }
}

#[tokio::test]
async fn every_tab_of_the_admin_page_passes_the_accessibility_audit() {
    let app = spawn_api_with(|_| {}).await;
    // A Sales call waits, so that the dashboard has rows and "why not this agent" has choices.
    voice_task_waits(&app, serde_json::json!({"skillsNeeded": ["Sales"], "from": "+15550100098"})).await;
    let admin = admin_signs_in(&app).await;

    admin.wait_for_text("#dashboard-queues tr[data-queue='Sales'] .waiting", "1").await;
    admin.audit("admin-dashboard").await;
    admin.click("a[href='#skills']").await;
    admin.find("tr[data-skill='Sales']").await;
    admin.audit("admin-skills").await;
    admin.click("a[href='#team']").await;
    admin.find("tr[data-worker='alice'] .channel").await;
    admin.audit("admin-team").await;
    admin.click("a[href='#queues']").await;
    admin.click("tr[data-queue='Sales'] button").await;
    admin.wait_for_text("#queue-target-check", "valid").await;
    admin.audit("admin-queues").await;
    admin.click("a[href='#workflows']").await;
    admin.click("tr[data-workflow='Sales and Support Workflow'] button").await;
    admin.find("#filters .filter .target").await;
    admin.audit("admin-workflows").await;
    admin.click("a[href='#recordings']").await;
    admin.find("#no-recordings").await;
    admin.audit("admin-recordings").await;
    admin.click("a[href='#ivr']").await;
    admin.find(".flow[data-flow='main.toml'] .flow-diagram svg").await;
    admin.audit("admin-ivr").await;
}

/// The lines of `text` from the one before the caret line to the caret line: the expression, and
/// where the caret stands under it (in characters).
fn caret(text: &str) -> (String, Option<usize>) {
    let lines: Vec<&str> = text.lines().collect();
    let at =
        lines.iter().rposition(|line| line.trim() == "^").unwrap_or_else(|| panic!("no caret in {text:?}"));
    (lines[at - 1].to_owned(), lines[at].find('^'))
}

/// Presses `keys` (WebDriver key codes, e.g. "\u{E007}" for Enter) where the focus is.
async fn press(browser: &Browser, keys: &str) {
    let focused = browser.client().active_element().await.expect("an element has the focus");
    focused.send_keys(keys).await.unwrap_or_else(|err| panic!("pressing {keys:?}: {err}"));
}

/// What has the focus: its id, else its `data-key`, else its text.
async fn focused(browser: &Browser) -> serde_json::Value {
    script(browser, "const e = document.activeElement; return e.id || e.dataset.key || e.textContent").await
}

const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";
const TAB: &str = "\u{E004}";
const SHIFT_TAB: &str = "\u{E008}\u{E004}";

#[tokio::test]
async fn admin_forms_check_expressions_as_typed_answer_by_their_button_and_ask_before_a_new_secret() {
    let app = spawn_api_with(|_| {}).await;
    let admin = admin_signs_in(&app).await;

    // Workflows: a filter's and a target's expressions are checked as they are typed, each
    // mistake drawn with a caret under its column, in monospace.
    admin.click("a[href='#workflows']").await;
    admin.click("tr[data-workflow='Sales and Support Workflow'] button").await;
    let filter = "#filters .filter:first-child";
    fill(&admin, &format!("{filter} .filter-expression"), "skill-level > 3").await;
    let check = admin.wait_for_text(&format!("{filter} > .check"), "column 6").await;
    assert_eq!(caret(&check), ("skill-level > 3".to_owned(), Some(5)), "{check:?}");
    let target = format!("{filter} .target:first-child");
    fill(&admin, &format!("{target} .target-expression"), "level > 3").await;
    admin.wait_for_text(&format!("{target} .check"), "names neither the task nor the worker").await;
    let look = script(
        &admin,
        &format!(
            "const check = getComputedStyle(document.querySelector(\"{filter} > .check\")); \
             const input = document.querySelector(\"{filter} .filter-expression\"); \
             return [check.fontFamily, check.whiteSpace, input.getAttribute('aria-invalid')]"
        ),
    )
    .await;
    assert!(look[0].as_str().unwrap().contains("monospace"), "{look}");
    assert_eq!((&look[1], &look[2]), (&serde_json::json!("pre"), &serde_json::json!("true")), "{look}");
    admin.screenshot("admin-expression-checks").await;

    // Saved as it is, the workflow is refused: the message shows beside the button, caret and all.
    admin.click("#workflow-form button[type=submit]").await;
    let refusal = admin.wait_for_text("#workflow-form .refusal", "^").await;
    assert_eq!(caret(&refusal), ("skill-level > 3".to_owned(), Some(5)), "{refusal:?}");
    admin.audit("admin-workflow-refused").await;

    // Mended, it is saved: "Saved" beside the button, announced, then gone.
    fill(&admin, &format!("{filter} .filter-expression"), r#""Sales" IN task.skillsNeeded"#).await;
    fill(&admin, &format!("{target} .target-expression"), "worker.routing.levels.Sales >= 1").await;
    admin.wait_for_text(&format!("{target} .check"), "valid expression").await;
    admin.click("#workflow-form button[type=submit]").await;
    admin.wait_for_text("#workflow-form .saved[role='status']", "Saved").await;
    let hidden = script(&admin, "return document.querySelector('#workflow-form .refusal').hidden").await;
    assert_eq!(hidden, true, "the refusal is gone");
    admin.screenshot("admin-workflow-saved").await;
    admin
        .wait_until("\"Saved\" to go after a few seconds", async |browser| {
            script(browser, "return document.querySelector('#workflow-form .saved').textContent").await == ""
        })
        .await;

    // Skills: a refused name beside its button; a skill with levels, its box right by its words.
    admin.click("a[href='#skills']").await;
    fill(&admin, "#skill-name", "Tech-Support").await;
    admin.click("#skill-form button[type=submit]").await;
    admin.wait_for_text("#skill-form .refusal", "no spaces or hyphens").await;
    fill(&admin, "#skill-name", "Billing").await;
    admin.click("#skill-levels").await;
    let gap = script(
        &admin,
        "const box = document.querySelector('#skill-levels').getBoundingClientRect(); \
         const label = document.querySelector('#skill-levels').parentElement; \
         const range = document.createRange(); range.selectNodeContents(label); \
         const words = [...range.getClientRects()].pop(); return words.left - box.right",
    )
    .await;
    assert!(gap.as_f64().is_some_and(|gap| (0.0..16.0).contains(&gap)), "the box sits by its label: {gap}");
    admin.click("#skill-form button[type=submit]").await;
    admin.wait_for_text("#skill-form .saved", "Saved").await;
    admin.find("tr[data-skill='Billing']").await;
    admin.screenshot("admin-skill-saved").await;

    // Task queues: a new queue started from the skill.
    admin.click("a[href='#queues']").await;
    admin.click("#queue-skill option[value='Billing']").await;
    admin.wait_for_text("#queue-target-check", "valid expression").await;
    admin.click("#queue-form button[type=submit]").await;
    admin.wait_for_text("#queue-form .saved", "Saved").await;
    let target =
        app.engine.read(|engine| engine.queue_by_name("Billing").map(|queue| queue.target_workers.clone()));
    assert_eq!(target.as_deref(), Some(r#"routing.skills HAS "Billing""#));

    // Team: a second alice is refused beside the button.
    admin.click("a[href='#team']").await;
    fill(&admin, "#worker-name", "alice").await;
    admin.click("#worker-form button[type=submit]").await;
    admin.find("#worker-form .refusal:not([hidden])").await;
    let refused = admin.text("#worker-form .refusal").await;
    assert!(!refused.is_empty());

    // By keyboard alone: the Team tab's "New secret" for bob asks first; Escape leaves the old
    // secret working; confirmed, the new one shows.
    let bob = app.engine.read(|engine| engine.worker_by_name("bob").unwrap().sid);
    let old_secret = crate::helpers::issue_secret(&app.client, &app.url(""), &bob.to_string()).await;
    let signs_in = async |secret: &str| {
        let credentials = [("Name", "bob"), ("Secret", secret)];
        let answer = app.client.post(app.url("/agent/api/session")).form(&credentials).send().await.unwrap();
        answer.status().is_success()
    };
    script(&admin, "document.querySelector(\"a[href='#dashboard']\").click(); return null").await;
    script(&admin, "document.querySelector(\"a[href='#team']\").focus(); return null").await;
    press(&admin, ENTER).await;
    admin
        .wait_until("the Team tab", async |browser| {
            script(browser, "return !document.querySelector('#team').hidden").await == true
        })
        .await;
    let current =
        script(&admin, "return document.querySelector(\"a[href='#team']\").getAttribute('aria-current')")
            .await;
    assert_eq!(current, "page");
    script(&admin, "document.querySelector(\"tr[data-worker='bob'] .new-secret\").focus(); return null")
        .await;
    press(&admin, TAB).await;
    press(&admin, SHIFT_TAB).await;
    let ring = script(
        &admin,
        "const e = document.activeElement; return [e.matches(':focus-visible'), getComputedStyle(e).outlineStyle]",
    )
    .await;
    assert_eq!(ring, serde_json::json!([true, "solid"]), "the focus shows");
    press(&admin, ENTER).await;
    admin.find("#secret-dialog[open]").await;
    assert_eq!(focused(&admin).await, "secret-close", "Cancel has the focus");
    admin.audit("admin-new-secret-dialog").await;
    press(&admin, ESCAPE).await;
    admin
        .wait_until("the dialog to close", async |browser| {
            script(browser, "return document.querySelector('#secret-dialog').open").await == false
        })
        .await;
    assert!(signs_in(&old_secret).await, "nothing was issued");
    script(&admin, "document.querySelector(\"tr[data-worker='bob'] .new-secret\").focus(); return null")
        .await;
    press(&admin, ENTER).await;
    admin.find("#secret-dialog[open]").await;
    press(&admin, SHIFT_TAB).await;
    assert_eq!(focused(&admin).await, "secret-confirm");
    press(&admin, ENTER).await;
    let shown = admin.wait_for_text("#secret-issued", "shown once").await;
    assert_eq!(focused(&admin).await, "secret-close", "the focus moves to Close");
    admin.screenshot("admin-new-secret-issued").await;
    let new_secret = shown.rsplit(' ').next().unwrap().to_owned();
    assert!(!signs_in(&old_secret).await && signs_in(&new_secret).await, "the new secret replaced the old");
    press(&admin, ENTER).await;
    admin
        .wait_until("the dialog to close", async |browser| {
            script(browser, "return document.querySelector('#secret-dialog').open").await == false
        })
        .await;

    // A skill switched off with the space bar keeps the focus through the row's redrawing.
    let sales = "tr[data-worker='alice'] .chip[data-skill='Sales'] input[type=checkbox]";
    script(&admin, &format!("document.querySelector(\"{sales}\").focus(); return null")).await;
    press(&admin, " ").await;
    admin.find("tr[data-worker='alice'] .chip.disabled[data-skill='Sales']").await;
    let alice = app.engine.read(|engine| engine.worker_by_name("alice").unwrap().sid);
    admin
        .wait_until("the focus back on the switch", async |browser| {
            focused(browser).await == format!("{alice}/skill/Sales/enabled").as_str()
        })
        .await;
}

#[tokio::test]
async fn an_offer_shows_its_channel_a_ticking_wait_and_the_customers_details_and_passes_the_audit() {
    let app = spawn_api_with(|_| {}).await;
    let secret = issue_secret(&app, "alice").await;
    let agent = agent_signs_in(&app.url(""), "alice", &secret).await;
    agent.find("#activity-tone[data-tone='available']").await;
    agent.audit("agent-signed-in").await;

    // A caller who went through the IVR waits for Sales.
    let attributes = serde_json::json!({
        "from": "+15550100071", "to": "+15550100200", "skillsNeeded": ["Sales"], "language": "es-MX",
        "ivr_path": "9,1", "customer_name": "Ada", "ivr_variables": {"account": "12345678", "tier": "gold"},
    });
    voice_task_waits(&app, attributes).await;

    // The offer names its channel and the customer's details, each labelled.
    agent.find(".offer").await;
    assert_eq!(agent.text(".offer h3 .channel-name").await, "Voice");
    let fields = script(
        &agent,
        "return [...document.querySelectorAll('.offer > dl > dt')].map((dt) => [dt.textContent, dt.nextElementSibling.textContent])",
    )
    .await;
    let expected = serde_json::json!([
        ["From", "+15550100071"],
        ["Name", "Ada"],
        ["To (our number)", "+15550100200"],
        ["Channel", "Voice"],
        ["Queue", "Sales"],
        ["Waiting", fields[5][1]],
        ["Skills needed", "Sales"],
        ["Language", "es-MX"],
        ["IVR path", "9,1"],
        ["IVR variables", "account12345678tiergold"],
    ]);
    assert_eq!(fields, expected);
    assert_eq!(agent.text(".offer [data-variable='tier']").await, "gold");
    // The raw attributes wait behind a toggle.
    let raw = agent.find(".offer details pre.attributes").await;
    assert!(!raw.is_displayed().await.unwrap(), "folded");
    agent.click(".offer details summary").await;
    assert!(raw.is_displayed().await.unwrap(), "unfolded");

    // The wait ticks, every second, without a push.
    let first = agent.text(".offer .waited").await;
    agent.wait_until("the wait to tick", async |browser| browser.text(".offer .waited").await != first).await;
    let ticked = agent.text(".offer .waited").await;
    assert!(first.ends_with(" s") && ticked.ends_with(" s"), "{first} then {ticked}");
    agent.screenshot("agent-offer-details").await;
    agent.audit("agent-offer").await;

    // Accepted, it is a task in hand; then alice goes offline, her colour with her.
    agent.click(".offer .accept").await;
    agent.find(".task .waited").await;
    agent.audit("agent-task").await;
    let offline = "const menu = document.querySelector('#activity'); \
        menu.value = [...menu.options].find((option) => option.text === 'Offline').value; \
        menu.dispatchEvent(new Event('change')); return null";
    script(&agent, offline).await;
    agent.find("#activity-tone[data-tone='offline']").await;
}
