//! Text conversations on the real server: a customer texts, walks the IVR by keyword, becomes a
//! Sales task on the `sms` channel, an agent accepts and replies; the replies reach a real
//! local HTTP listener standing in for the provider's messages API, which refuses the first
//! attempts (HTTP 500, then a closed port). And a SIGKILL between the agent's reply and its
//! delivery loses nothing.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{SwitchboardProcess, signed_webhook, spawn_app_with, switchboard_command};
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN};

const CUSTOMER: &str = "+15550100007";
const NUMBER: &str = "+15550100200";

/// A request the provider's messages API received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Received {
    method: String,
    pub(crate) path: String,
    authorization: String,
    /// X-Twilio-Signature, when the request has one.
    pub(crate) signature: String,
    pub(crate) form: Vec<(String, String)>,
}

impl Received {
    pub(crate) fn field(&self, name: &str) -> &str {
        self.form.iter().find(|(key, _)| key == name).map_or("", |(_, value)| value.as_str())
    }
}

/// A message the provider took: SID, recipient, sender, body.
type Taken = (String, String, String, String);

/// The provider's messages API: a real HTTP listener on loopback that answers 500 while
/// `failing`, 201 with a message SID otherwise, and can close its port and open it again. It
/// can also take a message and cut the connection before answering (`swallow`), and lists the
/// messages it took (`GET`), as Twilio's API does.
pub(crate) struct Provider {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    failing: Arc<Mutex<bool>>,
    /// How many of the next messages to take without answering.
    swallow: Arc<Mutex<u32>>,
    taken: Arc<Mutex<Vec<Taken>>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Provider {
    pub(crate) async fn start(address: SocketAddr, failing: bool) -> Provider {
        let mut provider = Provider {
            address,
            received: Arc::default(),
            failing: Arc::new(Mutex::new(failing)),
            swallow: Arc::default(),
            taken: Arc::default(),
            server: None,
        };
        provider.open().await;
        provider
    }

    /// Listens on the provider's port (again).
    async fn open(&mut self) {
        let listener = TcpListener::bind(self.address).await.expect("the provider's port is free");
        self.address = listener.local_addr().unwrap();
        let (received, failing) = (self.received.clone(), self.failing.clone());
        let (swallow, taken) = (self.swallow.clone(), self.taken.clone());
        self.server = Some(tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let (received, failing) = (received.clone(), failing.clone());
                let (swallow, taken) = (swallow.clone(), taken.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else { return };
                    let (status, body) = if request.method == "GET" {
                        ("200 OK", message_list(&request, &taken.lock().unwrap()))
                    } else {
                        let refuse = *failing.lock().unwrap();
                        let sid = format!("SM{:032x}", received.lock().unwrap().len() + 1);
                        let message = (
                            sid.clone(),
                            request.field("To").to_owned(),
                            request.field("From").to_owned(),
                            request.field("Body").to_owned(),
                        );
                        received.lock().unwrap().push(request);
                        if refuse {
                            (
                                "500 Internal Server Error",
                                r#"{"code": 20500, "message": "try later"}"#.to_owned(),
                            )
                        } else {
                            taken.lock().unwrap().push(message);
                            let mut swallowing = swallow.lock().unwrap();
                            if *swallowing > 0 {
                                // Taken, and the answer never leaves: the connection is cut.
                                *swallowing -= 1;
                                return;
                            }
                            ("201 Created", format!(r#"{{"sid": "{sid}", "status": "queued"}}"#))
                        }
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        }));
    }

    /// Closes the port: attempts meanwhile are refused connections.
    async fn close(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// The messages posted to it (not its list being read).
    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Takes the next `count` messages without answering.
    fn swallow(&self, count: u32) {
        *self.swallow.lock().unwrap() = count;
    }

    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// The messages taken that a `GET ...?To=&From=` asks for, as Twilio lists them (RFC 2822 dates).
fn message_list(request: &Received, taken: &[Taken]) -> String {
    let query = request.path.split_once('?').map_or("", |(_, query)| query);
    let query: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let wanted = |name: &str| query.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let date = jiff::fmt::rfc2822::to_string(&now).unwrap();
    let messages: Vec<Value> = taken
        .iter()
        .filter(|(_, to, from, _)| wanted("To").is_none_or(|t| &t == to) && wanted("From").is_none_or(|f| &f == from))
        .map(|(sid, to, from, body)| serde_json::json!({"sid": sid, "to": to, "from": from, "body": body, "date_created": date}))
        .collect();
    serde_json::json!({ "messages": messages }).to_string()
}

/// One HTTP request read off `stream` (head and form body), as a small test server reads it.
pub(crate) async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        let header = |name: &str| {
            head.lines()
                .find_map(|line| line.split_once(':').filter(|(key, _)| key.eq_ignore_ascii_case(name)))
                .map(|(_, value)| value.trim().to_owned())
        };
        let length: usize = header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
        if buffer.len() < end + 4 + length {
            continue;
        }
        let mut first = head.lines().next()?.split_whitespace();
        let method = first.next()?.to_owned();
        let path = first.next()?.to_owned();
        let form = serde_urlencoded::from_bytes(&buffer[end + 4..end + 4 + length]).ok()?;
        let authorization = header("authorization").unwrap_or_default();
        let signature = header("x-twilio-signature").unwrap_or_default();
        return Some(Received { method, path, authorization, signature, form });
    }
}

/// Switchboard as the customer's phone company and the agent's browser see it.
pub(crate) struct Switchboard {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
}

impl Switchboard {
    /// The customer texts `body`, as message `message_sid`; returns the TwiML answer.
    pub(crate) async fn text(&self, message_sid: &str, body: &str) -> String {
        self.text_with(&[("MessageSid", message_sid), ("From", CUSTOMER), ("To", NUMBER), ("Body", body)])
            .await
    }

    /// The provider posts an incoming message with `params` (and the account); the TwiML answer.
    pub(crate) async fn text_with(&self, params: &[(&str, &str)]) -> String {
        let params: Vec<(&str, &str)> =
            [("AccountSid", ACCOUNT_SID)].into_iter().chain(params.iter().copied()).collect();
        let url = format!("{}/sms/incoming", self.base);
        let response = signed_webhook(&self.client, &url, &params, AUTH_TOKEN).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let xml = response.text().await.unwrap();
        switchboard::twiml::parse(&xml).unwrap_or_else(|err| panic!("not TwiML ({err}): {xml}"));
        xml.trim_start_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#).to_owned()
    }

    async fn api(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN));
        if !form.is_empty() {
            request = request.form(form);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn workspace(&self) -> String {
        let (_, workspaces) = self.api(reqwest::Method::GET, "/v1/Workspaces", &[]).await;
        workspaces["workspaces"][0]["sid"].as_str().unwrap().to_owned()
    }

    /// Alice becomes available, is offered the customer's task and accepts it; its SID.
    pub(crate) async fn alice_accepts(&self) -> String {
        let ws = self.workspace().await;
        let (_, workers) = self
            .api(reqwest::Method::GET, &format!("/v1/Workspaces/{ws}/Workers?FriendlyName=alice"), &[])
            .await;
        let alice = workers["workers"][0]["sid"].as_str().unwrap().to_owned();
        let (_, activities) = self
            .api(reqwest::Method::GET, &format!("/v1/Workspaces/{ws}/Activities?FriendlyName=Available"), &[])
            .await;
        let available = activities["activities"][0]["sid"].as_str().unwrap().to_owned();
        let (status, _) = self
            .api(
                reqwest::Method::POST,
                &format!("/v1/Workspaces/{ws}/Workers/{alice}"),
                &[("ActivitySid", &available)],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, reservations) = self
            .api(
                reqwest::Method::GET,
                &format!("/v1/Workspaces/{ws}/Workers/{alice}/Reservations?ReservationStatus=pending"),
                &[],
            )
            .await;
        let reservation = &reservations["reservations"][0];
        let task = reservation["task_sid"].as_str().expect("alice is offered the text").to_owned();
        let path =
            format!("/v1/Workspaces/{ws}/Tasks/{task}/Reservations/{}", reservation["sid"].as_str().unwrap());
        let (status, body) =
            self.api(reqwest::Method::POST, &path, &[("ReservationStatus", "accepted")]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        task
    }

    async fn conversation(&self, task: &str) -> Value {
        let (status, body) =
            self.api(reqwest::Method::GET, &format!("/agent/api/conversations/{task}"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn task(&self, task: &str) -> Value {
        let ws = self.workspace().await;
        self.api(reqwest::Method::GET, &format!("/v1/Workspaces/{ws}/Tasks/{task}"), &[]).await.1
    }
}

/// Waits (polling, up to 30 s) until `done` holds.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A body of exactly 1,600 characters with markup, an ampersand and emoji.
fn awkward_body(who: &str) -> String {
    let start = format!("<b>{who}</b> & \"friends\" 🎉👍🏽 ");
    let filler: String = "ü".repeat(1_600 - start.chars().count());
    format!("{start}{filler}")
}

#[tokio::test]
async fn a_texter_reaches_sales_talks_with_the_agent_and_replies_survive_a_failing_provider() {
    let mut provider = Provider::start("127.0.0.1:0".parse().unwrap(), true).await;
    let api_base = provider.base();
    let app = spawn_app_with(|settings| {
        settings.twilio.account_sid = ACCOUNT_SID.into();
        settings.twilio.auth_token = AUTH_TOKEN.into();
        settings.sms.api_base = api_base;
        // Long enough for the test to close the port between two attempts, even on a slow machine.
        settings.sms.retry_initial_ms = 400;
    })
    .await;
    let switchboard = Switchboard { base: app.url(""), client: reqwest::Client::new() };

    // The IVR over text: a greeting gets the menu, a keyword chooses.
    let menu = "<Response><Message>Thanks for your message. Reply 1 or SALES for sales, 2 or SUPPORT for support.</Message></Response>";
    assert_eq!(switchboard.text("SM1", "hi").await, menu);
    assert_eq!(
        switchboard.text("SM2", "maybe").await,
        "<Response><Message>Sorry, that is not one of the options. Thanks for your message. Reply 1 or SALES for sales, 2 or SUPPORT for support.</Message></Response>"
    );
    let confirmation = "<Response><Message>Thanks! An agent will text you here shortly.</Message></Response>";
    assert_eq!(switchboard.text("SM3", "1").await, confirmation);
    assert_eq!(switchboard.text("SM3", "1").await, confirmation, "a retried MessageSid is answered the same");
    let tasks: Vec<(String, Value)> = app.engine.read(|engine| {
        engine
            .tasks()
            .map(|task| (engine.task_channel(task).unique_name.clone(), Value::clone(&task.attributes)))
            .collect()
    });
    assert_eq!(tasks.len(), 1, "one task, whatever the retries");
    let (channel, attributes) = &tasks[0];
    assert_eq!((channel.as_str(), &attributes["skillsNeeded"]), ("sms", &serde_json::json!(["Sales"])));
    assert_eq!(attributes["from"], CUSTOMER);
    let said: Vec<&str> =
        attributes["conversation"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(said[0], "hi");
    assert_eq!(said[said.len() - 1], "Thanks! An agent will text you here shortly.");

    // Alice accepts and watches the conversation live; the customer's next text joins it,
    // exactly as sent, and is pushed to her.
    let task = switchboard.alice_accepts().await;
    let mut live = switchboard
        .client
        .get(app.url(&format!("/agent/api/conversations/{task}/events")))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let mut pushed = String::new();
    while !pushed.contains("event: ready") {
        pushed.push_str(&String::from_utf8_lossy(&live.chunk().await.unwrap().unwrap()));
    }
    let customer_says = awkward_body("customer");
    assert_eq!(switchboard.text("SM4", &customer_says).await, "<Response/>");
    while !pushed.contains("event: message") || !pushed.ends_with("\n\n") {
        pushed.push_str(&String::from_utf8_lossy(&live.chunk().await.unwrap().unwrap()));
    }
    let data = pushed.split("event: message\ndata: ").nth(1).unwrap().trim_end();
    let message: Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        (message["author"].as_str(), message["body"].as_str()),
        (Some("customer"), Some(customer_says.as_str()))
    );
    let conversation = switchboard.conversation(&task).await;
    let last = conversation["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["author"].as_str(), last["body"].as_str()),
        (Some("customer"), Some(customer_says.as_str()))
    );

    // Alice replies while the provider answers 500.
    let alice_says = awkward_body("alice");
    let (status, queued) = switchboard
        .api(
            reqwest::Method::POST,
            &format!("/agent/api/conversations/{task}/messages"),
            &[("Body", &alice_says)],
        )
        .await;
    assert_eq!((status, queued["status"].as_str()), (StatusCode::CREATED, Some("queued")), "{queued}");
    eventually("the provider refused once", async || !provider.received().is_empty()).await;

    // Then its port is closed for a while: attempts fail without reaching it.
    provider.close().await;
    let sms = app.sms.clone();
    eventually("an attempt met the closed port", async || sms.outbox().iter().any(|m| m.attempts >= 2)).await;
    assert_eq!(provider.received().len(), 1);

    // The provider recovers: the reply is delivered, once, with Basic auth and its fields.
    *provider.failing.lock().unwrap() = false;
    provider.open().await;
    eventually("the reply was delivered", async || sms.outbox().iter().any(|m| m.status == "sent")).await;
    let received = provider.received();
    assert_eq!(received.len(), 2, "one refused attempt, one delivery: {received:?}");
    let delivered = &received[1];
    let expected_auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{ACCOUNT_SID}:{AUTH_TOKEN}")
        )
    );
    assert_eq!(delivered.path, format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"));
    assert_eq!(delivered.authorization, expected_auth);
    assert_eq!((delivered.field("To"), delivered.field("From")), (CUSTOMER, NUMBER));
    assert_eq!(delivered.field("Body"), alice_says, "1,600 characters, markup and emoji, exactly");
    let conversation = switchboard.conversation(&task).await;
    let reply = conversation["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(reply["delivery"]["status"], "sent", "the agent sees the delivery: {reply}");
    assert!(reply["delivery"]["attempts"].as_u64().unwrap() >= 3);

    // Alice closes: the task completes, the customer gets the closing text.
    let (status, _) =
        switchboard.api(reqwest::Method::POST, &format!("/agent/api/conversations/{task}/close"), &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(switchboard.task(&task).await["assignment_status"], "completed");
    eventually("the closing text was delivered", async || provider.received().len() == 3).await;
    assert!(provider.received()[2].field("Body").starts_with("Thanks for contacting us."));

    // The next text starts at the IVR again; STOP silences, START resumes.
    assert_eq!(switchboard.text("SM5", "hello again").await, menu);
    assert_eq!(
        switchboard.text("SM6", "STOP").await,
        "<Response><Message>You will receive no more messages from us. Reply START to resume.</Message></Response>"
    );
    assert_eq!(switchboard.text("SM7", "1").await, "<Response/>", "nothing is sent after STOP");
    assert_eq!(
        switchboard.text("SM8", "start").await,
        "<Response><Message>You can text us again. Reply HELP for help.</Message></Response>"
    );
}

#[test]
fn a_reply_queued_before_a_crash_is_delivered_once_after_the_restart() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // A port nobody listens on yet: the provider is down when the agent replies.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = tempfile::tempdir().unwrap();
    let start = || {
        let mut command = switchboard_command(repo);
        command
            .arg("serve")
            .env("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0")
            .env("SWITCHBOARD_STORE_DATA_DIR", data.path())
            .env("SWITCHBOARD_TWILIO_ACCOUNT_SID", ACCOUNT_SID)
            .env("SWITCHBOARD_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
            .env("SWITCHBOARD_SMS_API_BASE", format!("http://{port}"))
            .env("SWITCHBOARD_SMS_RETRY_INITIAL_MS", "100");
        SwitchboardProcess::start(command).unwrap()
    };
    let first = start();
    let switchboard = Switchboard { base: first.url(""), client: reqwest::Client::new() };
    let (task, body) = runtime.block_on(async {
        switchboard.text("SM1", "hi").await;
        switchboard.text("SM2", "sales").await;
        let task = switchboard.alice_accepts().await;
        let body = awkward_body("before the crash");
        let (status, _) = switchboard
            .api(
                reqwest::Method::POST,
                &format!("/agent/api/conversations/{task}/messages"),
                &[("Body", &body)],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "acknowledged");
        (task, body)
    });
    first.signal(libc::SIGKILL);
    drop(first);

    let provider = runtime.block_on(Provider::start(port, false));
    let second = start();
    let switchboard = Switchboard { base: second.url(""), client: reqwest::Client::new() };
    runtime.block_on(async {
        eventually("the reply was delivered", async || !provider.received().is_empty()).await;
        eventually("the agent sees it sent", async || {
            let conversation = switchboard.conversation(&task).await;
            conversation["messages"].as_array().unwrap().last().unwrap()["delivery"]["status"] == "sent"
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let received = provider.received();
        assert_eq!(received.len(), 1, "delivered once: {received:?}");
        assert_eq!(received[0].field("Body"), body);
    });
}

#[tokio::test]
async fn the_conversation_api_needs_the_credentials_and_an_accepted_conversation() {
    let app = spawn_app_with(|settings| {
        settings.twilio.account_sid = ACCOUNT_SID.into();
        settings.twilio.auth_token = AUTH_TOKEN.into();
    })
    .await;
    let switchboard = Switchboard { base: app.url(""), client: reqwest::Client::new() };
    let path = format!("/agent/api/conversations/WT{}", "0".repeat(32));

    let anonymous = switchboard.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = switchboard.api(reqwest::Method::GET, &path, &[]).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::NOT_FOUND, Some(format!("no text conversation has task WT{}", "0".repeat(32)).as_str()))
    );
    let (status, _) = switchboard.api(reqwest::Method::GET, "/agent/api/conversations/not-a-sid", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A conversation still waiting for an agent takes no replies; an empty or too long body is refused.
    switchboard.text("SM1", "hi").await;
    switchboard.text("SM2", "2").await;
    let task = app.engine.read(|engine| engine.tasks().next().unwrap().sid.to_string());
    let messages = format!("/agent/api/conversations/{task}/messages");
    let (status, body) = switchboard.api(reqwest::Method::POST, &messages, &[("Body", "hello")]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = switchboard.api(reqwest::Method::POST, &messages, &[("Body", " ")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) =
        switchboard.api(reqwest::Method::POST, &messages, &[("Body", &"x".repeat(1_601))]).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Body has 1601 characters; the most a text takes is 1600"))
    );
}

/// A customer routed to Sales and accepted by alice, with the provider's API at `provider`.
async fn accepted_conversation(provider: &Provider) -> (crate::helpers::TestApp, Switchboard, String) {
    accepted_conversation_in(provider, None).await
}

/// [`accepted_conversation`] with the data in `data` if given.
async fn accepted_conversation_in(
    provider: &Provider,
    data: Option<&Path>,
) -> (crate::helpers::TestApp, Switchboard, String) {
    let app = sms_app(provider, data).await;
    let switchboard = Switchboard { base: app.url(""), client: reqwest::Client::new() };
    switchboard.text("SM1", "hi").await;
    switchboard.text("SM2", "1").await;
    let task = switchboard.alice_accepts().await;
    (app, switchboard, task)
}

/// The server with the provider's API at `provider`, and its data in `data` if given.
async fn sms_app(provider: &Provider, data: Option<&Path>) -> crate::helpers::TestApp {
    let api_base = provider.base();
    spawn_app_with(|settings| {
        settings.twilio.account_sid = ACCOUNT_SID.into();
        settings.twilio.auth_token = AUTH_TOKEN.into();
        settings.sms.api_base = api_base;
        settings.sms.retry_initial_ms = 200;
        if let Some(data) = data {
            settings.store.data_dir = data.to_owned();
        }
    })
    .await
}

/// The bodies of a conversation's messages, in the order the API gives them.
fn bodies(conversation: &Value) -> Vec<String> {
    let messages = conversation["messages"].as_array().unwrap();
    messages.iter().map(|message| message["body"].as_str().unwrap().to_owned()).collect()
}

async fn reply(switchboard: &Switchboard, task: &str, body: &str) -> Value {
    reply_with(switchboard, task, &[("Body", body)]).await
}

async fn reply_with(switchboard: &Switchboard, task: &str, form: &[(&str, &str)]) -> Value {
    let (status, queued) = switchboard
        .api(reqwest::Method::POST, &format!("/agent/api/conversations/{task}/messages"), form)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{queued}");
    queued
}

#[tokio::test]
async fn replies_leave_in_order_and_stop_cancels_what_is_still_queued_for_that_number_only() {
    let provider = Provider::start("127.0.0.1:0".parse().unwrap(), true).await;
    let (app, switchboard, task) = accepted_conversation(&provider).await;

    // While the provider fails, two replies queue up: the second never overtakes the first.
    reply(&switchboard, &task, "first reply").await;
    reply(&switchboard, &task, "second reply").await;
    eventually("the first reply was refused twice", async || provider.received().len() >= 2).await;
    *provider.failing.lock().unwrap() = false;
    eventually("both were delivered", async || app.sms.outbox().iter().all(|m| m.status == "sent")).await;
    let bodies: Vec<String> = provider.received().iter().map(|r| r.field("Body").to_owned()).collect();
    let first_delivered = bodies.iter().position(|b| b == "first reply").unwrap();
    let second_tried = bodies.iter().position(|b| b == "second reply").unwrap();
    assert!(first_delivered < second_tried, "in order: {bodies:?}");
    assert!(bodies.iter().filter(|b| *b == "first reply").count() >= 2, "retried first: {bodies:?}");

    // "yes" and "help" during the conversation are the agent's to answer.
    assert_eq!(switchboard.text("SM3", "Yes").await, "<Response/>");
    assert_eq!(switchboard.text("SM4", "help").await, "<Response/>");
    let said: Vec<String> = switchboard.conversation(&task).await["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert!(said.ends_with(&["Yes".to_owned(), "help".to_owned()]), "{said:?}");

    // A reply queued while the provider is down is canceled by STOP, and stays canceled.
    *provider.failing.lock().unwrap() = true;
    reply(&switchboard, &task, "third reply").await;
    let sent_before = provider.received().len();
    eventually("the third reply was tried", async || provider.received().len() > sent_before).await;
    switchboard.text("SM5", "stop").await;
    let tries =
        |provider: &Provider| provider.received().iter().filter(|r| r.field("Body") == "third reply").count();
    let tried_before_stop = tries(&provider);
    *provider.failing.lock().unwrap() = false;
    let third = |app: &crate::helpers::TestApp| {
        app.sms.outbox().into_iter().find(|m| m.body == "third reply").unwrap()
    };
    assert_eq!(third(&app).status, "canceled");
    // Longer than the next retry would have waited: it is not tried again, and stays canceled.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!((third(&app).status.as_str(), tries(&provider)), ("canceled", tried_before_stop));
    let (status, body) = switchboard
        .api(reqwest::Method::POST, &format!("/agent/api/conversations/{task}/messages"), &[("Body", "more")])
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing is sent after STOP: {body}");
}

/// The ways an agent or a program completes a text conversation's task.
#[derive(Debug, Clone, Copy)]
enum Completion {
    /// The agent page's `POST /agent/api/conversations/{WT}/close`, sent twice.
    Close,
    /// The agent API's `POST /agent/api/tasks/{WT}` with `completed`, signed in as alice.
    AgentApi,
    /// The REST API's `POST .../Tasks/{WT}` with `completed` (and new attributes).
    RestTask,
    /// The REST API's wrap-up, a reply during it, then the reservation updated to `completed`.
    WrapUpReplyThenReservation,
}

/// Completes an accepted conversation's task through `how`: the conversation is closed, the
/// closing text queued once and delivered once, and the customer's next text starts at the IVR.
async fn check_closing(how: Completion) {
    let provider = Provider::start("127.0.0.1:0".parse().unwrap(), false).await;
    let (app, switchboard, task) = accepted_conversation(&provider).await;
    let ws = switchboard.workspace().await;
    let post = async |path: &str, form: &[(&str, &str)]| {
        let (status, body) = switchboard.api(reqwest::Method::POST, path, form).await;
        assert!(status.is_success(), "{how:?}: POST {path}: {status} {body}");
    };

    match how {
        Completion::Close => {
            for _ in 0..2 {
                post(&format!("/agent/api/conversations/{task}/close"), &[]).await;
            }
        }
        Completion::AgentApi => {
            let alice = app.engine.read(|engine| engine.worker_by_name("alice").unwrap().sid.to_string());
            let base = app.url("");
            let alice = crate::helpers::SignedIn::agent(&app.client, &base, &alice, "alice").await;
            let answer = (app.client.post(app.url(&format!("/agent/api/tasks/{task}"))))
                .header("cookie", &alice.cookie)
                .header("x-csrf-token", &alice.csrf)
                .form(&[("AssignmentStatus", "completed")])
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), StatusCode::OK, "{}", answer.text().await.unwrap());
        }
        Completion::RestTask => {
            let form =
                [("AssignmentStatus", "completed"), ("Reason", "done"), ("Attributes", r#"{"done":true}"#)];
            post(&format!("/v1/Workspaces/{ws}/Tasks/{task}"), &form).await;
        }
        Completion::WrapUpReplyThenReservation => {
            post(&format!("/v1/Workspaces/{ws}/Tasks/{task}"), &[("AssignmentStatus", "wrapping")]).await;
            // Wrapping up is the agent's after-work: the conversation is still open.
            reply(&switchboard, &task, "one last thing").await;
            let path = format!("/v1/Workspaces/{ws}/Tasks/{task}/Reservations?ReservationStatus=wrapping");
            let (_, reservations) = switchboard.api(reqwest::Method::GET, &path, &[]).await;
            let reservation = reservations["reservations"][0]["sid"].as_str().unwrap().to_owned();
            let path = format!("/v1/Workspaces/{ws}/Tasks/{task}/Reservations/{reservation}");
            post(&path, &[("ReservationStatus", "completed")]).await;
        }
    }

    assert_eq!(switchboard.task(&task).await["assignment_status"], "completed", "{how:?}");
    let sid = task.parse().unwrap();
    let sms = app.sms.clone();
    eventually("the conversation is closed", async || sms.check_conversation(sid).await.is_err()).await;
    let closing = |body: &str| body.starts_with("Thanks for contacting us.");
    let queued = app.sms.outbox().into_iter().filter(|entry| closing(&entry.body)).count();
    assert_eq!(queued, 1, "{how:?}: the closing text is queued once");
    eventually("the closing text was delivered", async || {
        app.sms.outbox().iter().all(|entry| entry.status == "sent")
    })
    .await;
    let sent: Vec<String> = provider.received().iter().map(|r| r.field("Body").to_owned()).collect();
    assert_eq!(sent.iter().filter(|body| closing(body)).count(), 1, "{how:?}: {sent:?}");
    assert!(sent.last().is_some_and(|body| closing(body)), "{how:?}: the closing text comes last: {sent:?}");
    assert!(switchboard.text("SM9", "hello again").await.contains("Reply 1 or SALES"), "{how:?}");
}

#[tokio::test]
async fn however_a_text_task_is_completed_the_customer_gets_the_closing_text_once() {
    for how in [
        Completion::Close,
        Completion::AgentApi,
        Completion::RestTask,
        Completion::WrapUpReplyThenReservation,
    ] {
        check_closing(how).await;
    }
}

#[tokio::test]
async fn a_completion_a_crash_cut_off_from_its_closing_text_is_closed_at_the_next_start() {
    let provider = Provider::start("127.0.0.1:0".parse().unwrap(), false).await;
    let data = tempfile::tempdir().unwrap();
    let (app, _, task) = accepted_conversation_in(&provider, Some(data.path())).await;
    let task: switchboard::routing::Sid = task.parse().unwrap();
    app.shut_down().await.unwrap();

    // The task is completed and the process stops before the conversation module sees it, as a
    // crash would stop it. The completion is ten minutes old at the restart: the catch-up
    // purges the task before anything else runs.
    {
        let mut settings = switchboard::config::Settings::default();
        settings.store.data_dir = data.path().to_owned();
        let now = switchboard::live::now();
        let engine =
            switchboard::live::LiveEngine::open(&settings.store, &settings.workspace, "", now).unwrap();
        let complete = switchboard::routing::Command::Complete { task, reason: "done".into() };
        engine.execute_at(complete, now - 10 * 60 * 1000).await.unwrap();
    }
    let app = sms_app(&provider, Some(data.path())).await;

    assert!(app.engine.read(|engine| engine.task(task).is_none()), "purged at the restart");
    let sms = app.sms.clone();
    eventually("the conversation is closed", async || sms.check_conversation(task).await.is_err()).await;
    eventually("the closing text was delivered", async || !provider.received().is_empty()).await;
    let sent: Vec<String> = provider.received().iter().map(|r| r.field("Body").to_owned()).collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("Thanks for contacting us."), "{sent:?}");
    assert_eq!(app.sms.outbox().len(), 1);
}

#[tokio::test]
async fn a_long_history_in_the_ivr_still_reaches_an_agent() {
    let app = spawn_app_with(|settings| {
        settings.twilio.account_sid = ACCOUNT_SID.into();
        settings.twilio.auth_token = AUTH_TOKEN.into();
    })
    .await;
    let switchboard = Switchboard { base: app.url(""), client: reqwest::Client::new() };
    switchboard.text("SM1", &awkward_body("first")).await;
    switchboard.text("SM2", &"w".repeat(900)).await;
    switchboard.text("SM3", &"z".repeat(900)).await;

    let answer = switchboard.text("SM4", "1").await;

    assert_eq!(
        answer,
        "<Response><Message>Thanks! An agent will text you here shortly.</Message></Response>"
    );
    let attributes = app.engine.read(|engine| engine.tasks().next().expect("a task").attributes.clone());
    assert!(attributes.to_string().len() <= 4_096);
    assert_eq!(
        attributes["conversation"].as_array().unwrap().last().unwrap()["body"],
        "Thanks! An agent will text you here shortly."
    );
}

#[tokio::test]
async fn conversations_left_in_the_ivr_are_forgotten_after_a_day_but_an_opt_out_is_kept() {
    let app = spawn_app_with(|settings| {
        settings.twilio.account_sid = ACCOUNT_SID.into();
        settings.twilio.auth_token = AUTH_TOKEN.into();
    })
    .await;
    let switchboard = Switchboard { base: app.url(""), client: reqwest::Client::new() };
    switchboard.text("SM1", "hi").await;
    switchboard.text("SM2", "STOP").await;
    let now = switchboard::live::now();

    app.sms.sweep(now + 25 * 3600 * 1000).await.unwrap();

    // The opt-out holds: a text still gets no answer.
    assert_eq!(switchboard.text("SM3", "hello").await, "<Response/>");
    switchboard.text("SM4", "START").await;
    app.sms.sweep(switchboard::live::now() + 25 * 3600 * 1000).await.unwrap();
    // Forgotten: the next text is a new conversation, answered with the menu.
    assert!(switchboard.text("SM5", "hello").await.contains("Reply 1 or SALES"));
}

#[tokio::test]
async fn a_reply_the_provider_took_without_answering_is_found_there_and_not_sent_twice() {
    let provider = Provider::start("127.0.0.1:0".parse().unwrap(), false).await;
    let (app, switchboard, task) = accepted_conversation(&provider).await;
    // The provider takes the next reply and cuts the connection before answering: Switchboard
    // cannot know whether it was taken.
    provider.swallow(1);
    reply(&switchboard, &task, "only once, please").await;

    eventually("the reply is known as sent", async || {
        app.sms.outbox().iter().any(|entry| entry.status == "sent")
    })
    .await;
    let posted: Vec<String> =
        provider.received().iter().map(|request| request.field("Body").to_owned()).collect();
    assert_eq!(posted, ["only once, please"], "posted once, then found in the provider's list");
    let sent = app.sms.outbox().into_iter().find(|entry| entry.status == "sent").unwrap();
    assert_eq!(sent.provider_sid.as_deref(), Some(format!("SM{:032x}", 1).as_str()));
    assert_eq!(sent.attempt_started, None);

    // A second reply with the same text is a new message: it is sent, not matched to the first.
    reply(&switchboard, &task, "only once, please").await;
    eventually("the second reply is sent", async || {
        app.sms.outbox().iter().filter(|entry| entry.status == "sent").count() == 2
    })
    .await;
    assert_eq!(provider.received().len(), 2);
}

#[tokio::test]
async fn a_thousand_texts_write_linearly_and_come_back_in_order_after_a_restart() {
    let provider = Provider::start("127.0.0.1:0".parse().unwrap(), false).await;
    let data = tempfile::tempdir().unwrap();
    let (app, switchboard, task) = accepted_conversation_in(&provider, Some(data.path())).await;
    let before = bodies(&switchboard.conversation(&task).await);

    // 1,000 texts of the same length, in blocks of 100: the bytes each block had written.
    let mut blocks = Vec::new();
    for block in 0..10 {
        let written = app.sms.bytes_written();
        for n in 0..100 {
            let text = block * 100 + n;
            let answer =
                switchboard.text(&format!("SMtext{text:04}"), &format!("text number {text:04}")).await;
            assert_eq!(answer, "<Response/>");
        }
        blocks.push(app.sms.bytes_written() - written);
    }

    // Linear: the last 100 texts wrote about what the first 100 did. With every message
    // rewritten on each text, they wrote about ten times as much.
    assert!(blocks[9] <= 2 * blocks[0], "bytes written per 100 texts: {blocks:?}");
    let mut expected = before;
    expected.extend((0..1_000).map(|text| format!("text number {text:04}")));
    assert_eq!(bodies(&switchboard.conversation(&task).await), expected);
    app.shut_down().await.unwrap();
    let app = sms_app(&provider, Some(data.path())).await;
    let switchboard = Switchboard { base: app.url(""), client: reqwest::Client::new() };
    assert_eq!(bodies(&switchboard.conversation(&task).await), expected, "the same after a restart");
}

#[tokio::test]
async fn a_conversation_stored_in_the_first_format_is_read_and_paged_at_its_next_text() {
    use switchboard::store::{ConversationRecord, ConversationV1, MessagePageRecord, MessageV1};
    let provider = Provider::start("127.0.0.1:0".parse().unwrap(), false).await;
    let data = tempfile::tempdir().unwrap();
    let app = sms_app(&provider, Some(data.path())).await;
    let switchboard = Switchboard { base: app.url(""), client: reqwest::Client::new() };
    switchboard.text("SM1", "hi").await;
    switchboard.text("SM2", "1").await;
    let task = app.engine.read(|engine| engine.tasks().next().unwrap().sid);
    // Its record as the first format wrote it: 60 messages inline.
    let messages: Vec<MessageV1> = (0..60)
        .map(|n| MessageV1 {
            at: n,
            author: "customer".into(),
            body: format!("old {n:02}"),
            outbox: None,
            media: vec![],
        })
        .collect();
    let old = ConversationV1 {
        customer: CUSTOMER.into(),
        number: NUMBER.into(),
        flow: "main".into(),
        menu: None,
        failures: 0,
        language: String::new(),
        path: Vec::new(),
        task: Some(task),
        messages,
        stopped: false,
        answered: Vec::new(),
    };
    app.engine.put(&ConversationRecord::V1(old)).await.unwrap();
    app.shut_down().await.unwrap();
    let mut expected: Vec<String> = (0..60).map(|n| format!("old {n:02}")).collect();

    let app = sms_app(&provider, Some(data.path())).await;
    let switchboard = Switchboard { base: app.url(""), client: reqwest::Client::new() };
    let task = task.to_string();
    assert_eq!(bodies(&switchboard.conversation(&task).await), expected, "read as it was");
    assert_eq!(switchboard.text("SM3", "still there?").await, "<Response/>");
    expected.push("still there?".into());

    let stored = app.engine.stored::<ConversationRecord>().unwrap();
    let [ConversationRecord::V2(head)] = &stored[..] else { panic!("written in the new format: {stored:?}") };
    assert_eq!((head.pages, head.messages.len()), (2, 11));
    assert_eq!(app.engine.stored::<MessagePageRecord>().unwrap().len(), 2);
    assert_eq!(bodies(&switchboard.conversation(&task).await), expected);
    app.shut_down().await.unwrap();
    let app = sms_app(&provider, Some(data.path())).await;
    let switchboard = Switchboard { base: app.url(""), client: reqwest::Client::new() };
    assert_eq!(bodies(&switchboard.conversation(&task).await), expected, "the same after a restart");
}

#[tokio::test]
async fn pictures_reach_the_agent_and_the_agent_sends_one_back() {
    let provider = Provider::start("127.0.0.1:0".parse().unwrap(), false).await;
    let (app, switchboard, task) = accepted_conversation(&provider).await;
    // A picture with a caption, and two alone (the new user's lost picture).
    let picture = [
        ("MessageSid", "SM3"),
        ("From", CUSTOMER),
        ("To", NUMBER),
        ("Body", "the broken part"),
        ("NumMedia", "1"),
        ("MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM3/Media/ME1"),
        ("MediaContentType0", "image/jpeg"),
    ];
    switchboard.text_with(&picture).await;
    let alone = [
        ("MessageSid", "SM4"),
        ("From", CUSTOMER),
        ("To", NUMBER),
        ("Body", ""),
        ("NumMedia", "3"),
        ("MediaUrl0", "https://media.example/a.png"),
        ("MediaContentType0", "image/png"),
        ("MediaUrl1", "https://media.example/b.pdf"),
        ("MediaContentType1", "application/pdf"),
        // Not a web address: not kept (an agent's page would link it).
        ("MediaUrl2", "javascript:alert(1)"),
        ("MediaContentType2", "image/png"),
    ];
    switchboard.text_with(&alone).await;
    let conversation = switchboard.conversation(&task).await;
    let messages = conversation["messages"].as_array().unwrap();
    let last_two: Vec<&Value> = messages.iter().rev().take(2).collect();
    assert_eq!(last_two[1]["body"], "the broken part");
    assert_eq!(last_two[1]["media"][0]["content_type"], "image/jpeg");
    assert_eq!(last_two[0]["body"], "");
    assert_eq!(
        last_two[0]["media"],
        serde_json::json!([
            {"url": "https://media.example/a.png", "content_type": "image/png"},
            {"url": "https://media.example/b.pdf", "content_type": "application/pdf"},
        ])
    );

    // The agent sends a picture (with no text), and one with text; both reach the provider.
    reply_with(&switchboard, &task, &[("MediaUrl", "https://cdn.example/manual.png")]).await;
    reply_with(&switchboard, &task, &[("Body", "Page 3"), ("MediaUrl", "https://cdn.example/page3.png")])
        .await;
    eventually("both replies reach the provider", async || {
        provider.received.lock().unwrap().iter().filter(|request| request.method == "POST").count() >= 2
    })
    .await;
    let sent: Vec<Vec<(String, String)>> = provider
        .received
        .lock()
        .unwrap()
        .iter()
        .filter(|request| request.method == "POST")
        .map(|r| r.form.clone())
        .collect();
    let field = |form: &[(String, String)], name: &str| -> Vec<String> {
        form.iter().filter(|(key, _)| key == name).map(|(_, value)| value.clone()).collect()
    };
    assert_eq!(field(&sent[0], "MediaUrl"), ["https://cdn.example/manual.png"]);
    assert!(field(&sent[0], "Body").is_empty(), "{:?}", sent[0]);
    assert_eq!(
        (field(&sent[1], "Body"), field(&sent[1], "MediaUrl")),
        (vec!["Page 3".to_owned()], vec!["https://cdn.example/page3.png".to_owned()])
    );
    let conversation = switchboard.conversation(&task).await;
    let last = conversation["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["media"][0]["url"], "https://cdn.example/page3.png");

    // Nothing to send, and media that is not a web address, are refused.
    let path = format!("/agent/api/conversations/{task}/messages");
    let (status, body) = switchboard.api(reqwest::Method::POST, &path, &[("Body", " ")]).await;
    assert_eq!((status, body["message"].as_str()), (StatusCode::BAD_REQUEST, Some("Body is empty")));
    let (status, body) =
        switchboard.api(reqwest::Method::POST, &path, &[("MediaUrl", "file:///etc/passwd")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    app.shut_down().await.unwrap();
}

/// A data directory saved before WhatsApp had its own task channel (its workspace without
/// one): the first WhatsApp conversation adds the channel, every agent with capacity 3 on it,
/// and is routed on it.
#[tokio::test]
async fn a_workspace_saved_before_whatsapp_had_its_channel_gains_it_with_the_first_whatsapp_text() {
    let provider = Provider::start("127.0.0.1:0".parse().unwrap(), false).await;
    let data = tempfile::tempdir().unwrap();
    sms_app(&provider, Some(data.path())).await.shut_down().await.unwrap();
    {
        let durability = switchboard::store::Durability::Flush;
        let (store, recovered) = switchboard::store::Store::open(data.path(), durability).unwrap();
        let mut older = recovered.snapshot.unwrap();
        let position = older.channels.iter().position(|channel| channel.unique_name == "whatsapp").unwrap();
        older.channels.remove(position);
        for worker in &mut older.workers {
            worker.channels.remove(position);
        }
        store.write_snapshot(recovered.snapshot_seq, &older).unwrap();
    }
    let app = sms_app(&provider, Some(data.path())).await;
    let switchboard = Switchboard { base: app.url(""), client: reqwest::Client::new() };
    let ws = switchboard.workspace().await;
    let channels = format!("/v1/Workspaces/{ws}/TaskChannels/whatsapp");
    assert_eq!(switchboard.api(reqwest::Method::GET, &channels, &[]).await.0, StatusCode::NOT_FOUND);

    let whatsapp = [("From", format!("whatsapp:{CUSTOMER}")), ("To", format!("whatsapp:{NUMBER}"))];
    for (sid, body) in [("SMW1", "hello"), ("SMW2", "sales")] {
        let params: Vec<(&str, &str)> = whatsapp
            .iter()
            .map(|(key, value)| (*key, value.as_str()))
            .chain([("MessageSid", sid), ("Body", body)])
            .collect();
        switchboard.text_with(&params).await;
    }
    let task = switchboard.alice_accepts().await;
    assert_eq!(switchboard.task(&task).await["task_channel_unique_name"], "whatsapp");
    let (status, channel) = switchboard.api(reqwest::Method::GET, &channels, &[]).await;
    assert_eq!((status, channel["friendly_name"].as_str()), (StatusCode::OK, Some("WhatsApp")), "{channel}");
    let (_, workers) = switchboard
        .api(reqwest::Method::GET, &format!("/v1/Workspaces/{ws}/Workers?FriendlyName=bob"), &[])
        .await;
    let bob = workers["workers"][0]["sid"].as_str().unwrap();
    let (_, capacity) = switchboard
        .api(reqwest::Method::GET, &format!("/v1/Workspaces/{ws}/Workers/{bob}/Channels/whatsapp"), &[])
        .await;
    assert_eq!(capacity["configured_capacity"], 3, "{capacity}");
    // Built in from now on, and durable: a restart keeps it and it cannot be deleted.
    app.shut_down().await.unwrap();
    let app = sms_app(&provider, Some(data.path())).await;
    let switchboard = Switchboard { base: app.url(""), client: reqwest::Client::new() };
    let (status, refusal) = switchboard.api(reqwest::Method::DELETE, &channels, &[]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refusal}");
    app.shut_down().await.unwrap();
}

#[tokio::test]
async fn a_whatsapp_customer_walks_the_same_ivr_and_is_routed_on_its_own_channel() {
    let provider = Provider::start("127.0.0.1:0".parse().unwrap(), false).await;
    let app = sms_app(&provider, None).await;
    let switchboard = Switchboard { base: app.url(""), client: reqwest::Client::new() };
    let (customer, number) = (format!("whatsapp:{CUSTOMER}"), format!("whatsapp:{NUMBER}"));
    let text = |sid: &'static str, body: &'static str| {
        let (customer, number) = (customer.clone(), number.clone());
        let switchboard = &switchboard;
        async move {
            switchboard
                .text_with(&[("MessageSid", sid), ("From", &customer), ("To", &number), ("Body", body)])
                .await
        }
    };
    let menu = text("SMW1", "hello").await;
    assert!(menu.contains("Reply 1 or SALES"), "{menu}");
    text("SMW2", "sales").await;
    let task = switchboard.alice_accepts().await;
    let found = switchboard.task(&task).await;
    assert_eq!(found["task_channel_unique_name"], "whatsapp", "{found}");
    let attributes: Value = serde_json::from_str(found["attributes"].as_str().unwrap()).unwrap();
    assert_eq!(
        (attributes["channelType"].as_str(), attributes["from"].as_str()),
        (Some("whatsapp"), Some(customer.as_str()))
    );
    // The SMS conversation of the same number is another one.
    switchboard.text("SMS1", "hi").await;
    reply(&switchboard, &task, "Hello on WhatsApp").await;
    eventually("the reply reaches the provider", async || !provider.taken.lock().unwrap().is_empty()).await;
    let taken = provider.taken.lock().unwrap().clone();
    assert_eq!(
        (taken[0].1.as_str(), taken[0].2.as_str(), taken[0].3.as_str()),
        (customer.as_str(), number.as_str(), "Hello on WhatsApp")
    );
    app.shut_down().await.unwrap();
}

/// A texter's IVR folder changing under them (reloads): a new walk starts in the flow that
/// answers the number now; a route the engine refuses is answered the same on the provider's
/// retry (not "an agent will text you"); with no flow for the number, STOP still opts out and a
/// conversation with an agent still takes the customer's texts.
#[tokio::test]
async fn texts_follow_the_ivr_folder_through_reloads_and_need_no_flow_to_stop_or_reach_their_agent() {
    let provider = Provider::start("127.0.0.1:0".parse().unwrap(), false).await;
    let ivr = tempfile::tempdir().unwrap();
    let flow = |greeting: &str, workflow: &str, numbers: &str| {
        format!(
            "start = \"menu\"\nworkflow = \"{workflow}\"\nnumbers = [{numbers}]\n[steps.menu]\nsay = \"{greeting} Reply 1 for sales, 9 to leave.\"\noptions = {{ \"1\" = {{ route = {{ skills = [\"Sales\"] }} }}, \"9\" = {{ step = \"bye\" }} }}\n[steps.bye]\nsay = \"Bye.\"\nhangup = true\n"
        )
    };
    let write = |name: &str, text: String| std::fs::write(ivr.path().join(name), text).unwrap();
    write("main.toml", flow("Old flow.", "Sales and Support Workflow", ""));
    let dir = ivr.path().to_owned();
    let api_base = provider.base();
    let app = spawn_app_with(move |settings| {
        settings.twilio.account_sid = ACCOUNT_SID.into();
        settings.twilio.auth_token = AUTH_TOKEN.into();
        settings.sms.api_base = api_base;
        settings.voice.ivr_dir = dir;
    })
    .await;
    let switchboard = Switchboard { base: app.url(""), client: reqwest::Client::new() };
    let reload = async || switchboard.api(reqwest::Method::POST, "/admin/api/ivr/reload", &[]).await;
    let from = |customer: &'static str, sid: &'static str, body: &'static str| {
        [("MessageSid", sid), ("From", customer), ("To", NUMBER), ("Body", body)]
    };
    const BOB: &str = "+15550100008";
    const CAROL: &str = "+15550100009";

    // The customer reaches alice.
    switchboard.text("SM1", "hi").await;
    switchboard.text("SM2", "1").await;
    let task = switchboard.alice_accepts().await;
    // Bob walks the old flow to its end.
    assert!(switchboard.text_with(&from(BOB, "SB1", "hi")).await.contains("Old flow."));
    assert!(switchboard.text_with(&from(BOB, "SB2", "9")).await.contains("Bye."));

    // The number gets a flow of its own, whose workflow does not exist: Bob's new walk starts
    // there; its route is refused, and the provider's retry hears the same.
    write("new.toml", flow("New flow.", "No such workflow", &format!("\"{NUMBER}\"")));
    assert_eq!(reload().await.0, StatusCode::OK);
    assert!(switchboard.text_with(&from(BOB, "SB3", "hello again")).await.contains("New flow."));
    let refused = switchboard.text_with(&from(BOB, "SB4", "1")).await;
    assert!(refused.contains("Sorry, we cannot take your message right now"), "{refused}");
    assert_eq!(switchboard.text_with(&from(BOB, "SB4", "1")).await, refused);

    // No flow answers the number any more.
    std::fs::remove_file(ivr.path().join("new.toml")).unwrap();
    write("main.toml", flow("Elsewhere.", "Sales and Support Workflow", "\"+15550109999\""));
    assert_eq!(reload().await.0, StatusCode::OK);
    assert_eq!(switchboard.text("SM3", "Where is my order?").await, "<Response/>");
    let conversation = switchboard.conversation(&task).await;
    assert_eq!(bodies(&conversation).last().map(String::as_str), Some("Where is my order?"));
    let stopped = switchboard.text_with(&from(CAROL, "SC1", "STOP")).await;
    assert!(stopped.contains("You will receive no more messages from us"), "{stopped}");
    let started = switchboard.text_with(&from(CAROL, "SC2", "START")).await;
    assert!(started.contains("You can text us again"), "{started}");
    let help = switchboard.text_with(&from(CAROL, "SC3", "help")).await;
    assert!(help.contains("Answer our last message to go on") && help.contains("Reply STOP"), "{help}");
    app.shut_down().await.unwrap();
}
