//! Hostile HTTP input against the real server (issue #9): bodies over `http.max_body_bytes`,
//! malformed and non-UTF-8 forms, attributes over 4,096 bytes and deeply nested JSON, unknown
//! and malformed SIDs, replayed and badly signed webhooks, wrong credentials and sessions on the
//! wrong routes. Each request is refused with a clear message in its area's shape (TwiML for
//! webhooks, Twilio's error JSON for `/v1`, `{"status", "message"}` elsewhere) and changes
//! nothing: the routing state, and the stored calls, conversations, agents and outbox, are the
//! same after it as before.

use base64::Engine as _;
use reqwest::Method;
use serde_json::Value;
use switchboard::http::signature;
use switchboard::store::{AgentRecord, CallRecord, ConversationRecord, MessagePageRecord, OutboxRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{SignedIn, TestApp};
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN, spawn_api, spawn_api_with};

pub(crate) const CALLER: &str = "%2B15550100001";
pub(crate) const LINE: &str = "%2B15550100200";

/// Everything a request could change.
#[derive(PartialEq)]
pub(crate) struct State {
    engine: switchboard::routing::Snapshot,
    calls: Vec<CallRecord>,
    conversations: Vec<ConversationRecord>,
    pages: Vec<MessagePageRecord>,
    agents: Vec<AgentRecord>,
    outbox: Vec<OutboxRecord>,
}

pub(crate) fn state(app: &TestApp) -> State {
    State {
        engine: app.engine.read(|engine| engine.export()),
        calls: app.engine.stored().unwrap(),
        conversations: app.engine.stored().unwrap(),
        pages: app.engine.stored().unwrap(),
        agents: app.engine.stored().unwrap(),
        outbox: app.engine.stored().unwrap(),
    }
}

impl State {
    /// What differs from `before`, by name (the whole state is too long to print usefully).
    pub(crate) fn changed_since(&self, before: &State) -> Vec<&'static str> {
        let parts = [
            ("routing state", self.engine != before.engine),
            ("calls", self.calls != before.calls),
            ("conversations", self.conversations != before.conversations || self.pages != before.pages),
            ("agents", self.agents != before.agents),
            ("outbox", self.outbox != before.outbox),
        ];
        parts.into_iter().filter(|(_, changed)| *changed).map(|(name, _)| name).collect()
    }
}

/// Who sends a request, and so what it carries.
enum Sender {
    /// No credentials, no signature.
    Anonymous,
    /// HTTP Basic with this account SID and token.
    Basic(&'static str, &'static str),
    /// This `Authorization` header as it is.
    Authorization(String),
    /// A session cookie (`name=value`) and the CSRF token sent with it.
    Session(String, String),
    /// The provider: an X-Twilio-Signature over the URL and the parameters as sent (decoded as
    /// leniently as any decoder would), so that the signature is never what refuses a request.
    Provider,
    /// This X-Twilio-Signature.
    Signature(String),
    /// The account's credentials, on a request another site's page sent.
    AnotherSite,
}

use Sender::*;

/// The account's own credentials.
const ACCOUNT: Sender = Basic(ACCOUNT_SID, AUTH_TOKEN);

/// A request body and its Content-Type.
struct Body {
    content_type: Option<&'static str>,
    bytes: Vec<u8>,
}

fn form(bytes: impl Into<Vec<u8>>) -> Body {
    typed(Some("application/x-www-form-urlencoded"), bytes)
}

fn typed(content_type: Option<&'static str>, bytes: impl Into<Vec<u8>>) -> Body {
    Body { content_type, bytes: bytes.into() }
}

fn none() -> Body {
    typed(None, Vec::new())
}

/// Sends a request; answers its status and message, read in the shape of the route's area
/// (which the answer must have).
async fn send(app: &TestApp, from: &Sender, method: &str, path: &str, body: Body) -> (u16, String) {
    let url = app.url(path);
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method.clone(), &url);
    if let Some(content_type) = body.content_type {
        request = request.header("content-type", content_type);
    }
    request = match from {
        Anonymous => request,
        Basic(user, password) => request.basic_auth(user, Some(password)),
        Authorization(value) => request.header("authorization", value),
        Session(cookie, csrf) => request.header("cookie", cookie).header("x-csrf-token", csrf),
        Provider => {
            let params: Vec<(String, String)> = match method {
                Method::POST => serde_urlencoded::from_bytes(&body.bytes).unwrap_or_default(),
                _ => Vec::new(),
            };
            request.header("X-Twilio-Signature", signature::sign(AUTH_TOKEN, &url, &params))
        }
        Signature(signature) => request.header("X-Twilio-Signature", signature),
        AnotherSite => {
            request.basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)).header("sec-fetch-site", "cross-site")
        }
    };
    let response = request.body(body.bytes).send().await.expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, message(path, status, &text))
}

/// The message of an answer to `path`: what a webhook's TwiML says, or the JSON's `message`
/// (Twilio's error shape under `/v1`, `{"status", "message"}` elsewhere).
pub(crate) fn message(path: &str, status: u16, text: &str) -> String {
    if path.starts_with("/voice/") || path.starts_with("/sms/") {
        let verbs =
            switchboard::twiml::parse(text).unwrap_or_else(|err| panic!("{path}: not TwiML ({err}): {text}"));
        let said = verbs.iter().find(|verb| verb.name == "Say" || verb.name == "Message");
        return said.map(|verb| verb.text.clone()).unwrap_or_default();
    }
    if status < 400 {
        return String::new();
    }
    let body: Value =
        serde_json::from_str(text).unwrap_or_else(|err| panic!("{path}: not JSON ({err}): {text}"));
    assert_eq!(body["status"], status, "{path}: {body}");
    if path.starts_with("/v1/") {
        let code = body["code"].as_u64().unwrap_or_else(|| panic!("{path}: no Twilio code: {body}"));
        assert_eq!(body["more_info"], format!("https://www.twilio.com/docs/errors/{code}"), "{body}");
    }
    body["message"].as_str().unwrap_or_else(|| panic!("{path}: no message: {body}")).to_owned()
}

/// One hostile request: who sends it, its method, path and body; and the status and a piece of
/// the message it must get.
type Case<'a> = (&'a Sender, &'static str, &'a str, Body, (u16, &'a str));

/// Sends each case in turn: each must be answered as expected and change nothing.
async fn check(app: &TestApp, cases: Vec<Case<'_>>) {
    for (from, method, path, body, expected) in cases {
        let sent: String = String::from_utf8_lossy(&body.bytes).chars().take(120).collect();
        let before = state(app);
        let (status, message) = send(app, from, method, path, body).await;
        let what = format!("{method} {path} {sent:?}");
        assert_eq!(status, expected.0, "{what}: {message}");
        assert!(message.contains(expected.1), "{what}: expected {:?} in {message:?}", expected.1);
        let changed = state(app).changed_since(&before);
        assert!(changed.is_empty(), "{what} changed the {}", changed.join(", "));
    }
}

/// A well-formed request that must succeed (to show what the hostile ones were refused for).
async fn accepted(app: &TestApp, from: &Sender, method: &str, path: &str, body: Body) {
    let (status, message) = send(app, from, method, path, body).await;
    assert!((200..300).contains(&status), "{method} {path}: {status} {message}");
}

/// An SID of `kind` that names nothing.
fn unknown(kind: &str) -> String {
    format!("{kind}{}", "0".repeat(32))
}

pub(crate) fn workspace(app: &TestApp) -> String {
    app.engine.read(|engine| engine.workspace_sid().to_string())
}

pub(crate) fn worker(app: &TestApp, name: &str) -> String {
    app.engine.read(|engine| engine.worker_by_name(name).unwrap().sid.to_string())
}

fn activity(app: &TestApp, name: &str) -> String {
    app.engine.read(|engine| engine.activity_by_name(name).unwrap().sid.to_string())
}

pub(crate) fn workflow(app: &TestApp) -> String {
    crate::taskrouter::sales_and_support(app)
}

/// Signs in the agent `name` (issuing a secret first): their session.
async fn agent_session(app: &TestApp, name: &str) -> Sender {
    let worker = app.engine.read(|engine| engine.worker_by_name(name).unwrap().sid.to_string());
    let SignedIn { cookie, csrf } = SignedIn::agent(&app.client, &app.url(""), &worker, name).await;
    Session(cookie, csrf)
}

/// Signs the admin in: their session.
async fn admin_session(app: &TestApp) -> Sender {
    let credentials = [("AccountSid", ACCOUNT_SID), ("AuthToken", AUTH_TOKEN)];
    session(app.client.post(app.url("/admin/api/session")).form(&credentials).send().await.unwrap()).await
}

async fn session(signed_in: reqwest::Response) -> Sender {
    let SignedIn { cookie, csrf } = SignedIn::from_answer(signed_in).await;
    Session(cookie, csrf)
}

/// Where the caller's keys go after the menu of call `call_sid` (its Gather's action).
pub(crate) async fn menu_action(app: &TestApp, call_sid: &str) -> String {
    crate::voice::action(&crate::voice::webhook(app, "/voice/incoming", call_sid, &[]).await)
}

/// Sends `body` with a chunked transfer encoding (no Content-Length, which reqwest always
/// sends for a body it holds) over a plain socket, with `headers`; answers status and message.
async fn send_chunked(app: &TestApp, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n",
        app.address
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    for chunk in body.chunks(100) {
        bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&bytes).await.unwrap();
    let mut answer = Vec::new();
    // The server may close before reading the whole body: what it answered is read anyway.
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8(answer).unwrap();
    let (head, text) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no answer: {answer:?}"));
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, message(path, status, text))
}

/// 404 in the REST API's words.
const NOT_FOUND: (u16, &str) = (404, "was not found");

#[tokio::test]
async fn bodies_over_the_configured_limit_get_413_naming_it_on_every_route() {
    let app = spawn_api_with(|settings| settings.http.max_body_bytes = 1_024).await;
    let ws = format!("/v1/Workspaces/{}", workspace(&app));
    let (alice, agent) = (worker(&app, "alice"), agent_session(&app, "alice").await);
    let (wt, wr) = (unknown("WT"), unknown("WR"));
    let big = || form(format!("Body={}", "x".repeat(1_100)));
    let limit = (413, "larger than 1024 bytes, the most this server accepts (http.max_body_bytes)");
    let webhooks =
        ["/voice/incoming", "/voice/ivr?flow=main.toml&menu=main", "/voice/wait", "/voice/dial-status"];
    let webhooks =
        webhooks.into_iter().chain(["/voice/status", "/voice/voicemail", "/voice/fallback", "/sms/incoming"]);
    let api = [
        format!("{ws}/Activities"),
        format!("{ws}/Workers"),
        format!("{ws}/Workers/{alice}"),
        format!("{ws}/Workers/{alice}/Reservations/{wr}"),
        format!("{ws}/TaskQueues"),
        format!("{ws}/TaskQueues/{}", unknown("WQ")),
        format!("{ws}/Workflows"),
        format!("{ws}/Workflows/{}", unknown("WW")),
        format!("{ws}/Tasks"),
        format!("{ws}/Tasks/{wt}"),
        format!("{ws}/Tasks/{wt}/Reservations/{wr}"),
        ws.clone(),
        format!("{ws}/TaskChannels"),
        format!("{ws}/TaskChannels/voice"),
        format!("{ws}/Workers/{alice}/Channels/voice"),
        "/admin/api/skills".to_owned(),
        format!("/admin/api/workers/{alice}/skills"),
        "/admin/api/expressions/check".to_owned(),
        format!("/agent/api/conversations/{wt}/messages"),
    ];
    let agents = [
        "/agent/api/activity".to_owned(),
        format!("/agent/api/reservations/{wr}"),
        format!("/agent/api/tasks/{wt}"),
    ];
    let mut cases: Vec<Case> = webhooks.map(|path| (&Provider, "POST", path, big(), limit)).collect();
    cases.extend(api.iter().map(|path| (&ACCOUNT, "POST", path.as_str(), big(), limit)));
    cases.extend(agents.iter().map(|path| (&agent, "POST", path.as_str(), big(), limit)));
    cases.extend(
        ["/agent/api/session", "/admin/api/session"].map(|path| (&Anonymous, "POST", path, big(), limit)),
    );
    // A body of exactly the limit is read (and refused for what it says, not for its size).
    let exactly = form(format!("Reason={}", "x".repeat(1_024 - "Reason=".len())));
    let task = format!("{ws}/Tasks/{wt}");
    cases.push((&ACCOUNT, "POST", &task, exactly, NOT_FOUND));
    check(&app, cases).await;

    // Without a declared length, the body is counted as it comes.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    let signed =
        signature::sign(AUTH_TOKEN, &app.url("/sms/incoming"), &[("Body".into(), "x".repeat(1_100))]);
    let before = state(&app);
    for (path, header) in [
        (format!("{ws}/Activities"), ("authorization", format!("Basic {basic}"))),
        ("/sms/incoming".to_owned(), ("x-twilio-signature", signed)),
    ] {
        let (status, message) = send_chunked(&app, &path, &[header], &big().bytes).await;
        assert_eq!((status, message.contains(limit.1)), (413, true), "{path}: {message}");
    }
    assert_eq!(state(&app).changed_since(&before), Vec::<&str>::new());
}

/// A hostile body made from a well-formed one.
type Malform = fn(&str) -> Body;

/// Ways a form body can be malformed, each made from a well-formed body, and what they get.
const MALFORMED: [(Malform, (u16, &str)); 7] = [
    (|valid| form(format!("{valid}&Extra=%ZZ")), (400, "is not followed by two hex digits")),
    (|valid| form([valid.as_bytes(), b"&Extra=\xFF\xFE"].concat()), (400, "not URL-encoded UTF-8 text")),
    (|valid| form(format!("{valid}&Extra=%FF%FE")), (400, "not URL-encoded UTF-8 text")),
    (|valid| form(json_of(valid)), (400, "body is JSON; send the parameters form-encoded")),
    (|valid| typed(Some("application/json"), json_of(valid)), (415, "not application/json")),
    (|valid| typed(Some("text/plain"), valid), (415, "not text/plain")),
    (|valid| typed(None, valid), (415, "not no Content-Type")),
];

/// The parameters of form `valid` as a JSON object.
fn json_of(valid: &str) -> String {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(valid).unwrap();
    let object: serde_json::Map<String, Value> = pairs.into_iter().map(|(k, v)| (k, v.into())).collect();
    Value::Object(object).to_string()
}

#[tokio::test]
async fn malformed_and_non_utf8_forms_get_400_or_415_on_every_kind_of_route() {
    let app = spawn_api().await;
    let ws = format!("/v1/Workspaces/{}", workspace(&app));
    let (alice, available, workflow) = (worker(&app, "alice"), activity(&app, "Available"), workflow(&app));
    let agent = agent_session(&app, "alice").await;
    let bob_secret = crate::agent::issue_secret(&app, "bob").await;
    let keys = menu_action(&app, "CA1").await;
    let call = format!("AccountSid={ACCOUNT_SID}&CallSid=CA1&From={CALLER}&To={LINE}&Digits=1");
    let text = format!("MessageSid=SM1&AccountSid={ACCOUNT_SID}&From={CALLER}&To={LINE}&Body=hi");
    let task = format!("WorkflowSid={workflow}&Attributes=%7B%22skillsNeeded%22%3A%5B%22Sales%22%5D%7D");
    let conversation = format!("/agent/api/conversations/{}/messages", unknown("WT"));
    // Each route with a well-formed body, and what that body gets.
    let routes: [(&Sender, &str, String, u16); 9] = [
        (&Provider, &keys, call, 200),
        (&Provider, "/sms/incoming", text, 200),
        (&ACCOUNT, &format!("{ws}/Tasks"), task, 201),
        (&ACCOUNT, &format!("{ws}/Workers/{alice}"), "Attributes=%7B%22a%22%3A1%7D".into(), 200),
        (&agent, "/agent/api/activity", format!("ActivitySid={available}"), 200),
        (&ACCOUNT, "/admin/api/skills", "Name=Billing".into(), 201),
        (&ACCOUNT, &format!("/admin/api/workers/{alice}/skills"), "Skill=Support%3A3".into(), 200),
        (&Anonymous, "/agent/api/session", format!("Name=bob&Secret={bob_secret}"), 200),
        (&ACCOUNT, &conversation, "Body=hello".into(), 404),
    ];
    for (from, path, valid, answer) in &routes {
        check(
            &app,
            MALFORMED.iter().map(|(bad, expected)| (*from, "POST", *path, bad(valid), *expected)).collect(),
        )
        .await;
        let (status, message) = send(&app, from, "POST", path, form(valid.clone())).await;
        assert_eq!(status, *answer, "POST {path} {valid}: {message}");
    }
    // The call was routed, once, by the well-formed request only.
    assert_eq!(app.engine.read(|engine| engine.tasks().count()), 2);

    // A query string is read as strictly as a body.
    let incoming = |from: &str| format!("/voice/incoming?CallSid=CA2&From={from}&To={LINE}");
    check(
        &app,
        vec![
            (&Provider, "GET", &incoming("%ZZ"), none(), (400, "two hex digits")),
            (&Provider, "GET", &incoming("%FF"), none(), (400, "UTF-8 text")),
            (&ACCOUNT, "GET", &format!("{ws}/Workers?FriendlyName=%E0%80"), none(), (400, "UTF-8 text")),
        ],
    )
    .await;
}

#[tokio::test]
async fn oversized_attributes_and_deeply_nested_json_are_refused_without_overflowing() {
    let app = spawn_api().await;
    let ws = format!("/v1/Workspaces/{}", workspace(&app));
    let (alice, workflow) = (worker(&app, "alice"), workflow(&app));
    let api = crate::taskrouter::Api::new(&app).await;
    let task = api.post("/Tasks", &[("WorkflowSid", &workflow)]).await["sid"].as_str().unwrap().to_owned();
    let queue = app.engine.read(|engine| engine.queues()[0].sid.to_string());
    let nested = |open: &str, inner: &str, close: &str| {
        format!("{}{inner}{}", open.repeat(100_000), close.repeat(100_000))
    };
    let encode = |name: &str, value: &str| serde_urlencoded::to_string([(name, value)]).unwrap();

    // Attributes over 4,096 bytes, and nested 100,000 deep, wherever attributes are written.
    let too_big = format!(r#"{{"notes": "{}"}}"#, "x".repeat(4_100));
    let (arrays, objects) = (nested("[", "", "]"), nested(r#"{"a":"#, "1", "}"));
    let in_object = format!(r#"{{"a": {arrays}}}"#);
    let (limit, deep) =
        ("Attributes: are 4112 bytes as JSON; the limit is 4096", "Attributes is not valid JSON: recursion");
    let writes = [
        (format!("{ws}/Tasks"), format!("&WorkflowSid={workflow}")),
        (format!("{ws}/Tasks/{task}"), String::new()),
        (format!("{ws}/Workers"), "&FriendlyName=carol".to_owned()),
        (format!("{ws}/Workers/{alice}"), String::new()),
    ];
    for (path, rest) in &writes {
        let attributes = |value: &str| form(format!("{}{rest}", encode("Attributes", value)));
        check(
            &app,
            vec![
                (&ACCOUNT, "POST", path, attributes(&too_big), (400, limit)),
                (&ACCOUNT, "POST", path, attributes(&in_object), (400, deep)),
                (&ACCOUNT, "POST", path, attributes(&arrays), (400, deep)),
                (&ACCOUNT, "POST", path, attributes(&objects), (400, deep)),
            ],
        )
        .await;
    }

    // Workflow configurations nested deep, as JSON or as an expression inside a valid document;
    // a queue's expression, and a list's filter.
    let expression = nested("(", "1==1", ")");
    let filter = format!(r#"{{"expression": "{expression}", "targets": [{{"queue": "{queue}"}}]}}"#);
    let configuration = |text: String| form(format!("FriendlyName=Deep&{}", encode("Configuration", &text)));
    let as_json = || configuration(format!(r#"{{"task_routing": {{"filters": {arrays}}}}}"#));
    let as_expression = || configuration(format!(r#"{{"task_routing": {{"filters": [{filter}]}}}}"#));
    let too_deep = (400, "the expression nests more than 64 levels of parentheses or NOT");
    let target_workers = form(format!("FriendlyName=Deep&{}", encode("TargetWorkers", &expression)));
    let shallower = format!("{}1==1{}", "(".repeat(1_000), ")".repeat(1_000));
    let query = encode("TargetWorkersExpression", &shallower);
    let (workflows, existing) = (format!("{ws}/Workflows"), format!("{ws}/Workflows/{workflow}"));
    check(
        &app,
        vec![
            (&ACCOUNT, "POST", &workflows, as_json(), (400, "recursion limit exceeded")),
            (&ACCOUNT, "POST", &existing, as_json(), (400, "recursion limit exceeded")),
            (&ACCOUNT, "POST", &workflows, as_expression(), too_deep),
            (&ACCOUNT, "POST", &existing, as_expression(), too_deep),
            (&ACCOUNT, "POST", &format!("{ws}/TaskQueues"), target_workers, too_deep),
            (&ACCOUNT, "GET", &format!("{ws}/Workers?{query}"), none(), too_deep),
        ],
    )
    .await;

    // Skills that would take an agent's attributes over the limit.
    api.post(
        &format!("/Workers/{alice}"),
        &[("Attributes", &format!(r#"{{"notes": "{}"}}"#, "x".repeat(4_000)))],
    )
    .await;
    let skills = form("Skill=Sales%3A5&DisabledSkill=Support%3A3");
    check(
        &app,
        vec![(
            &ACCOUNT,
            "POST",
            &format!("/admin/api/workers/{alice}/skills"),
            skills,
            (400, "the limit is 4096"),
        )],
    )
    .await;
}

#[tokio::test]
async fn unknown_and_malformed_sids_are_refused_in_paths_and_in_fields() {
    let app = spawn_api().await;
    let ws = format!("/v1/Workspaces/{}", workspace(&app));
    let (alice, available, workflow) = (worker(&app, "alice"), activity(&app, "Available"), workflow(&app));
    let queue = app.engine.read(|engine| engine.queues()[0].sid.to_string());
    let api = crate::taskrouter::Api::new(&app).await;
    let task = api.post("/Tasks", &[("WorkflowSid", &workflow)]).await["sid"].as_str().unwrap().to_owned();
    let agent = agent_session(&app, "alice").await;
    let (wt, wk, wr, ww) = (unknown("WT"), unknown("WK"), unknown("WR"), unknown("WW"));
    let (wq, wa, ev, ws0) = (unknown("WQ"), unknown("WA"), unknown("EV"), unknown("WS"));

    // The REST API: a SID in the path that names nothing, or is not a SID of that kind, is 404.
    let reads = [
        format!("{ws}/Tasks/{wt}"),
        format!("{ws}/Tasks/not-a-sid"),
        format!("{ws}/Tasks/%FF%FE"),
        format!("{ws}/Tasks/{alice}"),
        format!("{ws}/Tasks/{wt}/Reservations"),
        format!("{ws}/Tasks/{task}/Reservations/{wr}"),
        format!("{ws}/Workers/{wk}"),
        format!("{ws}/Workers/{wk}/Reservations"),
        format!("{ws}/Workers/{alice}/Reservations/{wr}"),
        format!("{ws}/TaskQueues/{wq}"),
        format!("{ws}/TaskQueues/{wq}/Statistics"),
        format!("{ws}/Workflows/{ww}"),
        format!("{ws}/Activities/{wa}"),
        format!("{ws}/Events/{ev}"),
        format!("{ws}/TaskChannels/{}", unknown("TC")),
        format!("{ws}/TaskChannels/fax"),
        format!("{ws}/Workers/{wk}/Channels"),
        format!("{ws}/Workers/{alice}/Channels/{}", unknown("WC")),
        format!("{ws}/Workers/{alice}/Channels/fax"),
        format!("/v1/Workspaces/{ws0}/Tasks"),
        "/v1/Workspaces/WS%00/Tasks".to_owned(),
    ];
    check(&app, reads.iter().map(|path| (&ACCOUNT, "GET", path.as_str(), none(), NOT_FOUND)).collect()).await;
    let (tasks, workers, queues, workflows) = (
        format!("{ws}/Tasks"),
        format!("{ws}/Workers"),
        format!("{ws}/TaskQueues"),
        format!("{ws}/Workflows"),
    );
    let accept = || form("ReservationStatus=accepted");
    check(
        &app,
        vec![
            (&ACCOUNT, "POST", &format!("{tasks}/{wt}"), form("Attributes=%7B%7D"), NOT_FOUND),
            (&ACCOUNT, "POST", &format!("{workers}/{wk}"), form("Attributes=%7B%7D"), NOT_FOUND),
            (&ACCOUNT, "POST", &format!("{queues}/{wq}"), form("FriendlyName=x"), NOT_FOUND),
            (&ACCOUNT, "POST", &format!("{workflows}/{ww}"), form("FriendlyName=x"), NOT_FOUND),
            (&ACCOUNT, "POST", &format!("{tasks}/{task}/Reservations/{wr}"), accept(), NOT_FOUND),
            (&ACCOUNT, "POST", &format!("{workers}/{alice}/Reservations/{wr}"), accept(), NOT_FOUND),
            (&ACCOUNT, "DELETE", &format!("{tasks}/{wt}"), none(), NOT_FOUND),
            (&ACCOUNT, "DELETE", &format!("{workers}/{wk}"), none(), NOT_FOUND),
            (&ACCOUNT, "DELETE", &format!("{queues}/{wq}"), none(), NOT_FOUND),
            (&ACCOUNT, "DELETE", &format!("{workflows}/{ww}"), none(), NOT_FOUND),
            (&ACCOUNT, "DELETE", &format!("{ws}/Activities/{wa}"), none(), NOT_FOUND),
            (
                &ACCOUNT,
                "POST",
                &format!("{ws}/TaskChannels/{}", unknown("TC")),
                form("FriendlyName=x"),
                NOT_FOUND,
            ),
            (&ACCOUNT, "DELETE", &format!("{ws}/TaskChannels/fax"), none(), NOT_FOUND),
            (&ACCOUNT, "POST", &format!("{workers}/{wk}/Channels/voice"), form("Capacity=1"), NOT_FOUND),
        ],
    )
    .await;

    // In a field, the same SIDs are bad parameters (400) that the message names.
    let alice_path = format!("{workers}/{alice}");
    let no_workflow = format!("WorkflowSid: workflow {ww} does not exist");
    let no_activity = format!("ActivitySid: activity {wa} does not exist");
    let not_activity = "ActivitySid: `Available` is not an activity SID";
    let carol = form(format!("FriendlyName=carol&ActivitySid={wa}"));
    check(
        &app,
        vec![
            (&ACCOUNT, "POST", &tasks, form(format!("WorkflowSid={ww}")), (400, &no_workflow)),
            (&ACCOUNT, "POST", &tasks, form("WorkflowSid=junk"), (400, "`junk` is not a workflow SID")),
            (&ACCOUNT, "POST", &tasks, form(format!("WorkflowSid={queue}")), (400, "is not a workflow SID")),
            (&ACCOUNT, "POST", &tasks, form("WorkflowSid=WW%C3%BC"), (400, "is not a workflow SID")),
            (&ACCOUNT, "POST", &alice_path, form(format!("ActivitySid={wa}")), (400, &no_activity)),
            (&ACCOUNT, "POST", &alice_path, form("ActivitySid=Available"), (400, not_activity)),
            (&ACCOUNT, "POST", &workers, carol, (400, &no_activity)),
            (
                &ACCOUNT,
                "POST",
                &ws,
                form(format!("DefaultActivitySid={wa}")),
                (400, "DefaultActivitySid: activity"),
            ),
            (&ACCOUNT, "POST", &ws, form("TimeoutActivitySid=junk"), (400, "`junk` is not an activity SID")),
            (&ACCOUNT, "GET", &format!("{workers}?ActivitySid=junk"), none(), (400, "ActivitySid")),
            (&ACCOUNT, "GET", &format!("{tasks}?WorkflowSid={queue}"), none(), (400, "WorkflowSid")),
            (&ACCOUNT, "GET", &format!("{tasks}?TaskQueueSid=junk"), none(), (400, "TaskQueueSid")),
        ],
    )
    .await;

    // The agent API: 404 for what does not exist, 403 for what is another agent's.
    let (complete, activity) = (|| form("AssignmentStatus=completed"), "/agent/api/activity");
    let not_sid = |kind: &str| format!("junk is not a {kind} SID");
    check(
        &app,
        vec![
            (&agent, "POST", activity, form(format!("ActivitySid={wa}")), (404, "does not exist")),
            (&agent, "POST", activity, form("ActivitySid=Available"), (400, not_activity)),
            (&agent, "POST", &format!("/agent/api/reservations/{wr}"), accept(), (404, "no reservation")),
            (&agent, "POST", "/agent/api/reservations/junk", accept(), (404, &not_sid("reservation"))),
            (&agent, "POST", "/agent/api/reservations/%FF", accept(), (404, "is not a reservation SID")),
            (&agent, "POST", &format!("/agent/api/tasks/{wt}"), complete(), (404, "no task")),
            (&agent, "POST", &format!("/agent/api/tasks/{task}"), complete(), (403, "another agent's")),
            (&agent, "POST", "/agent/api/tasks/junk", complete(), (404, &not_sid("task"))),
            (&agent, "GET", &format!("/agent/api/conversations/{wt}"), none(), (403, "another agent's")),
            (&agent, "GET", "/agent/api/conversations/junk", none(), (404, &not_sid("task"))),
        ],
    )
    .await;

    // The admin API.
    let skills = |worker: &str| format!("/admin/api/workers/{worker}/skills");
    check(
        &app,
        vec![
            (&ACCOUNT, "POST", &skills(&wk), form("Skill=Sales"), (404, "does not exist")),
            (&ACCOUNT, "POST", &skills("junk"), form("Skill=Sales"), (404, &not_sid("worker"))),
            (&ACCOUNT, "POST", &skills("%FF"), form("Skill=Sales"), (404, "is not a worker SID")),
            (&ACCOUNT, "POST", &format!("/admin/api/workers/{wk}/secret"), none(), (404, "no worker")),
            (&ACCOUNT, "POST", &format!("/admin/api/workers/{available}/secret"), none(), (404, "no worker")),
            (&ACCOUNT, "DELETE", "/admin/api/skills/Nope", none(), (404, "no skill named \"Nope\"")),
            (&ACCOUNT, "DELETE", "/admin/api/skills/%FF", none(), (404, "no skill named")),
        ],
    )
    .await;

    // Webhooks of calls Switchboard does not know get valid TwiML that ends the call (a 4xx would
    // send the provider to its fallback URL) and store nothing; a missing SID is a 400.
    let call = |sid: &str, extra: &str| form(format!("CallSid={sid}&From={CALLER}&To={LINE}{extra}"));
    let text = |extra: &str| form(format!("AccountSid={ACCOUNT_SID}&From={CALLER}&To={LINE}&Body=1{extra}"));
    let (recording, no_numbers) = ("&RecordingUrl=https%3A%2F%2Fx", form("MessageSid=SM1&Body=1"));
    check(
        &app,
        vec![
            (&Provider, "POST", "/voice/wait", call("CA404", ""), (200, "Sorry, no one can take your call")),
            (&Provider, "POST", "/voice/dial-status", call("CA404", "&DialCallStatus=completed"), (200, "")),
            (&Provider, "POST", "/voice/status", call("CA404", "&CallStatus=completed"), (200, "")),
            (&Provider, "POST", "/voice/voicemail", call("not+a+sid", recording), (200, "")),
            (&Provider, "POST", "/voice/incoming", call("", ""), (400, "CallSid is missing.")),
            (&Provider, "POST", "/sms/incoming", text(""), (400, "MessageSid is missing.")),
            (&Provider, "POST", "/sms/incoming", no_numbers, (400, "From and To are required.")),
        ],
    )
    .await;
}

#[tokio::test]
async fn replayed_and_badly_signed_webhooks_change_nothing() {
    let app = spawn_api().await;
    let text = |sid: &str, body: &str| {
        form(format!("MessageSid={sid}&AccountSid={ACCOUNT_SID}&From={CALLER}&To={LINE}&Body={body}"))
    };

    // A call routed by its keys, texts that route and that join the conversation; then the same
    // signed requests again: the caller holds and the texts are answered the same, once.
    let keys = menu_action(&app, "CA1").await;
    let incoming = format!("AccountSid={ACCOUNT_SID}&CallSid=CA1&From={CALLER}&To={LINE}");
    let routed = format!("{incoming}&Digits=1");
    accepted(&app, &Provider, "POST", &keys, form(routed.clone())).await;
    accepted(&app, &Provider, "POST", "/sms/incoming", text("SM1", "hi")).await;
    accepted(&app, &Provider, "POST", "/sms/incoming", text("SM2", "1")).await;
    accepted(&app, &Provider, "POST", "/sms/incoming", text("SM3", "still+there%3F")).await;
    assert_eq!(app.engine.read(|engine| engine.tasks().count()), 2);
    check(
        &app,
        vec![
            (&Provider, "POST", &keys, form(routed), (200, "")),
            (&Provider, "POST", "/voice/incoming", form(incoming), (200, "")),
            (&Provider, "POST", "/sms/incoming", text("SM2", "1"), (200, "An agent will text you here")),
            (&Provider, "POST", "/sms/incoming", text("SM1", "hi"), (200, "Reply 1 or SALES for sales")),
            (&Provider, "POST", "/sms/incoming", text("SM3", "still+there%3F"), (200, "")),
        ],
    )
    .await;

    // Another call's keys, signed wrongly in every way: refused before anything is read.
    let keys = menu_action(&app, "CA2").await;
    let pressed = |digits: &str| -> Vec<(String, String)> {
        let params = [("AccountSid", ACCOUNT_SID), ("CallSid", "CA2"), ("From", "+15550100001")];
        let params = params.into_iter().chain([("To", "+15550100200"), ("Digits", digits)]);
        params.map(|(name, value)| (name.to_owned(), value.to_owned())).collect()
    };
    let (params, url) = (pressed("1"), app.url(&keys));
    let path_only = app.url(keys.split('?').next().unwrap());
    let for_voice = Signature(signature::sign(AUTH_TOKEN, &app.url("/voice/incoming"), &[]));
    let senders = [
        Anonymous,
        ACCOUNT,
        Signature(String::new()),
        Signature("not base64!".into()),
        Signature(signature::sign("not-the-token", &url, &params)),
        Signature(signature::sign(AUTH_TOKEN, &app.url("/voice/wait"), &params)),
        Signature(signature::sign(AUTH_TOKEN, &path_only, &params)),
        Signature(signature::sign(AUTH_TOKEN, &format!("https://switchboard.example{keys}"), &params)),
        Signature(signature::sign(AUTH_TOKEN, &url, &pressed("2"))),
        Signature(signature::sign(AUTH_TOKEN, &url, &[])),
    ];
    let refused = (403, "This request is not signed by the provider.");
    let body = || form(serde_urlencoded::to_string(&params).unwrap());
    check(&app, senders.iter().map(|from| (from, "POST", keys.as_str(), body(), refused)).collect()).await;
    // Nor is the caller in line hung up, nor the texter's conversation fed, by such requests.
    let hang_up = form(format!("CallSid=CA1&From={CALLER}&To={LINE}&CallStatus=completed"));
    check(
        &app,
        vec![
            (&Anonymous, "POST", "/voice/status", hang_up, refused),
            (&Anonymous, "POST", "/sms/incoming", text("SM4", "hello"), refused),
            (&for_voice, "POST", "/sms/incoming", text("SM4", "hello"), refused),
        ],
    )
    .await;
}

#[tokio::test]
async fn wrong_credentials_and_sessions_on_the_wrong_routes_are_refused() {
    let app = spawn_api().await;
    let ws = format!("/v1/Workspaces/{}", workspace(&app));
    let bob = worker(&app, "bob");
    let (agent, admin) = (agent_session(&app, "alice").await, admin_session(&app).await);
    let (Session(agent_cookie, agent_csrf), Session(admin_cookie, admin_csrf)) = (&agent, &admin) else {
        unreachable!("sessions")
    };
    let encoded = |text: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(text));
    // The admin's session with its signature changed in its last character.
    let (head, tail) = admin_cookie.split_at(admin_cookie.len() - 1);
    let tampered = format!("{head}{}", if tail == "0" { "1" } else { "0" });
    let as_admin = agent_cookie.replace("switchboard_agent=", "switchboard_admin=");
    let no_credentials = (401, "No credentials provided");
    let invalid = (401, "invalid username or auth token");
    let signed_out = (401, "not signed in");
    let senders = [
        (Anonymous, no_credentials),
        (Basic(ACCOUNT_SID, "wrong"), invalid),
        (Basic("AC00000000000000000000000000000000", AUTH_TOKEN), invalid),
        (Basic(ACCOUNT_SID, ""), invalid),
        (Authorization(encoded(&format!("{ACCOUNT_SID}{AUTH_TOKEN}"))), invalid),
        (Authorization("Basic !!!not-base64!!!".to_owned()), invalid),
        (Authorization(format!("Bearer {AUTH_TOKEN}")), no_credentials),
        (AnotherSite, (401, "credentials sent by another site's page are not accepted")),
        // An agent's (or supervisor's) session is not the admin's, whatever it carries.
        (
            Session(agent_cookie.clone(), agent_csrf.clone()),
            (403, "an agent's or supervisor's session cannot use it"),
        ),
        (Session(as_admin, agent_csrf.clone()), signed_out),
        (Session("switchboard_admin=garbage".into(), admin_csrf.clone()), signed_out),
        (Session(tampered, admin_csrf.clone()), (401, "your session has ended")),
    ];
    let no_csrf = Session(admin_cookie.clone(), "wrong".into());
    let wrong_csrf = (403, "missing or wrong X-CSRF-Token");

    // The REST and admin APIs, read and written, with everything but the account's credentials.
    let routes = [
        ("GET", "/v1/Workspaces".to_owned(), ""),
        ("GET", format!("{ws}/Workers"), ""),
        ("POST", format!("{ws}/Activities"), "FriendlyName=Coaching"),
        ("DELETE", format!("{ws}/Workers/{bob}"), ""),
        ("GET", "/admin/api/skills".to_owned(), ""),
        ("POST", "/admin/api/skills".to_owned(), "Name=Billing"),
        ("POST", format!("/admin/api/workers/{bob}/secret"), ""),
        ("POST", format!("/admin/api/workers/{bob}/skills"), "Skill=Sales"),
        ("DELETE", "/admin/api/skills/Sales".to_owned(), ""),
        ("POST", "/admin/api/expressions/check".to_owned(), "Expression=1%3D%3D1&Context=queue"),
        ("GET", "/admin/api/dashboard/history".to_owned(), ""),
    ];
    for (method, path, body) in &routes {
        let mut cases: Vec<Case> = senders
            .iter()
            .map(|(from, expected)| (from, *method, path.as_str(), form(*body), *expected))
            .collect();
        if *method != "GET" {
            cases.push((&no_csrf, method, path, form(*body), wrong_csrf));
        }
        check(&app, cases).await;
    }

    // The agent API takes an agent's session only: not the admin's, nor one without its token.
    let activity = || form(format!("ActivitySid={}", activity(&app, "Available")));
    let garbage = Session("switchboard_agent=garbage".into(), agent_csrf.clone());
    let agent_no_csrf = Session(agent_cookie.clone(), "wrong".into());
    let conversation = format!("/agent/api/conversations/{}", unknown("WT"));
    check(
        &app,
        vec![
            (&agent, "GET", "/admin/api/session", none(), signed_out),
            (&admin, "GET", "/agent/api/state", none(), signed_out),
            (&admin, "POST", "/agent/api/activity", activity(), signed_out),
            (&ACCOUNT, "POST", "/agent/api/activity", activity(), signed_out),
            (&garbage, "GET", "/agent/api/state", none(), signed_out),
            (&agent_no_csrf, "POST", "/agent/api/activity", activity(), wrong_csrf),
            (&Anonymous, "GET", &conversation, none(), no_credentials),
        ],
    )
    .await;

    // Signing in with the wrong secret or token, or from another site.
    let admin_in = |token: &str| form(format!("AccountSid={ACCOUNT_SID}&AuthToken={token}"));
    let (wrong_secret, wrong_token) =
        ((401, "unknown name or wrong secret"), (401, "wrong account SID or auth token"));
    check(
        &app,
        vec![
            (&Anonymous, "POST", "/agent/api/session", form("Name=alice&Secret=guess"), wrong_secret),
            (&Anonymous, "POST", "/agent/api/session", form("Name=nobody&Secret=guess"), wrong_secret),
            (&Anonymous, "POST", "/agent/api/session", form("Name=alice"), (400, "Name and Secret are")),
            (&Anonymous, "POST", "/admin/api/session", admin_in("wrong"), wrong_token),
            (&Anonymous, "POST", "/admin/api/session", admin_in(""), wrong_token),
            (&AnotherSite, "POST", "/admin/api/session", admin_in(AUTH_TOKEN), (403, "sign in from")),
        ],
    )
    .await;
}
