//! Settings: built-in defaults, then a TOML file, then `SWITCHBOARD_*` environment variables.
//!
//! The file is `switchboard.toml` in the working directory when present, or the path given with
//! `--config` (then it must exist). Unknown keys in the file are errors that name the key and its
//! line; unknown `SWITCHBOARD_*` variables are errors too, because a mistyped variable that is
//! silently ignored is worse than one that stops the start.
//!
//! [`SETTINGS`] lists every setting with its variable, default and meaning; the settings table of
//! `docs/configuration.md` and the example `switchboard.toml` are checked against it by tests.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::workspace::WorkspaceFile;

/// The file read from the working directory when no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "switchboard.toml";

/// The variable that names the configuration file, like `--config`.
pub const CONFIG_ENV: &str = "SWITCHBOARD_CONFIG";

const ENV_PREFIX: &str = "SWITCHBOARD_";

/// All settings. Every field has a default, so an empty file is a complete configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub http: HttpSettings,
    pub log: LogSettings,
    pub store: StoreSettings,
    pub events: EventSettings,
    pub twilio: TwilioSettings,
    pub voice: VoiceSettings,
    pub sms: SmsSettings,
    pub metrics: MetricsSettings,
    /// The starting workspace; the default is the example file's (the onboarding guide's).
    pub workspace: WorkspaceFile,
}

/// How the server's log is written (to standard error; `RUST_LOG` filters it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Lines for people, or one JSON object per line for a log collector.
    pub format: LogFormat,
}

/// The shape of each log line (`log.format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `timestamp LEVEL target: message field=value...`, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message`, the event's fields and
    /// `target`.
    Json,
}

/// Where and how state is kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// Where the data lives: sled in `data_dir`, or a PostgreSQL database.
    pub backend: StoreBackend,
    /// The sled data directory.
    pub data_dir: PathBuf,
    /// The PostgreSQL database (a libpq connection string or URI), for `backend = "postgres"`.
    pub postgres_url: String,
    /// The workspace's name in the database's keys.
    pub postgres_workspace: String,
    /// With PostgreSQL: how long a node's lease on the workspace lasts unless renewed (ms);
    /// a standby takes over once it ran out (at once when the leader's session is gone).
    pub lease_ms: u64,
    /// How this node is named to the others and in `/readyz` (its URL, as the load balancer
    /// reaches it); empty: the host name and process id.
    pub advertise_url: String,
    /// `flush`: answer a request only once its change is on disk (group commit). `periodic`:
    /// answer at once and flush every `flush_interval_ms`; a crash loses up to that much.
    pub durability: DurabilityMode,
    pub flush_interval_ms: u64,
    /// Commands between two snapshots; the log replayed on start is at most this long.
    pub snapshot_every: u64,
    /// sled's page cache, in MiB.
    pub cache_mb: u64,
    /// Events older than this many seconds are deleted...
    pub event_max_age: u64,
    /// ...and so are the oldest beyond this count.
    pub event_max_count: usize,
}

/// Where events are sent as they happen.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventSettings {
    /// URL that receives every event as a form POST with TaskRouter's parameter names; empty
    /// means no callbacks.
    pub callback_url: String,
    /// Comma-separated event types to send (e.g. `task.created,task.canceled`); empty sends all.
    pub callback_filter: String,
    /// Attempts per event before it is given up (with backoff from 0.5 s, doubling).
    pub callback_attempts: u32,
}

impl Default for EventSettings {
    fn default() -> EventSettings {
        EventSettings { callback_url: String::new(), callback_filter: String::new(), callback_attempts: 5 }
    }
}

/// The Twilio account Switchboard stands in for: the REST API's Basic-auth credentials (what
/// Twilio's SDKs send) and the token that signs webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwilioSettings {
    /// `AC` + 32 hex digits; empty: one is generated at first start and kept in the store.
    pub account_sid: String,
    /// The auth token; empty: one is generated at first start, kept in the store and logged.
    pub auth_token: String,
    /// Check X-Twilio-Signature on every webhook. Off only for local experiments: anyone who
    /// can reach the server could then create and cancel calls.
    pub validate_signatures: bool,
}

impl Default for TwilioSettings {
    fn default() -> TwilioSettings {
        TwilioSettings { account_sid: String::new(), auth_token: String::new(), validate_signatures: true }
    }
}

/// Calls: the IVR flows, the URL the provider reaches, and the hold loop.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoiceSettings {
    /// The folder of IVR flow files (`main.toml` answers numbers no flow claims).
    pub ivr_dir: PathBuf,
    /// The URL the provider posts webhooks to, without a trailing slash (e.g.
    /// `https://switchboard.example.com`); signatures are computed over it, and the REST API's
    /// `url` and `links` start with it. Empty: taken from
    /// each request (scheme `http` and its Host header), which is right without a proxy.
    pub public_url: String,
    /// Seconds of hold music or silence between two hold-loop requests.
    pub wait_seconds: u32,
    /// Seconds between two announcements of the caller's position.
    pub announce_every: u32,
    /// Audio played once per hold-loop round instead of the silence; empty: silence.
    pub hold_music_url: String,
    /// A caller whose hold loop has not polled for this many seconds has gone: the task is
    /// canceled.
    pub abandon_after: u32,
    /// Seconds in the queue after which the caller is offered to leave a voicemail; 0: never.
    pub voicemail_after: u32,
    /// Seconds an agent's phone rings before the call goes to the next agent.
    pub dial_timeout: u32,
    /// How a caller reaches the agent who accepted: `<Dial>` on the next hold-loop request,
    /// or a conference Switchboard controls through the provider's Voice API.
    pub bridge: BridgeMode,
    /// The provider's Voice REST API: `{api_base}/2010-04-01/Accounts/{AccountSid}/...`.
    pub api_base: String,
    /// An API key to call it with, instead of the account SID and auth token; both or neither.
    pub api_key_sid: String,
    pub api_key_secret: String,
    /// Record every bridged call from the moment the agent joins (conference bridging).
    pub record: RecordMode,
    /// The number outbound calls come from (`+E.164`); empty: the number the task came in on.
    pub caller_id: String,
}

/// How a caller is connected to the agent who accepted (`voice.bridge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BridgeMode {
    /// The next hold-loop request answers `<Dial>` to the agent; the call then leaves
    /// Switchboard's hands (for providers without conferences).
    Dial,
    /// The caller is moved into a conference named after the task at once, and the agent's
    /// phone called into it, through the provider's Voice API.
    Conference,
}

/// Which calls are recorded (`voice.record`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordMode {
    None,
    All,
}

/// Text conversations: where replies are sent, and what Switchboard itself says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsSettings {
    /// The provider's REST API; replies go to `{api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`.
    pub api_base: String,
    /// The first wait before a reply the provider did not accept is sent again (then doubling,
    /// up to 5 minutes, until it is accepted).
    pub retry_initial_ms: u64,
    /// Sent when the IVR hands the conversation to the agents.
    pub confirmation: String,
    /// Sent when the agent closes the conversation.
    pub closing: String,
}

/// `/metrics` for Prometheus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// The bearer token a scraper sends (`Authorization: Bearer …`); empty: `/metrics` is not
    /// served on the main address.
    pub token: String,
    /// A separate address that serves `/metrics` alone (the network guards it; the token too,
    /// when set); empty: none.
    pub listen: String,
    /// The service-level threshold: a task accepted within it counts as answered in time.
    pub service_level: ServiceLevels,
}

/// Service-level thresholds in seconds: one for every queue, and others for named queues;
/// written `20` or `20, Sales=30, Support=60`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ServiceLevels {
    pub default: u32,
    /// (queue's friendly name, seconds).
    pub queues: Vec<(String, u32)>,
}

impl ServiceLevels {
    /// The threshold of the queue named `queue`.
    pub fn of(&self, queue: &str) -> u32 {
        self.queues.iter().find(|(name, _)| name == queue).map_or(self.default, |&(_, seconds)| seconds)
    }
}

impl Default for ServiceLevels {
    /// Twenty seconds, the contact-center industry's usual "80/20" threshold.
    fn default() -> ServiceLevels {
        ServiceLevels { default: 20, queues: Vec::new() }
    }
}

impl TryFrom<String> for ServiceLevels {
    type Error = String;

    fn try_from(text: String) -> Result<ServiceLevels, String> {
        let seconds = |value: &str| match value.trim().parse::<u32>() {
            Ok(seconds) if (1..=86_400).contains(&seconds) => Ok(seconds),
            _ => Err(format!("{:?} is not a number of seconds from 1 to 86400", value.trim())),
        };
        let mut levels = ServiceLevels { default: 0, queues: Vec::new() };
        for (index, part) in text.split(',').enumerate() {
            match (index, part.split_once('=')) {
                (0, None) => levels.default = seconds(part)?,
                (0, Some(_)) => {
                    return Err("begin with the threshold of every queue, e.g. `20, Sales=30`".into());
                }
                (_, Some((queue, value))) if !queue.trim().is_empty() => {
                    levels.queues.push((queue.trim().to_owned(), seconds(value)?));
                }
                _ => return Err(format!("{:?}: give a queue's threshold as Name=seconds", part.trim())),
            }
        }
        Ok(levels)
    }
}

impl Default for SmsSettings {
    fn default() -> SmsSettings {
        SmsSettings {
            api_base: "https://api.twilio.com".to_owned(),
            retry_initial_ms: 1_000,
            confirmation: "Thanks! An agent will text you here shortly.".to_owned(),
            closing:
                "Thanks for contacting us. This conversation is closed; text us any time to start a new one."
                    .to_owned(),
        }
    }
}

impl Default for VoiceSettings {
    fn default() -> VoiceSettings {
        VoiceSettings {
            ivr_dir: PathBuf::from("ivr"),
            public_url: String::new(),
            wait_seconds: 5,
            announce_every: 30,
            hold_music_url: String::new(),
            abandon_after: 60,
            voicemail_after: 0,
            dial_timeout: 20,
            bridge: BridgeMode::Conference,
            api_base: "https://api.twilio.com".to_owned(),
            api_key_sid: String::new(),
            api_key_secret: String::new(),
            record: RecordMode::None,
            caller_id: String::new(),
        }
    }
}

/// The credentials in force: configured, or generated and kept by the store.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub account_sid: String,
    pub auth_token: String,
    /// The token was generated (not configured), so it is logged at start for the operator.
    pub generated_token: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token by accident (a `?` in a log line).
        f.debug_struct("Credentials").field("account_sid", &self.account_sid).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Sled,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    Flush,
    Periodic,
}

impl Default for StoreSettings {
    fn default() -> StoreSettings {
        StoreSettings {
            backend: StoreBackend::Sled,
            data_dir: PathBuf::from("data"),
            postgres_url: String::new(),
            postgres_workspace: "main".to_owned(),
            lease_ms: 2_000,
            advertise_url: String::new(),
            durability: DurabilityMode::Flush,
            flush_interval_ms: 100,
            snapshot_every: 10_000,
            cache_mb: 16,
            event_max_age: 7 * 24 * 3600,
            event_max_count: 1_000_000,
        }
    }
}

/// The HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// `host:port` to listen on; port 0 lets the system choose (the chosen address is logged).
    pub listen: String,
    /// Threads serving HTTP requests; 0 means one per CPU core.
    pub workers: usize,
    /// Seconds that in-flight requests get to finish after SIGINT or SIGTERM.
    pub shutdown_timeout: u64,
    /// The largest request body any route accepts (webhooks, REST API, agent and admin APIs);
    /// a larger one is refused with 413. Twilio takes workflow configurations of up to about
    /// 1 MB, so the default leaves room for those.
    pub max_body_bytes: usize,
    /// Seconds an idle keep-alive connection stays open. Longer than the idle timeouts of the
    /// proxies and clients that reuse connections (nginx and load balancers keep 60 s), so
    /// that they close first: a request sent on a connection the server is closing at that
    /// instant is lost in between.
    pub keep_alive: u64,
    /// The proxies whose forwarding headers (`X-Forwarded-For`, `-Host`, `-Proto`)
    /// are believed: a request whose direct peer is not one of them is taken as sent, with its
    /// own Host header, scheme and address. Empty: no proxy is trusted.
    pub trusted_proxies: TrustedProxies,
}

/// IP addresses and networks (CIDR), such as `127.0.0.1` or `10.0.0.0/8`; in the file a list
/// of strings, in the environment a comma-separated list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Parses each entry: an address alone is a network of one.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<TrustedProxies, String> {
        let parse = |entry: &str| {
            let entry = entry.trim();
            let network = match entry.parse::<ipnet::IpNet>() {
                Ok(network) => network,
                Err(_) => entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from).map_err(|_| {
                    format!("{entry:?} is neither an IP address nor a network like 10.0.0.0/8")
                })?,
            };
            Ok(network.trunc())
        };
        entries.into_iter().map(parse).collect::<Result<_, String>>().map(TrustedProxies)
    }

    /// Whether `address` is one of the trusted proxies (an IPv4 address mapped into IPv6, as a
    /// dual-stack listener sees it, counts as the IPv4 address).
    pub fn contains(&self, address: std::net::IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|network| network.contains(&address))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<Vec<String>> for TrustedProxies {
    type Error = String;

    fn try_from(entries: Vec<String>) -> Result<TrustedProxies, String> {
        TrustedProxies::parse(entries.iter().map(String::as_str))
    }
}

/// One documented setting.
#[derive(Debug, Clone, Copy)]
pub struct SettingInfo {
    /// The key in `switchboard.toml`, `section.name`.
    pub key: &'static str,
    /// The environment variable that overrides it.
    pub env: &'static str,
    /// The built-in default, as written in the file.
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Every setting, in the order of the example file.
pub const SETTINGS: &[SettingInfo] = &[
    SettingInfo {
        key: "http.listen",
        env: "SWITCHBOARD_HTTP_LISTEN",
        default: "127.0.0.1:8080",
        meaning: "Address and port to listen on; port 0 picks a free port and logs it",
    },
    SettingInfo {
        key: "http.workers",
        env: "SWITCHBOARD_HTTP_WORKERS",
        default: "0",
        meaning: "Threads serving HTTP; 0 means one per CPU core",
    },
    SettingInfo {
        key: "http.shutdown_timeout",
        env: "SWITCHBOARD_HTTP_SHUTDOWN_TIMEOUT",
        default: "10",
        meaning: "Seconds in-flight requests get to finish after SIGINT or SIGTERM",
    },
    SettingInfo {
        key: "http.max_body_bytes",
        env: "SWITCHBOARD_HTTP_MAX_BODY_BYTES",
        default: "2097152",
        meaning: "Largest request body accepted on any route (webhooks, REST API, agent and admin APIs); larger ones get 413",
    },
    SettingInfo {
        key: "http.keep_alive",
        env: "SWITCHBOARD_HTTP_KEEP_ALIVE",
        default: "75",
        meaning: "Seconds an idle keep-alive connection stays open; keep it above the idle timeout of any proxy in front",
    },
    SettingInfo {
        key: "http.trusted_proxies",
        env: "SWITCHBOARD_HTTP_TRUSTED_PROXIES",
        default: "",
        meaning: "IP addresses or CIDR networks of the proxies in front, e.g. `127.0.0.1, 10.0.0.0/8` (in the file a list of strings): only from these are `X-Forwarded-For`/`-Host`/`-Proto` believed, the nearest value of each (the client's address for the sign-in throttle, and with `voice.public_url` empty the host and scheme of links and of the URL signatures are checked over); RFC 7239's `Forwarded` is never read, since a proxy that writes the X- headers passes a client's own through; empty: none",
    },
    SettingInfo {
        key: "log.format",
        env: "SWITCHBOARD_LOG_FORMAT",
        default: "text",
        meaning: "How log lines (standard error) are written: `text`, for people; `json`, one JSON object per line with `timestamp`, `level`, `message`, the event's fields and `target`, for a log collector",
    },
    SettingInfo {
        key: "store.backend",
        env: "SWITCHBOARD_STORE_BACKEND",
        default: "sled",
        meaning: "Where the data lives: `sled`, embedded in `store.data_dir`; `postgres`, the database at `store.postgres_url` (schema created and migrated by Switchboard)",
    },
    SettingInfo {
        key: "store.postgres_url",
        env: "SWITCHBOARD_STORE_POSTGRES_URL",
        default: "",
        meaning: "With `store.backend = \"postgres\"`: the database, as a libpq connection string or URI, e.g. `postgresql://switchboard:secret@db.example.com/switchboard` or `host=/run/postgresql dbname=switchboard`",
    },
    SettingInfo {
        key: "store.postgres_workspace",
        env: "SWITCHBOARD_STORE_POSTGRES_WORKSPACE",
        default: "main",
        meaning: "The workspace's name in the database's keys: several Switchboards with different names can share one database",
    },
    SettingInfo {
        key: "store.lease_ms",
        env: "SWITCHBOARD_STORE_LEASE_MS",
        default: "2000",
        meaning: "With PostgreSQL: how long the leader's lease on the workspace lasts unless renewed (every fifth of it), judged by PostgreSQL's clock; a standby takes over once it ran out, or after half of it when the leader's database session is gone (a crash); a leader that could not renew for half of it answers 503 until it does",
    },
    SettingInfo {
        key: "store.advertise_url",
        env: "SWITCHBOARD_STORE_ADVERTISE_URL",
        default: "",
        meaning: "With PostgreSQL: how this node is named in the lease and by the standby's `/readyz` (its URL as the load balancer reaches it, e.g. `http://10.0.0.5:8080`); empty: the host name and process id",
    },
    SettingInfo {
        key: "store.data_dir",
        env: "SWITCHBOARD_STORE_DATA_DIR",
        default: "data",
        meaning: "The sled data directory (relative to the working directory)",
    },
    SettingInfo {
        key: "store.durability",
        env: "SWITCHBOARD_STORE_DURABILITY",
        default: "flush",
        meaning: "`flush`: answer only once a change is on disk; `periodic`: answer at once, flush every flush_interval_ms (a crash loses up to that much)",
    },
    SettingInfo {
        key: "store.flush_interval_ms",
        env: "SWITCHBOARD_STORE_FLUSH_INTERVAL_MS",
        default: "100",
        meaning: "Flush period in `periodic` durability",
    },
    SettingInfo {
        key: "store.snapshot_every",
        env: "SWITCHBOARD_STORE_SNAPSHOT_EVERY",
        default: "10000",
        meaning: "Commands between snapshots; bounds the log replayed at start",
    },
    SettingInfo {
        key: "store.cache_mb",
        env: "SWITCHBOARD_STORE_CACHE_MB",
        default: "16",
        meaning: "sled's page cache in MiB (reads of recent records; the routing state itself is in memory)",
    },
    SettingInfo {
        key: "store.event_max_age",
        env: "SWITCHBOARD_STORE_EVENT_MAX_AGE",
        default: "604800",
        meaning: "Seconds events are kept",
    },
    SettingInfo {
        key: "store.event_max_count",
        env: "SWITCHBOARD_STORE_EVENT_MAX_COUNT",
        default: "1000000",
        meaning: "Events kept at most; the oldest go first",
    },
    SettingInfo {
        key: "events.callback_url",
        env: "SWITCHBOARD_EVENTS_CALLBACK_URL",
        default: "",
        meaning: "URL that receives every event as a form POST with TaskRouter's parameter names; empty: no callbacks; the workspace's `EventCallbackUrl`, once set through the REST API, replaces it",
    },
    SettingInfo {
        key: "events.callback_filter",
        env: "SWITCHBOARD_EVENTS_CALLBACK_FILTER",
        default: "",
        meaning: "Comma-separated event types to send, e.g. `task.created,task.canceled`; empty: all; the workspace's `EventsFilter`, once set through the REST API, replaces it",
    },
    SettingInfo {
        key: "events.callback_attempts",
        env: "SWITCHBOARD_EVENTS_CALLBACK_ATTEMPTS",
        default: "5",
        meaning: "Attempts per event (backoff from 0.5 s, doubling) before it is logged and dropped",
    },
    SettingInfo {
        key: "twilio.account_sid",
        env: "SWITCHBOARD_TWILIO_ACCOUNT_SID",
        default: "",
        meaning: "Account SID (`AC` + 32 hex digits) for REST API Basic auth; empty: generated at first start and kept",
    },
    SettingInfo {
        key: "twilio.auth_token",
        env: "SWITCHBOARD_TWILIO_AUTH_TOKEN",
        default: "",
        meaning: "Auth token for REST API Basic auth and webhook signatures; empty: generated at first start, kept and logged at start",
    },
    SettingInfo {
        key: "twilio.validate_signatures",
        env: "SWITCHBOARD_TWILIO_VALIDATE_SIGNATURES",
        default: "true",
        meaning: "Check X-Twilio-Signature on every webhook (403 when wrong); `false` only for experiments, with a warning at start and on every webhook",
    },
    SettingInfo {
        key: "voice.ivr_dir",
        env: "SWITCHBOARD_VOICE_IVR_DIR",
        default: "ivr",
        meaning: "Folder of IVR flow files, checked at start; `main.toml` answers the numbers no flow claims",
    },
    SettingInfo {
        key: "voice.public_url",
        env: "SWITCHBOARD_VOICE_PUBLIC_URL",
        default: "",
        meaning: "The URL the provider posts webhooks to, e.g. `https://switchboard.example.com`, over which signatures are checked; also the base of the REST API's `url` and `links`; empty: `http://` + the request's Host (from a proxy in `http.trusted_proxies`: the forwarded scheme and host)",
    },
    SettingInfo {
        key: "voice.wait_seconds",
        env: "SWITCHBOARD_VOICE_WAIT_SECONDS",
        default: "5",
        meaning: "Seconds of hold music or silence between two hold-loop requests (how soon an accepted call is bridged)",
    },
    SettingInfo {
        key: "voice.announce_every",
        env: "SWITCHBOARD_VOICE_ANNOUNCE_EVERY",
        default: "30",
        meaning: "Seconds between two announcements of the caller's place in line and estimated wait",
    },
    SettingInfo {
        key: "voice.hold_music_url",
        env: "SWITCHBOARD_VOICE_HOLD_MUSIC_URL",
        default: "",
        meaning: "Audio played once per hold-loop round instead of `wait_seconds` of silence: a short clip (callers are bridged, and abandoned loops noticed, only between two plays); empty: silence",
    },
    SettingInfo {
        key: "voice.abandon_after",
        env: "SWITCHBOARD_VOICE_ABANDON_AFTER",
        default: "60",
        meaning: "Seconds without a hold-loop request after which the caller is taken to have gone and the task is canceled",
    },
    SettingInfo {
        key: "voice.voicemail_after",
        env: "SWITCHBOARD_VOICE_VOICEMAIL_AFTER",
        default: "0",
        meaning: "Seconds in line after which the caller may leave a voicemail instead (stored with the task, which stays for a call-back); 0: never",
    },
    SettingInfo {
        key: "voice.dial_timeout",
        env: "SWITCHBOARD_VOICE_DIAL_TIMEOUT",
        default: "20",
        meaning: "Seconds an agent's phone rings before the call goes to the next agent",
    },
    SettingInfo {
        key: "voice.bridge",
        env: "SWITCHBOARD_VOICE_BRIDGE",
        default: "conference",
        meaning: "`conference`: the moment an agent accepts, the caller is moved into a conference named after the task and the agent called into it, through the provider's Voice API at `voice.api_base` (hold, mute, recording; should the API fail, the hold loop bridges with `<Dial>`); `dial`: the next hold-loop request answers `<Dial>` to the agent who accepted (providers without conferences)",
    },
    SettingInfo {
        key: "voice.api_base",
        env: "SWITCHBOARD_VOICE_API_BASE",
        default: "https://api.twilio.com",
        meaning: "The provider's Voice REST API (calls, conferences, participants, recordings), e.g. the emulator's `http://127.0.0.1:8081`",
    },
    SettingInfo {
        key: "voice.api_key_sid",
        env: "SWITCHBOARD_VOICE_API_KEY_SID",
        default: "",
        meaning: "An API key (`SK...`) for the Voice API, with `voice.api_key_secret`; empty: the account SID and auth token",
    },
    SettingInfo {
        key: "voice.api_key_secret",
        env: "SWITCHBOARD_VOICE_API_KEY_SECRET",
        default: "",
        meaning: "The API key's secret",
    },
    SettingInfo {
        key: "voice.record",
        env: "SWITCHBOARD_VOICE_RECORD",
        default: "none",
        meaning: "`all`: record every bridged call from the moment the agent joins (conference bridging); the recording is stored with the task; `none`: only when an agent starts it",
    },
    SettingInfo {
        key: "voice.caller_id",
        env: "SWITCHBOARD_VOICE_CALLER_ID",
        default: "",
        meaning: "The number agents' outbound calls come from (`+E.164`); empty: a call back comes from the number the customer called, and calling a new number is refused",
    },
    SettingInfo {
        key: "sms.api_base",
        env: "SWITCHBOARD_SMS_API_BASE",
        default: "https://api.twilio.com",
        meaning: "The provider's REST API: agents' replies are POSTed to `{api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`",
    },
    SettingInfo {
        key: "sms.retry_initial_ms",
        env: "SWITCHBOARD_SMS_RETRY_INITIAL_MS",
        default: "1000",
        meaning: "First wait before a reply the provider did not accept is sent again; doubling up to 5 minutes, until accepted",
    },
    SettingInfo {
        key: "sms.confirmation",
        env: "SWITCHBOARD_SMS_CONFIRMATION",
        default: "Thanks! An agent will text you here shortly.",
        meaning: "Texted when the IVR hands the conversation to the agents",
    },
    SettingInfo {
        key: "sms.closing",
        env: "SWITCHBOARD_SMS_CLOSING",
        default: "Thanks for contacting us. This conversation is closed; text us any time to start a new one.",
        meaning: "Texted when the agent closes the conversation",
    },
    SettingInfo {
        key: "metrics.token",
        env: "SWITCHBOARD_METRICS_TOKEN",
        default: "",
        meaning: "Bearer token that `GET /metrics` (Prometheus' text format) requires on the main address (`Authorization: Bearer …`, Prometheus' `authorization` setting); empty: `/metrics` is served only on `metrics.listen`",
    },
    SettingInfo {
        key: "metrics.listen",
        env: "SWITCHBOARD_METRICS_LISTEN",
        default: "",
        meaning: "A separate address (e.g. `127.0.0.1:9464`) serving `/metrics` alone, guarded by the network (and by `metrics.token` when set); empty: none",
    },
    SettingInfo {
        key: "metrics.service_level",
        env: "SWITCHBOARD_METRICS_SERVICE_LEVEL",
        default: "20",
        meaning: "Service-level threshold in seconds: a task accepted within it was answered in time; `20, Sales=30` gives named queues their own",
    },
];

/// Where the settings came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Defaults,
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config` named a file that does not exist.
    #[error("configuration file {path} does not exist")]
    MissingFile { path: PathBuf },
    /// The file exists but cannot be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Bad TOML, an unknown key or a value of the wrong type; `message` quotes the line.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A `SWITCHBOARD_*` variable that names no setting.
    #[error("unknown environment variable {name}; settings are {known}")]
    UnknownEnv { name: String, known: String },
    /// A `SWITCHBOARD_*` variable whose value does not fit the setting.
    #[error("environment variable {name}={value:?}: {reason}")]
    InvalidEnv { name: String, value: String, reason: String },
    /// Settings that are fine alone but not together.
    #[error("{0}")]
    Inconsistent(String),
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            listen: "127.0.0.1:8080".to_owned(),
            workers: 0,
            shutdown_timeout: 10,
            max_body_bytes: 2 << 20,
            keep_alive: 75,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

impl Settings {
    /// Loads the settings: defaults, then the file (`explicit_file`, else `switchboard.toml` in
    /// `working_dir` if present), then the `SWITCHBOARD_*` entries of `env`.
    pub fn load(
        explicit_file: Option<&Path>,
        working_dir: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Settings, ConfigSource), ConfigError> {
        let (mut settings, source) = match explicit_file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::MissingFile { path: path.to_owned() });
            }
            Some(path) => (Settings::from_file(path)?, ConfigSource::File(path.to_owned())),
            None => {
                let path = working_dir.join(DEFAULT_CONFIG_FILE);
                if path.exists() {
                    (Settings::from_file(&path)?, ConfigSource::File(path))
                } else {
                    (Settings::default(), ConfigSource::Defaults)
                }
            }
        };
        let mut overrides: Vec<(String, String)> =
            env.into_iter().filter(|(name, _)| name.starts_with(ENV_PREFIX)).collect();
        overrides.sort();
        for (name, value) in overrides {
            settings.apply_env(&name, &value)?;
        }
        settings.check_together()?;
        Ok((settings, source))
    }

    /// The rules between settings, once every layer is applied.
    pub fn check_together(&self) -> Result<(), ConfigError> {
        let voice = &self.voice;
        if voice.abandon_after <= voice.wait_seconds {
            return Err(ConfigError::Inconsistent(format!(
                "voice.abandon_after ({} s) must be longer than voice.wait_seconds ({} s), or every caller on hold would be taken to have hung up",
                voice.abandon_after, voice.wait_seconds
            )));
        }
        if self.store.backend == StoreBackend::Postgres && self.store.postgres_url.is_empty() {
            return Err(ConfigError::Inconsistent(
                "store.backend = \"postgres\" needs store.postgres_url, the database to keep the data in"
                    .to_owned(),
            ));
        }
        if self.store.backend == StoreBackend::Postgres && self.store.durability == DurabilityMode::Periodic {
            return Err(ConfigError::Inconsistent(
                "store.durability = \"periodic\" is for sled only: with PostgreSQL every answer waits for its commit, so that a failover loses nothing acknowledged"
                    .to_owned(),
            ));
        }
        if self.store.lease_ms < 100 {
            return Err(ConfigError::Inconsistent(format!(
                "store.lease_ms ({} ms) must be at least 100: the lease is renewed every fifth of it, over the network",
                self.store.lease_ms
            )));
        }
        let e164 = matches!(
            crate::twiml::DialTarget::from_contact_uri(&voice.caller_id),
            Some(crate::twiml::DialTarget::Number(_))
        );
        if !voice.caller_id.is_empty() && !e164 {
            return Err(ConfigError::Inconsistent(format!(
                "voice.caller_id ({:?}) must be a +E.164 number, or empty",
                voice.caller_id
            )));
        }
        if voice.api_key_sid.is_empty() != voice.api_key_secret.is_empty() {
            return Err(ConfigError::Inconsistent(
                "voice.api_key_sid and voice.api_key_secret go together: give both, or neither to use the account SID and auth token"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// Parses settings from TOML text; `path` only labels errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse { path: path.to_owned(), message };
        let settings: Settings =
            toml::from_str(text).map_err(|err| parse_error(err.to_string().trim_end().to_owned()))?;
        parse_listen(&settings.http.listen)
            .map_err(|reason| parse_error(format!("http.listen = {:?}: {reason}", settings.http.listen)))?;
        parse_account_sid(&settings.twilio.account_sid).map_err(|reason| {
            parse_error(format!("twilio.account_sid = {:?}: {reason}", settings.twilio.account_sid))
        })?;
        let mut settings = settings;
        settings.voice.public_url = parse_public_url(&settings.voice.public_url).map_err(|reason| {
            parse_error(format!("voice.public_url = {:?}: {reason}", settings.voice.public_url))
        })?;
        settings.sms.api_base = parse_base_url(&settings.sms.api_base)
            .map_err(|reason| parse_error(format!("sms.api_base = {:?}: {reason}", settings.sms.api_base)))?;
        settings.voice.api_base = parse_base_url(&settings.voice.api_base).map_err(|reason| {
            parse_error(format!("voice.api_base = {:?}: {reason}", settings.voice.api_base))
        })?;
        // Build the workspace once now, so that its mistakes stop the start with their line.
        settings.workspace.build(text, 0, 0).map_err(|err| parse_error(format!("[workspace] {err}")))?;
        Ok(settings)
    }

    fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Settings::from_toml(&text, path)
    }

    fn apply_env(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        if name == CONFIG_ENV {
            return Ok(());
        }
        let Some(setting) = SETTINGS.iter().find(|setting| setting.env == name) else {
            let known: Vec<&str> =
                std::iter::once(CONFIG_ENV).chain(SETTINGS.iter().map(|s| s.env)).collect();
            return Err(ConfigError::UnknownEnv { name: name.to_owned(), known: known.join(", ") });
        };
        self.set(setting.key, value).map_err(|reason| ConfigError::InvalidEnv {
            name: name.to_owned(),
            value: value.to_owned(),
            reason,
        })
    }

    /// Sets one setting from its text form, as an environment variable gives it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "http.listen" => self.http.listen = parse_listen(value)?,
            "http.workers" => self.http.workers = parse_number(value)?,
            "http.shutdown_timeout" => self.http.shutdown_timeout = parse_number(value)?,
            "http.max_body_bytes" => self.http.max_body_bytes = parse_number(value)?,
            "http.keep_alive" => self.http.keep_alive = parse_number(value)?,
            "http.trusted_proxies" => {
                let entries = value.split(',').filter(|entry| !entry.trim().is_empty());
                self.http.trusted_proxies = TrustedProxies::parse(entries)?;
            }
            "log.format" => {
                self.log.format =
                    parse_choice(value, &[("text", LogFormat::Text), ("json", LogFormat::Json)])?
            }
            "store.backend" => {
                self.store.backend = parse_choice(
                    value,
                    &[("sled", StoreBackend::Sled), ("postgres", StoreBackend::Postgres)],
                )?
            }
            "store.postgres_url" => self.store.postgres_url = value.to_owned(),
            "store.postgres_workspace" => self.store.postgres_workspace = value.to_owned(),
            "store.lease_ms" => self.store.lease_ms = parse_number(value)?,
            "store.advertise_url" => self.store.advertise_url = value.to_owned(),
            "store.data_dir" => self.store.data_dir = PathBuf::from(value),
            "store.durability" => {
                self.store.durability = parse_choice(
                    value,
                    &[("flush", DurabilityMode::Flush), ("periodic", DurabilityMode::Periodic)],
                )?
            }
            "store.flush_interval_ms" => self.store.flush_interval_ms = parse_number(value)?,
            "store.snapshot_every" => self.store.snapshot_every = parse_number(value)?,
            "store.cache_mb" => self.store.cache_mb = parse_number(value)?,
            "store.event_max_age" => self.store.event_max_age = parse_number(value)?,
            "store.event_max_count" => self.store.event_max_count = parse_number(value)?,
            "events.callback_url" => self.events.callback_url = value.to_owned(),
            "events.callback_filter" => self.events.callback_filter = value.to_owned(),
            "events.callback_attempts" => self.events.callback_attempts = parse_number(value)?,
            "twilio.account_sid" => self.twilio.account_sid = parse_account_sid(value)?,
            "twilio.auth_token" => self.twilio.auth_token = value.to_owned(),
            "twilio.validate_signatures" => self.twilio.validate_signatures = parse_bool(value)?,
            "voice.ivr_dir" => self.voice.ivr_dir = PathBuf::from(value),
            "voice.public_url" => self.voice.public_url = parse_public_url(value)?,
            "voice.wait_seconds" => self.voice.wait_seconds = parse_number(value)?,
            "voice.announce_every" => self.voice.announce_every = parse_number(value)?,
            "voice.hold_music_url" => self.voice.hold_music_url = value.to_owned(),
            "voice.abandon_after" => self.voice.abandon_after = parse_number(value)?,
            "voice.voicemail_after" => self.voice.voicemail_after = parse_number(value)?,
            "voice.dial_timeout" => self.voice.dial_timeout = parse_number(value)?,
            "voice.bridge" => {
                self.voice.bridge = parse_choice(
                    value,
                    &[("dial", BridgeMode::Dial), ("conference", BridgeMode::Conference)],
                )?
            }
            "voice.api_base" => self.voice.api_base = parse_base_url(value)?,
            "voice.api_key_sid" => self.voice.api_key_sid = value.to_owned(),
            "voice.api_key_secret" => self.voice.api_key_secret = value.to_owned(),
            "voice.caller_id" => self.voice.caller_id = value.trim().to_owned(),
            "voice.record" => {
                self.voice.record =
                    parse_choice(value, &[("none", RecordMode::None), ("all", RecordMode::All)])?
            }
            "sms.api_base" => self.sms.api_base = parse_base_url(value)?,
            "sms.retry_initial_ms" => self.sms.retry_initial_ms = parse_number(value)?,
            "sms.confirmation" => self.sms.confirmation = value.to_owned(),
            "sms.closing" => self.sms.closing = value.to_owned(),
            "metrics.token" => self.metrics.token = value.to_owned(),
            "metrics.listen" => self.metrics.listen = value.to_owned(),
            "metrics.service_level" => {
                self.metrics.service_level = ServiceLevels::try_from(value.to_owned())?
            }
            _ => return Err(format!("unknown setting {key}")),
        }
        Ok(())
    }
}

/// Empty (generate one) or Twilio's account SID shape, which the SDKs put in every URL.
fn parse_account_sid(value: &str) -> Result<String, String> {
    let hex = value.strip_prefix("AC").unwrap_or("-");
    if value.is_empty() || (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())) {
        Ok(value.to_owned())
    } else {
        Err("expected AC followed by 32 hex digits, or empty to generate one".to_owned())
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// Empty, or `http(s)://host[:port]`: the TwiML that Switchboard answers refers to its own
/// webhooks by absolute path (`/voice/wait`), so a path prefix here would not be kept.
fn parse_public_url(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('/');
    let authority = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
    match authority {
        _ if value.is_empty() => Ok(String::new()),
        Some(authority) if !authority.is_empty() && !authority.contains(['/', '?', '#']) => {
            Ok(value.to_owned())
        }
        Some(_) => {
            Err("expected scheme and host only (like https://switchboard.example.com), without a path"
                .to_owned())
        }
        None => Err("expected an http:// or https:// URL, or empty".to_owned()),
    }
}

/// An `http(s)://` URL, without a trailing slash (paths are appended to it).
fn parse_base_url(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('/');
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value.to_owned())
    } else {
        Err("expected an http:// or https:// URL".to_owned())
    }
}

/// One of `choices`, by name.
fn parse_choice<T: Copy>(value: &str, choices: &[(&str, T)]) -> Result<T, String> {
    choices.iter().find(|(name, _)| *name == value).map(|(_, choice)| *choice).ok_or_else(|| {
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        format!("expected {}", names.join(" or "))
    })
}

fn parse_number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value.trim().parse().map_err(|_| "expected a whole number".to_owned())
}

fn parse_listen(value: &str) -> Result<String, String> {
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(value.to_owned()),
        _ => Err("expected host:port, e.g. 127.0.0.1:8080".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    /// Loads settings from an optional file text and environment, rendering the outcome.
    fn check(file: Option<&str>, env: &[(&str, &str)], expected: Expect) {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = file {
            std::fs::write(dir.path().join(DEFAULT_CONFIG_FILE), text).unwrap();
        }
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let rendered = match Settings::load(None, dir.path(), env) {
            Ok((settings, source)) => {
                let source = match source {
                    ConfigSource::Defaults => "defaults".to_owned(),
                    ConfigSource::File(path) => path.file_name().unwrap().to_string_lossy().into(),
                };
                format!("{source}: {:?}", settings.http)
            }
            Err(err) => err.to_string().replace(&dir.path().display().to_string(), "DIR"),
        };
        expected.assert_eq(&rendered);
    }

    #[test]
    fn defaults_then_file_then_environment() {
        check(
            None,
            &[],
            expect![[
                r#"defaults: HttpSettings { listen: "127.0.0.1:8080", workers: 0, shutdown_timeout: 10, max_body_bytes: 2097152, keep_alive: 75, trusted_proxies: TrustedProxies([]) }"#
            ]],
        );
        check(
            Some(""),
            &[],
            expect![[
                r#"switchboard.toml: HttpSettings { listen: "127.0.0.1:8080", workers: 0, shutdown_timeout: 10, max_body_bytes: 2097152, keep_alive: 75, trusted_proxies: TrustedProxies([]) }"#
            ]],
        );
        check(
            Some("[http]\nworkers = 3\n"),
            &[],
            expect![[
                r#"switchboard.toml: HttpSettings { listen: "127.0.0.1:8080", workers: 3, shutdown_timeout: 10, max_body_bytes: 2097152, keep_alive: 75, trusted_proxies: TrustedProxies([]) }"#
            ]],
        );
        check(
            Some("[http]\nworkers = 3\nlisten = \"0.0.0.0:80\"\n"),
            &[("SWITCHBOARD_HTTP_WORKERS", "5"), ("HOME", "/root"), ("SWITCHBOARD_CONFIG", "x")],
            expect![[
                r#"switchboard.toml: HttpSettings { listen: "0.0.0.0:80", workers: 5, shutdown_timeout: 10, max_body_bytes: 2097152, keep_alive: 75, trusted_proxies: TrustedProxies([]) }"#
            ]],
        );
        check(
            None,
            &[("SWITCHBOARD_HTTP_LISTEN", "[::1]:0")],
            expect![[
                r#"defaults: HttpSettings { listen: "[::1]:0", workers: 0, shutdown_timeout: 10, max_body_bytes: 2097152, keep_alive: 75, trusted_proxies: TrustedProxies([]) }"#
            ]],
        );
        check(
            Some("[http]\ntrusted_proxies = [\"10.1.2.3/8\", \"::1\"]\n"),
            &[],
            expect![[
                r#"switchboard.toml: HttpSettings { listen: "127.0.0.1:8080", workers: 0, shutdown_timeout: 10, max_body_bytes: 2097152, keep_alive: 75, trusted_proxies: TrustedProxies([10.0.0.0/8, ::1/128]) }"#
            ]],
        );
        check(
            None,
            &[("SWITCHBOARD_HTTP_TRUSTED_PROXIES", " 127.0.0.1, 192.168.0.0/16 ,")],
            expect![[
                r#"defaults: HttpSettings { listen: "127.0.0.1:8080", workers: 0, shutdown_timeout: 10, max_body_bytes: 2097152, keep_alive: 75, trusted_proxies: TrustedProxies([127.0.0.1/32, 192.168.0.0/16]) }"#
            ]],
        );
    }

    #[test]
    fn service_levels_are_one_threshold_then_named_queues() {
        type Expected<'a> = Result<(u32, &'a [(&'a str, u32)]), &'a str>;
        let check = |text: &str, expected: Expected| {
            let parsed = ServiceLevels::try_from(text.to_owned());
            let expected = expected
                .map(|(default, queues)| ServiceLevels {
                    default,
                    queues: queues.iter().map(|&(name, seconds)| (name.to_owned(), seconds)).collect(),
                })
                .map_err(str::to_owned);
            assert_eq!(parsed, expected, "{text:?}");
        };
        check("20", Ok((20, &[])));
        check(" 30 , Sales=10, Tier 2 = 45", Ok((30, &[("Sales", 10), ("Tier 2", 45)])));
        check("Sales=10", Err("begin with the threshold of every queue, e.g. `20, Sales=30`"));
        check("0", Err("\"0\" is not a number of seconds from 1 to 86400"));
        check("20, Sales", Err("\"Sales\": give a queue's threshold as Name=seconds"));
        check("20, =5", Err("\"=5\": give a queue's threshold as Name=seconds"));
        check("20, Sales=soon", Err("\"soon\" is not a number of seconds from 1 to 86400"));
        let levels = ServiceLevels::try_from("20, Sales=10".to_owned()).unwrap();
        assert_eq!((levels.of("Sales"), levels.of("Support")), (10, 20));
    }

    #[test]
    fn mistakes_are_errors_that_name_the_key() {
        check(
            Some("[http]\nlisten = \"127.0.0.1:8080\"\nlisen = \"x\"\n"),
            &[],
            expect![[r#"
                DIR/switchboard.toml: TOML parse error at line 3, column 1
                  |
                3 | lisen = "x"
                  | ^^^^^
                unknown field `lisen`, expected one of `listen`, `workers`, `shutdown_timeout`, `max_body_bytes`, `keep_alive`, `trusted_proxies`"#]],
        );
        check(
            Some("[http]\ntrusted_proxies = [\"proxy.local\"]\n"),
            &[],
            expect![[r#"
                DIR/switchboard.toml: TOML parse error at line 2, column 19
                  |
                2 | trusted_proxies = ["proxy.local"]
                  |                   ^^^^^^^^^^^^^^^
                "proxy.local" is neither an IP address nor a network like 10.0.0.0/8"#]],
        );
        check(
            None,
            &[("SWITCHBOARD_HTTP_TRUSTED_PROXIES", "10.0.0.0/33")],
            expect![[
                r#"environment variable SWITCHBOARD_HTTP_TRUSTED_PROXIES="10.0.0.0/33": "10.0.0.0/33" is neither an IP address nor a network like 10.0.0.0/8"#
            ]],
        );
        check(
            Some("[htp]\n"),
            &[],
            expect![[r#"
                DIR/switchboard.toml: TOML parse error at line 1, column 2
                  |
                1 | [htp]
                  |  ^^^
                unknown field `htp`, expected one of `http`, `log`, `store`, `events`, `twilio`, `voice`, `sms`, `metrics`, `workspace`"#]],
        );
        check(
            Some("[http]\nworkers = \"two\"\n"),
            &[],
            expect![[r#"
                DIR/switchboard.toml: TOML parse error at line 2, column 11
                  |
                2 | workers = "two"
                  |           ^^^^^
                invalid type: string "two", expected usize"#]],
        );
        check(
            Some("[twilio]\naccount_sid = \"AC123\"\n"),
            &[],
            expect![[
                r#"DIR/switchboard.toml: twilio.account_sid = "AC123": expected AC followed by 32 hex digits, or empty to generate one"#
            ]],
        );
        check(
            None,
            &[("SWITCHBOARD_TWILIO_ACCOUNT_SID", "XX0123456789abcdef0123456789abcdef")],
            expect![[
                r#"environment variable SWITCHBOARD_TWILIO_ACCOUNT_SID="XX0123456789abcdef0123456789abcdef": expected AC followed by 32 hex digits, or empty to generate one"#
            ]],
        );
        check(
            Some("[http]\nlisten = \"localhost\"\n"),
            &[],
            expect![[
                r#"DIR/switchboard.toml: http.listen = "localhost": expected host:port, e.g. 127.0.0.1:8080"#
            ]],
        );
        check(
            Some("[store]\nbackend = \"postgres\"\n"),
            &[],
            expect![[
                r#"store.backend = "postgres" needs store.postgres_url, the database to keep the data in"#
            ]],
        );
        check(
            Some("[store]\nbackend = \"mysql\"\n"),
            &[],
            expect![[r#"
            DIR/switchboard.toml: TOML parse error at line 2, column 11
              |
            2 | backend = "mysql"
              |           ^^^^^^^
            unknown variant `mysql`, expected `sled` or `postgres`"#]],
        );
        check(
            Some("[voice]\nwait_seconds = 60\n"),
            &[],
            expect![[
                r#"voice.abandon_after (60 s) must be longer than voice.wait_seconds (60 s), or every caller on hold would be taken to have hung up"#
            ]],
        );
        check(
            Some("[voice]\ncaller_id = \"555-0100\"\n"),
            &[],
            expect![[r#"voice.caller_id ("555-0100") must be a +E.164 number, or empty"#]],
        );
        check(
            None,
            &[("SWITCHBOARD_VOICE_API_KEY_SID", "SK0123")],
            expect![[
                r#"voice.api_key_sid and voice.api_key_secret go together: give both, or neither to use the account SID and auth token"#
            ]],
        );
        check(
            Some("[voice]\nbridge = \"phone\"\n"),
            &[],
            expect![[r#"
                DIR/switchboard.toml: TOML parse error at line 2, column 10
                  |
                2 | bridge = "phone"
                  |          ^^^^^^^
                unknown variant `phone`, expected `dial` or `conference`"#]],
        );
        check(
            None,
            &[("SWITCHBOARD_VOICE_PUBLIC_URL", "https://example.com/switchboard")],
            expect![[
                r#"environment variable SWITCHBOARD_VOICE_PUBLIC_URL="https://example.com/switchboard": expected scheme and host only (like https://switchboard.example.com), without a path"#
            ]],
        );
        check(
            Some("[voice]\npublic_url = \"https://sb.example.com:8443/\"\n"),
            &[],
            expect![[
                r#"switchboard.toml: HttpSettings { listen: "127.0.0.1:8080", workers: 0, shutdown_timeout: 10, max_body_bytes: 2097152, keep_alive: 75, trusted_proxies: TrustedProxies([]) }"#
            ]],
        );
        check(
            None,
            &[("SWITCHBOARD_HTTP_LISTN", "x")],
            expect![
                "unknown environment variable SWITCHBOARD_HTTP_LISTN; settings are SWITCHBOARD_CONFIG, SWITCHBOARD_HTTP_LISTEN, SWITCHBOARD_HTTP_WORKERS, SWITCHBOARD_HTTP_SHUTDOWN_TIMEOUT, SWITCHBOARD_HTTP_MAX_BODY_BYTES, SWITCHBOARD_HTTP_KEEP_ALIVE, SWITCHBOARD_HTTP_TRUSTED_PROXIES, SWITCHBOARD_LOG_FORMAT, SWITCHBOARD_STORE_BACKEND, SWITCHBOARD_STORE_POSTGRES_URL, SWITCHBOARD_STORE_POSTGRES_WORKSPACE, SWITCHBOARD_STORE_LEASE_MS, SWITCHBOARD_STORE_ADVERTISE_URL, SWITCHBOARD_STORE_DATA_DIR, SWITCHBOARD_STORE_DURABILITY, SWITCHBOARD_STORE_FLUSH_INTERVAL_MS, SWITCHBOARD_STORE_SNAPSHOT_EVERY, SWITCHBOARD_STORE_CACHE_MB, SWITCHBOARD_STORE_EVENT_MAX_AGE, SWITCHBOARD_STORE_EVENT_MAX_COUNT, SWITCHBOARD_EVENTS_CALLBACK_URL, SWITCHBOARD_EVENTS_CALLBACK_FILTER, SWITCHBOARD_EVENTS_CALLBACK_ATTEMPTS, SWITCHBOARD_TWILIO_ACCOUNT_SID, SWITCHBOARD_TWILIO_AUTH_TOKEN, SWITCHBOARD_TWILIO_VALIDATE_SIGNATURES, SWITCHBOARD_VOICE_IVR_DIR, SWITCHBOARD_VOICE_PUBLIC_URL, SWITCHBOARD_VOICE_WAIT_SECONDS, SWITCHBOARD_VOICE_ANNOUNCE_EVERY, SWITCHBOARD_VOICE_HOLD_MUSIC_URL, SWITCHBOARD_VOICE_ABANDON_AFTER, SWITCHBOARD_VOICE_VOICEMAIL_AFTER, SWITCHBOARD_VOICE_DIAL_TIMEOUT, SWITCHBOARD_VOICE_BRIDGE, SWITCHBOARD_VOICE_API_BASE, SWITCHBOARD_VOICE_API_KEY_SID, SWITCHBOARD_VOICE_API_KEY_SECRET, SWITCHBOARD_VOICE_RECORD, SWITCHBOARD_VOICE_CALLER_ID, SWITCHBOARD_SMS_API_BASE, SWITCHBOARD_SMS_RETRY_INITIAL_MS, SWITCHBOARD_SMS_CONFIRMATION, SWITCHBOARD_SMS_CLOSING, SWITCHBOARD_METRICS_TOKEN, SWITCHBOARD_METRICS_LISTEN, SWITCHBOARD_METRICS_SERVICE_LEVEL"
            ],
        );
        check(
            None,
            &[("SWITCHBOARD_LOG_FORMAT", "xml")],
            expect![[r#"environment variable SWITCHBOARD_LOG_FORMAT="xml": expected text or json"#]],
        );
        check(
            Some("[log]\nformat = \"JSON\"\n"),
            &[],
            expect![[r#"
                DIR/switchboard.toml: TOML parse error at line 2, column 10
                  |
                2 | format = "JSON"
                  |          ^^^^^^
                unknown variant `JSON`, expected `text` or `json`"#]],
        );
        check(
            None,
            &[("SWITCHBOARD_HTTP_WORKERS", "many")],
            expect![[r#"environment variable SWITCHBOARD_HTTP_WORKERS="many": expected a whole number"#]],
        );
        check(
            None,
            &[("SWITCHBOARD_HTTP_LISTEN", "8080")],
            expect![[
                r#"environment variable SWITCHBOARD_HTTP_LISTEN="8080": expected host:port, e.g. 127.0.0.1:8080"#
            ]],
        );
    }

    #[test]
    fn a_named_file_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let err = Settings::load(Some(&missing), dir.path(), []).unwrap_err();
        assert_eq!(err.to_string(), format!("configuration file {} does not exist", missing.display()));
    }

    #[test]
    fn documented_defaults_are_the_real_defaults() {
        for setting in SETTINGS {
            let mut settings = Settings::default();
            settings.set(setting.key, setting.default).unwrap();
            assert_eq!(settings, Settings::default(), "{}", setting.key);
            let derived_env = format!("SWITCHBOARD_{}", setting.key.replace('.', "_").to_uppercase());
            assert_eq!(setting.env, derived_env);
        }
    }
}
