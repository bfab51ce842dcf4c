//! `switchboard ivr check`, the real executable: the shipped flows pass, and a broken file is
//! refused with file:line for every mistake and exit code 2.

use crate::helpers::switchboard_command;

#[test]
fn the_shipped_ivr_passes_and_mistakes_are_listed_with_file_and_line() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = switchboard_command(repo).args(["ivr", "check"]).output().unwrap();
    assert_eq!(shipped.status.code(), Some(0), "{}", String::from_utf8_lossy(&shipped.stderr));
    assert_eq!(String::from_utf8_lossy(&shipped.stdout).trim(), "2 flow(s) in ivr: ok");

    let dir = tempfile::tempdir().unwrap();
    let broken = "start = \"main\"\n[menus.main]\nsay = \"Press 1\"\n[menus.main.options]\n\"1\" = { menu = \"sales\" }\n\"x\" = { menu = \"main\" }\n";
    std::fs::write(dir.path().join("broken.toml"), broken).unwrap();
    std::fs::write(dir.path().join("syntax.toml"), "start = \"main\"\n[menus.main\n").unwrap();
    let line = |numbers: &str| format!("start = \"m\"\n{numbers}\n[menus.m]\nsay = \"Bye\"\nhangup = true\n");
    std::fs::write(dir.path().join("a.toml"), line("numbers = [\"+15550100200\"]")).unwrap();
    std::fs::write(dir.path().join("b.toml"), line("numbers = [\"+15550100300\", \"+15550100200\"]"))
        .unwrap();
    let output = switchboard_command(dir.path()).args(["ivr", "check", "."]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        "error: ./b.toml:2: number +15550100200 is already answered by a.toml\n\
         ./broken.toml:5: step \"main\", option 1: the step \"sales\" does not exist\n\
         ./broken.toml:6: step \"main\": option \"x\" is not a key (0-9, * or #)\n\
         ./syntax.toml:2: unclosed table, expected `]`"
    );
}

#[test]
fn ivr_test_runs_the_shipped_scenarios_and_a_failing_call_exits_1() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = switchboard_command(repo).args(["ivr", "test"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&shipped.stdout);
    assert_eq!(shipped.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&shipped.stderr));
    assert!(stdout.trim_end().ends_with("18 passed, 0 failed"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::copy(repo.join("ivr/main.toml"), dir.path().join("main.toml")).unwrap();
    let scenario = "flow = \"main.toml\"\n[[calls]]\nname = \"sales\"\nkeys = [\"1\"]\nroute = { skills = [\"Sales\"], workflow = \"Sales and Support Workflow\" }\n[[calls]]\nname = \"support by mistake\"\nkeys = [\"2\"]\nroute = { skills = [\"Sales\"], workflow = \"Sales and Support Workflow\" }\n";
    std::fs::write(dir.path().join("tests/calls.toml"), scenario).unwrap();
    let output = switchboard_command(dir.path()).args(["ivr", "test", "."]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: 1 of 2 calls went otherwise\n"), "{stderr}");
    assert!(stderr.contains("ok   ./tests/calls.toml:2: sales"), "{stderr}");
    assert!(
        stderr.contains("FAIL ./tests/calls.toml:6: support by mistake: routed with skills [\"Support\"]"),
        "{stderr}"
    );
    assert!(stderr.trim_end().ends_with("1 passed, 1 failed"), "{stderr}");
}

#[test]
fn ivr_graph_prints_a_flow_as_mermaid_or_dot_and_names_the_flows_it_knows() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mermaid = switchboard_command(repo).args(["ivr", "graph", "main"]).output().unwrap();
    let text = String::from_utf8_lossy(&mermaid.stdout);
    assert_eq!(mermaid.status.code(), Some(0), "{}", String::from_utf8_lossy(&mermaid.stderr));
    assert!(
        text.starts_with("flowchart TD\n") && text.contains("step_main -->|\"1\"| step_main_route_1"),
        "{text}"
    );
    let dot =
        switchboard_command(repo).args(["ivr", "graph", "main.toml", "--format", "dot"]).output().unwrap();
    let text = String::from_utf8_lossy(&dot.stdout);
    assert!(text.starts_with("digraph flow {") && text.trim_end().ends_with('}'), "{text}");
    let unknown = switchboard_command(repo).args(["ivr", "graph", "sales"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&unknown.stderr).trim(),
        "error: no flow \"sales\" in ivr (flows: account.toml, main.toml)"
    );
}

/// The README's IVR section shows a flow with one step of each kind and a scenario for it: both
/// as written there pass `ivr check` and `ivr test`.
#[test]
fn the_readmes_example_flow_and_its_scenario_pass() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let section = readme.split("## IVR flows\n").nth(1).expect("README has an IVR flows section");
    let section = section.split("\n## ").next().unwrap();
    let blocks: Vec<&str> =
        section.split("```toml\n").skip(1).map(|block| block.split("```").next().unwrap()).collect();
    let [flow, scenario] = blocks[..] else { panic!("a flow and a scenario: {blocks:?}") };
    for kind in ["speech", "collect", "lookup", "when", "set", "route", "dial", "next", "hangup"] {
        assert!(flow.contains(&format!("\n{kind} = ")), "the example has a {kind} step");
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::write(dir.path().join("example.toml"), flow).unwrap();
    std::fs::write(dir.path().join("tests/example.toml"), scenario).unwrap();
    let output = switchboard_command(dir.path()).args(["ivr", "test", "."]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.trim_end().ends_with("1 passed, 0 failed"), "{stdout}");
}
