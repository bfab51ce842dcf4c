//! A flow as a picture: `switchboard ivr graph FLOW` prints it as a Mermaid flowchart or a
//! Graphviz DOT graph, from one list of nodes and edges, so that both say the same. Menus are
//! boxes (with their kind: collect, lookup, when, dial); where a call ends (routed to the
//! agents, a voicemail, hung up) are rounded; edges are labelled with the key, the variable
//! collected, the `when` condition, "no choice" (`on_fail`), "answer"/"error" (a lookup), "no
//! answer"/"busy" (a dial), or "closed" (outside business hours).

use super::{Action, Choice, DialTarget, Flow, Route};

/// A node: its identifier (letters, digits and `_` only), its label and whether it ends a call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    id: String,
    label: String,
    end: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Edge {
    from: String,
    to: String,
    label: String,
}

/// The flow's nodes and edges, in a stable order (steps by name, keys in order).
fn graph(flow: &Flow) -> (Vec<Node>, Vec<Edge>) {
    let step_id = |name: &str| format!("step_{}", identifier(name));
    let mut nodes = vec![Node { id: "start".to_owned(), label: "call".to_owned(), end: false }];
    let mut edges = vec![Edge { from: "start".to_owned(), to: step_id(&flow.start), label: String::new() }];
    if let Some(hours) = &flow.hours {
        edges.push(Edge { from: "start".to_owned(), to: step_id(&hours.closed), label: "closed".to_owned() });
    }
    for (name, step) in &flow.steps {
        let id = step_id(name);
        let kind = match &step.action {
            Action::Menu(_)
            | Action::Next(_)
            | Action::Route(_)
            | Action::Voicemail { .. }
            | Action::Hangup => String::new(),
            Action::Collect(collect) => format!(" (collect {})", collect.into),
            Action::Lookup(lookup) => format!(" (lookup {})", lookup.url),
            Action::When(_) => " (when)".to_owned(),
            Action::Dial(dial) => format!(" (dial {})", dial_label(&dial.target)),
        };
        nodes.push(Node { id: id.clone(), label: format!("{name}{kind}"), end: false });
        let mut edge =
            |to: String, label: &str| edges.push(Edge { from: id.clone(), to, label: label.to_owned() });
        let end = |suffix: &str, label: String, nodes: &mut Vec<Node>| {
            let to = format!("{id}_{suffix}");
            nodes.push(Node { id: to.clone(), label, end: true });
            to
        };
        match &step.action {
            Action::Menu(menu) => {
                for (key, option) in &menu.options {
                    let (to, label) = match &option.choice {
                        Choice::Step(next) => (step_id(next), key.to_string()),
                        Choice::Language { language, menu: next } => {
                            (step_id(next.as_deref().unwrap_or(name)), format!("{key}: {language}"))
                        }
                        Choice::Route(route) => {
                            let suffix = format!("route_{}", identifier(&key.to_string()));
                            (end(&suffix, route_label("agents", route), &mut nodes), key.to_string())
                        }
                    };
                    edge(to, &label);
                }
                if let Some(next) = &menu.attempts.on_fail {
                    edge(step_id(next), "no choice");
                }
            }
            Action::Collect(collect) => {
                edge(step_id(&collect.next), &collect.into);
                if let Some(next) = &collect.attempts.on_fail {
                    edge(step_id(next), "no valid answer");
                }
            }
            Action::Lookup(lookup) => {
                edge(step_id(&lookup.next), "answer");
                edge(step_id(&lookup.on_error), "error");
            }
            Action::When(when) => {
                for branch in &when.branches {
                    edge(step_id(&branch.next), &branch.source);
                }
                edge(step_id(&when.otherwise), "else");
            }
            Action::Dial(dial) => {
                let answered = end("hangup", "hang up".to_owned(), &mut nodes);
                edge(answered, "answered");
                if let Some(next) = &dial.on_no_answer {
                    edge(step_id(next), "no answer");
                }
                if let Some(next) = &dial.on_busy {
                    edge(step_id(next), "busy");
                }
            }
            Action::Route(route) => edge(end("route", route_label("agents", route), &mut nodes), ""),
            Action::Voicemail { route, .. } => {
                edge(end("voicemail", route_label("voicemail", route), &mut nodes), "message")
            }
            Action::Hangup => edge(end("hangup", "hang up".to_owned(), &mut nodes), ""),
            Action::Next(next) => edge(step_id(next), ""),
        }
    }
    (nodes, edges)
}

fn dial_label(target: &DialTarget) -> &str {
    match target {
        DialTarget::Number(to) | DialTarget::Client(to) | DialTarget::Sip(to) => to,
        DialTarget::Conference(conference) => &conference.name,
    }
}

fn route_label(kind: &str, route: &Route) -> String {
    let mut label = kind.to_owned();
    if !route.skills.is_empty() {
        label.push_str(&format!(": {}", route.skills.join(", ")));
    }
    if let Some(workflow) = &route.workflow {
        label.push_str(&format!(" ({workflow})"));
    }
    label
}

/// `text` as an identifier: letters and digits kept, everything else its code between `_`s
/// (closed, so that two names never meet: `x-a` is `x_2d_a`, `x˚` is `x_2da_`).
fn identifier(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_string() } else { format!("_{:x}_", u32::from(c)) })
        .collect()
}

/// The flow as a Mermaid flowchart (`flowchart TD`); labels escaped as Mermaid entities.
pub fn mermaid(flow: &Flow) -> String {
    let quote = |text: &str| {
        text.replace('&', "#amp;").replace('"', "#quot;").replace('<', "#lt;").replace('>', "#gt;")
    };
    let (nodes, edges) = graph(flow);
    let mut lines = vec!["flowchart TD".to_owned()];
    for node in &nodes {
        let label = quote(&node.label);
        lines.push(if node.end {
            format!("  {}([\"{label}\"])", node.id)
        } else {
            format!("  {}[\"{label}\"]", node.id)
        });
    }
    for edge in &edges {
        lines.push(match edge.label.as_str() {
            "" => format!("  {} --> {}", edge.from, edge.to),
            label => format!("  {} -->|\"{}\"| {}", edge.from, quote(label), edge.to),
        });
    }
    lines.join("\n") + "\n"
}

/// The flow as a Graphviz DOT digraph; labels escaped as DOT strings.
pub fn dot(flow: &Flow) -> String {
    let quote = |text: &str| text.replace('\\', "\\\\").replace('"', "\\\"");
    let (nodes, edges) = graph(flow);
    let mut lines = vec![
        "digraph flow {".to_owned(),
        "  node [shape=box, fontname=\"sans-serif\"];".to_owned(),
        "  edge [fontname=\"sans-serif\", fontsize=11];".to_owned(),
    ];
    for node in &nodes {
        let shape = if node.end { ", style=rounded" } else { "" };
        lines.push(format!("  {} [label=\"{}\"{shape}];", node.id, quote(&node.label)));
    }
    for edge in &edges {
        lines.push(match edge.label.as_str() {
            "" => format!("  {} -> {};", edge.from, edge.to),
            label => format!("  {} -> {} [label=\"{}\"];", edge.from, edge.to, quote(label)),
        });
    }
    lines.push("}".to_owned());
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;
    use crate::ivr::load_flow;

    #[test]
    fn the_shipped_flow_as_mermaid_and_dot() {
        let flow = load_flow(include_str!("../../ivr/main.toml")).unwrap();
        expect![[r#"
            flowchart TD
              start["call"]
              step_goodbye["goodbye"]
              step_goodbye_hangup(["hang up"])
              step_main["main"]
              step_main_route_1(["agents: Sales"])
              step_main_route_2(["agents: Support"])
              start --> step_main
              step_goodbye --> step_goodbye_hangup
              step_main -->|"1"| step_main_route_1
              step_main -->|"2"| step_main_route_2
              step_main -->|"no choice"| step_goodbye
        "#]]
        .assert_eq(&mermaid(&flow));
        expect![[r#"
            digraph flow {
              node [shape=box, fontname="sans-serif"];
              edge [fontname="sans-serif", fontsize=11];
              start [label="call"];
              step_goodbye [label="goodbye"];
              step_goodbye_hangup [label="hang up", style=rounded];
              step_main [label="main"];
              step_main_route_1 [label="agents: Sales", style=rounded];
              step_main_route_2 [label="agents: Support", style=rounded];
              start -> step_main;
              step_goodbye -> step_goodbye_hangup;
              step_main -> step_main_route_1 [label="1"];
              step_main -> step_main_route_2 [label="2"];
              step_main -> step_goodbye [label="no choice"];
            }
        "#]]
        .assert_eq(&dot(&flow));
    }

    #[test]
    fn names_and_labels_are_escaped() {
        let flow = load_flow(
            "start = \"a \\\"b\\\"\"\n[menus.\"a \\\"b\\\"\"]\nsay = \"hi\"\n[menus.\"a \\\"b\\\"\".options]\n\"1\" = { route = { skills = [\"<x>\"] } }\n",
        )
        .unwrap();
        expect![[r#"
            flowchart TD
              start["call"]
              step_a_20__22_b_22_["a #quot;b#quot;"]
              step_a_20__22_b_22__route_1(["agents: #lt;x#gt;"])
              start --> step_a_20__22_b_22_
              step_a_20__22_b_22_ -->|"1"| step_a_20__22_b_22__route_1
        "#]]
        .assert_eq(&mermaid(&flow));
        expect![[r#"
            digraph flow {
              node [shape=box, fontname="sans-serif"];
              edge [fontname="sans-serif", fontsize=11];
              start [label="call"];
              step_a_20__22_b_22_ [label="a \"b\""];
              step_a_20__22_b_22__route_1 [label="agents: <x>", style=rounded];
              start -> step_a_20__22_b_22_;
              step_a_20__22_b_22_ -> step_a_20__22_b_22__route_1 [label="1"];
            }
        "#]]
        .assert_eq(&dot(&flow));
        // Names that differ stay apart however they are written.
        assert_ne!(identifier("x-a"), identifier("x\u{2da}"));
        assert_ne!(identifier("a_b"), identifier("a\u{5f}b "));
    }
}
