//! Twilio's official Python SDK (PyPI `twilio`) as the client of the REST API, its host the
//! only change: the onboarding guide's setup, a task, its reservation accepted, the task
//! completed, the queue's real-time and cumulative statistics read. The SDK is installed by
//! `tests/sdk/install.sh` (`.ci/run` runs it first; this test runs it too, which does nothing
//! once it is there).

use std::path::Path;
use std::process::Command;

use crate::helpers::spawn_app_with;
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN};

#[tokio::test]
async fn twilios_python_sdk_drives_the_taskrouter_api() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = repo.join("target/sdk-venv/bin/python");
    // Idempotent and quick when the pinned SDK is there already (as after `.ci/run`).
    let install = Command::new("bash").arg(repo.join("tests/sdk/install.sh")).output();
    let install = install.expect("bash runs tests/sdk/install.sh");
    assert!(
        install.status.success(),
        "tests/sdk/install.sh (python3 with venv and pip, and PyPI) failed:\n{}",
        String::from_utf8_lossy(&install.stderr)
    );
    let app = spawn_app_with(|settings| {
        settings.twilio.account_sid = ACCOUNT_SID.into();
        settings.twilio.auth_token = AUTH_TOKEN.into();
    })
    .await;
    let script = repo.join("tests/sdk/taskrouter.py");
    let base = app.url("");

    let output = tokio::task::spawn_blocking(move || {
        Command::new(python).arg(script).args([base.as_str(), ACCOUNT_SID, AUTH_TOKEN]).output()
    })
    .await
    .unwrap()
    .expect("the SDK script runs");

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "workspace Switchboard",
            "activities Ready Lunch",
            "workers sam kim Lunch",
            "queue Sales desk FIFO",
            "workflow Sales desk workflow 20",
            "task pending Sales desk",
            "reservation sam pending",
            "accepted accepted",
            "completed completed sold",
            "statistics 0 3 1",
            "cumulative 1 1 1 30 60",
            "deleted 3 queues left",
        ]
    );
}
