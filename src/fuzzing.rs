//! What the fuzz targets share: the checks' entry points for cargo fuzz, how many cases each
//! proptest target runs, and the hostile inputs more than one of them feeds to its parser.
//!
//! Each parser of outside input has one check, beside the code it attacks (so that it may
//! reach private items): the parser never panics, either accepts its input or answers an error
//! a person can act on, and what it accepts behaves (round trips, walks, evaluations). Two
//! kinds of fuzz target feed that one check:
//!
//! - **Coverage-guided**, with cargo fuzz (libFuzzer) in `fuzz/`: the functions below take the
//!   fuzzer's bytes. They are built with the `fuzzing` feature, and panic when the check fails,
//!   which libFuzzer reports as a crash with the input saved. `cargo test` runs each for a few
//!   seconds (`tests/fuzz.rs`); BENCHMARKS.md, Fuzzing, has the long runs.
//! - **Property tests** named `fuzz_*`, with proptest: arbitrary text and bytes, plus text built
//!   from each format's own tokens and mutated valid documents, so that most cases get past the
//!   first character. `cargo test` runs each for 1,000 or 2,000 cases (about six seconds of CPU
//!   in all, in a debug build); a long run sets every target's count at once, in a release
//!   build that keeps the overflow checks and debug assertions of a debug one:
//!
//! ```text
//! CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
//!     SWITCHBOARD_FUZZ_CASES=1500000 cargo test --release --lib -q fuzz_
//! ```
//!
//! A failure prints the input (proptest shrinks it first; libFuzzer saves it under
//! `fuzz/artifacts/`): it becomes a one-line regression test next to the fix.

// The strategies below serve the property tests only; a `fuzzing` build has the checks alone.
#![cfg_attr(not(test), allow(dead_code))]

use std::sync::LazyLock;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use serde_json::{Value, json};

use crate::expr::{Clock, Scope, WorkerFacts};
use crate::ivr::{CallState, Input};

/// cargo fuzz's `expression` target: the bytes as text, compiled in every context, and what
/// compiles evaluated against a Flex worker, a task, both, and both at a time of day.
pub fn expression(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else { return };
    static TASK: LazyLock<Value> = LazyLock::new(
        || json!({"skillsNeeded": ["Sales"], "language": "es", "priority": 5, "task": {"x": [1, "a"]}, "n": "6"}),
    );
    static WORKER: LazyLock<Value> = LazyLock::new(|| {
        json!({"routing": {"skills": ["Sales", "Support"], "levels": {"Sales": 3}}, "languages": ["es", "en"],
            "contact_uri": "client:alice", "worker": {"y": true}})
    });
    let facts = WorkerFacts::attributes_only(&WORKER);
    let scopes = [
        Scope::task(&TASK),
        Scope::worker(facts),
        Scope::task_and_worker(&TASK, facts),
        Scope::task_and_worker(&TASK, facts).at(Clock::from_unix_seconds(1_764_000_000)),
    ];
    holds(crate::expr::fuzz::check_source(source, &scopes));
}

/// cargo fuzz's `workflow` target: the bytes as a workflow configuration, and what parses
/// walked by tasks of the onboarding guide's shape and others, settled and moved on.
pub fn workflow(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let moments =
        vec![(0, true, false), (20_000, false, false), (45_000, true, true), (i64::MAX, false, true)];
    let walks = [
        (json!({"skillsNeeded": ["Sales"], "priority": 5}), 0, moments.clone()),
        (json!({"skillsNeeded": "Support", "language": "es", "x": {"y": [1, 2]}}), 1_000, moments),
        (json!(null), i64::MIN, vec![(i64::MIN, true, true)]),
    ];
    holds(crate::routing::workflow_fuzz::check_text(text, &walks));
}

/// cargo fuzz's `ivr` target: the bytes as a flow file, and what loads walked by voice and by
/// text, from a call on a weekday morning and on a Sunday night, through every kind of input.
pub fn ivr(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let Some(flow) = holds(crate::ivr::fuzz::check_source(source)) else { return };
    let digits = |keys: &str| Input::Digits(keys.to_owned());
    let inputs = [
        Input::Start,
        digits("1"),
        digits(""),
        digits("9"),
        Input::Text(" sales ".to_owned()),
        digits("*"),
        digits("2"),
        Input::Recording { url: "https://example.com/r".to_owned(), duration: u32::MAX },
        digits("#"),
        digits("0"),
        Input::Text("STOP".to_owned()),
    ];
    for second in [1_764_662_400, 1_765_058_400] {
        let start = CallState::new(&flow, jiff::Timestamp::from_second(second).expect("in range"));
        for by_text in [false, true] {
            holds(crate::ivr::fuzz::assert_walks(&flow, start.clone(), &inputs, by_text));
        }
    }
}

/// cargo fuzz's `webhook` target: a request to the IVR webhook made of the bytes. The first
/// byte's bits say POST or GET, signed as the provider signs, and behind a proxy; the rest is
/// the query string, the signature header, the forwarded host and the body, split at the
/// first three newlines.
pub fn webhook(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(4, |&byte| byte == b'\n');
    let mut part = || parts.next().unwrap_or_default().to_vec();
    let query = String::from_utf8_lossy(&part()).into_owned();
    let (signature_header, forwarded, body) = (part(), part(), part());
    holds(crate::http::webhook_fuzz::check_request(&crate::http::webhook_fuzz::WebhookRequest {
        post: flags & 1 != 0,
        body,
        query,
        signature_header,
        forwarded,
        sign_as_provider: flags & 2 != 0,
        behind_proxy: flags & 4 != 0,
    }));
}

/// cargo fuzz's `rest_form` target: the bytes as a REST API body or query string, and every
/// parameter read every way the API reads one.
pub fn rest_form(data: &[u8]) {
    holds(crate::http::rest_fuzz::check_encoded(data));
}

/// The value of a check that held; a check that failed is a crash for the fuzzer.
fn holds<T>(outcome: Result<T, TestCaseError>) -> T {
    outcome.unwrap_or_else(|failure| panic!("a fuzz check failed: {failure}"))
}

/// The environment variable that sets the case count of every fuzz target.
pub(crate) const CASES_VARIABLE: &str = "SWITCHBOARD_FUZZ_CASES";

/// The proptest configuration of a fuzz target that runs `ci_cases` cases in `cargo test`
/// (or [`CASES_VARIABLE`]'s count, when it is set).
pub(crate) fn config(ci_cases: u32) -> Config {
    let cases = match std::env::var(CASES_VARIABLE) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{CASES_VARIABLE} must be a whole number of cases, not {text:?}")),
        Err(_) => ci_cases,
    };
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// One change to a document, at the node found by its index in a walk of the tree (taken
/// modulo the number of nodes, so that any index names a node).
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    /// The node becomes this value.
    Replace(usize, Value),
    /// The node loses one of its entries or elements (chosen by the second index).
    Remove(usize, usize),
    /// The node gains this entry (an object) or element (an array).
    Insert(usize, String, Value),
}

/// Zero to three changes to a document, with new values drawn from `values`: mostly valid
/// documents made a little wrong, which get further into a validator than random ones.
pub(crate) fn mutations(values: BoxedStrategy<Value>) -> impl Strategy<Value = Vec<Mutation>> {
    let mutation = prop_oneof![
        3 => (any::<usize>(), values.clone()).prop_map(|(at, value)| Mutation::Replace(at, value)),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(at, which)| Mutation::Remove(at, which)),
        1 => (any::<usize>(), awkward_text(), values)
            .prop_map(|(at, key, value)| Mutation::Insert(at, key, value)),
    ];
    prop_oneof![1 => Just(Vec::new()), 3 => prop::collection::vec(mutation, 1..4)]
}

/// `document` with `mutations` applied in order.
pub(crate) fn mutated(mut document: Value, mutations: Vec<Mutation>) -> Value {
    for mutation in mutations {
        let at = match &mutation {
            Mutation::Replace(at, _) | Mutation::Remove(at, _) | Mutation::Insert(at, _, _) => *at,
        };
        let mut remaining = at % node_count(&document);
        let node = node_at(&mut document, &mut remaining).expect("the index is below the node count");
        match (mutation, node) {
            (Mutation::Replace(_, value), node) => *node = value,
            (Mutation::Remove(_, which), Value::Object(object)) if !object.is_empty() => {
                let key = object.keys().nth(which % object.len()).expect("below the length").clone();
                object.shift_remove(&key);
            }
            (Mutation::Remove(_, which), Value::Array(array)) if !array.is_empty() => {
                array.remove(which % array.len());
            }
            (Mutation::Insert(_, key, value), Value::Object(object)) => {
                object.insert(key, value);
            }
            (Mutation::Insert(_, _, value), Value::Array(array)) => array.push(value),
            _ => {}
        }
    }
    document
}

fn node_count(value: &Value) -> usize {
    1 + match value {
        Value::Array(array) => array.iter().map(node_count).sum(),
        Value::Object(object) => object.values().map(node_count).sum(),
        _ => 0,
    }
}

/// The node `remaining` steps into a walk of `value` (itself first, then its children's trees).
fn node_at<'v>(value: &'v mut Value, remaining: &mut usize) -> Option<&'v mut Value> {
    if *remaining == 0 {
        return Some(value);
    }
    *remaining -= 1;
    let children: Box<dyn Iterator<Item = &mut Value>> = match value {
        Value::Array(array) => Box::new(array.iter_mut()),
        Value::Object(object) => Box::new(object.values_mut()),
        _ => return None,
    };
    for child in children {
        if let Some(found) = node_at(child, remaining) {
            return Some(found);
        }
    }
    None
}

/// Up to `max_tokens` of a format's `tokens` in any order, each followed by one of
/// `separators`: text that gets past a reader's first character, and often much further.
pub(crate) fn token_soup(
    tokens: Vec<&'static str>,
    separators: Vec<&'static str>,
    max_tokens: usize,
) -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(tokens), prop::sample::select(separators)), 0..=max_tokens)
        .prop_map(|pieces| pieces.into_iter().flat_map(|(token, separator)| [token, separator]).collect())
}

/// Numbers at the edges of what JSON readers hold: the limits of i64, u64 and f64, and the
/// smallest fractions.
pub(crate) fn edge_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            Value::from(i64::MIN),
            Value::from(i64::MAX),
            Value::from(u64::MAX),
            Value::from(f64::MAX),
            Value::from(f64::MIN_POSITIVE),
            Value::from(-0.0),
            Value::from(0),
            Value::from(1),
            Value::from(-1),
        ]),
    ]
}

/// Short text that is sometimes plain, sometimes not: ASCII words, digits, empty, spaces,
/// quotes, combining marks, right-to-left text, emoji and control characters.
pub(crate) fn awkward_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9_]{0,6}",
        1 => prop::sample::select(vec![
            "", " ", "\t", "\n", "\r\n", "\"", "'", "\\", "\u{0}", "\u{7f}", "e\u{301}", "\u{202e}abc",
            "😀", "日本語", "\u{feff}", "%", "&", "=", "+", ",", "null", "true", "0800", "-0", "1e400",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// JSON documents of every kind, up to four levels deep, with edge numbers and awkward text in
/// keys and values (keys also drawn from a few short names so that paths meet them).
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        edge_number(),
        awkward_text().prop_map(Value::String),
    ];
    let key = prop_oneof![3 => "[a-dxy]", 1 => awkward_text()];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// JSON text nested `depth` levels of arrays and objects deep, a value at the bottom, closed
/// or not: what a hostile client sends to exhaust a recursive reader.
pub(crate) fn deeply_nested_json() -> impl Strategy<Value = String> {
    (1..2_000usize, any::<bool>(), any::<bool>()).prop_map(|(depth, objects, closed)| {
        let (open, close) = if objects { (r#"{"a":"#, "}") } else { ("[", "]") };
        let mut text = open.repeat(depth) + "1";
        if closed {
            text.push_str(&close.repeat(depth));
        }
        text
    })
}
