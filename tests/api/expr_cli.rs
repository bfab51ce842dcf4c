//! `switchboard expr check` and `switchboard expr eval`, run as real processes: every shared
//! conformance vector, and the errors a person gets for bad input.

use std::path::Path;

use serde_json::Value;

use crate::helpers::switchboard_command;

/// Runs `switchboard expr ARGS`; returns the exit code, standard output and standard error.
fn expr(args: &[&str]) -> (i32, String, String) {
    let output =
        switchboard_command(Path::new(env!("CARGO_MANIFEST_DIR"))).arg("expr").args(args).output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

fn check(args: &[&str], code: i32, stdout: &str, stderr: &str) {
    let (actual_code, actual_stdout, actual_stderr) = expr(args);
    assert_eq!(
        (actual_code, actual_stdout.as_str(), actual_stderr.as_str()),
        (code, stdout, stderr),
        "{args:?}"
    );
}

#[test]
fn every_shared_conformance_vector_passes_through_the_command() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/expressions.json"))
            .unwrap();
    let vectors: Vec<Value> = serde_json::from_str(&text).unwrap();
    for vector in &vectors {
        let source = vector["expr"].as_str().unwrap();
        let mut args =
            vec!["eval".to_owned(), "--context".to_owned(), vector["context"].as_str().unwrap().to_owned()];
        for key in ["task", "worker"] {
            if let Some(value) = vector.get(key) {
                args.extend([format!("--{key}"), value.to_string()]);
            }
        }
        if let Some(now) = vector.get("now").and_then(Value::as_str) {
            args.extend(["--now".to_owned(), now.to_owned()]);
        }
        args.push(source.to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();

        let (code, stdout, stderr) = expr(&args);

        if vector["expect"] == "error" {
            assert_eq!(code, 2, "{source}: {stdout}{stderr}");
            assert!(stderr.starts_with("error: invalid expression: column "), "{source}: {stderr}");
            assert!(stderr.trim_end().ends_with('^'), "{source}: caret missing in {stderr}");
        } else {
            let expected = vector["expect"].as_bool().unwrap();
            assert_eq!(
                (code, stdout.as_str(), stderr.as_str()),
                (0, format!("{expected}\n").as_str(), ""),
                "{source}"
            );
        }
    }
}

#[test]
fn eval_reads_the_clock_and_worker_built_ins_from_flags() {
    let window = "taskrouter.currentTime > 0800 AND taskrouter.currentTime < 1830";
    check(&["eval", "--context", "filter", "--now", "2026-11-23T12:00:00Z", window], 0, "true\n", "");
    check(&["eval", "--context", "filter", "--now", "2026-11-23T19:05:00Z", window], 0, "false\n", "");
    check(
        &[
            "eval",
            "--context",
            "filter",
            "--now",
            "2026-11-28T12:00:00+01:00",
            "taskrouter.dayOfWeek == 'Sat'",
        ],
        0,
        "true\n",
        "",
    );
    check(
        &["eval", "--context", "target", "--activity-name", "Break", "worker.activity_name IN ['Break']"],
        0,
        "true\n",
        "",
    );
    check(
        &[
            "eval",
            "--context",
            "target",
            "--worker-sid",
            "WK1",
            "--task",
            r#"{"agent":"WK1"}"#,
            "worker.sid == task.agent",
        ],
        0,
        "true\n",
        "",
    );
    check(
        &["eval", "--context", "target", "--worker-name", "alice", "worker.friendly_name == 'bob'"],
        0,
        "false\n",
        "",
    );
    check(&["eval", "--context", "filter", "-1 < 0"], 0, "true\n", "");
}

#[test]
fn check_prints_the_canonical_form_or_the_error_with_a_caret() {
    check(&["check", "skills has 'x' and level >= 03"], 0, "valid expression\n", "");
    check(
        &["check", "--context", "queue", "skills has 'x' and level >= 03"],
        0,
        "valid queue expression: skills HAS \"x\" AND level >= 3\n",
        "",
    );
    check(
        &["check", "skill-level > 3"],
        2,
        "",
        "error: invalid expression: column 6: hyphens are not allowed in attribute names: `skill-level` (TaskRouter cannot reference such a key; rename it, e.g. `skill_level`)\n\n    skill-level > 3\n         ^\n",
    );
    check(
        &["check", "--context", "target", "lang == 'es'"],
        2,
        "",
        "error: invalid expression: column 1: `lang` names neither the task nor the worker: in a target expression write `task.lang` or `worker.lang`\n\n    lang == 'es'\n    ^\n",
    );
}

#[test]
fn bad_arguments_are_errors_that_name_the_argument() {
    let filter = ["eval", "--context", "filter"];
    let with = |extra: &[&'static str]| [&filter[..], extra].concat();
    check(
        &with(&["--task", "{skills: 1}", "a == 1"]),
        2,
        "",
        "error: --task is not valid JSON: key must be a string at line 1 column 2\n",
    );
    check(
        &with(&["--worker", "[1]", "a == 1"]),
        2,
        "",
        "error: --worker must be a JSON object of attributes, like {\"skills\": [\"Sales\"]}\n",
    );
    let (code, _, stderr) = expr(&with(&["--now", "yesterday", "a == 1"]));
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: --now \"yesterday\" is not an RFC 3339 time such as 2026-11-23T09:30:00Z"),
        "{stderr}"
    );
    let (code, _, stderr) = expr(&["eval", "--context", "queues", "a == 1"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown context `queues`: use queue, filter or target"), "{stderr}");
    let (code, _, stderr) = expr(&["eval", "a == 1"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--context <CONTEXT>"), "{stderr}");
}
