//! A flow as a picture: `switchboard ivr graph FLOW` prints it as a Mermaid flowchart or a
//! Graphviz DOT graph, from one list of nodes and edges, so that both say the same. Menus are
//! boxes; where a call ends (routed to the agents, a voicemail, hung up) are rounded; edges are
//! labelled with the key, "no choice" (`on_fail`), or "closed" (outside business hours).

use super::{Choice, Flow, Route};

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

/// The flow's nodes and edges, in a stable order (menus by name, keys in order).
fn graph(flow: &Flow) -> (Vec<Node>, Vec<Edge>) {
    let menu_id = |name: &str| format!("menu_{}", identifier(name));
    let mut nodes = vec![Node { id: "start".to_owned(), label: "call".to_owned(), end: false }];
    let mut edges = vec![Edge { from: "start".to_owned(), to: menu_id(&flow.start), label: String::new() }];
    if let Some(hours) = &flow.hours {
        edges.push(Edge { from: "start".to_owned(), to: menu_id(&hours.closed), label: "closed".to_owned() });
    }
    for (name, menu) in &flow.menus {
        let id = menu_id(name);
        nodes.push(Node { id: id.clone(), label: name.clone(), end: false });
        for (key, choice) in &menu.options {
            let (to, label) = match choice {
                Choice::Menu(next) => (menu_id(next), key.to_string()),
                Choice::Language { language, menu: next } => {
                    (menu_id(next.as_deref().unwrap_or(name)), format!("{key}: {language}"))
                }
                Choice::Route(route) => {
                    let to = format!("{id}_route_{}", identifier(&key.to_string()));
                    nodes.push(Node { id: to.clone(), label: route_label("agents", route), end: true });
                    (to, key.to_string())
                }
            };
            edges.push(Edge { from: id.clone(), to, label });
        }
        if let Some(route) = &menu.voicemail {
            let to = format!("{id}_voicemail");
            nodes.push(Node { id: to.clone(), label: route_label("voicemail", route), end: true });
            edges.push(Edge { from: id.clone(), to, label: "message".to_owned() });
        }
        if menu.hangup {
            let to = format!("{id}_hangup");
            nodes.push(Node { id: to.clone(), label: "hang up".to_owned(), end: true });
            edges.push(Edge { from: id.clone(), to, label: String::new() });
        }
        if let Some(next) = &menu.on_fail {
            edges.push(Edge { from: id.clone(), to: menu_id(next), label: "no choice".to_owned() });
        }
    }
    (nodes, edges)
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

/// `text` as an identifier: letters and digits kept, everything else `_` with its code.
fn identifier(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_string() } else { format!("_{:x}", u32::from(c)) })
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
    let mut lines = vec!["digraph flow {".to_owned(), "  node [shape=box];".to_owned()];
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
              menu_goodbye["goodbye"]
              menu_goodbye_hangup(["hang up"])
              menu_main["main"]
              menu_main_route_1(["agents: Sales"])
              menu_main_route_2(["agents: Support"])
              start --> menu_main
              menu_goodbye --> menu_goodbye_hangup
              menu_main -->|"1"| menu_main_route_1
              menu_main -->|"2"| menu_main_route_2
              menu_main -->|"no choice"| menu_goodbye
        "#]]
        .assert_eq(&mermaid(&flow));
        expect![[r#"
            digraph flow {
              node [shape=box];
              start [label="call"];
              menu_goodbye [label="goodbye"];
              menu_goodbye_hangup [label="hang up", style=rounded];
              menu_main [label="main"];
              menu_main_route_1 [label="agents: Sales", style=rounded];
              menu_main_route_2 [label="agents: Support", style=rounded];
              start -> menu_main;
              menu_goodbye -> menu_goodbye_hangup;
              menu_main -> menu_main_route_1 [label="1"];
              menu_main -> menu_main_route_2 [label="2"];
              menu_main -> menu_goodbye [label="no choice"];
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
              menu_a_20_22b_22["a #quot;b#quot;"]
              menu_a_20_22b_22_route_1(["agents: #lt;x#gt;"])
              start --> menu_a_20_22b_22
              menu_a_20_22b_22 -->|"1"| menu_a_20_22b_22_route_1
        "#]]
        .assert_eq(&mermaid(&flow));
        expect![[r#"
            digraph flow {
              node [shape=box];
              start [label="call"];
              menu_a_20_22b_22 [label="a \"b\""];
              menu_a_20_22b_22_route_1 [label="agents: <x>", style=rounded];
              start -> menu_a_20_22b_22;
              menu_a_20_22b_22 -> menu_a_20_22b_22_route_1 [label="1"];
            }
        "#]]
        .assert_eq(&dot(&flow));
    }
}
