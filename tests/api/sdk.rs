//! Twilio's official Python SDK (PyPI `twilio`) as the client of the REST API, its host the
//! only change: the onboarding guide's setup, a task, its reservation accepted, the task
//! completed, the queue's real-time and cumulative statistics read, a task channel made and a
//! worker's capacity on it set, the workspace's settings updated. The SDK is installed by
//! `tests/sdk/install.sh`, which this test runs first (`install::ensure`; it does nothing once
//! the SDK is there).

use std::path::Path;
use std::process::Command;

use crate::helpers::spawn_app_with;
use crate::install::{self, Requirement};
use crate::taskrouter::{ACCOUNT_SID, AUTH_TOKEN};

/// Twilio's Python SDK, pinned, in `target/sdk-venv`.
const SDK: Requirement = Requirement {
    needs: "Twilio's Python SDK in target/sdk-venv (python3 with venv and pip, and PyPI)",
    script: "tests/sdk/install.sh",
    files: &["target/sdk-venv/bin/python"],
};

#[tokio::test]
async fn twilios_python_sdk_drives_the_taskrouter_api() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = repo.join("target/sdk-venv/bin/python");
    // Quick when the pinned SDK is there already (as after `.ci/run`).
    install::ensure_from_async(&SDK).await;
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
            "channels default voice sms chat whatsapp email 2 3",
            "workspace Lunch LIFO",
            "deleted 3 queues left",
        ]
    );
}
