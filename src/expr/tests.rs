//! Data-driven tests of the expression language: the shared conformance vectors, one-line
//! `check` cases for every operator and rule, error messages with their carets, and property
//! tests that the parser and evaluator never panic.

use expect_test::{Expect, expect};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::fuzz::check_source;
use super::{Clock, Context, Expression, Scope, WorkerFacts};

/// Compiles `source` for `context` and evaluates it against `task` and `worker` (attributes).
fn eval(context: Context, source: &str, task: Value, worker: Value) -> bool {
    let expression =
        Expression::parse(source, context).unwrap_or_else(|err| panic!("{source}: {err}\n{}", err.snippet()));
    let facts = WorkerFacts::attributes_only(&worker);
    let scope = Scope::task_and_worker(&task, facts);
    expression.evaluate(&scope)
}

fn check(context: Context, source: &str, task: Value, worker: Value, expected: bool) {
    assert_eq!(eval(context, source, task, worker), expected, "{context}: {source}");
}

fn check_filter(source: &str, task: Value, expected: bool) {
    check(Context::Filter, source, task, json!({}), expected);
}

fn check_queue(source: &str, worker: Value, expected: bool) {
    check(Context::Queue, source, json!({}), worker, expected);
}

fn check_target(source: &str, task: Value, worker: Value, expected: bool) {
    check(Context::Target, source, task, worker, expected);
}

/// The error message and caret for `source`.
fn check_error(context: Context, source: &str, expected: Expect) {
    match Expression::parse(source, context) {
        Ok(parsed) => panic!("{source} parsed as {parsed}"),
        Err(err) => expected.assert_eq(&format!("{err}\n{}", err.snippet())),
    }
}

/// The canonical rendering of a parsed expression.
fn check_display(source: &str, expected: &str) {
    let parsed = Expression::parse(source, Context::Filter).unwrap();
    assert_eq!(parsed.to_string(), expected);
    assert_eq!(Expression::parse(expected, Context::Filter).unwrap(), parsed);
}

fn clock_at(rfc3339: &str) -> Clock {
    let timestamp: jiff::Timestamp = rfc3339.parse().unwrap();
    Clock::from_unix_seconds(timestamp.as_second())
}

fn check_clock(source: &str, rfc3339: &str, expected: bool) {
    let expression = Expression::parse(source, Context::Filter).unwrap();
    let task = json!({});
    let scope = Scope::task(&task).at(clock_at(rfc3339));
    assert_eq!(expression.evaluate(&scope), expected, "{source} at {rfc3339}");
}

#[test]
fn every_shared_conformance_vector_passes() {
    let vectors: Vec<Value> =
        serde_json::from_str(include_str!("../../tests/conformance/expressions.json")).unwrap();
    assert!(vectors.len() >= 40, "the vector file looks truncated");
    for vector in &vectors {
        let source = vector["expr"].as_str().unwrap();
        let context: Context = vector["context"].as_str().unwrap().parse().unwrap();
        let parsed = Expression::parse(source, context);
        if vector["expect"] == "error" {
            let err = parsed.expect_err(source);
            assert!(err.column() >= 1 && err.to_string().contains("column"), "{err}");
            continue;
        }
        let task = vector.get("task").cloned().unwrap_or(json!({}));
        let worker = vector.get("worker").cloned().unwrap_or(json!({}));
        let facts = WorkerFacts::attributes_only(&worker);
        let mut scope = Scope::task_and_worker(&task, facts);
        if let Some(now) = vector.get("now").and_then(Value::as_str) {
            scope = scope.at(clock_at(now));
        }
        let expected = vector["expect"].as_bool().unwrap();
        let parsed = parsed.unwrap_or_else(|err| panic!("{source}: {err}"));
        assert_eq!(parsed.evaluate(&scope), expected, "{source} ({})", vector["source"]);
    }
}

#[test]
fn equality_and_its_aliases() {
    check_filter(r#"a == "x""#, json!({"a": "x"}), true);
    check_filter(r#"a = "x""#, json!({"a": "x"}), true);
    check_filter(r#"a=="x""#, json!({"a": "X"}), false);
    check_filter("a == 'x'", json!({"a": "x"}), true);
    check_filter("a == 3", json!({"a": 3}), true);
    check_filter("a == 3", json!({"a": 3.0}), true);
    check_filter("a == 3.0", json!({"a": 3}), true);
    check_filter("a == true", json!({"a": true}), true);
    check_filter("a == false", json!({"a": true}), false);
    check_filter(r#"a == "true""#, json!({"a": true}), false);
    check_filter("a == null", json!({}), true);
    check_filter("a == null", json!({"a": null}), true);
    check_filter("a == null", json!({"a": 0}), false);
    check_filter("a == b", json!({"a": 1, "b": 1}), true);
    check_filter("a == b", json!({}), true);
    check_filter("9007199254740993 == a", json!({"a": 9007199254740993_i64}), true);
    check_filter("9007199254740992 == a", json!({"a": 9007199254740993_i64}), false);
}

#[test]
fn inequality_is_exactly_not_equal() {
    check_filter(r#"a != "v""#, json!({}), true);
    check_filter(r#"a != "v""#, json!({"a": "v"}), false);
    check_filter("a != null", json!({}), false);
    check_filter("a != null", json!({"a": ["x"]}), true);
    check_filter("a != null", json!({"a": {"b": 1}}), true);
    check_filter(r#"a != "x""#, json!({"a": ["x"]}), true);
    check_filter("a != 5", json!({"a": "5"}), false);
}

#[test]
fn ordering_compares_numbers_numeric_strings_and_strings() {
    check_filter("a > 5", json!({"a": 6}), true);
    check_filter("a > 5", json!({"a": "6"}), true);
    check_filter("a > 5", json!({"a": "6.5"}), true);
    check_filter(r#"a > "5""#, json!({"a": 6}), true);
    check_filter("a >= 5", json!({"a": 5}), true);
    check_filter("a < 5", json!({"a": 4.99}), true);
    check_filter("a <= 5", json!({"a": 5.0}), true);
    check_filter("a <= -1", json!({"a": -2}), true);
    check_filter("a > 5", json!({"a": "six"}), false);
    check_filter("a < 5", json!({"a": "six"}), false);
    check_filter(r#"a > "b""#, json!({"a": "c"}), true);
    check_filter(r#"a < "B""#, json!({"a": "a"}), false);
    check_filter(r#"a > "9""#, json!({"a": "10"}), false);
    check_filter("a > 1", json!({}), false);
    check_filter("a < 1", json!({}), false);
    check_filter("a > 0", json!({"a": true}), false);
    check_filter("a > 0", json!({"a": [1]}), false);
    check_filter("a >= 0800", json!({"a": 800}), true);
}

#[test]
fn contains_is_a_substring_test_on_strings_only() {
    check_filter(r#"a CONTAINS "ell""#, json!({"a": "hello"}), true);
    check_filter(r#"a contains "ELL""#, json!({"a": "hello"}), false);
    check_filter(r#"a CONTAINS """#, json!({"a": "hello"}), true);
    check_filter(r#"a CONTAINS "x""#, json!({"a": ["x"]}), false);
    check_filter("a CONTAINS 5", json!({"a": "555"}), false);
    check_filter(r#"a CONTAINS "x""#, json!({}), false);
}

#[test]
fn has_in_and_not_in_need_an_array() {
    check_filter(r#"a HAS "x""#, json!({"a": ["x", "y"]}), true);
    check_filter(r#"a >- "x""#, json!({"a": ["x", "y"]}), true);
    check_filter(r#"a has "z""#, json!({"a": ["x", "y"]}), false);
    check_filter("a HAS 2", json!({"a": [1, 2]}), true);
    check_filter("a HAS 2", json!({"a": ["2"]}), true);
    check_filter(r#"a HAS "x""#, json!({"a": "x"}), false);
    check_filter(r#"a HAS "x""#, json!({}), false);
    check_filter(r#"a HAS ["x"]"#, json!({"a": ["x"]}), false);
    check_filter(r#""x" IN a"#, json!({"a": ["x"]}), true);
    check_filter(r#""x" <- a"#, json!({"a": ["x"]}), true);
    check_filter(r#""x" in a"#, json!({"a": "x"}), false);
    check_filter("a IN [1, 2, 3]", json!({"a": 2}), true);
    check_filter("a IN []", json!({"a": 2}), false);
    check_filter("a IN [1, 2]", json!({"a": [1]}), false);
    check_filter("a IN [null]", json!({}), true);
    check_filter(r#""x" NOT IN a"#, json!({"a": ["y"]}), true);
    check_filter(r#""x" not in a"#, json!({"a": ["x"]}), false);
    check_filter(r#""x" NOT IN a"#, json!({}), false);
    check_filter(r#""x" NOT IN a"#, json!({"a": "y"}), false);
    check_filter(r#"a NOT IN ["x"]"#, json!({}), true);
}

#[test]
fn logic_precedence_and_keyword_case() {
    check_filter("a == 1 OR a == 2 AND b == 3", json!({"a": 1, "b": 0}), true);
    check_filter("(a == 1 OR a == 2) AND b == 3", json!({"a": 1, "b": 0}), false);
    check_filter("a == 1 and b == 2 or c == 3", json!({"c": 3}), true);
    check_filter("a == 1 && b == 2 || c == 3", json!({"a": 1, "b": 2}), true);
    check_filter("NOT a == 1", json!({"a": 2}), true);
    check_filter("not (a == 1 or a == 2)", json!({"a": 2}), false);
    check_filter("NOT NOT a == 1", json!({"a": 1}), true);
    check_filter("NOT a == 1 AND b == 1", json!({"a": 2, "b": 1}), true);
    check_filter("((a == 1))", json!({"a": 1}), true);
    check_filter("TRUE == a", json!({"a": true}), true);
    check_filter("Null == a", json!({}), true);
}

#[test]
fn paths_walk_objects_and_arrays() {
    let task = json!({"o": {"list": [{"k": "v"}, [7]], "in": "kw"}});
    check_filter(r#"o.list[0].k == "v""#, task.clone(), true);
    check_filter("o.list[1][0] == 7", task.clone(), true);
    check_filter("o.list [ 1 ] [ 0 ] == 7", task.clone(), true);
    check_filter("o.list[9] == null", task.clone(), true);
    check_filter("o.list.k == null", task.clone(), true);
    check_filter(r#"o.in == "kw""#, task.clone(), true);
    check_filter("o == null", task, false);
}

#[test]
fn filter_context_reads_task_prefix_as_the_task_itself() {
    check_filter(r#""Sales" IN task.skillsNeeded"#, json!({"skillsNeeded": ["Sales"]}), true);
    check_filter(r#"task.type == "a""#, json!({"type": "a"}), true);
    check_filter(r#"task.type == "a""#, json!({"type": "a", "task": {"type": "b"}}), false);
    check_filter(r#"task.type == "b""#, json!({"type": "a", "task": {"type": "b"}}), true);
    check_filter(r#"task == "x""#, json!({"task": "x"}), true);
}

#[test]
fn queue_context_reads_worker_attributes() {
    let worker = json!({"routing": {"skills": ["Sales"], "levels": {"Sales": 3}}});
    check_queue(r#"routing.skills HAS "Sales" AND routing.levels.Sales >= 3"#, worker.clone(), true);
    check_queue("routing.levels.Sales > 3", worker.clone(), false);
    check_queue(r#"worker.routing.skills HAS "Sales""#, worker.clone(), true);
    check_queue(r#"worker.name == "w""#, json!({"name": "x", "worker": {"name": "w"}}), true);
    check_queue("1 == 1", json!({}), true);
}

#[test]
fn target_context_reads_task_worker_and_built_ins() {
    let task = json!({"lang": "es", "agent": "WK1"});
    let worker = json!({"langs": ["en", "es"], "sid": "WK-attribute"});
    check_target("task.lang IN worker.langs", task.clone(), worker.clone(), true);
    check_target("worker.langs HAS task.lang", task.clone(), worker.clone(), true);
    check_target(r#"worker.sid == "WK-attribute""#, task.clone(), worker.clone(), true);

    let facts = WorkerFacts {
        attributes: &worker,
        sid: Some("WK1"),
        friendly_name: Some("alice"),
        activity_sid: Some("WA1"),
        activity_name: Some("Available"),
    };
    let scope = Scope::task_and_worker(&task, facts);
    let holds = |source: &str| Expression::parse(source, Context::Target).unwrap().evaluate(&scope);
    assert!(holds("worker.sid == task.agent"));
    assert!(holds(r#"worker.friendly_name == "alice""#));
    assert!(holds(r#"worker.activity_name IN ["Available", "Break"]"#));
    assert!(holds(r#"worker.activity_sid == "WA1""#));
}

#[test]
fn clock_variables_read_the_utc_time_passed_in() {
    let window = "taskrouter.currentTime > 0800 AND taskrouter.currentTime < 1830";
    check_clock(window, "2026-11-23T12:00:00Z", true);
    check_clock(window, "2026-11-23T19:05:00Z", false);
    check_clock(window, "2026-11-23T13:00:00+05:00", false);
    check_clock("taskrouter.currentTime == 905", "2026-11-23T09:05:59Z", true);
    check_clock(r#"taskrouter.currentHour == "09""#, "2026-11-23T09:05:00Z", true);
    check_clock("taskrouter.currentHour == 9", "2026-11-23T09:05:00Z", true);
    check_clock("taskrouter.currentHour >= 17", "2026-11-23T09:05:00Z", false);
    check_clock("taskrouter.currentMin == 5", "2026-11-23T09:05:00Z", true);
    check_clock(r#"taskrouter.dayOfWeek == "Mon""#, "2026-11-23T23:59:59Z", true);
    check_clock(r#"taskrouter.dayOfWeek = 'Sat'"#, "2026-11-28T12:00:00Z", true);
    check_clock(r#"taskrouter.dayOfWeek == "Thu""#, "1970-01-01T00:00:00Z", true);
    check_clock(r#"taskrouter.dayOfWeek == "Wed""#, "1969-12-31T23:00:00Z", true);
    check_clock(r#"taskrouter.dayOfWeek IN ["Sat", "Sun"]"#, "2026-11-29T00:00:00Z", true);
    // Without a clock the variables are NULL, so no time window matches.
    let expression = Expression::parse(window, Context::Filter).unwrap();
    assert!(!expression.evaluate(&Scope::task(&json!({}))));
}

#[test]
fn canonical_display_reparses_to_the_same_tree() {
    check_display("a=='x'", r#"a == "x""#);
    check_display(r#"a == 'say "hi"'"#, r#"a == 'say "hi"'"#);
    check_display("a >- 1 or b <- [1,2] and not c = null", "a HAS 1 OR (b IN [1, 2] AND NOT c == null)");
    check_display("(a == 1 or b == 2) and c contains 'x'", r#"(a == 1 OR b == 2) AND c CONTAINS "x""#);
    check_display("not (a == 1 and b == 2)", "NOT (a == 1 AND b == 2)");
    check_display("a not in [true, false, 1.5, 2.0, -3]", "a NOT IN [true, false, 1.5, 2.0, -3]");
    check_display("x.y[3].z == 0800", "x.y[3].z == 800");
    check_display("a == 1 && b == 2 || c == 3", "(a == 1 AND b == 2) OR c == 3");
}

#[test]
fn errors_name_the_column_and_draw_a_caret() {
    check_error(
        Context::Queue,
        "skill-level > 3",
        expect![[r#"
            column 6: hyphens are not allowed in attribute names: `skill-level` (TaskRouter cannot reference such a key; rename it, e.g. `skill_level`)
            skill-level > 3
                 ^"#]],
    );
    check_error(
        Context::Filter,
        "language == ",
        expect![[r#"
            column 13: expected a value (a string, number, true, false, null, array or attribute), but the expression ends here
            language == 
                        ^"#]],
    );
    check_error(
        Context::Filter,
        "high_value AND x == 1",
        expect![[r#"
            column 1: expected a comparison operator after `high_value` (==, !=, >, >=, <, <=, HAS, IN, NOT IN, CONTAINS); to test a flag write `high_value == true`
            high_value AND x == 1
            ^"#]],
    );
    check_error(
        Context::Filter,
        r#"name == "O'Brien"#,
        expect![[r#"
            column 9: this string has no closing "
            name == "O'Brien
                    ^"#]],
    );
    check_error(
        Context::Filter,
        "day == ’Thu’",
        expect![[r#"
            column 8: unexpected character `’`: typographic quotes are not string quotes, use ' or "
            day == ’Thu’
                   ^"#]],
    );
    check_error(
        Context::Filter,
        "(a == 1 OR b == 2",
        expect![[r#"
            column 18: expected `)`, but the expression ends here
            (a == 1 OR b == 2
                             ^"#]],
    );
    check_error(
        Context::Filter,
        "a == 1 b == 2",
        expect![[r#"
            column 8: expected AND, OR or the end of the expression, found `b`
            a == 1 b == 2
                   ^"#]],
    );
    check_error(
        Context::Filter,
        "a == 1 == 2",
        expect![[r#"
            column 8: expected AND, OR or the end of the expression, found `==`
            a == 1 == 2
                   ^"#]],
    );
    check_error(
        Context::Filter,
        "a ! b",
        expect![[r#"
            column 3: unexpected character `!`: write NOT for negation or != for inequality
            a ! b
              ^"#]],
    );
    check_error(
        Context::Filter,
        "a == 1.",
        expect![[r#"
            column 6: `1.` is not a number (write digits, optionally followed by `.` and digits)
            a == 1.
                 ^"#]],
    );
    check_error(
        Context::Filter,
        "a IN [b, 1]",
        expect![[r#"
            column 7: array literals hold constants only, found `b`
            a IN [b, 1]
                  ^"#]],
    );
    check_error(
        Context::Filter,
        "a[x] == 1",
        expect![[r#"
            column 3: expected an array index (0, 1, 2...), found `x`
            a[x] == 1
              ^"#]],
    );
    check_error(
        Context::Filter,
        "a. == 1",
        expect![[r#"
            column 4: expected an attribute name after `.`, found `==`
            a. == 1
               ^"#]],
    );
    check_error(
        Context::Filter,
        "a NOT == 1",
        expect![[r#"
            column 3: expected a comparison operator, found `NOT`
            a NOT == 1
              ^"#]],
    );
    check_error(
        Context::Filter,
        "città == 1",
        expect![[r#"
            column 5: unexpected character `à`: attribute names use ASCII letters, digits and `_`
            città == 1
                ^"#]],
    );
    check_error(
        Context::Target,
        r#"lang == "es""#,
        expect![[r#"
            column 1: `lang` names neither the task nor the worker: in a target expression write `task.lang` or `worker.lang`
            lang == "es"
            ^"#]],
    );
    check_error(
        Context::Target,
        "task == 1",
        expect![[r#"
            column 1: `task` on its own is not a value: write `task.<attribute>`
            task == 1
            ^"#]],
    );
    check_error(
        Context::Queue,
        "x == 1 AND taskrouter.currentHour > 8",
        expect![[r#"
            column 12: `taskrouter.currentHour`: clock variables cannot be used in a queue expression (queue membership does not change with the time of day); use them in a workflow filter or target
            x == 1 AND taskrouter.currentHour > 8
                       ^"#]],
    );
    check_error(
        Context::Filter,
        "taskrouter.currenttime > 800",
        expect![[r#"
            column 1: unknown clock variable `taskrouter.currenttime`: use taskrouter.currentTime, taskrouter.currentHour, taskrouter.currentMin or taskrouter.dayOfWeek
            taskrouter.currenttime > 800
            ^"#]],
    );
}

#[test]
fn nesting_is_bounded_without_overflowing_the_stack() {
    let deep = |n: usize, open: &str, close: &str| format!("{}a == 1{}", open.repeat(n), close.repeat(n));
    assert!(Expression::parse(&deep(super::MAX_DEPTH, "(", ")"), Context::Filter).is_ok());
    assert!(Expression::parse(&deep(super::MAX_DEPTH, "NOT ", ""), Context::Filter).is_ok());
    for (source, column) in [
        (deep(100_000, "(", ")"), 65),
        ("(".repeat(1_000_000), 65),
        (deep(100_000, "NOT ", ""), 4 * 64 + 1),
        ("NOT (".repeat(40) + "a == 1" + &")".repeat(40), 5 * 32 + 1),
    ] {
        let err = Expression::parse(&source, Context::Filter).unwrap_err();
        assert_eq!((err.column(), err.kind()), (column, &super::ErrorKind::TooDeep { limit: 64 }));
    }
    // Long flat chains are wide, not deep: they parse, evaluate and drop without recursion.
    let chain = vec!["a == 1"; 200_000].join(" AND ");
    let expression = Expression::parse(&chain, Context::Filter).unwrap();
    assert!(expression.evaluate(&Scope::task(&json!({"a": 1}))));
}

#[test]
fn syntax_check_accepts_any_path_and_rejects_bad_syntax() {
    assert!(super::Expression::check_syntax("lang == 'es' AND task.x HAS 1").is_ok());
    assert!(super::Expression::check_syntax("taskrouter.nothing == 1").is_ok());
    assert_eq!(super::Expression::check_syntax("a ==").unwrap_err().column(), 5);
}

/// Text built from the grammar's tokens (names, paths, operators and their aliases, keywords in
/// any case, brackets, quotes closed or not, numbers of every size, non-ASCII letters), joined
/// by a space, by nothing or by other white space, so that most cases get past the lexer and
/// many parse.
fn expression_soup() -> impl Strategy<Value = String> {
    let tokens = vec![
        "a",
        "b.c",
        "task.x",
        "task",
        "worker.y",
        "worker.sid",
        "worker",
        "taskrouter.currentTime",
        "taskrouter.dayOfWeek",
        "taskrouter.nope",
        "d[0]",
        "d[99999999999999999999999]",
        "[",
        "]",
        "(",
        ")",
        ",",
        ".",
        "==",
        "=",
        "!=",
        ">",
        ">=",
        "<",
        "<=",
        ">-",
        "<-",
        "HAS",
        "has",
        "IN",
        "NOT",
        "not in",
        "CONTAINS",
        "AND",
        "OR",
        "&&",
        "||",
        "&",
        "!",
        "true",
        "null",
        "'s'",
        "\"t\"",
        "'",
        "\"",
        "‘q’",
        "0800",
        "-1.5",
        "-",
        "1.",
        "1.2.3",
        "99999999999999999999999",
        "1e5",
        "skill-level",
        "é",
        "日本",
        "😀",
    ];
    crate::fuzzing::token_soup(tokens, vec![" ", " ", " ", "", "\t", "\n"], 40)
}

proptest! {
    #![proptest_config(crate::fuzzing::config(2_000))]

    /// Fuzz target (see `crate::fuzzing`): any text compiles or is refused at a column of it;
    /// what compiles in a context also passes the context-free syntax check.
    #[test]
    fn fuzz_expression_parser_on_arbitrary_text(source in any::<String>()) {
        check_source(&source, &[])?;
    }

    /// Fuzz target: the grammar's tokens in any order compile or are refused at a column, and
    /// what compiles behaves against any attributes, in every kind of scope.
    #[test]
    fn fuzz_expression_parser_on_token_soup_and_evaluation(
        source in expression_soup(),
        task in crate::fuzzing::json_value(),
        worker in crate::fuzzing::json_value(),
        seconds in any::<i64>(),
    ) {
        let facts = WorkerFacts::attributes_only(&worker);
        let scopes = [
            Scope::task(&task),
            Scope::worker(facts),
            Scope::task_and_worker(&task, facts),
            Scope::task_and_worker(&task, facts).at(Clock::from_unix_seconds(seconds)),
        ];
        check_source(&source, &scopes)?;
    }
}
