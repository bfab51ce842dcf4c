//! Rules about the source tree itself, checked on every `cargo test`: each source file says what
//! it is for, each external crate has one home module, the core stays pure, the server logs
//! instead of printing, and the documents agree with the code they describe.

use std::path::{Path, PathBuf};

use switchboard::config::{SETTINGS, Settings};

/// A crate (as written in Rust paths) and the only directory allowed to use it.
const CRATE_HOMES: &[(&str, &str)] = &[
    ("actix_web", "src/http/"),
    ("sled", "src/store/"),
    ("postgres", "src/store/"),
    ("quick_xml", "src/twiml/"),
    ("reqwest", "src/outbound/"),
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

#[test]
fn readme_and_example_config_document_every_setting() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let example = std::fs::read_to_string(root().join("switchboard.toml")).unwrap();
    for setting in SETTINGS {
        let default =
            if setting.default.is_empty() { "(empty)".to_owned() } else { format!("`{}`", setting.default) };
        let row = format!("| `{}` | `{}` | {default} |", setting.key, setting.env);
        assert!(readme.contains(&row), "README.md lacks the row starting {row}");
        let name = setting.key.rsplit('.').next().unwrap();
        assert!(example.contains(&format!("{name} = ")), "switchboard.toml lacks {}", setting.key);
    }
    // The example documents the defaults: running with it is running without it.
    let parsed = Settings::from_toml(&example, Path::new("switchboard.toml")).unwrap();
    assert_eq!(parsed, Settings::default());
}
