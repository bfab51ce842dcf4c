//! `switchboard simulate`, run as a real process: the shipped Sales/Support scenario prints the
//! expected events (a golden file), and bad scenarios are refused with `file:line`.

use std::path::Path;

use expect_test::expect_file;

use crate::helpers::switchboard_command;

/// Runs `switchboard simulate` on a scenario given as text; returns code, stdout and stderr.
fn simulate_text(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("scenario.toml"), text).unwrap();
    let output = switchboard_command(dir.path()).args(["simulate", "scenario.toml"]).output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

fn check_refused(scenario: &str, expected_stderr: &str) {
    let (code, stdout, stderr) = simulate_text(scenario);
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (2, "", expected_stderr), "{scenario}");
}

#[test]
fn the_shipped_sales_and_support_scenario_prints_the_expected_events() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output =
        switchboard_command(root).args(["simulate", "scenarios/sales-and-support.toml"]).output().unwrap();

    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    expect_file!["../golden/simulate-sales-and-support.jsonl"]
        .assert_eq(&String::from_utf8(output.stdout).unwrap());
}

#[test]
fn bad_scenarios_are_refused_with_file_and_line() {
    check_refused(
        "[[timeline]]\nat = 1\nacept = \"alice\"\n",
        "error: scenario.toml:3: unknown field `acept`, expected one of `at`, `create_task`, `accept`, `reject`, `activity`, `wrap_up`, `complete`, `cancel`, `reason`, `set_activity`, `set_skills`\n",
    );
    check_refused(
        "[[timeline]]\nat = 1\naccept = \"alice\"\n",
        "error: scenario.toml:1: at t=1: alice has no pending reservation\n",
    );
    check_refused(
        "[[timeline]]\nat = 5\nset_activity = { worker = \"alice\", activity = \"Available\" }\n\n[[timeline]]\nat = 2\ncomplete = \"T1\"\n",
        "error: scenario.toml:5: at = 2 comes before the previous entry's 5\n",
    );
    check_refused(
        "[[timeline]]\nat = 0\ncreate_task = { attributes = { skillsNeeded = [\"Sales\"] } }\n",
        "error: scenario.toml:1: at t=0: create_task needs `workflow`: one of \"Assign to Anyone\", \"Sales and Support Workflow\"\n",
    );
    check_refused(
        "[[timeline]]\nat = nan\naccept = \"alice\"\n",
        "error: scenario.toml:1: at = NaN is not a number of seconds from the start\n",
    );
    check_refused(
        "[[timeline]]\nat = 0\nset_activity = { worker = \"zed\", activity = \"Available\" }\n",
        "error: scenario.toml:1: at t=0: no worker named \"zed\"\n",
    );
    check_refused(
        "[[timeline]]\nat = 0\naccept = \"alice\"\ncomplete = \"T1\"\n",
        "error: scenario.toml:1: at t=0: give exactly one action: create_task, accept, reject, wrap_up, complete, cancel, set_activity or set_skills\n",
    );
    check_refused(
        "[workspace]\n[[workspace.queues]]\nname = \"Sales\"\ntarget_workers = \"skill-level > 3\"\n",
        "error: scenario.toml:3: [workspace] target_workers: column 6: hyphens are not allowed in attribute names: `skill-level` (TaskRouter cannot reference such a key; rename it, e.g. `skill_level`)\nskill-level > 3\n     ^\n",
    );
}

#[test]
fn a_missing_scenario_file_is_a_clear_error() {
    let (code, _, stderr) = simulate_text("");
    assert_eq!(code, 0, "an empty scenario runs the default workspace with no events: {stderr}");
    let output = switchboard_command(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args(["simulate", "nope.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: cannot read nope.toml: "));
}
