//! Rules about the source tree itself, checked on every `cargo test`: each source file says what
//! it is for, each external crate has one home module, the core stays pure, the server logs
//! instead of printing, and the documents agree with the code they describe (README.md opens
//! with the commands CI runs, docs/configuration.md lists every setting) and link only to files
//! and headings that exist.

use std::path::{Path, PathBuf};

use switchboard::config::{SETTINGS, Settings};

/// A crate (as written in Rust paths) and the only directory allowed to use it.
const CRATE_HOMES: &[(&str, &str)] = &[
    ("actix_web", "src/http/"),
    ("sled", "src/store/"),
    ("postgres", "src/store/"),
    ("quick_xml", "src/twiml/"),
    ("reqwest", "src/outbound/"),
    ("prometheus", "src/metrics.rs"),
];

/// Directories (and files) of the pure core, and what they must not touch: I/O, the clock,
/// logging, async.
const PURE_DIRS: &[&str] = &["src/expr/", "src/routing/", "src/ivr/", "src/voice/call.rs"];
const IMPURE_TOKENS: &[&str] = &[
    "std::fs",
    "std::net",
    "std::env",
    "std::io",
    "std::process",
    "std::thread",
    "SystemTime",
    "Instant",
    "Timestamp::now",
    "Zoned::now",
    "tokio",
    "tracing",
    "sled",
    "actix_web",
    "reqwest",
    "rand::",
];

/// Macros that write to the terminal; the server logs with `tracing`, and the CLI writes its
/// results with `writeln!` so that a closed pipe is not a panic.
const PRINT_MACROS: &[&str] = &["println!", "eprintln!", "print!(", "eprint!(", "dbg!("];

/// Whether `code` contains `token` starting at a word boundary (`rand::` is not in `Operand::`).
fn mentions(code: &str, token: &str) -> bool {
    code.match_indices(token)
        .any(|(idx, _)| !code[..idx].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_'))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// Every violation of the source rules in one file, `path` being relative to the repository.
fn violations(path: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    if !text.starts_with("//!") {
        found.push(format!("{path}: does not start with a `//!` comment saying what it is for"));
    }
    // Test modules may use what they need to drive the code under test.
    let is_test_file = path.ends_with("/tests.rs");
    for (line_idx, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let at = format!("{path}:{}", line_idx + 1);
        for (krate, home) in CRATE_HOMES {
            let uses = mentions(code, &format!("{krate}::")) || mentions(code, &format!("use {krate}"));
            if uses && !path.starts_with(home) {
                found.push(format!("{at}: uses {krate}, which belongs in {home} only"));
            }
        }
        if !is_test_file && PURE_DIRS.iter().any(|dir| path.starts_with(dir)) {
            for token in IMPURE_TOKENS.iter().filter(|token| mentions(code, token)) {
                found.push(format!("{at}: `{token}` in the pure core (pass time and data in)"));
            }
        }
        for token in PRINT_MACROS.iter().filter(|token| mentions(code, token)) {
            found.push(format!("{at}: `{token}`; log with tracing, or write results with writeln!"));
        }
    }
    found
}

#[test]
fn the_rules_catch_what_they_should() {
    let check =
        |path: &str, text: &str, expected: &[&str]| assert_eq!(violations(path, text), expected, "{path}");
    check("src/http/mod.rs", "//! ok\nuse actix_web::App;\n", &[]);
    check(
        "src/app.rs",
        "//! ok\nuse actix_web::App;\n",
        &["src/app.rs:2: uses actix_web, which belongs in src/http/ only"],
    );
    check("src/store/mod.rs", "//! ok\nlet db = sled::open(p);\n", &[]);
    check(
        "src/routing/mod.rs",
        "//! ok\nuse sled;\n",
        &[
            "src/routing/mod.rs:2: uses sled, which belongs in src/store/ only",
            "src/routing/mod.rs:2: `sled` in the pure core (pass time and data in)",
        ],
    );
    check(
        "src/http/x.rs",
        "//! ok\nquick_xml::Writer::new(w);\n",
        &["src/http/x.rs:2: uses quick_xml, which belongs in src/twiml/ only"],
    );
    check(
        "src/expr/eval.rs",
        "//! ok\nlet now = std::time::SystemTime::now();\n",
        &["src/expr/eval.rs:2: `SystemTime` in the pure core (pass time and data in)"],
    );
    check("src/expr/tests.rs", "//! ok\nlet now = std::time::Instant::now();\n", &[]);
    check("src/ivr/walk.rs", "//! ok\n// a comment about tokio is fine\n", &[]);
    check("src/expr/ast.rs", "//! ok\nOperand::Literal(x); my_tokio_like(); writeln!(out);\n", &[]);
    check(
        "src/cli.rs",
        "//! ok\nprintln!(\"x\");\n",
        &["src/cli.rs:2: `println!`; log with tracing, or write results with writeln!"],
    );
    check(
        "src/lib.rs",
        "pub mod x;\n",
        &["src/lib.rs: does not start with a `//!` comment saying what it is for"],
    );
}

#[test]
fn source_files_follow_the_rules() {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("fuzz/fuzz_targets"), &mut files);
    assert!(files.len() >= 10, "found only {files:?}");
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        found.extend(violations(&relative, &std::fs::read_to_string(&file).unwrap()));
    }
    assert!(found.is_empty(), "source rules broken:\n{}", found.join("\n"));
}

#[test]
fn readme_opens_with_the_run_and_test_commands_that_ci_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let first_blocks: Vec<&str> = readme.split("```").skip(1).step_by(2).take(2).collect();
    assert_eq!(first_blocks, ["sh\ncargo run --release -- serve\n", "sh\ncargo test\n"]);
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.lines().any(|line| line.trim() == "cargo test"), "{ci}");
}

/// The project's own documents: README.md, the other top-level ones and `docs/*.md`, as paths
/// relative to the repository.
fn documents() -> Vec<String> {
    let mut found: Vec<String> =
        ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"].iter().map(|name| name.to_string()).collect();
    let mut pages: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    pages.sort();
    found.extend(pages);
    found
}

fn read_document(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// The keys of the rows of a settings table in `markdown`: rows whose second cell is a
/// `SWITCHBOARD_*` variable.
fn setting_rows(markdown: &str) -> Vec<&str> {
    markdown
        .lines()
        .filter(|line| line.split(" | ").nth(1).is_some_and(|cell| cell.starts_with("`SWITCHBOARD_")))
        .filter_map(|line| line.split('`').nth(1))
        .collect()
}

#[test]
fn the_configuration_page_and_the_example_config_document_every_setting() {
    let page = read_document("docs/configuration.md");
    let example = std::fs::read_to_string(root().join("switchboard.toml")).unwrap();
    for setting in SETTINGS {
        let default =
            if setting.default.is_empty() { "(empty)".to_owned() } else { format!("`{}`", setting.default) };
        let row = format!("| `{}` | `{}` | {default} |", setting.key, setting.env);
        assert!(page.contains(&row), "docs/configuration.md lacks the row starting {row}");
        let name = setting.key.rsplit('.').next().unwrap();
        assert!(example.contains(&format!("{name} = ")), "switchboard.toml lacks {}", setting.key);
    }
    for key in setting_rows(&page) {
        assert!(
            SETTINGS.iter().any(|setting| setting.key == key),
            "docs/configuration.md has a row for {key}, which switchboard::config::SETTINGS lacks"
        );
    }
    // The table is the one place settings are listed, so that a new one has one row to add.
    for document in documents().iter().filter(|document| *document != "docs/configuration.md") {
        let text = read_document(document);
        let rows = setting_rows(&text);
        assert!(rows.is_empty(), "{document} lists settings {rows:?}: they belong in docs/configuration.md");
    }
    // The example documents the defaults: running with it is running without it.
    let parsed = Settings::from_toml(&example, Path::new("switchboard.toml")).unwrap();
    assert_eq!(parsed, Settings::default());
}

/// `markdown` without its fenced code blocks, and the headings among what is left.
fn outside_fences(markdown: &str) -> (String, Vec<&str>) {
    let mut prose = String::new();
    let mut headings = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
        } else if !fenced {
            prose.push_str(line);
            prose.push('\n');
            let text = line.trim_start_matches('#');
            if text.len() < line.len() && line.len() - text.len() <= 6 && text.starts_with(' ') {
                headings.push(text.trim());
            }
        }
    }
    (prose, headings)
}

/// `text` with its code spans (`` `x` ``, ``` `` a ` b `` ```) blanked out.
fn without_code_spans(text: &str) -> String {
    let mut kept = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('`') {
        kept.push_str(&rest[..start]);
        let opening = rest[start..].len() - rest[start..].trim_start_matches('`').len();
        let after = &rest[start + opening..];
        // The span ends at the next run of exactly as many backticks; without one, the backticks
        // are text.
        let closing = after
            .match_indices(&rest[start..start + opening])
            .map(|(idx, _)| idx)
            .find(|&idx| !after[..idx].ends_with('`') && !after[idx + opening..].starts_with('`'));
        match closing {
            Some(end) => {
                kept.push(' ');
                rest = &after[end + opening..];
            }
            None => {
                kept.push_str(&rest[start..start + opening]);
                rest = after;
            }
        }
    }
    kept.push_str(rest);
    kept
}

/// The anchor GitHub gives a heading: lowercase, spaces to `-`, punctuation but `-` and `_`
/// dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of `markdown`'s headings; GitHub numbers repeats (`-1`, `-2`...).
fn anchors(markdown: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for heading in outside_fences(markdown).1 {
        let base = slug(heading);
        let mut anchor = base.clone();
        let mut repeat = 0;
        while found.contains(&anchor) {
            repeat += 1;
            anchor = format!("{base}-{repeat}");
        }
        found.push(anchor);
    }
    found
}

/// The targets of `markdown`'s inline links and images (`[text](target "title")`), outside code.
fn link_targets(markdown: &str) -> Vec<String> {
    let prose = without_code_spans(&outside_fences(markdown).0);
    prose
        .match_indices("](")
        .filter_map(|(idx, _)| {
            let inside = &prose[idx + 2..];
            let target = inside[..inside.find(')')?].split_whitespace().next()?;
            Some(target.trim_start_matches('<').trim_end_matches('>').to_owned())
        })
        .collect()
}

/// `target` (a path relative to the directory of the document `from`) as a path relative to
/// the repository, or None when it leads out of it.
fn resolve(from: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// Every relative link of the document `path` (relative to the repository) that leads nowhere,
/// and why: to no file, or into a Markdown file at a heading it does not have. `read` gives a
/// file's text by its path (a directory's or another file's: anything), None when there is none.
fn broken_links(path: &str, markdown: &str, read: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut found = Vec::new();
    for target in link_targets(markdown) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, anchor) =
            target.split_once('#').map_or((target.as_str(), None), |(file, a)| (file, Some(a)));
        let (file, text) = if file.is_empty() {
            (path.to_owned(), markdown.to_owned())
        } else {
            let Some(file) = resolve(path, file) else {
                found.push(format!("{target}: leads out of the repository"));
                continue;
            };
            let Some(text) = read(&file) else {
                found.push(format!("{target}: no file {file}"));
                continue;
            };
            (file, text)
        };
        if let Some(anchor) = anchor.filter(|_| file.ends_with(".md")) {
            if !anchors(&text).iter().any(|known| known == anchor) {
                found.push(format!("{target}: no heading #{anchor} in {file}"));
            }
        }
    }
    found
}

#[test]
fn links_are_resolved_as_github_resolves_them() {
    let check = |heading: &str, expected: &str| assert_eq!(slug(heading), expected, "{heading}");
    check("What it is", "what-it-is");
    check("Two nodes: a hot standby", "two-nodes-a-hot-standby");
    check("What `cargo test` installs", "what-cargo-test-installs");
    check("Supervisors: the live calls, the agents' board", "supervisors-the-live-calls-the-agents-board");
    check("Wrap-up: dispositions and a time limit", "wrap-up-dispositions-and-a-time-limit");
    check("store_copy and --workspace", "store_copy-and---workspace");
    check("Écoute (FR) 2.0", "écoute-fr-20");

    let files = [
        ("README.md", "# Switchboard\n## What it is\n## What it is\n"),
        ("docs/c.md", "# Calls\n```sh\n# a comment\n```\n## The emulator\n#hashtag\n"),
        ("switchboard.toml", ""),
        ("ivr", ""),
    ];
    let read = |path: &str| files.iter().find(|(name, _)| *name == path).map(|(_, text)| text.to_string());
    let check = |path: &str, markdown: &str, expected: &[&str]| {
        assert_eq!(broken_links(path, markdown, &read), expected, "{markdown}")
    };
    check("README.md", "[calls](docs/c.md), [e](docs/c.md#the-emulator), [toml](switchboard.toml)", &[]);
    check("docs/t.md", "[flows](../ivr/), [again](../README.md#what-it-is-1), [up](./../README.md)", &[]);
    check("docs/t.md", "[settings](s.md)", &["s.md: no file docs/s.md"]);
    check("docs/t.md", "[e](c.md#emulator)", &["c.md#emulator: no heading #emulator in docs/c.md"]);
    check("docs/t.md", "[fenced](c.md#a-comment)", &["c.md#a-comment: no heading #a-comment in docs/c.md"]);
    check("docs/t.md", "[no space](c.md#hashtag)", &["c.md#hashtag: no heading #hashtag in docs/c.md"]);
    check("README.md", "# Top\n[here](#top), [gone](#how)", &["#how: no heading #how in README.md"]);
    check("docs/t.md", "[out](../../etc/passwd)", &["../../etc/passwd: leads out of the repository"]);
    check("README.md", "![figure](benches/none.png)", &["benches/none.png: no file benches/none.png"]);
    check("README.md", "[web](https://www.twilio.com/docs#x), [mail](mailto:a@example.com)", &[]);
    check("README.md", "`[code](no.md)`, ``[a ` b](no.md)``, [titled](docs/c.md \"Calls\")", &[]);
    check("README.md", "```\n[fenced](no.md)\n```\n   ```sh\n   [indented](no.md)\n   ```\n", &[]);
    check("README.md", "[line anchor](switchboard.toml#L10)", &[]);
}

#[test]
fn relative_links_in_the_documents_lead_somewhere() {
    let root = root();
    let read = |path: &str| {
        let full = root.join(path);
        full.exists().then(|| std::fs::read_to_string(&full).unwrap_or_default())
    };
    let documents = documents();
    assert!(documents.len() >= 10, "found only {documents:?}");
    let mut found = Vec::new();
    for document in &documents {
        let problems = broken_links(document, &read_document(document), &read);
        found.extend(problems.into_iter().map(|problem| format!("{document}: {problem}")));
    }
    assert!(found.is_empty(), "links that lead nowhere:\n{}", found.join("\n"));
}

#[test]
fn the_readme_links_every_docs_page() {
    let readme = read_document("README.md");
    let linked = link_targets(&readme);
    for page in documents().iter().filter(|document| document.starts_with("docs/")) {
        assert!(linked.iter().any(|target| target == page), "README.md's table of documents lacks {page}");
    }
}
