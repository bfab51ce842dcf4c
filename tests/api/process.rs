//! The real `switchboard serve` process: configuration layers, start-up errors, a clean stop
//! on SIGINT and SIGTERM, JSON log lines, and `switchboard healthcheck` asking it.

use std::time::Duration;

use crate::helpers::{SwitchboardProcess, switchboard_command};

/// Long enough for a loaded CI machine; reaching it means the process hangs.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

fn get(url: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let response = reqwest::get(url).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    })
}

/// Starts `serve` with `args` and `env` in a fresh directory holding `config_file` (if any) as
/// switchboard.toml.
fn start(
    config_file: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (tempfile::TempDir, Result<SwitchboardProcess, String>) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(text) = config_file {
        std::fs::write(dir.path().join("switchboard.toml"), text).unwrap();
    }
    let mut command = switchboard_command(dir.path());
    command.arg("serve").args(args).envs(env.iter().copied());
    let process = SwitchboardProcess::start(command);
    (dir, process)
}

/// Runs `serve` expecting it to refuse to start; returns its exit code and standard error.
fn refuse(config_file: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(text) = config_file {
        std::fs::write(dir.path().join("switchboard.toml"), text).unwrap();
    }
    let output =
        switchboard_command(dir.path()).arg("serve").args(args).envs(env.iter().copied()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).replace(&dir.path().display().to_string(), "DIR");
    (output.status.code().unwrap_or(-1), stderr)
}

fn stops_cleanly_on(signal: libc::c_int) {
    // Arrange: built-in defaults, with only the port moved by the environment.
    let (_dir, process) = start(None, &[], &[("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0")]);
    let mut process = process.unwrap();
    let (status, body) = get(&process.url("/healthz"));
    assert_eq!(status, 200);
    assert_eq!(body, format!(r#"{{"status":"ok","version":"{}"}}"#, env!("CARGO_PKG_VERSION")));

    // Act
    process.signal(signal);

    // Assert
    let (status, log) = process.wait(STOP_TIMEOUT).expect("the server stops after the signal");
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", log.join("\n"));
    assert!(log.iter().any(|line| line.contains("stopped")), "{}", log.join("\n"));
}

#[test]
fn serve_on_defaults_answers_healthz_and_stops_cleanly_on_sigterm() {
    stops_cleanly_on(libc::SIGTERM);
}

#[test]
fn the_front_door_and_the_start_log_name_the_pages_and_the_webhook_urls() {
    let public = [
        ("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0"),
        ("SWITCHBOARD_VOICE_PUBLIC_URL", "https://sb.example.com"),
    ];
    let (_dir, process) = start(None, &[], &public);
    let process = process.unwrap();
    let logged = process.wait_for_log(STOP_TIMEOUT, "Messaging: a message comes in").unwrap();
    let (status, page) = get(&process.url("/"));

    assert!(logged.contains("https://sb.example.com/sms/incoming"), "{logged}");
    assert_eq!(status, 200);
    let expected = [
        format!("<title>Switchboard {}</title>", env!("CARGO_PKG_VERSION")),
        "<code>https://sb.example.com/voice/incoming</code>".to_owned(),
        "<code>https://sb.example.com/voice/status</code>".to_owned(),
        "<code>https://sb.example.com/voice/fallback</code>".to_owned(),
        "<code>https://sb.example.com/sms/incoming</code>".to_owned(),
        "href=\"https://sb.example.com/agent\"".to_owned(),
        "href=\"https://sb.example.com/admin\"".to_owned(),
        "ok: this node serves".to_owned(),
    ];
    for text in expected {
        assert!(page.contains(&text), "{text} in:\n{page}");
    }
    let version = switchboard_command(std::path::Path::new(".")).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("switchboard {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn serve_stops_cleanly_on_sigint() {
    stops_cleanly_on(libc::SIGINT);
}

#[test]
fn switchboard_toml_in_the_working_directory_is_read_and_the_environment_wins() {
    // The file's port is unusable (privileged, and taken by nobody we know); the environment
    // variable replaces it, and the file's other settings still apply.
    let file = "[http]\nlisten = \"127.0.0.1:1\"\nworkers = 1\n";
    let (_dir, process) = start(Some(file), &[], &[("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0")]);
    let process = process.unwrap();
    assert_eq!(get(&process.url("/healthz")).0, 200);

    let file = "[http]\nlisten = \"127.0.0.1:0\"\n";
    let (_dir, process) = start(Some(file), &[], &[]);
    assert_eq!(get(&process.unwrap().url("/healthz")).0, 200);
}

#[test]
fn config_flag_names_the_file_to_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custom.toml");
    std::fs::write(&path, "[http]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let (_cwd, process) = start(None, &["--config", path.to_str().unwrap()], &[]);
    assert_eq!(get(&process.unwrap().url("/healthz")).0, 200);
}

/// `serve` refuses to start with exit code 2 and `expected` in its error output.
fn check_refused(file: Option<&str>, args: &[&str], env: &[(&str, &str)], expected: &str) {
    let (code, stderr) = refuse(file, args, env);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(expected), "expected {expected:?} in:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn start_up_mistakes_are_clear_errors_with_exit_code_2() {
    check_refused(
        None,
        &["--config", "missing.toml"],
        &[],
        "error: configuration file missing.toml does not exist",
    );
    check_refused(
        None,
        &[],
        &[("SWITCHBOARD_CONFIG", "gone.toml")],
        "error: configuration file gone.toml does not exist",
    );
    check_refused(
        Some("[http]\nlisten = \"127.0.0.1:0\"\nport = 9\n"),
        &[],
        &[],
        "error: DIR/switchboard.toml: TOML parse error at line 3, column 1\n  |\n3 | port = 9\n  | ^^^^\nunknown field `port`, expected one of `listen`, `workers`, `shutdown_timeout`",
    );
    check_refused(
        None,
        &[],
        &[("SWITCHBOARD_LISTEN", "127.0.0.1:0")],
        "error: unknown environment variable SWITCHBOARD_LISTEN; settings are SWITCHBOARD_CONFIG, SWITCHBOARD_HTTP_LISTEN",
    );
    check_refused(
        Some("[http\n"),
        &[],
        &[],
        "error: DIR/switchboard.toml: TOML parse error at line 1, column 6",
    );
}

#[test]
fn log_format_json_writes_every_line_as_a_json_object() {
    // Arrange: the start helper finds the "listening on" line inside the JSON.
    let (_dir, process) =
        start(None, &[], &[("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0"), ("SWITCHBOARD_LOG_FORMAT", "json")]);
    // No request: a connection that closes as the server stops can make actix-server 2.6's
    // worker panic in a debug build ("attempt to subtract with overflow" in its connection
    // counter; a release build wraps), and the panic's report is not a log line.
    let mut process = process.unwrap();

    // Act
    process.signal(libc::SIGTERM);
    let (status, log) = process.wait(STOP_TIMEOUT).expect("the server stops after the signal");

    // Assert: every line, from the first to "stopped", is one object with its time, level,
    // module and message; the event's fields stand beside the message.
    let lines: Vec<&String> = process.start_log.iter().chain(&log).collect();
    assert_eq!(status.code(), Some(0), "{lines:#?}");
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line:?} in {lines:#?}")))
        .collect();
    for object in &objects {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(object[key].is_string(), "no {key} in {object}");
        }
    }
    let address = process.address.to_string();
    let listening =
        objects.iter().find(|object| object["message"] == format!("listening on http://{address}"));
    let listening = listening.unwrap_or_else(|| panic!("no listening line in {lines:#?}"));
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["address"], address.as_str());
    assert_eq!(listening["target"], "switchboard::app");
    assert!(listening["timestamp"].as_str().unwrap().parse::<jiff::Timestamp>().is_ok(), "{listening}");
    // actix-server's threads may still say goodbye after it.
    assert!(objects.iter().any(|object| object["message"] == "stopped"), "{lines:#?}");
}

#[test]
fn an_unknown_log_format_is_refused_with_exit_code_2() {
    check_refused(
        None,
        &[],
        &[("SWITCHBOARD_LOG_FORMAT", "xml")],
        "error: environment variable SWITCHBOARD_LOG_FORMAT=\"xml\": expected text or json",
    );
    check_refused(
        Some("[log]\nformat = \"logfmt\"\n"),
        &[],
        &[],
        "error: DIR/switchboard.toml: TOML parse error at line 2, column 10\n  |\n2 | format = \"logfmt\"\n  |          ^^^^^^^^\nunknown variant `logfmt`, expected `text` or `json`",
    );
}

/// Runs `switchboard healthcheck` with `args` and `env` in `dir`: its exit code, standard
/// output and standard error.
fn healthcheck(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output =
        switchboard_command(dir).arg("healthcheck").args(args).envs(env.iter().copied()).output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

#[test]
fn healthcheck_exits_0_while_the_server_answers_and_1_once_it_is_gone() {
    // Arrange: a server, and the configuration of a container's, listening on all addresses
    // (the healthcheck's alone: the test's server listens on the loopback address only).
    let (dir, process) = start(None, &[], &[("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0")]);
    let mut process = process.unwrap();
    let port = process.address.port().to_string();
    let listen = format!("0.0.0.0:{port}");
    let url = format!("http://127.0.0.1:{port}/healthz");
    let healthy = format!(r#"{url}: {{"status":"ok","version":"{}"}}"#, env!("CARGO_PKG_VERSION"));

    // Act and assert: the address from the configuration (asked on the loopback), or a URL.
    let (code, stdout, stderr) = healthcheck(dir.path(), &[], &[("SWITCHBOARD_HTTP_LISTEN", &listen)]);
    assert_eq!((code, stdout.trim_end()), (0, healthy.as_str()), "{stderr}");
    let (code, stdout, stderr) = healthcheck(dir.path(), &[&url], &[]);
    assert_eq!((code, stdout.trim_end()), (0, healthy.as_str()), "{stderr}");
    let (code, _, stderr) = healthcheck(dir.path(), &[&format!("http://127.0.0.1:{port}/nowhere")], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("/nowhere: not healthy: it answered 404"), "{stderr}");

    process.signal(libc::SIGTERM);
    assert_eq!(process.wait(STOP_TIMEOUT).unwrap().0.code(), Some(0));
    let (code, stdout, stderr) = healthcheck(dir.path(), &[], &[("SWITCHBOARD_HTTP_LISTEN", &listen)]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stderr.starts_with(&format!("error: {url}: not healthy: the request failed")), "{stderr}");

    // A configuration mistake is one, as for `serve`.
    let (code, _, stderr) = healthcheck(dir.path(), &[], &[("SWITCHBOARD_LOG_FORMAT", "yaml")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("SWITCHBOARD_LOG_FORMAT=\"yaml\": expected text or json"), "{stderr}");
}

#[test]
fn an_address_already_in_use_is_a_clear_error_with_exit_code_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();

    let (code, stderr) = refuse(None, &[], &[("SWITCHBOARD_HTTP_LISTEN", &address)]);

    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on {address}")), "{stderr}");
}

#[test]
fn a_restart_recovers_the_data_directory_and_damage_stops_the_start_clearly() {
    // Arrange: a first run creates the data directory, then stops cleanly.
    let dir = tempfile::tempdir().unwrap();
    let serve = || {
        let mut command = switchboard_command(dir.path());
        command.arg("serve").env("SWITCHBOARD_HTTP_LISTEN", "127.0.0.1:0");
        command
    };
    let mut first = SwitchboardProcess::start(serve()).unwrap();
    first.signal(libc::SIGTERM);
    let (status, log) = first.wait(STOP_TIMEOUT).unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(log.iter().any(|line| line.contains("stopped")), "{}", log.join("\n"));

    // A second run recovers it.
    let mut second = SwitchboardProcess::start(serve()).unwrap();
    assert_eq!(get(&second.url("/healthz")).0, 200);
    second.signal(libc::SIGTERM);
    assert_eq!(second.wait(STOP_TIMEOUT).unwrap().0.code(), Some(0));

    // Act: damage the database files, as a full disk or a bad copy would.
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(file.metadata().unwrap().len() / 3).unwrap();
        }
    }
    let output = serve().output().unwrap();

    // Assert: a clear error naming the directory, exit code 1, no panic.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error: opening the data directory data: cannot open the data directory data: Read corrupted data"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
