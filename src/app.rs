//! Builds the whole server from [`Settings`] and runs it until a shutdown signal.
//!
//! Tests use [`Application::build`] with `http.listen = "127.0.0.1:0"` and read the real address
//! from [`Application::local_addr`]; `main` uses the same path with [`shutdown_signal`].

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;

use crate::config::Settings;
use crate::http;

/// A built server, bound and ready to run.
pub struct Application {
    server: http::Server,
}

impl Application {
    pub fn build(settings: &Settings) -> anyhow::Result<Application> {
        let server = http::Server::bind(&settings.http).context("starting the HTTP server")?;
        tracing::info!(address = %server.local_addr(), "listening on http://{}", server.local_addr());
        Ok(Application { server })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Serves until `shutdown` completes, then stops gracefully.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        self.server.run(shutdown).await.context("serving HTTP")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM (what `systemctl stop` and `docker stop`
/// send).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
