//! Flow files refused with their lines, and callers' paths through the shipped IVR.

use expect_test::{Expect, expect};

use super::*;

/// Loads `source`; renders the errors one per line, or `ok`.
fn check_load(source: &str, expected: Expect) {
    let actual = match load_flow(source) {
        Ok(_) => "ok".to_owned(),
        Err(errors) => errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
    };
    expected.assert_eq(&actual);
}

const SHIPPED: &str = include_str!("../../ivr/main.toml");

/// Who calls, in the walks of these tests.
pub(crate) const CALLER: Caller<'static> =
    Caller { from: "+15550100999", to: "+15550100200", channel: "voice", now: jiff::Timestamp::UNIX_EPOCH };
/// Who texts.
const TEXTER: Caller<'static> = Caller { channel: "sms", ..CALLER };

#[test]
fn the_shipped_flow_loads() {
    check_load(SHIPPED, expect!["ok"]);
}

#[test]
fn a_callback_offer_is_checked_with_its_line() {
    let flow =
        |callback: &str| format!("start = \"main\"\n{callback}\n[menus.main]\nsay = \"Hi\"\nhangup = true\n");
    check_load(
        &flow("[callback]\noffer_after = 60\nattempts = 2\nretry_after = 300\nthen = \"cancel\""),
        expect!["ok"],
    );
    check_load(
        &flow("[callback]\nattempts = 0\nretry_after = 1\nkey = \"12\""),
        expect![[r#"
            line 2: callback: attempts must be from 1 to 10
            line 2: callback: retry_after must be from 5 to 86400 seconds
            line 2: callback: key must be one of 0-9, * or #"#]],
    );
    check_load(
        &flow("[callback]\nthen = \"later\""),
        expect![[r#"line 3: unknown variant `later`, expected `voicemail` or `cancel`"#]],
    );
    let loaded = load_flow(&flow("[callback]")).unwrap();
    assert_eq!(
        loaded.callback,
        Some(CallbackOffer {
            offer_after: 0,
            attempts: 3,
            retry_after: 120,
            then: CallbackEnd::Voicemail,
            key: "1".into()
        })
    );
}

#[test]
fn mistakes_are_reported_with_their_lines() {
    check_load("start = \"main\"\n[menus.main\n", expect!["line 2: unclosed table, expected `]`"]);
    check_load(
        "start = \"main\"\nlanguage = 3\n[menus]\n",
        expect!["line 2: invalid type: integer `3`, expected a string"],
    );
    check_load(
        "start = \"menu\"\n[menus.main]\nsay = \"hi\"\nhangup = true\ncolour = 1\n",
        expect![
            "line 5: unknown field `colour`, expected one of `say`, `sms`, `play`, `set`, `attributes`, `priority`, `skills`, `options`, `collect`, `lookup`, `when`, `dial`, `route`, `voicemail`, `hangup`, `next`, `timeout`, `retries`, `no_input`, `invalid`, `on_fail`, `speech`, `hints`, `on_error`, `else`, `on_no_answer`, `on_busy`, `max_length`"
        ],
    );
    check_load(
        r#"start = "menu"
[menus.main]
say = "Press 1"
on_fail = "nowhere"
[menus.main.options]
"1" = { menu = "sales" }
"12" = { menu = "main" }
"x" = { menu = "main" }
"2" = { menu = "main", route = { skills = ["S"] } }
"3" = { route = { priority = -1 } }
[menus.empty]
say = "Nothing here"
[menus.silent]
hangup = true
"#,
        expect![[r#"
            line 1: the flow: start step "menu" does not exist
            line 4: step "main": on_fail step "nowhere" does not exist
            line 6: step "main", option 1: the step "sales" does not exist
            line 7: step "main": option "12" is not a key (0-9, * or #)
            line 8: step "main": option "x" is not a key (0-9, * or #)
            line 9: step "main", option 2: give one of step (or menu), route or language
            line 10: step "main", option 3: a route needs skills or a workflow
            line 10: step "main", option 3: priority must be from 0 to 2147483647
            line 11: step "empty" does nothing: give it options, collect, lookup, when, dial, route, voicemail, hangup = true or next"#]],
    );
    check_load(
        r#"start = "main"
languages = ["en-US", "es-MX"]
[menus.main]
say = { en-US = "Press 9 for Spanish", fr-FR = "Oui" }
[menus.main.options]
"9" = { language = "es-ES" }
"#,
        expect![[r#"
            line 4: step "main": say has no text in es-MX
            line 4: step "main": say is in fr-FR, which is not in languages
            line 6: step "main", option 9: language "es-ES" is not in languages"#]],
    );
}

/// Walks `flow` through `inputs` and renders what the caller hears and what happens, one line
/// per step. An input is keys (`-` for silence), `rec:URL` (a recording), `txt:TEXT` (a text),
/// `say:WORDS` (speech), `dial:STATUS` (how a forwarded call ended), `look:{JSON}` (a lookup's
/// answer) or `fail:REASON` (a failed lookup).
fn check_walk(source: &str, inputs: &[&str], expected: Expect) {
    let flow = load_flow(source).expect("the flow loads");
    let mut state = CallState::new(&flow, jiff::Timestamp::UNIX_EPOCH);
    let mut lines = Vec::new();
    for (n, keys) in std::iter::once("start").chain(inputs.iter().copied()).enumerate() {
        let input = match keys.split_once(':') {
            _ if keys == "start" && n == 0 => Input::Start,
            _ if keys == "-" => Input::Digits(String::new()),
            Some(("rec", url)) if !url.starts_with("//") => {
                Input::Recording { url: url.to_owned(), duration: 7 }
            }
            Some(("txt", text)) => Input::Text(text.to_owned()),
            Some(("say", words)) => Input::Speech(words.to_owned()),
            Some(("dial", status)) => Input::Dialed(status.to_owned()),
            Some(("look", json)) => Input::Looked(Ok(serde_json::from_str(json).expect("an object"))),
            Some(("fail", reason)) => Input::Looked(Err(reason.to_owned())),
            _ => Input::Digits(keys.to_owned()),
        };
        let step = step(&flow, state, &input, Medium::Voice(&|_| "/voice/ivr".to_owned()), &CALLER);
        let effect = match &step.effect {
            Effect::Continue => "gather".to_owned(),
            Effect::Hangup => "hangup".to_owned(),
            Effect::Route(route) => format!(
                "route workflow={:?} priority={:?} attributes={}",
                route.workflow, route.priority, route.attributes
            ),
            Effect::Lookup(request) => {
                format!("lookup {} in {}s {:?}", request.url, request.timeout, request.params)
            }
        };
        let keys: String = keys.chars().take(60).collect();
        lines.push(format!(
            "{keys}: {effect} {}",
            step.response.to_xml().trim_start_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
        ));
        state = step.state;
    }
    expected.assert_eq(&lines.join("\n"));
}

#[test]
fn callers_paths_through_the_shipped_flow() {
    check_walk(
        SHIPPED,
        &["1"],
        expect![[r#"
        start: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">Thanks for calling. For sales, press 1. For support, press 2.</Say></Gather></Response>
        1: route workflow=Some("Sales and Support Workflow") priority=None attributes={"skillsNeeded":["Sales"],"language":"en-US","ivr_path":"1"} <Response/>"#]],
    );
    check_walk(
        SHIPPED,
        &["7", "-", "2"],
        expect![[r#"
        start: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">Thanks for calling. For sales, press 1. For support, press 2.</Say></Gather></Response>
        7: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">Sorry, that is not one of the options.</Say><Say voice="Polly.Joanna" language="en-US">Thanks for calling. For sales, press 1. For support, press 2.</Say></Gather></Response>
        -: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">Sorry, I didn&apos;t hear a choice.</Say><Say voice="Polly.Joanna" language="en-US">Thanks for calling. For sales, press 1. For support, press 2.</Say></Gather></Response>
        2: route workflow=Some("Sales and Support Workflow") priority=None attributes={"skillsNeeded":["Support"],"language":"en-US","ivr_path":"2"} <Response/>"#]],
    );
    check_walk(
        SHIPPED,
        &["-", "-", "-"],
        expect![[r#"
        start: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">Thanks for calling. For sales, press 1. For support, press 2.</Say></Gather></Response>
        -: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">Sorry, I didn&apos;t hear a choice.</Say><Say voice="Polly.Joanna" language="en-US">Thanks for calling. For sales, press 1. For support, press 2.</Say></Gather></Response>
        -: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">Sorry, I didn&apos;t hear a choice.</Say><Say voice="Polly.Joanna" language="en-US">Thanks for calling. For sales, press 1. For support, press 2.</Say></Gather></Response>
        -: hangup <Response><Say voice="Polly.Joanna" language="en-US">We could not understand your choice. Please call again. Goodbye.</Say><Hangup/></Response>"#]],
    );
}

#[test]
fn a_language_choice_sets_the_prompts_and_the_task_language() {
    let flow = r#"start = "main"
languages = ["en-US", "es-MX"]
[menus.main]
say = { en-US = "For Spanish press 9. Sales press 1.", es-MX = "Ventas oprima 1." }
[menus.main.options]
"9" = { language = "es-MX" }
"1" = { route = { skills = ["Sales"], priority = 3, attributes = { campaign = "spring" } }, }
"#;
    check_walk(
        flow,
        &["9", "1"],
        expect![[r#"
        start: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US"><Say language="en-US">For Spanish press 9. Sales press 1.</Say></Gather></Response>
        9: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="es-MX"><Say language="es-MX">Ventas oprima 1.</Say></Gather></Response>
        1: route workflow=None priority=Some(3) attributes={"skillsNeeded":["Sales"],"language":"es-MX","ivr_path":"9,1","campaign":"spring"} <Response/>"#]],
    );
}

/// Runs the scenario file `scenarios` against the shipped flow; one line per call.
fn check_scenarios(scenarios: &str, expected: Expect) {
    check_scenarios_of(SHIPPED, scenarios, expected);
}

/// [`check_scenarios`] against the flow `source`.
fn check_scenarios_of(source: &str, scenarios: &str, expected: Expect) {
    let flow = load_flow(source).unwrap();
    let actual = match read_scenarios(scenarios) {
        Ok(scenarios) => scenarios
            .run(&flow)
            .iter()
            .map(|outcome| {
                format!("{} {}: {}", outcome.line, outcome.name, outcome.failure.as_deref().unwrap_or("ok"))
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(err) => format!("error: {err}"),
    };
    expected.assert_eq(&actual);
}

#[test]
fn scenarios_report_what_went_otherwise() {
    check_scenarios(
        include_str!("../../ivr/tests/main.toml"),
        expect![[r#"
        4 a sales caller presses 1: ok
        11 a support caller presses 2: ok
        16 a wrong key and a silence, then sales: ok
        28 three silences end the call: ok"#]],
    );
    check_scenarios(
        r#"flow = "main.toml"
[[calls]]
name = "wrong queue"
keys = ["2"]
route = { skills = ["Sales"], workflow = "Sales and Support Workflow" }
[[calls]]
name = "wrong attribute"
keys = ["1"]
route = { skills = ["Sales"], workflow = "Sales and Support Workflow" }
attributes = { language = "fr-FR" }
[[calls]]
name = "too few keys"
keys = []
hangup = true
[[calls]]
name = "too many keys"
keys = ["1", "2"]
route = { skills = ["Sales"], workflow = "Sales and Support Workflow" }
[[calls]]
name = "expected a hang-up"
keys = ["1"]
hangup = true
[[calls]]
name = "wrong prompt"
keys = ["1"]
hears = ["Hello"]
route = { skills = ["Sales"], workflow = "Sales and Support Workflow" }
"#,
        expect![[r#"
            2 wrong queue: routed with skills ["Support"], workflow Some("Sales and Support Workflow"), priority None; expected skills ["Sales"], workflow Some("Sales and Support Workflow"), priority None
            6 wrong attribute: task attribute language is "en-US", expected "fr-FR"
            11 too few keys: the keys ran out at step "main"; the call had not ended
            15 too many keys: the call ended with 1 key(s) left unpressed
            19 expected a hang-up: the call was routed ({"skillsNeeded":["Sales"],"language":"en-US","ivr_path":"1"}), expected a hang-up
            23 wrong prompt: heard ["Thanks for calling. For sales, press 1. For support, press 2."], expected ["Hello"]"#]],
    );
    check_scenarios(
        "flow = \"main.toml\"\n[[calls]]\nname = \"both\"\nkeys = [\"1\"]\nhangup = true\nroute = { skills = [\"Sales\"] }\n",
        expect![[r#"error: line 2: call "both": give exactly one of route or hangup = true"#]],
    );
}

const HOURS_FLOW: &str = r#"start = "main"
[hours]
time_zone = "America/New_York"
monday = "09:00-17:00"
friday = "09:00-12:00, 13:00-15:00"
holidays = ["2026-12-25"]
closed = "closed"
[menus.main]
say = "Press 1 for sales."
[menus.main.options]
"1" = { route = { skills = ["Sales"] } }
[menus.closed]
say = "We are closed. Our hours are Monday 9 to 5."
hangup = true
"#;

#[test]
fn business_hours_follow_the_time_zone_the_week_and_the_holidays() {
    let flow = load_flow(HOURS_FLOW).unwrap();
    let hours = flow.hours.as_ref().unwrap();
    for (at, open) in [
        ("2026-11-23T14:00:00Z", true),  // Monday 09:00 in New York (EST)
        ("2026-11-23T13:59:59Z", false), // 08:59
        ("2026-11-23T21:59:00Z", true),  // 16:59
        ("2026-11-23T22:00:00Z", false), // 17:00: the end is not included
        ("2026-11-27T17:30:00Z", false), // Friday 12:30, the lunch break
        ("2026-11-27T18:00:00Z", true),  // Friday 13:00
        ("2026-11-28T15:00:00Z", false), // Saturday
        ("2026-12-25T15:00:00Z", false), // a Friday, but a holiday
        ("2026-07-06T13:00:00Z", true),  // Monday 09:00 in summer (EDT)
    ] {
        assert_eq!(hours.is_open(at.parse().unwrap()), open, "{at}");
    }
    let closed = CallState::new(&flow, "2026-11-28T15:00:00Z".parse().unwrap());
    assert_eq!(closed.menu, "closed");
    let open = CallState::new(&flow, "2026-11-23T15:00:00Z".parse().unwrap());
    assert_eq!(open.menu, "main");
}

#[test]
fn business_hours_mistakes_are_reported() {
    check_load(
        &HOURS_FLOW
            .replace("America/New_York", "Mars/Olympus")
            .replace("\"09:00-17:00\"", "\"17:00-09:00\"")
            .replace("09:00-12:00", "9am-12")
            .replace("2026-12-25", "Christmas")
            .replace("closed = \"closed\"", "closed = \"shut\""),
        expect![[r#"
            line 2: hours: unknown time zone "Mars/Olympus" (use an IANA name such as America/New_York)
            line 2: hours: monday: "17:00-09:00" ends before it starts
            line 2: hours: friday: "9am" is not a time (HH:MM)
            line 2: hours: holiday "Christmas" is not a date (YYYY-MM-DD)
            line 7: hours: closed step "shut" does not exist"#]],
    );
}

#[test]
fn scenarios_say_when_a_call_comes_in() {
    let flow = load_flow(HOURS_FLOW).unwrap();
    let scenarios = read_scenarios(
        r#"flow = "hours.toml"
[[calls]]
name = "saturday"
at = "2026-11-28T10:00:00-05:00"
hears = ["We are closed. Our hours are Monday 9 to 5."]
hangup = true
[[calls]]
name = "monday"
at = "2026-11-23T10:00:00-05:00"
keys = ["1"]
route = { skills = ["Sales"] }
[[calls]]
name = "no time"
keys = ["1"]
route = { skills = ["Sales"] }
"#,
    )
    .unwrap();
    let failures: Vec<Option<String>> =
        scenarios.run(&flow).into_iter().map(|outcome| outcome.failure).collect();
    assert_eq!(
        failures,
        [None, None, Some("the flow has business hours: give the call an `at` time".to_owned())]
    );
    let bad = read_scenarios("flow = \"x\"\n[[calls]]\nname = \"n\"\nat = \"monday\"\nhangup = true\n");
    assert_eq!(
        bad.err().unwrap().to_string(),
        "line 2: call \"n\": at = \"monday\" is not an RFC 3339 time (2026-11-24T10:00:00-05:00)"
    );
}

#[test]
fn a_voicemail_menu_records_then_routes_a_call_back_task() {
    let flow = r#"start = "closed"
workflow = "W"
[menus.closed]
say = "We are closed. Leave a message after the tone."
voicemail = { skills = ["Sales"], attributes = { callback = true } }
max_length = 60
"#;
    check_walk(
        flow,
        &["rec:https://media.example/RE1"],
        expect![[r##"
            start: gather <Response><Say language="en-US">We are closed. Leave a message after the tone.</Say><Record action="/voice/ivr" method="POST" timeout="5" maxLength="60" finishOnKey="#" playBeep="true"/></Response>
            rec:https://media.example/RE1: route workflow=Some("W") priority=None attributes={"skillsNeeded":["Sales"],"language":"en-US","ivr_path":"","callback":true,"voicemail":{"url":"https://media.example/RE1","duration":7}} <Response><Say language="en-US">Thank you. We will call you back. Goodbye.</Say><Hangup/></Response>"##]],
    );
    // Nothing recorded: nothing to call back.
    check_walk(
        flow,
        &["rec:"],
        expect![[r##"
        start: gather <Response><Say language="en-US">We are closed. Leave a message after the tone.</Say><Record action="/voice/ivr" method="POST" timeout="5" maxLength="60" finishOnKey="#" playBeep="true"/></Response>
        rec:: hangup <Response><Hangup/></Response>"##]],
    );
}

#[test]
fn numbers_and_voicemail_menus_are_checked() {
    check_load(
        r#"start = "main"
numbers = ["+15550100200", "555-0100"]
[menus.main]
say = "Leave a message"
voicemail = { priority = 1 }
[menus.main.options]
"1" = { menu = "main" }
"#,
        expect![[r#"
            line 2: number "555-0100" is not in E.164 form (+ and 8 to 15 digits)
            line 3: step "main" has both options and voicemail; a step does one thing"#]],
    );
}

#[test]
fn texters_may_answer_with_a_keyword_in_any_case_or_the_key() {
    let flow = r#"start = "main"
[menus.main]
say = "For sales press 1."
sms = "Reply 1 or SALES."
[menus.main.options]
"1" = { route = { skills = ["Sales"] }, keywords = ["sales", "buy"] }
"#;
    let routed = |text: &str| {
        let flow = load_flow(flow).unwrap();
        let state = CallState::new(&flow, jiff::Timestamp::UNIX_EPOCH);
        matches!(
            step(&flow, state.clone(), &Input::Text(text.into()), Medium::Text, &TEXTER).effect,
            Effect::Route(_)
        )
    };
    let answers = ["SALES", " Buy ", "1", "sale", "hello"].map(|text| (text, routed(text)));
    assert_eq!(answers, [("SALES", true), (" Buy ", true), ("1", true), ("sale", false), ("hello", false)]);
    assert_eq!(load_flow(flow).unwrap().steps["main"].sms.as_ref().unwrap()["en-US"], "Reply 1 or SALES.");
    check_load(
        r#"start = "main"
[menus.main]
say = "Press 1 or 2"
[menus.main.options]
"1" = { menu = "main", keywords = ["sales", "x"] }
"2" = { menu = "main", keywords = ["Sales"] }
"#,
        expect![[r#"
            line 5: step "main", option 1: keyword "x" must be a word, not a single character
            line 6: step "main", option 2: keyword "Sales" is also option 1's"#]],
    );
}

#[test]
fn over_text_the_shipped_flow_answers_messages_with_its_sms_prompts() {
    let flow = load_flow(SHIPPED).unwrap();
    let mut state = CallState::new(&flow, jiff::Timestamp::UNIX_EPOCH);
    let mut lines = Vec::new();
    for input in [Input::Start, Input::Text("hello?".into()), Input::Text("Support".into())] {
        let step = step(&flow, state, &input, Medium::Text, &TEXTER);
        let effect = match &step.effect {
            Effect::Route(route) => format!("route {}", route.attributes),
            other => format!("{other:?}"),
        };
        lines.push(format!(
            "{input:?}: {effect} {}",
            step.response.to_xml().trim_start_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
        ));
        state = step.state;
    }
    expect![[r#"
        Start: Continue <Response><Message>Thanks for your message. Reply 1 or SALES for sales, 2 or SUPPORT for support.</Message></Response>
        Text("hello?"): Continue <Response><Message>Sorry, that is not one of the options. Thanks for your message. Reply 1 or SALES for sales, 2 or SUPPORT for support.</Message></Response>
        Text("Support"): route {"skillsNeeded":["Support"],"language":"en-US","ivr_path":"2"} <Response/>"#]].assert_eq(&lines.join("\n"));
}

/// Regression (fuzzing): a wrong key at the largest failure count an action URL can carry
/// overflowed the count.
#[test]
fn a_failure_at_the_largest_count_does_not_overflow() {
    let state = CallState {
        menu: "main".into(),
        failures: u32::MAX,
        language: "en-US".into(),
        path: vec![],
        memory: Memory::default(),
    };
    let flow = load_flow(SHIPPED).unwrap();
    assert_eq!(step(&flow, state, &Input::Digits("7".into()), Medium::Text, &TEXTER).effect, Effect::Hangup);
}

mod fuzz {
    //! Fuzz targets of flow files (see `crate::fuzzing`): arbitrary and TOML-token text, and
    //! structured flows with random fields and types. Loading never panics and every refusal
    //! names a line of the file; a flow that loads can be walked from any state (as the signed
    //! action URL carries it) with any input, and a call that goes on is in one of its menus.

    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing::{self, awkward_text};
    use crate::ivr::fuzz::{assert_walks, check_source};

    const MENUS: [&str; 9] =
        ["main", "support", "goodbye", "closed", "menu with spaces", "account", "crm", "sort", "partner"];
    const LANGUAGES: [&str; 3] = ["en-US", "es-MX", "fr-FR"];
    const KEYS: [&str; 9] = ["1", "2", "9", "*", "#", "0", "10", "", "a"];

    /// A flow that uses every feature: languages, per-language prompts, keywords, a language
    /// switch, an audio prompt, a voicemail, business hours and holidays.
    const EVERY_FEATURE: &str = r##"
start = "main"
language = "en-US"
languages = ["en-US", "es-MX"]
voice = "Polly.Joanna"
workflow = "Sales and Support Workflow"
numbers = ["+15550100200"]

[menus.main]
say = { en-US = "For sales press 1.", es-MX = "Para ventas oprima 1." }
sms = { en-US = "Reply 1 or SALES.", es-MX = "Responda 1 o VENTAS." }
timeout = 5
retries = 1
no_input = { en-US = "Sorry?", es-MX = "Perdón?" }
invalid = "?"
on_fail = "goodbye"

[menus.main.options]
"1" = { route = { skills = ["Sales"], priority = 5, attributes = { vip = true } }, keywords = ["ventas"] }
"2" = { menu = "support", keywords = ["support"] }
"9" = { language = "es-MX" }
"*" = { language = "en-US", menu = "support" }
"#" = { menu = "closed" }

[menus.support]
play = "https://example.com/support.mp3"
retries = 0
options = { "0" = { menu = "main" }, "1" = { route = { workflow = "Support Workflow" } } }

[menus.goodbye]
say = "Goodbye."
hangup = true

[menus.closed]
say = { en-US = "We are closed.", es-MX = "Cerrado." }
voicemail = { skills = ["Sales"], attributes = { callback = true } }
max_length = 120

[hours]
time_zone = "Europe/Madrid"
tuesday = "08:30-14:00, 16:00-19:30"
saturday = "10:00-13:00"
holidays = ["2026-01-06", "2026-10-12"]
closed = "closed"
"##;

    #[test]
    fn the_seed_flow_loads() {
        // Mutations start from valid flows: a seed that did not load would only ever reach the
        // loader's first complaint.
        assert_eq!(load_flow(EVERY_FEATURE).err(), None);
    }

    /// The valid flows that mutations start from.
    fn seed_flow() -> impl Strategy<Value = serde_json::Value> {
        prop::sample::select(vec![SHIPPED, EVERY_FEATURE, ACCOUNT]).prop_map(|source| {
            let table: toml::Table = toml::from_str(source).expect("a seed flow is TOML");
            serde_json::to_value(table).expect("TOML without dates is JSON")
        })
    }

    /// Values a mutation puts in a flow: names of menus and languages, keys, numbers past
    /// every range, awkward text, and small arrays and tables.
    fn flow_value() -> BoxedStrategy<serde_json::Value> {
        use serde_json::json;
        let leaf = prop_oneof![
            3 => prop::sample::select(vec![
                "main", "support", "goodbye", "closed", "nowhere", "en-US", "es-MX", "fr-FR", "1", "10", "*",
                "", "Mars/Olympus_Mons", "17:00-09:00", "25:00-26:00", "2026-02-30", "+1555",
            ])
            .prop_map(serde_json::Value::from),
            2 => prop::sample::select(vec![-1, 0, i64::from(u32::MAX) + 1, i64::MIN, i64::MAX])
                .prop_map(serde_json::Value::from),
            2 => awkward_text().prop_map(serde_json::Value::from),
            1 => any::<bool>().prop_map(serde_json::Value::from),
            1 => any::<f64>()
                .prop_filter("JSON holds finite numbers only", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::Array),
                prop::collection::vec(("[a-z]{1,8}", inner), 0..3)
                    .prop_map(|entries| json!(entries.into_iter().collect::<serde_json::Map<_, _>>())),
            ]
        })
        .boxed()
    }

    /// A flow file as `ivr/*.toml` holds one: a seed flow changed by up to three mutations.
    fn flow_file() -> impl Strategy<Value = String> {
        (seed_flow(), fuzzing::mutations(flow_value())).prop_map(|(flow, mutations)| {
            let flow = fuzzing::mutated(flow, mutations);
            // A document whose root is no longer a table is written as a key holding it.
            let flow = if flow.is_object() { flow } else { serde_json::json!({ "start": flow }) };
            toml::Value::try_from(flow)
                .and_then(|flow| toml::to_string(&flow))
                .expect("JSON without null is TOML")
        })
    }

    /// Text from TOML's and the flow format's tokens, so that the reader gets past the first line.
    fn toml_soup() -> impl Strategy<Value = String> {
        let tokens = concat!(
            r#"start = "main" [menus.main] [menus.main.options] [[menus]] [hours] "1" { } [ ] , . route "#,
            r#"skills say menu hangup true ' " """ ''' # 1979-05-27T07:32:00Z 07:32 inf nan 0x1F 1_000 -0 "#,
            r#"99999999999999999999 é 😀 \u00e9 \"#,
        );
        fuzzing::token_soup(tokens.split(' ').collect(), vec![" ", "", "\n", "\n", "\r\n", "\t"], 60)
    }

    /// What a caller may do: hang on, press keys, text words, leave a message.
    fn input() -> impl Strategy<Value = Input> {
        let keys =
            prop_oneof![3 => prop::sample::select(&KEYS[..]).prop_map(str::to_owned), 1 => awkward_text()];
        prop_oneof![
            1 => Just(Input::Start),
            4 => keys.clone().prop_map(Input::Digits),
            2 => prop_oneof![keys, Just("SALES".to_owned()), Just(" ventas ".to_owned())]
                .prop_map(Input::Text),
            1 => (prop_oneof![Just(String::new()), awkward_text()], any::<u32>())
                .prop_map(|(url, duration)| Input::Recording { url, duration }),
            1 => prop_oneof![awkward_text(), Just("billing please".to_owned())].prop_map(Input::Speech),
            1 => prop_oneof![awkward_text(), Just("busy".to_owned()), Just("completed".to_owned())]
                .prop_map(Input::Dialed),
            1 => prop_oneof![
                awkward_text().prop_map(Err),
                (awkward_text(), awkward_text()).prop_map(|(name, value)| {
                    Ok([(name, serde_json::Value::from(value))].into_iter().collect())
                }),
            ]
            .prop_map(Input::Looked),
        ]
    }

    /// Where a call may stand: as a new call at some moment, or as any action URL says.
    fn state(flow: &Flow) -> impl Strategy<Value = CallState> + use<> {
        let flow = flow.clone();
        let (first, last) = (jiff::Timestamp::MIN.as_second(), jiff::Timestamp::MAX.as_second());
        let at_some_moment =
            prop_oneof![4 => first..=last, 1 => Just(first), 1 => Just(last)].prop_map(move |second| {
                CallState::new(&flow, jiff::Timestamp::from_second(second).expect("in range"))
            });
        let anywhere = (
            prop_oneof![prop::sample::select(&MENUS[..]).prop_map(str::to_owned), awkward_text()],
            prop_oneof![3 => 0..4u32, 1 => any::<u32>(), 1 => Just(u32::MAX)],
            prop_oneof![prop::sample::select(&LANGUAGES[..]).prop_map(str::to_owned), awkward_text()],
            prop::collection::vec(prop::sample::select(&KEYS[..]).prop_map(str::to_owned), 0..3),
        )
            .prop_map(|(menu, failures, language, path)| CallState {
                menu,
                failures,
                language,
                path,
                memory: Memory::default(),
            });
        prop_oneof![at_some_moment, anywhere]
    }

    proptest! {
        #![proptest_config(fuzzing::config(1_000))]

        /// Fuzz target: any text is a flow or mistakes that each name a line.
        #[test]
        fn fuzz_ivr_file_from_arbitrary_text(source in prop_oneof![any::<String>(), toml_soup()]) {
            check_source(&source)?;
        }

        /// Fuzz target: flows a few mutations away from valid ones load or name their lines; the
        /// ones that load are walked from random states with random inputs, by voice or text.
        #[test]
        fn fuzz_ivr_structured_flows_load_and_walk(
            (source, walk) in flow_file().prop_flat_map(|source| {
                let walk = match load_flow(&source) {
                    Ok(flow) => (state(&flow), prop::collection::vec(input(), 0..12), any::<bool>())
                        .prop_map(move |walk| Some((flow.clone(), walk)))
                        .boxed(),
                    Err(_) => Just(None).boxed(),
                };
                (Just(source), walk)
            }),
        ) {
            match walk {
                Some((flow, (state, inputs, by_text))) => assert_walks(&flow, state, &inputs, by_text)?,
                None => prop_assert!(check_source(&source)?.is_none(), "{:?} was refused above", source),
            }
        }
    }
}

const ACCOUNT: &str = include_str!("../../ivr/account.toml");

#[test]
fn every_kind_of_step_as_the_provider_hears_it() {
    check_walk(
        ACCOUNT,
        &["2", "12345678", r#"look:{"name": "Ada", "tier": "gold"}"#],
        expect![[r##"
            start: gather <Response><Gather input="dtmf speech" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US" hints="account, bill, billing, cuenta, factura, facturación, partner, socio" speechTimeout="auto"><Say voice="Polly.Joanna" language="en-US">Thanks for calling the account line.</Say><Say voice="Polly.Joanna" language="en-US">Say or press 1 for billing, 2 for your account, 3 for our partner, 9 para español.</Say></Gather></Response>
            2: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="8" finishOnKey="#" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">Please enter your eight digit account number.</Say></Gather></Response>
            12345678: lookup http://127.0.0.1:9300/customers in 3s [("From", "+15550100999"), ("To", "+15550100200"), ("Channel", "voice"), ("Language", "en-US"), ("Step", "crm"), ("account", "12345678")] <Response/>
            look:{"name": "Ada", "tier": "gold"}: route workflow=Some("Sales and Support Workflow") priority=Some(10) attributes={"skillsNeeded":["Support","VIP"],"language":"en-US","ivr_path":"2","topic":"account","customer_name":"Ada","vip":true,"ivr_variables":{"account":"12345678","name":"Ada","tier":"gold","verified":true}} <Response><Say voice="Polly.Joanna" language="en-US">Welcome back, Ada. You are a gold customer.</Say><Say voice="Polly.Joanna" language="en-US">Connecting you to an agent.</Say></Response>"##]],
    );
    check_walk(
        ACCOUNT,
        &["say:Partner, please.", "dial:no-answer", "rec:https://media.example/RE1"],
        expect![[r##"
            start: gather <Response><Gather input="dtmf speech" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US" hints="account, bill, billing, cuenta, factura, facturación, partner, socio" speechTimeout="auto"><Say voice="Polly.Joanna" language="en-US">Thanks for calling the account line.</Say><Say voice="Polly.Joanna" language="en-US">Say or press 1 for billing, 2 for your account, 3 for our partner, 9 para español.</Say></Gather></Response>
            say:Partner, please.: gather <Response><Say voice="Polly.Joanna" language="en-US">Transferring you to our partner.</Say><Dial action="/voice/ivr" method="POST" timeout="20" callerId="+15550100300"><Number>+15550100400</Number></Dial></Response>
            dial:no-answer: gather <Response><Say voice="Polly.Joanna" language="en-US">Our partner is not available. Leave a message after the tone.</Say><Record action="/voice/ivr" method="POST" timeout="5" maxLength="60" finishOnKey="#" playBeep="true"/></Response>
            rec:https://media.example/RE1: route workflow=Some("Sales and Support Workflow") priority=None attributes={"skillsNeeded":["Support"],"language":"en-US","ivr_path":"3","callback":true,"voicemail":{"url":"https://media.example/RE1","duration":7}} <Response><Say voice="Polly.Joanna" language="en-US">Thank you. We will call you back. Goodbye.</Say><Hangup/></Response>"##]],
    );
    check_walk(
        ACCOUNT,
        &["2", "-", "99", "12345678", "fail:it answered 500"],
        expect![[r##"
        start: gather <Response><Gather input="dtmf speech" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US" hints="account, bill, billing, cuenta, factura, facturación, partner, socio" speechTimeout="auto"><Say voice="Polly.Joanna" language="en-US">Thanks for calling the account line.</Say><Say voice="Polly.Joanna" language="en-US">Say or press 1 for billing, 2 for your account, 3 for our partner, 9 para español.</Say></Gather></Response>
        2: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="8" finishOnKey="#" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">Please enter your eight digit account number.</Say></Gather></Response>
        -: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="8" finishOnKey="#" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">Please enter your eight digit account number.</Say></Gather></Response>
        99: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="8" finishOnKey="#" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">That is not an account number.</Say><Say voice="Polly.Joanna" language="en-US">Please enter your eight digit account number.</Say></Gather></Response>
        12345678: lookup http://127.0.0.1:9300/customers in 3s [("From", "+15550100999"), ("To", "+15550100200"), ("Channel", "voice"), ("Language", "en-US"), ("Step", "crm"), ("account", "12345678")] <Response/>
        fail:it answered 500: route workflow=Some("Sales and Support Workflow") priority=None attributes={"skillsNeeded":["Support"],"language":"en-US","ivr_path":"2","topic":"account","ivr_variables":{"account":"12345678","lookup_error":"it answered 500","verified":false}} <Response><Say voice="Polly.Joanna" language="en-US">Sorry, we could not find your account. An agent will help you.</Say><Say voice="Polly.Joanna" language="en-US">Connecting you to an agent.</Say></Response>"##]],
    );
}

#[test]
fn new_steps_are_checked_with_their_lines() {
    check_load(
        r#"start = "a"
[steps.a]
collect = { into = "1x", digits = 40, max_digits = 3, pattern = "([0-9]" }
[steps.b]
lookup = { url = "ftp://crm", timeout = 30 }
[steps.c]
when = [{ if = 'tier == ', next = "a" }, { if = "true", next = "nowhere" }]
[steps.d]
dial = { to = "555-0100", caller_id = "nobody", ring = 1 }
on_error = "a"
[steps.e]
say = "Hello {{name"
set = { "x.y" = 1 }
priority = -1
next = "a"
[steps.f]
options = { "1" = { step = "a" } }
route = { skills = ["S"] }
[steps.g]
say = "Hi"
[menus.a]
hangup = true
"#,
        expect![[r#"
            line 2: step "a" is both in [menus] and in [steps]
            line 2: step "a" needs a prompt: say or play
            line 2: step "a": collect into "1x": not a variable name (letters, digits and _)
            line 2: step "a": collect digits must be from 1 to 32
            line 2: step "a": collect takes digits (exactly) or max_digits (ended by #), not both
            line 2: step "a": collect pattern "([0-9]": found open group without closing ')'
            line 2: step "a": a collect needs next, the step after a valid answer
            line 4: step "b": lookup url "ftp://crm" is not an http:// or https:// URL
            line 4: step "b": lookup timeout must be from 1 to 10 seconds
            line 4: step "b": a lookup needs next (after an answer) and on_error (after a failure)
            line 6: step "c": a when needs else, the step when no condition holds
            line 7: step "c", when #1: if "tier == ": column 9: expected a value (a string, number, true, false, null, array or attribute), but the expression ends here
            line 7: step "c", when #2: if "true": column 1: expected a comparison operator after `true` (==, !=, >, >=, <, <=, HAS, IN, NOT IN, CONTAINS); to test a flag write `true == true`
            line 7: step "c", when #2: next step "nowhere" does not exist
            line 8: step "d": on_error does nothing in a dial step (it is for: lookup)
            line 8: step "d": dial to "555-0100": give a +E.164 number, a sip: address or client:name
            line 8: step "d": dial caller_id "nobody" is not in E.164 form
            line 8: step "d": dial ring must be from 5 to 600 seconds
            line 11: step "e": set "x.y": not a variable name (letters, digits and _)
            line 11: step "e": priority must be from 0 to 2147483647
            line 12: step "e": say: "Hello {{name" opens {{ without closing it
            line 16: step "f" has both options and route; a step does one thing
            line 19: step "g" does nothing: give it options, collect, lookup, when, dial, route, voicemail, hangup = true or next"#]],
    );
}

/// What the provider or the routing engine would refuse at run time is refused at load.
#[test]
fn values_refused_at_run_time_are_refused_at_load() {
    check_load(
        r#"start = "a"
workflow = "W"
[steps.a]
play = " "
options = { "1" = { route = { skills = ["S"], priority = 9223372036854775807 } } }
timeout = 0
[steps.b]
say = "Your number"
collect = { into = "from", digits = 4 }
next = "c"
[steps.c]
say = "Bye"
skills = [""]
voicemail = { skills = ["S"] }
max_length = 100000
[steps.d]
lookup = { url = "https://crm.example/x", keep = ["customer.tier"] }
next = "c"
on_error = "c"
[steps.e]
set = { language = "es-MX" }
dial = { to = "client:{{agent}}" }
"#,
        expect![[r#"
            line 3: step "a": play needs the URL of a recording
            line 3: step "a": timeout must be from 1 to 60 seconds
            line 3: step "a" needs a prompt: say or play
            line 5: step "a", option 1: priority must be from 0 to 2147483647
            line 7: step "b": collect into "from": one of the call's facts (from, to, channel, language), which the variable would hide
            line 11: step "c": a skill needs a name
            line 11: step "c": max_length must be from 1 to 14400 seconds
            line 16: step "d": lookup keep "customer.tier": not a field name (letters, digits and _; the answer's own fields, not nested ones)
            line 20: step "e": set "language": one of the call's facts (from, to, channel, language), which the variable would hide
            line 20: step "e": dial to "client:{{agent}}": a dial's number is written out; templates are not filled in here"#]],
    );
}

/// A flow's languages are language tags and its voice has a name.
#[test]
fn languages_are_tags_and_a_voice_has_a_name() {
    check_load(
        "start = \"a\"\nlanguage = \"xx-NOPE!\"\nlanguages = [\"xx-NOPE!\", \"English\", \"cmn-CN\", \"fr\"]\nvoice = \" \"\n[steps.a]\nhangup = true\n",
        expect![[r#"
            line 1: language "xx-NOPE!" is not a language tag such as en-US or es-MX
            line 1: language "English" is not a language tag such as en-US or es-MX
            line 1: voice is empty: name one (Polly.Joanna) or leave it out"#]],
    );
}

/// By voice a collect takes digits, and `*` when its pattern allows it.
#[test]
fn a_collect_takes_a_star_when_its_pattern_asks_for_one() {
    let flow = |pattern: &str| {
        format!(
            "start = \"a\"\nworkflow = \"W\"\n[steps.a]\nsay = \"Code\"\ncollect = {{ into = \"code\", max_digits = 6{pattern} }}\nretries = 0\non_fail = \"no\"\nnext = \"yes\"\n[steps.yes]\nroute = {{ skills = [\"Yes\"] }}\n[steps.no]\nroute = {{ skills = [\"No\"] }}\n"
        )
    };
    for (pattern, keys, expected) in [
        (", pattern = '\\*[0-9]+'", "*12", "Yes"),
        (", pattern = '\\*[0-9]+'", "12", "No"),
        ("", "*12", "No"),
        ("", "12", "Yes"),
    ] {
        let flow = load_flow(&flow(pattern)).expect("loads");
        let started = step(
            &flow,
            CallState::new(&flow, jiff::Timestamp::UNIX_EPOCH),
            &Input::Start,
            Medium::Voice(&|_| "/voice/ivr".to_owned()),
            &CALLER,
        );
        let answered = step(
            &flow,
            started.state,
            &Input::Digits(keys.into()),
            Medium::Voice(&|_| "/voice/ivr".to_owned()),
            &CALLER,
        );
        let Effect::Route(route) = &answered.effect else {
            panic!("{pattern} {keys}: {:?}", answered.effect)
        };
        assert_eq!(route.attributes["skillsNeeded"], serde_json::json!([expected]), "{pattern} {keys}");
    }
}

#[test]
fn steps_that_loop_without_waiting_for_the_caller_are_refused() {
    check_load(
        r#"start = "a"
[steps.a]
say = "One"
next = "b"
[steps.b]
lookup = { url = "https://crm.example/x" }
next = "c"
on_error = "a"
[steps.c]
when = [{ if = "1 == 1", next = "d" }]
else = "c"
[steps.d]
say = "Pick"
options = { "1" = { step = "a" } }
"#,
        expect![[r#"
            line 2: steps a → b → a loop without waiting for the caller
            line 9: steps c → c loop without waiting for the caller"#]],
    );
}

#[test]
fn a_variable_full_of_twiml_or_script_is_said_as_text() {
    let hostile =
        r#"look:{"name": "</Say><Dial>+19005550100</Dial><Say><script>alert(1)</script>", "tier": "gold"}"#;
    check_walk(
        ACCOUNT,
        &["2", "12345678", hostile],
        expect![[r##"
        start: gather <Response><Gather input="dtmf speech" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US" hints="account, bill, billing, cuenta, factura, facturación, partner, socio" speechTimeout="auto"><Say voice="Polly.Joanna" language="en-US">Thanks for calling the account line.</Say><Say voice="Polly.Joanna" language="en-US">Say or press 1 for billing, 2 for your account, 3 for our partner, 9 para español.</Say></Gather></Response>
        2: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="8" finishOnKey="#" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">Please enter your eight digit account number.</Say></Gather></Response>
        12345678: lookup http://127.0.0.1:9300/customers in 3s [("From", "+15550100999"), ("To", "+15550100200"), ("Channel", "voice"), ("Language", "en-US"), ("Step", "crm"), ("account", "12345678")] <Response/>
        look:{"name": "</Say><Dial>+19005550100</Dial><Say><script>a: route workflow=Some("Sales and Support Workflow") priority=Some(10) attributes={"skillsNeeded":["Support","VIP"],"language":"en-US","ivr_path":"2","topic":"account","customer_name":"</Say><Dial>+19005550100</Dial><Say><script>alert(1)</script>","vip":true,"ivr_variables":{"account":"12345678","name":"</Say><Dial>+19005550100</Dial><Say><script>alert(1)</script>","tier":"gold","verified":true}} <Response><Say voice="Polly.Joanna" language="en-US">Welcome back, &lt;/Say&gt;&lt;Dial&gt;+19005550100&lt;/Dial&gt;&lt;Say&gt;&lt;script&gt;alert(1)&lt;/script&gt;. You are a gold customer.</Say><Say voice="Polly.Joanna" language="en-US">Connecting you to an agent.</Say></Response>"##]],
    );
}

/// A scenario's lookup answer is read as a live one is: the fields the step does not `keep`
/// are dropped, so a scenario cannot pass on a field the live call would not have.
#[test]
fn a_scenarios_lookup_answer_keeps_what_the_step_keeps() {
    check_scenarios_of(
        ACCOUNT,
        r#"flow = "account.toml"
[[calls]]
name = "kept"
keys = ["2", "12345678"]
lookup.crm = { name = "Ada", tier = "gold", secret = "x" }
variables = { name = "Ada", tier = "gold" }
route = { skills = ["Support", "VIP"], workflow = "Sales and Support Workflow", priority = 10 }
[[calls]]
name = "not kept"
keys = ["2", "12345678"]
lookup.crm = { name = "Ada", tier = "gold", secret = "x" }
variables = { secret = "x" }
route = { skills = ["Support", "VIP"], workflow = "Sales and Support Workflow", priority = 10 }
"#,
        expect![[r#"
            2 kept: ok
            8 not kept: variable secret is null, expected "x""#]],
    );
}

/// A caller going round a menu 2,000 times keeps the newest 50 choices in their path, and is
/// routed (the path's attribute and the action URL stay small).
#[test]
fn a_path_keeps_the_newest_choices_only() {
    let flow = load_flow(ACCOUNT).unwrap();
    let voice = |_: &CallState| "/voice/ivr".to_owned();
    let mut state = step(
        &flow,
        CallState::new(&flow, jiff::Timestamp::UNIX_EPOCH),
        &Input::Start,
        Medium::Voice(&voice),
        &CALLER,
    )
    .state;
    for _ in 0..2_000 {
        state = step(&flow, state, &Input::Digits("0".into()), Medium::Voice(&voice), &CALLER).state;
    }
    assert_eq!(state.path.len(), MAX_PATH);
    let routed = step(&flow, state, &Input::Digits("1".into()), Medium::Voice(&voice), &CALLER);
    let Effect::Route(route) = &routed.effect else { panic!("{:?}", routed.effect) };
    let path = route.attributes["ivr_path"].as_str().unwrap();
    assert_eq!(path, format!("{}1", "0,".repeat(MAX_PATH - 1)));
}

/// A menu where `#` is a choice turns the provider's finish key off, so that pressing it is a
/// key rather than the end of no input; other menus leave it as it is.
#[test]
fn a_menu_with_a_pound_option_turns_the_finish_key_off() {
    let flow = r##"start = "m"
workflow = "W"
[steps.m]
say = "Press pound for the operator."
options = { "#" = { route = { skills = ["Operator"] } }, "1" = { route = { skills = ["Sales"] } } }
"##;
    check_walk(
        flow,
        &["#"],
        expect![[r##"
            start: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="1" finishOnKey="" actionOnEmptyResult="true" language="en-US"><Say language="en-US">Press pound for the operator.</Say></Gather></Response>
            #: route workflow=Some("W") priority=None attributes={"skillsNeeded":["Operator"],"language":"en-US","ivr_path":"#"} <Response/>"##]],
    );
    let shipped = load_flow(SHIPPED).unwrap();
    let started = CallState::new(&shipped, jiff::Timestamp::UNIX_EPOCH);
    let shipped =
        step(&shipped, started, &Input::Start, Medium::Voice(&|_| "/voice/ivr".to_owned()), &CALLER);
    assert!(!shipped.response.to_xml().contains("finishOnKey"), "{}", shipped.response.to_xml());
}

/// Keys meant for another kind of step (a collect, before a reload made it a menu) are not a
/// choice: a menu gathers one key.
#[test]
fn more_keys_than_a_menu_gathers_are_no_choice() {
    check_walk(
        ACCOUNT,
        &["1234"],
        expect![[r#"
        start: gather <Response><Gather input="dtmf speech" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US" hints="account, bill, billing, cuenta, factura, facturación, partner, socio" speechTimeout="auto"><Say voice="Polly.Joanna" language="en-US">Thanks for calling the account line.</Say><Say voice="Polly.Joanna" language="en-US">Say or press 1 for billing, 2 for your account, 3 for our partner, 9 para español.</Say></Gather></Response>
        1234: gather <Response><Gather input="dtmf speech" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US" hints="account, bill, billing, cuenta, factura, facturación, partner, socio" speechTimeout="auto"><Say voice="Polly.Joanna" language="en-US">Sorry, that is not one of the options.</Say><Say voice="Polly.Joanna" language="en-US">Say or press 1 for billing, 2 for your account, 3 for our partner, 9 para español.</Say></Gather></Response>"#]],
    );
}

/// A texter who reaches a `dial` with no step for no answer is told so (the reply was empty).
#[test]
fn a_texter_at_a_dial_with_nowhere_after_it_is_told_so() {
    let flow = load_flow("start = \"desk\"\n[steps.desk]\ndial = { to = \"+15550100400\" }\n").unwrap();
    let texted =
        step(&flow, CallState::new(&flow, jiff::Timestamp::UNIX_EPOCH), &Input::Start, Medium::Text, &TEXTER);
    assert_eq!(texted.effect, Effect::Hangup);
    let xml = texted.response.to_xml();
    assert!(xml.contains("<Message>Sorry, nobody can take your message here. Goodbye.</Message>"), "{xml}");
}

#[test]
fn a_flow_of_ten_thousand_menus_loads_and_walks() {
    let mut source = String::from("start = \"m0\"\n");
    for n in 0..10_000 {
        source.push_str(&format!(
            "[menus.m{n}]\nsay = \"Menu {n}\"\noptions = {{ \"1\" = {{ step = \"m{}\" }}, \"2\" = {{ route = {{ skills = [\"S\"] }} }} }}\n",
            (n + 1) % 10_000
        ));
    }
    let flow = load_flow(&source).expect("loads");
    assert_eq!(flow.steps.len(), 10_000);
    let mut state = CallState::new(&flow, jiff::Timestamp::UNIX_EPOCH);
    for _ in 0..100 {
        state = step(&flow, state, &Input::Digits("1".into()), Medium::Text, &TEXTER).state;
    }
    assert_eq!(state.menu, "m100");
    // A chain of 10,000 steps that never wait is refused as a whole, one error per loop.
    let mut chain = String::from("start = \"s0\"\n");
    for n in 0..10_000 {
        chain.push_str(&format!("[steps.s{n}]\nnext = \"s{}\"\n", (n + 1) % 10_000));
    }
    let errors = load_flow(&chain).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.ends_with("loop without waiting for the caller"), "{errors:?}");
}

#[test]
fn a_set_or_a_lookup_past_what_a_call_carries_is_not_kept() {
    let big = format!(r#"look:{{"name": "{}"}}"#, "x".repeat(MAX_CARRIED));
    check_walk(
        ACCOUNT,
        &["2", "12345678", &big],
        expect![[r##"
        start: gather <Response><Gather input="dtmf speech" action="/voice/ivr" method="POST" timeout="5" numDigits="1" actionOnEmptyResult="true" language="en-US" hints="account, bill, billing, cuenta, factura, facturación, partner, socio" speechTimeout="auto"><Say voice="Polly.Joanna" language="en-US">Thanks for calling the account line.</Say><Say voice="Polly.Joanna" language="en-US">Say or press 1 for billing, 2 for your account, 3 for our partner, 9 para español.</Say></Gather></Response>
        2: gather <Response><Gather input="dtmf" action="/voice/ivr" method="POST" timeout="5" numDigits="8" finishOnKey="#" actionOnEmptyResult="true" language="en-US"><Say voice="Polly.Joanna" language="en-US">Please enter your eight digit account number.</Say></Gather></Response>
        12345678: lookup http://127.0.0.1:9300/customers in 3s [("From", "+15550100999"), ("To", "+15550100200"), ("Channel", "voice"), ("Language", "en-US"), ("Step", "crm"), ("account", "12345678")] <Response/>
        look:{"name": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx: route workflow=Some("Sales and Support Workflow") priority=None attributes={"skillsNeeded":["Support"],"language":"en-US","ivr_path":"2","topic":"account","ivr_variables":{"account":"12345678","lookup_error":"the answer's fields take more than the 1024 bytes a call carries; name the fields to keep","verified":false}} <Response><Say voice="Polly.Joanna" language="en-US">Sorry, we could not find your account. An agent will help you.</Say><Say voice="Polly.Joanna" language="en-US">Connecting you to an agent.</Say></Response>"##]],
    );
}

/// A `when` reading the call's facts (`from`, `to`, `channel`, `language`) and TaskRouter's
/// clock (UTC): where a call that starts at `now` from `from` on `channel` is routed.
fn check_when(from: &str, channel: &str, now: &str, expected: &str) {
    const FLOW: &str = r#"start = "sort"
workflow = "Sales and Support Workflow"

[steps.sort]
when = [
  { if = 'channel == "whatsapp"', next = "chat" },
  { if = 'taskrouter.dayOfWeek IN ["Sat", "Sun"]', next = "weekend" },
  { if = "taskrouter.currentTime < 900 OR taskrouter.currentHour >= 17", next = "night" },
  { if = 'from CONTAINS "+44" AND language == "en-US" AND to == "+15550100200"', next = "uk" },
]
else = "day"

[steps.chat]
route = { skills = ["Chat"] }
[steps.weekend]
route = { skills = ["Weekend"] }
[steps.night]
route = { skills = ["Night"] }
[steps.uk]
route = { skills = ["UK"] }
[steps.day]
route = { skills = ["Day"] }
"#;
    let flow = load_flow(FLOW).expect("the flow loads");
    let now: jiff::Timestamp = now.parse().unwrap();
    let caller = Caller { from, channel, now, ..CALLER };
    let medium = if channel == "voice" { Medium::Voice(&|_| "/voice/ivr".to_owned()) } else { Medium::Text };
    let step = step(&flow, CallState::new(&flow, now), &Input::Start, medium, &caller);
    let Effect::Route(route) = &step.effect else { panic!("{from} {channel} {now}: {:?}", step.effect) };
    assert_eq!(route.attributes["skillsNeeded"], serde_json::json!([expected]), "{from} {channel} {now}");
}

#[test]
fn a_when_reads_the_calls_facts_and_taskrouters_clock() {
    check_when("+15550100001", "voice", "2026-12-07T10:00:00Z", "Day"); // a Monday
    check_when("+15550100001", "whatsapp", "2026-12-05T10:00:00Z", "Chat"); // first condition first
    check_when("+15550100001", "voice", "2026-12-05T10:00:00Z", "Weekend"); // a Saturday
    check_when("+15550100001", "sms", "2026-12-06T23:59:00Z", "Weekend"); // a Sunday
    check_when("+15550100001", "voice", "2026-12-07T08:59:00Z", "Night");
    check_when("+15550100001", "voice", "2026-12-07T09:00:00Z", "Day");
    check_when("+15550100001", "voice", "2026-12-07T16:59:00Z", "Day");
    check_when("+15550100001", "voice", "2026-12-07T17:00:00Z", "Night");
    check_when("+447700900123", "voice", "2026-12-07T10:00:00Z", "UK");
    check_when("+447700900123", "sms", "2026-12-08T12:30:00Z", "UK");
    check_when("+447700900123", "voice", "2026-12-07T18:00:00Z", "Night");
}
