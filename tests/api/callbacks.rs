//! Event callbacks against a real local receiver: events arrive as forms with TaskRouter's
//! parameter names, and a receiver that fails is retried until it accepts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard::routing::Command;

use crate::helpers::spawn_app_with;

/// A minimal HTTP receiver on 127.0.0.1:0: answers 500 to the first `failures` requests, then
/// 204, and keeps every form body it received.
pub(crate) fn receiver(failures: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let received = bodies.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            received.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
            let status = if n < failures { "500 Internal Server Error" } else { "204 No Content" };
            let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

#[tokio::test]
async fn events_reach_the_callback_url_and_a_failing_receiver_is_retried() {
    // Arrange: a receiver that fails the first attempt, and only activity updates sent.
    let (url, bodies) = receiver(1);
    let app = spawn_app_with(|settings| {
        settings.events.callback_url = url;
        settings.events.callback_filter = "worker.activity.update".into();
    })
    .await;
    let (alice, available) = app.engine.read(|engine| {
        (engine.worker_by_name("alice").unwrap().sid, engine.activity_by_name("Available").unwrap().sid)
    });

    // Act
    app.engine
        .execute(Command::SetWorkerActivity { worker: alice, activity: available, reject_pending: false })
        .await
        .unwrap();

    // Assert: delivered twice (one 500, then accepted), same form both times.
    let delivered = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let bodies = bodies.lock().unwrap().clone();
            if bodies.len() >= 2 {
                return bodies;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the receiver gets the event and its retry");
    assert_eq!(delivered[0], delivered[1]);
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&delivered[0]).unwrap();
    let value = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    assert_eq!(value("EventType"), Some("worker.activity.update"));
    assert_eq!(value("WorkerName"), Some("alice"));
    assert_eq!(value("WorkerActivityName"), Some("Available"));
    assert_eq!(value("WorkerSid"), Some(alice.to_string().as_str()));
    app.shut_down().await.unwrap();
}
