//! What some tests need beyond the Rust toolchain, installed when it is missing, so that
//! `cargo test` alone sets up a fresh machine: each need has an idempotent script under `tests/`
//! (`sdk/install.sh`, `browser/install.sh`, `fuzz/install.sh`, `hadolint/install.sh`,
//! `systemd/install.sh`, which install Debian packages through `tests/apt.sh`: apt-get as root,
//! or with sudo, and PyPI packages in a virtualenv through `tests/venv.sh`), and a test that has
//! a need calls [`ensure`] first. `.ci/run` runs the same scripts before `cargo test`.
//!
//! Tests run concurrently: a script runs at most once per test process, the tests that need it
//! meanwhile wait, and its outcome is kept for those that come later. Shared by both test
//! binaries (`tests/fuzz.rs` includes this file).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, PoisonError};

/// Something tests need, and how it is installed.
pub struct Requirement {
    /// What it is, for the message when it cannot be installed.
    pub needs: &'static str,
    /// The script that installs it (relative to the repository), and does nothing when it is
    /// there already.
    pub script: &'static str,
    /// Files that must exist once the script has run (relative to the repository, or absolute);
    /// with none, the script's success is the check.
    pub files: &'static [&'static str],
}

/// Installs `requirement` unless it is there already; panics, saying what to run, when it
/// cannot (no network, neither root nor sudo...). Blocks while the script runs.
pub fn ensure(requirement: &Requirement) {
    if let Err(message) = try_ensure(requirement) {
        panic!("{message}");
    }
}

/// [`ensure`] for an async test, on a blocking thread: the test's runtime, which may be serving
/// the application already, keeps running while the script does.
pub async fn ensure_from_async(requirement: &'static Requirement) {
    let ensured = tokio::task::spawn_blocking(move || ensure(requirement)).await;
    if let Err(err) = ensured {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// The outcome of each script run by this process, by script.
static OUTCOMES: Mutex<BTreeMap<&str, Result<(), String>>> = Mutex::new(BTreeMap::new());

fn try_ensure(requirement: &Requirement) -> Result<(), String> {
    // Held while the script runs, so that concurrent tests wait for it instead of running it
    // again (apt-get would fail on its lock, pip and cargo install would race on their files).
    let mut outcomes = OUTCOMES.lock().unwrap_or_else(PoisonError::into_inner);
    outcomes.entry(requirement.script).or_insert_with(|| install(requirement)).clone()
}

fn install(requirement: &Requirement) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Requirement { needs, script, files } = requirement;
    // No terminal on standard input: sudo then fails at once instead of asking for a password
    // that nobody sees (`tests/apt.sh`).
    let ran = Command::new("bash").arg(root.join(script)).current_dir(root).output();
    let run_it = format!(
        "run `bash {script}` (as root, or with sudo, where it installs packages; `.ci/run` runs it \
         before `cargo test`)"
    );
    let output = ran.map_err(|err| format!("the tests need {needs}, and bash cannot run: {err}"))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "the tests need {needs}, and `bash {script}` could not install it ({}):\n{}\n{run_it}",
            output.status,
            said.trim_end()
        ));
    }
    let missing: Vec<&str> = files.iter().copied().filter(|file| !root.join(file).exists()).collect();
    if !missing.is_empty() {
        return Err(format!(
            "the tests need {needs}, and {} is still missing after `bash {script}`: {run_it}",
            missing.join(" and ")
        ));
    }
    Ok(())
}

/// `requirement` cannot be met: the message must contain each of `expected`.
fn check(requirement: &Requirement, expected: &[&str]) {
    let message = try_ensure(requirement).expect_err(requirement.script);
    for part in expected {
        assert!(message.contains(part), "{part:?} is not in {message:?}");
    }
    let again = try_ensure(requirement).expect_err(requirement.script);
    assert_eq!(again, message, "the outcome is kept");
}

#[test]
fn what_cannot_be_installed_fails_saying_what_to_run() {
    // An empty script, after which the program is still missing.
    check(
        &Requirement { needs: "a program", script: "/dev/null", files: &["/nonexistent/program"] },
        &[
            "the tests need a program, and /nonexistent/program is still missing after `bash /dev/null`",
            "run `bash /dev/null` (as root, or with sudo",
        ],
    );
    // A script that fails, and says why.
    check(
        &Requirement { needs: "a tool", script: "tests/nowhere/install.sh", files: &[] },
        &[
            "the tests need a tool, and `bash tests/nowhere/install.sh` could not install it (exit status: 127)",
            "tests/nowhere/install.sh: No such file or directory",
            "run `bash tests/nowhere/install.sh`",
        ],
    );
}
