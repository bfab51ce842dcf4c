//! Builds the whole server from [`Settings`] and runs it until a shutdown signal.
//!
//! Tests use [`Application::build`] with `http.listen = "127.0.0.1:0"` and read the real address
//! from [`Application::local_addr`]; `main` uses the same path with [`shutdown_signal`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::{broadcast, watch};

use crate::agents::Agents;
use crate::config::Credentials;
use crate::config::{BridgeMode, EventSettings, Settings, StoreBackend};
use crate::http;
use crate::live::{self, LiveEngine};
use crate::metrics::Metrics;
use crate::outbound::voice_api::{VoiceApi, VoiceApiSettings};
use crate::outbound::{callbacks, messages};
use crate::routing::Event;
use crate::sms::Sms;
use crate::voice::{Flows, Ivr, Voice};

/// How often calls whose hold loop stopped are looked for.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A built server, bound and ready to run.
pub struct Application {
    server: http::Server,
    /// `metrics.listen`'s own server, when set.
    metrics_server: Option<http::MetricsServer>,
    metrics: Arc<Metrics>,
    engine: Arc<LiveEngine>,
    voice: Arc<Voice>,
    sms: Arc<Sms>,
    agents: Arc<Agents>,
    /// Where the agents' replies go, and the credentials they are sent with.
    delivery: (String, Credentials),
    events: EventSettings,
    /// Subscribed before the missed deadlines fire, so callbacks see those events too. Always:
    /// the workspace's callback URL can be set through the REST API at any time.
    callback_events: broadcast::Receiver<Event>,
    /// Conference bridging's view of the events: accepted calls are connected at once.
    accept_events: Option<broadcast::Receiver<Event>>,
}

impl Application {
    /// Recovers the routing state from the store and binds the listener. With PostgreSQL,
    /// waits until this node leads the workspace.
    pub fn build(settings: &Settings) -> anyhow::Result<Application> {
        let engine = LiveEngine::open(&settings.store, &settings.workspace, "", live::now())
            .with_context(|| opening(settings))?;
        Application::build_on(settings, Arc::new(engine), None)
    }

    /// [`Application::build`] on an engine that leads (recovered, or a standby that took
    /// over), serving `listener` when given instead of binding `http.listen`.
    pub fn build_on(
        settings: &Settings,
        engine: Arc<LiveEngine>,
        listener: Option<std::net::TcpListener>,
    ) -> anyhow::Result<Application> {
        let callback_events = engine.subscribe();
        let accept_events = (settings.voice.bridge == BridgeMode::Conference).then(|| engine.subscribe());
        let flows = Flows::for_settings(&settings.voice).context("loading the IVR flows")?;
        let ivr = Arc::new(Ivr::new(flows, &settings.voice));
        // Before the catch-up, which may purge tasks completed while their conversations' closing
        // texts were still due.
        let sms = Arc::new(
            Sms::open(engine.clone(), ivr.clone(), &settings.sms)
                .context("loading the text conversations")?,
        );
        engine.catch_up(live::now()).context("firing the deadlines missed while stopped")?;
        let credentials = engine.credentials(&settings.twilio).context("reading the API credentials")?;
        ivr.sign_lookups_with(credentials.auth_token.clone());
        if credentials.generated_token {
            tracing::warn!(
                account_sid = %credentials.account_sid,
                auth_token = %credentials.auth_token,
                "REST API credentials generated at first start and kept in the data directory; \
                 set twilio.account_sid and twilio.auth_token to choose your own"
            );
        }
        if settings.voice.bridge == BridgeMode::Conference
            && credentials.generated_token
            && settings.voice.api_key_sid.is_empty()
        {
            tracing::warn!(
                api_base = %settings.voice.api_base,
                "conference bridging calls the provider's Voice API with the generated credentials, \
                 which a real provider refuses (each accepted caller is then bridged with <Dial> by the \
                 hold loop): set twilio.account_sid and twilio.auth_token to the provider's, point \
                 voice.api_base at `switchboard call` or `switchboard provider` to try it locally, \
                 or set voice.bridge = \"dial\""
            );
        }
        let voice_api = match settings.voice.bridge {
            BridgeMode::Dial => None,
            BridgeMode::Conference => {
                let (user, secret) = if settings.voice.api_key_sid.is_empty() {
                    (credentials.account_sid.clone(), credentials.auth_token.clone())
                } else {
                    (settings.voice.api_key_sid.clone(), settings.voice.api_key_secret.clone())
                };
                let api = VoiceApi::new(VoiceApiSettings {
                    api_base: settings.voice.api_base.clone(),
                    account_sid: credentials.account_sid.clone(),
                    user,
                    secret,
                })
                .context("building the Voice API client")?;
                Some(api)
            }
        };
        let voice = Arc::new(
            Voice::open(engine.clone(), ivr.clone(), &settings.voice, voice_api)
                .context("loading the calls")?,
        );
        let agents = Arc::new(Agents::load(&engine).context("loading the agents' sign-in secrets")?);
        tracing::info!(flows = ivr.flows().len(), dir = %settings.voice.ivr_dir.display(), "IVR flows loaded");
        if !settings.twilio.validate_signatures {
            tracing::warn!(
                "twilio.validate_signatures is false: webhooks are NOT authenticated, anyone who can reach \
                 this server can create and cancel calls; use this only for local experiments"
            );
        }
        let metrics = Arc::new(Metrics::new(settings.metrics.service_level.clone()));
        {
            let metrics = metrics.clone();
            engine.on_flush(Box::new(move |writes, took| metrics.observe_flush(writes, took)));
        }
        let webhooks = http::Webhooks {
            auth_token: credentials.auth_token.clone(),
            validate_signatures: settings.twilio.validate_signatures,
            public_url: settings.voice.public_url.clone(),
        };
        let delivery = (settings.sms.api_base.clone(), credentials.clone());
        let server = http::Server::bind(
            &settings.http,
            listener,
            engine.clone(),
            credentials,
            voice.clone(),
            sms.clone(),
            agents.clone(),
            webhooks,
            (metrics.clone(), settings.metrics.token.clone()),
            settings.events.clone(),
        )
        .context("starting the HTTP server")?;
        let metrics_server = match settings.metrics.listen.as_str() {
            "" => None,
            listen => {
                let server = http::MetricsServer::bind(
                    listen,
                    &settings.metrics.token,
                    metrics.clone(),
                    engine.clone(),
                    sms.clone(),
                )
                .context("starting the metrics listener")?;
                Some(server)
            }
        };
        tracing::info!(address = %server.local_addr(), "listening on http://{}", server.local_addr());
        log_addresses(&settings.voice.public_url, server.local_addr());
        if let Some(metrics_server) = &metrics_server {
            tracing::info!("metrics for Prometheus on http://{}/metrics", metrics_server.local_addr());
        }
        voice.listening_on(server.local_addr());
        Ok(Application {
            server,
            metrics_server,
            metrics,
            engine,
            voice,
            sms,
            agents,
            delivery,
            events: settings.events.clone(),
            callback_events,
            accept_events,
        })
    }

    /// The agents' sign-in secrets, for tests that sign in directly.
    pub fn agents(&self) -> Arc<Agents> {
        self.agents.clone()
    }

    /// The text conversations, for tests that look at them directly.
    pub fn sms(&self) -> Arc<Sms> {
        self.sms.clone()
    }

    /// The calls, for tests that look at them directly.
    pub fn voice(&self) -> Arc<Voice> {
        self.voice.clone()
    }

    /// The live engine, for tests that look at the state directly.
    pub fn engine(&self) -> Arc<LiveEngine> {
        self.engine.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Serves until `shutdown` completes, then stops gracefully.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_timers, timers_stopped) = watch::channel(false);
        let timers = tokio::spawn(self.engine.clone().run_timers(async move {
            let mut timers_stopped = timers_stopped;
            let _ = timers_stopped.wait_for(|&stop| stop).await;
        }));
        let sweeper = {
            let (voice, sms, mut stopped) = (self.voice.clone(), self.sms.clone(), stop_timers.subscribe());
            let (agents, engine) = (self.agents.clone(), self.engine.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SWEEP_EVERY);
                for round in 0u64.. {
                    tokio::select! {
                        _ = stopped.wait_for(|&stop| stop) => return,
                        _ = tick.tick() => {}
                    }
                    if let Err(err) = voice.sweep(live::now()).await {
                        tracing::error!(%err, "sweeping abandoned calls failed");
                        return;
                    }
                    // Idle conversations are a day old at least: once a minute is plenty.
                    if round % 12 == 0
                        && let Err(err) = sms.sweep(live::now()).await
                    {
                        tracing::error!(%err, "sweeping idle conversations failed");
                        return;
                    }
                    // Signed-out sessions are kept until they would have expired, then forgotten.
                    if round % 12 == 0
                        && let Err(err) = agents.sweep(&engine, live::now()).await
                    {
                        tracing::error!(%err, "forgetting expired sign-outs failed");
                        return;
                    }
                }
            })
        };
        let replies = {
            let (sms, mut stopped) = (self.sms.clone(), stop_timers.subscribe());
            let (api_base, credentials) = self.delivery.clone();
            tokio::spawn(messages::deliver(sms, api_base, credentials, async move {
                let _ = stopped.wait_for(|&stop| stop).await;
            }))
        };
        let closings = {
            let (sms, mut stopped) = (self.sms.clone(), stop_timers.subscribe());
            tokio::spawn(async move {
                let stop = async move {
                    let _ = stopped.wait_for(|&stop| stop).await;
                };
                if let Err(err) = sms.close_completed(stop).await {
                    tracing::error!(%err, "closing the conversations of completed tasks failed");
                }
            })
        };
        let accepts = self.accept_events.map(|events| {
            let (voice, mut stopped) = (self.voice.clone(), stop_timers.subscribe());
            tokio::spawn(async move {
                let follow = async {
                    if let Err(err) = voice.reconcile(live::now()).await {
                        tracing::error!(%err, "bringing the calls in progress up to date failed");
                    }
                    voice.clone().follow_accepts(events).await;
                };
                tokio::select! {
                    () = follow => {}
                    _ = stopped.wait_for(|&stop| stop) => {}
                }
            })
        });
        let callbacks = {
            let (events, mut stopped) = (self.callback_events, stop_timers.subscribe());
            let (engine, settings, metrics) =
                (self.engine.clone(), self.events.clone(), self.metrics.clone());
            tokio::spawn(callbacks::deliver(engine, settings, metrics, events, async move {
                let _ = stopped.wait_for(|&stop| stop).await;
            }))
        };
        let reloads = {
            let (voice, mut stopped) = (self.voice.clone(), stop_timers.subscribe());
            tokio::spawn(async move {
                tokio::select! {
                    () = reload_on_hangup(voice) => {}
                    _ = stopped.wait_for(|&stop| stop) => {}
                }
            })
        };
        let metrics_server = self.metrics_server.map(|server| {
            let mut stopped = stop_timers.subscribe();
            tokio::spawn(server.run(async move {
                let _ = stopped.wait_for(|&stop| stop).await;
            }))
        });
        let (engine, sms) = (self.engine.clone(), self.sms.clone());
        let stop = async move {
            tokio::select! {
                () = shutdown => {}
                () = engine.storage_failure() => {}
            }
            // Live streams never finish on their own; the graceful stop waits for responses.
            sms.stop_streams();
        };
        let served = self.server.run(stop).await.context("serving HTTP");
        let _ = stop_timers.send(true);
        let _ = timers.await;
        let _ = reloads.await;
        let _ = sweeper.await;
        let _ = replies.await;
        let _ = closings.await;
        let _ = callbacks.await;
        if let Some(accepts) = accepts {
            let _ = accepts.await;
        }
        if let Some(metrics_server) = metrics_server {
            let _ = metrics_server.await;
        }
        served?;
        if let Some(why) = self.engine.lost_lease() {
            anyhow::bail!(
                "stopped because this node no longer leads ({why}); start it again to stand by for the new leader"
            );
        }
        if self.engine.has_storage_failed() {
            anyhow::bail!(
                "stopped because a change could not be written to the data directory; a restart recovers \
                 everything that was acknowledged"
            );
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The start log's pointers: where the pages are, and the webhook URLs for the provider's
/// console (the front door `/` shows the same). Under `voice.public_url` when set; otherwise
/// the address listened on, a wildcard one shown as loopback (reachable from this machine).
fn log_addresses(public_url: &str, listening: std::net::SocketAddr) {
    let base = if public_url.is_empty() {
        let mut shown = listening;
        if shown.ip().is_unspecified() {
            shown.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{shown}")
    } else {
        public_url.to_owned()
    };
    tracing::info!("open {base}/ for the pages and the webhook URLs to paste into the provider's console");
    for address in http::addresses(&base) {
        tracing::info!("{}: {}", address.what, address.url);
    }
    if public_url.is_empty() {
        tracing::info!(
            "voice.public_url is not set: the provider must reach this server at the address webhooks are signed for"
        );
    }
}

/// What the engine was opened from, for errors.
fn opening(settings: &Settings) -> String {
    match settings.store.backend {
        StoreBackend::Sled => format!("opening the data directory {}", settings.store.data_dir.display()),
        StoreBackend::Postgres => {
            format!("opening workspace {:?} in PostgreSQL", settings.store.postgres_workspace)
        }
    }
}

/// Runs the server until `shutdown` completes. With PostgreSQL, a node that does not lead the
/// workspace stands by first: it binds the listener, answers `/healthz`, `/readyz` (503) and
/// 503 for the rest, follows the leader's log, and once it takes over serves everything on the
/// same listener (connections arriving meanwhile wait in its backlog).
pub async fn serve(settings: &Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    if settings.store.backend == StoreBackend::Sled {
        return Application::build(settings)?.run_until_stopped(shutdown).await;
    }
    let listener = std::net::TcpListener::bind(&settings.http.listen)
        .with_context(|| format!("cannot listen on {}", settings.http.listen))?;
    let engine = {
        let (store, workspace) = (settings.store.clone(), settings.workspace.clone());
        tokio::task::spawn_blocking(move || LiveEngine::open_following(&store, &workspace, "", live::now()))
            .await
            .context("opening the store")?
            .with_context(|| opening(settings))?
    };
    let engine = Arc::new(engine);
    let mut shutdown = std::pin::pin!(shutdown);
    if engine.role() == live::Role::Leader {
        // Led already: what `follow_until_leading` does at once then (the log read to its end).
        let engine = engine.clone();
        tokio::task::spawn_blocking(move || engine.follow_until_leading(&|| false)).await??;
    } else {
        tracing::info!(
            leader = ?engine.role(),
            "standing by; listening on http://{} and following the leader's log until this node takes over",
            listener.local_addr()?
        );
        let standby = http::StandbyServer::bind(listener.try_clone()?, engine.clone())?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut follow = {
            let (engine, stop) = (engine.clone(), stop.clone());
            tokio::task::spawn_blocking(move || {
                engine.follow_until_leading(&|| stop.load(std::sync::atomic::Ordering::SeqCst))
            })
        };
        let (took_over, stand_by) = tokio::sync::oneshot::channel::<()>();
        let standing_by = tokio::spawn(standby.serve_until(async move {
            let _ = stand_by.await;
        }));
        let outcome = tokio::select! {
            followed = &mut follow => Some(followed),
            () = &mut shutdown => None,
        };
        let _ = took_over.send(());
        let _ = standing_by.await;
        match outcome {
            Some(followed) => followed.context("following the leader's log")??,
            None => {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = follow.await;
                tracing::info!("stopped");
                return Ok(());
            }
        }
    }
    Application::build_on(settings, engine, Some(listener))?.run_until_stopped(shutdown).await
}

/// Installs the SIGINT (Ctrl-C) and SIGTERM handlers now, and returns a future that completes
/// on the first of them. Installing them before recovery and binding means that a stop
/// requested at any point of the start is a clean stop, not the default kill.
/// Reloads the IVR flows on each SIGHUP (on Unix): the new folder is used when it passes
/// its checks and scenarios, and the log says what happened either way.
async fn reload_on_hangup(voice: Arc<Voice>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGHUP: reload the IVR flows with POST /admin/api/ivr/reload");
                return std::future::pending().await;
            }
        };
        while hangups.recv().await.is_some() {
            let reloading = voice.clone();
            // The outcome is logged by the reload itself.
            if let Err(err) =
                tokio::task::spawn_blocking(move || reloading.ivr_flows().reload("SIGHUP")).await
            {
                tracing::error!(%err, "reloading the IVR flows failed");
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = voice;
        std::future::pending::<()>().await
    }
}

pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("received SIGTERM"),
                _ = interrupt.recv() => tracing::info!("received SIGINT"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("received Ctrl-C");
        })
    }
}
