//! The `switchboard` command line: `serve`, `healthcheck` for a container's or supervisor's
//! probe, and `expr check` / `expr eval` for trying TaskRouter expressions before putting them
//! in a queue or workflow.
//!
//! Exit codes: 0 on success (for `expr eval`, whatever the result), 2 for invalid input (a bad
//! expression, JSON, time or configuration), 1 when the server fails while running (for
//! `healthcheck`: when it does not answer 200). Results go to standard output, errors to
//! standard error.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::app;
use crate::config::{CONFIG_ENV, ConfigSource, Settings};
use crate::emulator::{Emulator, EmulatorSettings, PhoneScript};
use crate::expr::{Clock, Context, ExprError, Expression, Scope, WorkerFacts};
use crate::ivr::located;
use crate::outbound::health;
use crate::store::backend::Backend;
use crate::store::{DEFAULT_CACHE_BYTES, LeaseSettings, PostgresBackend, SledBackend, StoreError, copy};
use crate::telemetry;
use crate::voice::flows::Flows;

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "Self-hosted contact-center router")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (reads ./switchboard.toml if present, else built-in defaults).
    Serve {
        /// Configuration file; it must exist when given.
        #[arg(long, env = CONFIG_ENV, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Ask a running server's `GET /healthz` once (a container's HEALTHCHECK, a supervisor's
    /// probe): exit 0 when it answers 200 within 5 s, 1 otherwise.
    Healthcheck {
        /// The URL to ask; default: `/healthz` at the configuration's `http.listen` (read as
        /// `serve` reads it), with `0.0.0.0` and `[::]` asked on the loopback address.
        url: Option<String>,
        /// Configuration file; it must exist when given.
        #[arg(long, env = CONFIG_ENV, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Check and evaluate TaskRouter expressions.
    #[command(subcommand)]
    Expr(ExprCommand),
    /// Check IVR flows.
    #[command(subcommand)]
    Ivr(IvrCommand),
    /// Look after the store: migrate PostgreSQL's schema, copy the data between sled and
    /// PostgreSQL.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Run a scenario (a workspace and a timeline) on a virtual clock; print each event as JSON.
    Simulate {
        /// The scenario file (TOML).
        scenario: PathBuf,
    },
    /// Ring a running server from a phone of your own: starts the provider emulator, places a
    /// call from it that presses the keys given, and prints what the caller hears and what the
    /// agents' phones do, live, until the call ends. Accept it on the agent page; with
    /// conference bridging (`voice.api_base` = this emulator) hold, mute and record it there.
    /// Exit 1 if the server fails to answer TwiML.
    Call(CallArgs),
    /// Run the provider emulator: calls and conferences in memory, Twilio's Voice REST API
    /// (Calls, Conferences, Participants, Recordings) and signed webhooks to the server, with
    /// callers and agents' phones played through its control API (`/emulator/...`).
    Provider(ProviderArgs),
}

#[derive(Debug, Args)]
struct ProviderArgs {
    /// `host:port` to listen on; port 0 picks a free port (printed at start).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: String,
    /// The server's base URL: calls fetch `{server}/voice/incoming` and report to
    /// `{server}/voice/status`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The account whose API is served (the server's `twilio.account_sid`).
    #[arg(long, env = "SWITCHBOARD_TWILIO_ACCOUNT_SID")]
    account_sid: String,
    /// Checks the API's Basic auth and signs the webhooks (the server's `twilio.auth_token`).
    #[arg(long, env = "SWITCHBOARD_TWILIO_AUTH_TOKEN", hide_env_values = true)]
    auth_token: String,
    /// Emulated seconds per second: 10 plays a 5 s pause in 0.5 s.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
}

#[derive(Debug, Args)]
struct CallArgs {
    /// The number called (`To`).
    #[arg(long, default_value = "+15550100200")]
    to: String,
    /// The caller's number (`From`).
    #[arg(long, default_value = "+15550100001")]
    from: String,
    /// Keys for each menu in turn, comma-separated; an empty entry is silence (`1,,2`).
    #[arg(long, default_value = "")]
    digits: String,
    /// The server's `twilio.account_sid`, which its Voice API requests to the emulator carry
    /// (conference bridging).
    #[arg(
        long,
        env = "SWITCHBOARD_TWILIO_ACCOUNT_SID",
        default_value = "AC00000000000000000000000000000000"
    )]
    account_sid: String,
    /// The server's `twilio.auth_token`: signs the webhooks and checks the Voice API's requests.
    #[arg(long, env = "SWITCHBOARD_TWILIO_AUTH_TOKEN", hide_env_values = true)]
    auth_token: String,
    /// Where the emulator listens (the server's `voice.api_base` for conference bridging).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: String,
    /// Seconds an agent's phone rings before it answers.
    #[arg(long, default_value_t = 1.0)]
    answer_after: f64,
    /// Agents' phones never answer.
    #[arg(long)]
    no_answer: bool,
    /// Agents' phones are busy.
    #[arg(long)]
    busy: bool,
    /// Seconds an agent talks before hanging up; without it, until the agent page or the caller
    /// ends the call.
    #[arg(long)]
    talk: Option<f64>,
    /// Seconds the caller holds before hanging up, if no agent took the call by then.
    #[arg(long, default_value_t = 120.0)]
    max_wait: f64,
    /// The server's base URL (its `/voice/incoming` is accepted too).
    server: String,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Create the PostgreSQL schema, or bring it up to date, and print its version (a server
    /// does this itself on start; this is for doing it ahead of an upgrade).
    Migrate {
        /// The database, a libpq connection string or URI (default: the configuration's
        /// store.postgres_url).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Configuration file; it must exist when given.
        #[arg(long, env = CONFIG_ENV, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Copy everything a stopped Switchboard keeps from one store into another, empty one:
    /// `sled:DIR` or `postgres:URL`. Stop the servers first; on PostgreSQL the copy takes the
    /// workspace's lease, and refuses while a server still leads it.
    Copy {
        /// Where the data is: `sled:DIR` or `postgres:URL`.
        from: String,
        /// Where it goes (empty): `sled:DIR` or `postgres:URL`.
        to: String,
        /// The workspace's name in PostgreSQL (store.postgres_workspace), on either side.
        #[arg(long, default_value = "main")]
        workspace: String,
    },
}

#[derive(Debug, Subcommand)]
enum IvrCommand {
    /// Validate every flow (`*.toml`) in a folder; print each mistake as file:line and exit 2.
    Check {
        /// The folder of flow files.
        #[arg(default_value = "ivr")]
        dir: PathBuf,
    },
    /// Run the scenario files of `DIR/tests/` (callers' keys and what should come of them)
    /// through the flows of DIR; exit 1 if a call goes otherwise.
    Test {
        /// The folder of flow files.
        #[arg(default_value = "ivr")]
        dir: PathBuf,
    },
    /// Print a flow as a picture: a Mermaid flowchart (paste it into a Markdown file on GitHub,
    /// or mermaid.live) or Graphviz DOT (`| dot -Tsvg > flow.svg`).
    Graph {
        /// The flow: its file's name, with or without `.toml` (`main`).
        flow: String,
        /// The folder of flow files.
        #[arg(long, default_value = "ivr")]
        dir: PathBuf,
        #[arg(long, value_enum, default_value = "mermaid")]
        format: GraphFormat,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Debug, Subcommand)]
enum ExprCommand {
    /// Check an expression and print its canonical form.
    Check {
        /// Also apply the rules of one context (queue, filter or target); without it only the
        /// syntax is checked.
        #[arg(long)]
        context: Option<Context>,
        #[arg(allow_hyphen_values = true)]
        expression: String,
    },
    /// Evaluate an expression and print `true` or `false`.
    Eval(EvalArgs),
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// queue: bare paths are worker attributes; filter: bare paths are task attributes;
    /// target: paths start with task. or worker.
    #[arg(long)]
    context: Context,
    /// Task attributes, a JSON object.
    #[arg(long, value_name = "JSON")]
    task: Option<String>,
    /// Worker attributes, a JSON object.
    #[arg(long, value_name = "JSON")]
    worker: Option<String>,
    /// The time for taskrouter.* variables, RFC 3339 (e.g. 2026-11-23T09:30:00Z); default now.
    #[arg(long, value_name = "RFC3339")]
    now: Option<String>,
    /// The worker's SID, for worker.sid.
    #[arg(long, value_name = "SID")]
    worker_sid: Option<String>,
    /// The worker's friendly name, for worker.friendly_name.
    #[arg(long, value_name = "NAME")]
    worker_name: Option<String>,
    /// The worker's activity SID, for worker.activity_sid.
    #[arg(long, value_name = "SID")]
    activity_sid: Option<String>,
    /// The worker's activity name, for worker.activity_name.
    #[arg(long, value_name = "NAME")]
    activity_name: Option<String>,
    #[arg(allow_hyphen_values = true)]
    expression: String,
}

/// A command that did not succeed: the message for standard error and the exit code.
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn invalid_input(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: 2 }
    }

    fn expression(err: &ExprError) -> Failure {
        let snippet = err.snippet().lines().map(|line| format!("    {line}")).collect::<Vec<_>>();
        Failure::invalid_input(format!("invalid expression: {err}\n\n{}", snippet.join("\n")))
    }
}

/// Runs the command line of this process.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve { config } => serve(config),
        Command::Healthcheck { url, config } => healthcheck(url, config),
        Command::Expr(ExprCommand::Check { context, expression }) => expr_check(context, &expression),
        Command::Expr(ExprCommand::Eval(args)) => expr_eval(&args),
        Command::Ivr(IvrCommand::Check { dir }) => ivr_check(&dir),
        Command::Ivr(IvrCommand::Test { dir }) => ivr_test(&dir),
        Command::Ivr(IvrCommand::Graph { flow, dir, format }) => ivr_graph(&dir, &flow, format),
        Command::Simulate { scenario } => simulate(&scenario),
        Command::Store(StoreCommand::Migrate { url, config }) => store_migrate(url, config),
        Command::Store(StoreCommand::Copy { from, to, workspace }) => store_copy(&from, &to, &workspace),
        Command::Call(args) => call(args),
        Command::Provider(args) => provider(args),
    };
    match outcome {
        Ok(output) => {
            if !output.is_empty() {
                // A closed pipe (`| head`) is not worth a panic.
                let _ = writeln!(std::io::stdout(), "{output}");
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            let _ = writeln!(std::io::stderr(), "error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn call(args: CallArgs) -> Result<String, Failure> {
    let keys = if args.digits.is_empty() {
        Vec::new()
    } else {
        args.digits.split(',').map(|keys| keys.trim().to_owned()).collect()
    };
    for (name, seconds) in [("--answer-after", args.answer_after), ("--max-wait", args.max_wait)]
        .into_iter()
        .chain(args.talk.map(|talk| ("--talk", talk)))
    {
        if !(seconds >= 0.0 && seconds.is_finite()) {
            return Err(Failure::invalid_input(format!("{name} must be a number of seconds, not {seconds}")));
        }
    }
    let server = args.server.trim_end_matches('/');
    let server = server.strip_suffix("/voice/incoming").unwrap_or(server).to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure { message: format!("cannot start the runtime: {err}"), code: 1 })?;
    let failed = runtime
        .block_on(async {
            let listener = std::net::TcpListener::bind(&args.listen)
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            let address = listener.local_addr()?;
            let emulator = Emulator::new(EmulatorSettings {
                account_sid: args.account_sid,
                auth_token: args.auth_token,
                voice_url: format!("{server}/voice/incoming"),
                status_callback: format!("{server}/voice/status"),
                public_url: format!("http://{address}"),
                time_scale: 1.0,
            });
            emulator.script_every_phone(PhoneScript {
                answer_after: (!args.no_answer).then_some(args.answer_after),
                busy: args.busy,
                hang_up_after: args.talk,
            });
            let running = crate::http::emulator::serve(listener, emulator.clone())
                .with_context(|| format!("cannot listen on {address}"))?;
            let handle = running.handle();
            tokio::spawn(running);
            let shutdown = app::shutdown_signal().context("installing the signal handlers")?;
            let mut out = std::io::stdout();
            let _ = writeln!(out, "(the provider emulator listens on http://{address}: the server's voice.api_base for conference bridging)");
            let call = emulator.incoming_call(&args.from, &args.to, keys);
            let _ = writeln!(out, "({} calls {} at {server}: {call})", args.from, args.to);
            let failed = follow_call(&emulator, &call, args.max_wait, shutdown, &mut |line| {
                // Printed as they come: a person follows the call live.
                let _ = writeln!(out, "{line}");
            })
            .await;
            handle.stop(true).await;
            Ok(failed)
        })
        .map_err(|err: anyhow::Error| Failure { message: format!("{err:#}"), code: 1 })?;
    if failed {
        return Err(Failure { message: "the server did not answer the call with TwiML".to_owned(), code: 1 });
    }
    Ok(String::new())
}

/// Prints, as they happen, what the caller `call` hears and does and what the agents' phones
/// do, until the caller's call is over; the caller hangs up on `stop` (Ctrl-C) or after
/// `max_wait` seconds without an agent. Answers whether the server failed to answer TwiML.
async fn follow_call(
    emulator: &Emulator,
    call: &str,
    max_wait: f64,
    stop: impl std::future::Future<Output = ()>,
    print: &mut dyn FnMut(String),
) -> bool {
    let started = std::time::Instant::now();
    let mut stop = std::pin::pin!(stop);
    let (mut shown, mut phones) =
        (HashMap::<String, usize>::new(), HashMap::<String, Vec<&'static str>>::new());
    let (mut failed, mut stopped) = (false, false);
    loop {
        let (over, bridged) = {
            let world = emulator.world();
            let mut legs: Vec<_> = world.legs.values().collect();
            legs.sort_by_key(|leg| leg.created);
            for leg in legs {
                let caller = leg.sid == call;
                let who = if caller { leg.from.clone() } else { leg.to.clone() };
                let seen = shown.entry(leg.sid.clone()).or_default();
                for line in &leg.transcript[*seen..] {
                    failed |= caller && line.contains("An application error has occurred");
                    print(format!("{who} {line}"));
                }
                *seen = leg.transcript.len();
                if caller {
                    continue;
                }
                // What an agent's phone did since the last look (a short answer may come and
                // go between two looks; its transcript says how it ended).
                let said = phones.entry(leg.sid.clone()).or_default();
                let status = leg.status.as_str();
                if !said.contains(&"rings") && status != "queued" {
                    said.push("rings");
                    print(format!("{who}'s phone rings"));
                }
                if !said.contains(&"answers") && leg.answered.is_some() {
                    said.push("answers");
                    print(format!("{who} answers"));
                }
                if matches!(status, "busy" | "no-answer" | "failed" | "canceled") && !said.contains(&status) {
                    said.push(status);
                    print(format!("{who}'s phone: {status}"));
                }
            }
            let caller = world.legs.get(call);
            (
                caller.is_none_or(|leg| leg.status.is_over()),
                caller.is_some_and(|leg| leg.bridged_at.is_some()),
            )
        };
        if over {
            let status = emulator.world().legs.get(call).map_or("gone", |leg| leg.status.as_str());
            print(format!("(the call is over: {status})"));
            return failed;
        }
        if !bridged && started.elapsed().as_secs_f64() > max_wait && emulator.hang_up(call) {
            print(format!("(the caller gives up after {max_wait} s on hold)"));
        }
        tokio::select! {
            () = &mut stop, if !stopped => {
                stopped = true;
                if emulator.hang_up(call) {
                    print("(the caller hangs up)".to_owned());
                }
            }
            () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
        }
    }
}

fn provider(args: ProviderArgs) -> Result<String, Failure> {
    telemetry::init();
    if !(args.time_scale > 0.0 && args.time_scale.is_finite()) {
        return Err(Failure::invalid_input(format!(
            "--time-scale must be a positive number, not {}",
            args.time_scale
        )));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure { message: format!("cannot start the runtime: {err}"), code: 1 })?;
    let server = args.server.trim_end_matches('/').to_owned();
    runtime
        .block_on(async {
            let listener = std::net::TcpListener::bind(&args.listen)
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            let address = listener.local_addr()?;
            let settings = EmulatorSettings {
                account_sid: args.account_sid,
                auth_token: args.auth_token,
                voice_url: format!("{server}/voice/incoming"),
                status_callback: format!("{server}/voice/status"),
                public_url: format!("http://{address}"),
                time_scale: args.time_scale,
            };
            let running = crate::http::emulator::serve(listener, Emulator::new(settings))
                .with_context(|| format!("cannot listen on {address}"))?;
            tracing::info!(%server, "provider emulator listening on http://{address}");
            let shutdown = app::shutdown_signal().context("installing the signal handlers")?;
            tokio::select! {
                result = running => result.context("the emulator's HTTP server failed"),
                () = shutdown => Ok(()),
            }
        })
        .map_err(|err: anyhow::Error| Failure { message: format!("{err:#}"), code: 1 })?;
    Ok(String::new())
}

/// The settings as `serve` reads them: defaults, the file (`config`, else ./switchboard.toml if
/// present), this process's `SWITCHBOARD_*` variables.
fn load_settings(config: Option<&std::path::Path>) -> Result<(Settings, ConfigSource), Failure> {
    let working_dir = std::env::current_dir()
        .map_err(|err| Failure::invalid_input(format!("cannot read the working directory: {err}")))?;
    Settings::load(config, &working_dir, std::env::vars())
        .map_err(|err| Failure::invalid_input(err.to_string()))
}

fn serve(config: Option<PathBuf>) -> Result<String, Failure> {
    let (settings, source) = load_settings(config.as_deref())?;
    // Once the settings say how: a mistake in them is reported as an error line, as always.
    telemetry::init_as(settings.log.format);
    match &source {
        ConfigSource::File(path) => tracing::info!(file = %path.display(), "configuration loaded"),
        ConfigSource::Defaults => tracing::info!("no switchboard.toml here: using built-in defaults"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure { message: format!("cannot start the runtime: {err}"), code: 1 })?;
    runtime
        .block_on(async {
            let shutdown = app::shutdown_signal().context("installing the signal handlers")?;
            app::serve(&settings, shutdown).await
        })
        .map_err(|err| Failure { message: format!("{err:#}"), code: 1 })?;
    Ok(String::new())
}

/// How long `healthcheck` waits for the whole answer.
const HEALTHCHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn healthcheck(url: Option<String>, config: Option<PathBuf>) -> Result<String, Failure> {
    let url = match url {
        Some(url) => url,
        None => {
            let (settings, _) = load_settings(config.as_deref())?;
            health::healthz_url(&settings.http.listen)
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure { message: format!("cannot start the runtime: {err}"), code: 1 })?;
    let body = runtime
        .block_on(health::check(&url, HEALTHCHECK_TIMEOUT))
        .map_err(|why| Failure { message: format!("{url}: not healthy: {why}"), code: 1 })?;
    Ok(format!("{url}: {}", body.trim_end()))
}

fn store_migrate(url: Option<String>, config: Option<PathBuf>) -> Result<String, Failure> {
    let url = match url {
        Some(url) => url,
        None => {
            let (settings, _) = load_settings(config.as_deref())?;
            if settings.store.postgres_url.is_empty() {
                return Err(Failure::invalid_input(
                    "no database: give --url, or set store.postgres_url (sled needs no migration)",
                ));
            }
            settings.store.postgres_url
        }
    };
    let version =
        PostgresBackend::migrate(&url).map_err(|err| Failure { message: err.to_string(), code: 1 })?;
    Ok(format!("schema version {version}: up to date"))
}

/// A store named on the command line: `sled:DIR` or `postgres:URL`.
fn open_store(location: &str, workspace: &str, must_exist: bool) -> Result<Box<dyn Backend>, Failure> {
    let failed = |err: StoreError| Failure { message: format!("{location}: {err}"), code: 1 };
    if let Some(dir) = location.strip_prefix("sled:") {
        if must_exist && !std::path::Path::new(dir).is_dir() {
            return Err(Failure::invalid_input(format!("{location}: no such directory")));
        }
        return Ok(Box::new(
            SledBackend::open(std::path::Path::new(dir), DEFAULT_CACHE_BYTES).map_err(failed)?,
        ));
    }
    if let Some(url) = location.strip_prefix("postgres:") {
        let backend = PostgresBackend::open(url, workspace, LeaseSettings::default()).map_err(failed)?;
        if !backend.wait_leading(std::time::Duration::from_secs(5)) {
            let leader = backend.leader().unwrap_or_else(|| "another node".to_owned());
            return Err(Failure {
                message: format!("{location}: {leader} leads workspace {workspace}: stop it first"),
                code: 1,
            });
        }
        return Ok(Box::new(backend));
    }
    Err(Failure::invalid_input(format!("{location:?}: a store is sled:DIR or postgres:URL")))
}

fn store_copy(from: &str, to: &str, workspace: &str) -> Result<String, Failure> {
    let source = open_store(from, workspace, true)?;
    let new_directory = to.strip_prefix("sled:").filter(|dir| !std::path::Path::new(dir).exists());
    let target = open_store(to, workspace, false)?;
    let copied = match copy(source.as_ref(), target.as_ref()) {
        Ok(copied) => copied,
        Err(err) => {
            // Nothing half-copied is left for a server to start on.
            let refused =
                matches!(&err, StoreError::Write(message) if message.contains("already holds data"));
            let undone = match target.as_any().downcast_ref::<PostgresBackend>() {
                Some(postgres) if !refused => postgres.forget_workspace().map_err(|err| err.to_string()),
                _ => Ok(()),
            };
            drop(target);
            let undone = undone.and_then(|()| match new_directory {
                Some(dir) => std::fs::remove_dir_all(dir).map_err(|err| err.to_string()),
                None => Ok(()),
            });
            let message = match undone {
                Ok(()) => err.to_string(),
                Err(undo) => {
                    format!("{err}; what was copied could not be removed ({undo}): empty {to} by hand")
                }
            };
            return Err(Failure { message, code: 1 });
        }
    };
    Ok(format!(
        "copied {from} into {to}: the state after command {}, {} records, {} event groups",
        copied.seq, copied.records, copied.event_groups
    ))
}

fn simulate(path: &std::path::Path) -> Result<String, Failure> {
    let source = std::fs::read_to_string(path)
        .map_err(|err| Failure::invalid_input(format!("cannot read {}: {err}", path.display())))?;
    let lines = crate::simulate::run(&source)
        .map_err(|err| Failure::invalid_input(located(path, err.line, &err.message)))?;
    Ok(lines.join("\n"))
}

/// Every flow in `dir`, or every mistake in them.
fn load_flows(dir: &std::path::Path) -> Result<Flows, Failure> {
    Flows::load(dir).map_err(|err| Failure::invalid_input(err.to_string()))
}

fn ivr_check(dir: &std::path::Path) -> Result<String, Failure> {
    let flows = load_flows(dir)?;
    Ok(format!("{} flow(s) in {}: ok", flows.len(), dir.display()))
}

/// The flow `name` of `dir` as a picture (its text: Mermaid or DOT).
fn ivr_graph(dir: &std::path::Path, name: &str, format: GraphFormat) -> Result<String, Failure> {
    let flows = load_flows(dir)?;
    let Some(flow) = flows.get(name).or_else(|| flows.get(&format!("{name}.toml"))) else {
        let known: Vec<&str> = flows.iter().map(|(name, _)| name.as_str()).collect();
        return Err(Failure::invalid_input(format!(
            "no flow {name:?} in {} (flows: {})",
            dir.display(),
            known.join(", ")
        )));
    };
    let picture = match format {
        GraphFormat::Mermaid => crate::ivr::graph::mermaid(flow),
        GraphFormat::Dot => crate::ivr::graph::dot(flow),
    };
    Ok(picture.trim_end().to_owned())
}

/// Runs `dir/tests/*.toml` against the flows of `dir`: a line per call; exit 1 if one fails.
fn ivr_test(dir: &std::path::Path) -> Result<String, Failure> {
    let flows = load_flows(dir)?;
    let files = flows.run_scenarios(dir).map_err(|err| Failure::invalid_input(err.to_string()))?;
    let (mut lines, mut failed, mut passed) = (Vec::new(), 0, 0);
    for file in &files {
        let path = file.path.display();
        for outcome in &file.calls {
            match &outcome.failure {
                None => {
                    passed += 1;
                    lines.push(format!("ok   {path}:{}: {}", outcome.line, outcome.name));
                }
                Some(failure) => {
                    failed += 1;
                    lines.push(format!("FAIL {path}:{}: {}: {failure}", outcome.line, outcome.name));
                }
            }
        }
    }
    lines.push(format!("{passed} passed, {failed} failed"));
    if failed == 0 {
        Ok(lines.join("\n"))
    } else {
        let message = format!("{failed} of {} calls went otherwise\n{}", passed + failed, lines.join("\n"));
        Err(Failure { message, code: 1 })
    }
}

fn expr_check(context: Option<Context>, source: &str) -> Result<String, Failure> {
    match context {
        Some(context) => {
            let expression = Expression::parse(source, context).map_err(|err| Failure::expression(&err))?;
            Ok(format!("valid {context} expression: {expression}"))
        }
        None => {
            Expression::check_syntax(source).map_err(|err| Failure::expression(&err))?;
            Ok("valid expression".to_owned())
        }
    }
}

fn expr_eval(args: &EvalArgs) -> Result<String, Failure> {
    let expression =
        Expression::parse(&args.expression, args.context).map_err(|err| Failure::expression(&err))?;
    let task = parse_attributes("--task", args.task.as_deref())?;
    let worker = parse_attributes("--worker", args.worker.as_deref())?;
    let now = match &args.now {
        Some(text) => text.parse::<jiff::Timestamp>().map_err(|err| {
            Failure::invalid_input(format!(
                "--now {text:?} is not an RFC 3339 time such as 2026-11-23T09:30:00Z: {err}"
            ))
        })?,
        None => jiff::Timestamp::now(),
    };
    let facts = WorkerFacts {
        attributes: &worker,
        sid: args.worker_sid.as_deref(),
        friendly_name: args.worker_name.as_deref(),
        activity_sid: args.activity_sid.as_deref(),
        activity_name: args.activity_name.as_deref(),
    };
    let scope = Scope::task_and_worker(&task, facts).at(Clock::from_unix_seconds(now.as_second()));
    Ok(expression.evaluate(&scope).to_string())
}

/// Parses an attributes argument: absent means `{}`; anything but a JSON object is refused.
fn parse_attributes(flag: &str, text: Option<&str>) -> Result<Value, Failure> {
    let Some(text) = text else { return Ok(Value::Object(Default::default())) };
    let value: Value = serde_json::from_str(text)
        .map_err(|err| Failure::invalid_input(format!("{flag} is not valid JSON: {err}")))?;
    if !value.is_object() {
        return Err(Failure::invalid_input(format!(
            "{flag} must be a JSON object of attributes, like {{\"skills\": [\"Sales\"]}}"
        )));
    }
    Ok(value)
}
