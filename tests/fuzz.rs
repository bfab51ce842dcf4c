//! The coverage-guided fuzz targets (`fuzz/`, cargo fuzz and libFuzzer), each run for a few
//! seconds from its seed corpus: the bounded run that every `cargo test` makes. The long runs'
//! figures are in BENCHMARKS.md, Fuzzing.
//!
//! A separate test binary, so that the fuzz build (release, instrumented, in `fuzz/target`)
//! never shares the two cores with the timing-sensitive server tests of `tests/api`.
//! `SWITCHBOARD_FUZZ_SECONDS` sets each target's time (10 s by default). cargo-fuzz is installed
//! first when it is missing (`tests/fuzz/install.sh`, through `install::ensure`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// `ensure_from_async` is for the async tests of tests/api.
#[allow(dead_code)]
#[path = "api/install.rs"]
mod install;

use install::Requirement;

/// cargo-fuzz, pinned, built from crates.io (and a C++ compiler for libFuzzer).
const CARGO_FUZZ: Requirement =
    Requirement { needs: "cargo-fuzz, built from crates.io", script: "tests/fuzz/install.sh", files: &[] };

/// Every target in `fuzz/Cargo.toml`: a target added there and not here fails the test.
const TARGETS: [&str; 5] = ["expression", "ivr", "rest_form", "webhook", "workflow"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `cargo fuzz ARGS` in the repository, without a sanitizer (stable Rust has none).
fn cargo_fuzz(subcommand: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["fuzz", subcommand, "--sanitizer", "none"])
        .args(args)
        .output()
        .expect("cargo runs")
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The number after `name:` in libFuzzer's final statistics.
fn final_stat(log: &str, name: &str) -> Option<u64> {
    log.lines().find_map(|line| line.strip_prefix(&format!("stat::{name}:"))?.trim().parse().ok())
}

#[test]
fn every_fuzz_target_runs_from_its_seeds_without_a_crash() {
    install::ensure(&CARGO_FUZZ);
    let listed = Command::new(env!("CARGO")).current_dir(root()).args(["fuzz", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.lines().collect::<Vec<_>>(), TARGETS, "fuzz/Cargo.toml and TARGETS differ");

    let built = cargo_fuzz("build", &[]);
    assert!(built.status.success(), "cargo fuzz build failed:\n{}", tail(&built.stderr));

    let seconds = std::env::var("SWITCHBOARD_FUZZ_SECONDS").unwrap_or_else(|_| "10".to_owned());
    let mut crashed = Vec::new();
    for target in TARGETS {
        // The corpus grows in a temporary directory: the seeds in the tree stay as committed.
        let corpus = tempfile::tempdir().unwrap();
        let artifacts: PathBuf = root().join("target/fuzz-artifacts").join(target);
        std::fs::create_dir_all(&artifacts).unwrap();
        let seeds = root().join("fuzz/seeds").join(target);
        assert!(
            seeds.read_dir().is_ok_and(|mut files| files.next().is_some()),
            "{} is empty",
            seeds.display()
        );
        let run = cargo_fuzz(
            "run",
            &[
                target,
                corpus.path().to_str().unwrap(),
                seeds.to_str().unwrap(),
                "--",
                &format!("-max_total_time={seconds}"),
                &format!("-artifact_prefix={}/", artifacts.display()),
                // The webhook target builds each request with actix-web's TestRequest, which
                // keeps every request it built (about 1.4 KB each); the server does not.
                "-rss_limit_mb=4096",
                "-print_final_stats=1",
            ],
        );
        let log = String::from_utf8_lossy(&run.stderr).into_owned();
        let runs = final_stat(&log, "number_of_executed_units").unwrap_or_default();
        let coverage = log.lines().rev().find_map(|line| line.split(" cov: ").nth(1)?.split(' ').next());
        eprintln!("{target}: {runs} inputs in {seconds} s, coverage {}", coverage.unwrap_or("?"));
        if !run.status.success() {
            crashed.push(format!("{target} ({}):\n{}", artifacts.display(), tail(&run.stderr)));
        } else {
            // A target that runs a handful of inputs is broken, not clean.
            assert!(runs >= 1_000, "{target} ran only {runs} inputs:\n{}", tail(&run.stderr));
        }
    }
    assert!(crashed.is_empty(), "fuzz targets crashed; the inputs are saved in\n{}", crashed.join("\n\n"));
}
