//! Monitoring in Prometheus' text format (`GET /metrics`): the home of the `prometheus` crate.
//!
//! Two kinds of numbers, so that a scrape never holds up routing:
//!
//! - pushed as things happen, into the crate's own atomics: request durations per route, the
//!   store's group commits (writes per group, flush time), event callbacks that failed, the
//!   live streams open, and the process' own figures (CPU, memory, open files);
//! - read at the scrape from what is kept anyway: the statistics' [`Totals`] (reservations by
//!   outcome, tasks ended, waits until accepted and until abandoned as histograms, the service
//!   level) under the statistics' own lock, and each queue's live tasks by channel and status
//!   and the workers by activity, read under the engine's lock at most once a second whoever
//!   scrapes ([`REALTIME_MAX_AGE`]), the queues' live sets only.
//!
//! Counts come from the same events as TaskRouter's cumulative statistics and as the REST
//! API's real-time statistics, so the two agree; the counters only grow while the process lives
//! and start, after a restart, from the history the statistics read.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::config::ServiceLevels;
use crate::live::{self, LiveEngine};
use crate::routing::{ActivityCount, QueueCensus, Sid, Totals};

/// The longest a scrape's view of the queues and workers may be old: scraping more often
/// reads the engine no more often.
pub const REALTIME_MAX_AGE: Duration = Duration::from_secs(1);

/// The wait histograms' bounds, in seconds (each queue's service-level threshold is added).
const WAIT_BOUNDS: [u32; 15] = [5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600];

/// What a scrape reads of the queues and workers.
#[derive(Debug, Clone, Default)]
struct Realtime {
    queues: Vec<QueueCensus>,
    activities: Vec<ActivityCount>,
    /// Task channel SID → unique name.
    channels: Vec<(Sid, String)>,
}

/// The text-message outbox, as a scrape sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxFigures {
    pub queued: usize,
    pub sent: usize,
    pub failed: usize,
    /// Canceled by the customer's STOP before they were sent.
    pub canceled: usize,
    /// Attempts that had to be made again, since the start.
    pub retries: u64,
}

/// The registry and the figures pushed into it.
pub struct Metrics {
    registry: Registry,
    requests: HistogramVec,
    group_writes: Histogram,
    flush_seconds: Histogram,
    callback_failures: IntCounterVec,
    streams: IntGauge,
    service_levels: ServiceLevels,
    realtime: Mutex<Option<(Instant, Arc<Realtime>)>>,
}

/// Counts a live stream while it is held (dropped when the stream ends).
pub struct StreamGuard(IntGauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub fn new(service_levels: ServiceLevels) -> Metrics {
        let registry = Registry::new();
        let requests = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_http_request_duration_seconds",
                "Time to answer an HTTP request (webhooks, the REST API, the pages' APIs), by route pattern and method",
            )
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["route", "method"],
        )
        .expect("a valid histogram");
        let group_writes = Histogram::with_opts(
            HistogramOpts::new(
                "switchboard_store_group_writes",
                "Writes (commands and records) made durable by one group commit",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0]),
        )
        .expect("a valid histogram");
        let flush_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "switchboard_store_flush_duration_seconds",
                "Time to write and flush one group commit to disk",
            )
            .buckets(vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]),
        )
        .expect("a valid histogram");
        let callback_failures = IntCounterVec::new(
            Opts::new(
                "switchboard_event_callback_failures_total",
                "Event callback attempts that failed: `retried`, or `dropped` after the last attempt",
            ),
            &["outcome"],
        )
        .expect("a valid counter");
        // Both shown from the start, at zero: a rate over a series that appears late misses
        // its first failures.
        for outcome in ["retried", "dropped"] {
            callback_failures.with_label_values(&[outcome]);
        }
        let streams = IntGauge::new(
            "switchboard_live_streams",
            "Server-sent event streams open (agent, admin, conversation pages)",
        )
        .expect("a valid gauge");
        let collectors: [Box<dyn prometheus::core::Collector>; 5] = [
            Box::new(requests.clone()),
            Box::new(group_writes.clone()),
            Box::new(flush_seconds.clone()),
            Box::new(callback_failures.clone()),
            Box::new(streams.clone()),
        ];
        for collector in collectors {
            registry.register(collector).expect("each metric registered once");
        }
        #[cfg(target_os = "linux")]
        if let Err(err) =
            registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
        {
            tracing::warn!(%err, "the process metrics are not available");
        }
        Metrics {
            registry,
            requests,
            group_writes,
            flush_seconds,
            callback_failures,
            streams,
            service_levels,
            realtime: Mutex::new(None),
        }
    }

    /// The service-level threshold of the queue named `queue`, in seconds.
    pub fn service_level_of(&self, queue: &str) -> u32 {
        self.service_levels.of(queue)
    }

    /// An HTTP request to `route` (its pattern, not its path: the labels stay few) took `took`.
    pub fn observe_request(&self, route: &str, method: &str, took: Duration) {
        self.requests.with_label_values(&[route, method]).observe(took.as_secs_f64());
    }

    /// A group commit made `writes` durable in `took`.
    pub fn observe_flush(&self, writes: u64, took: Duration) {
        self.group_writes.observe(writes as f64);
        self.flush_seconds.observe(took.as_secs_f64());
    }

    /// An event callback attempt failed; `dropped` when it was the last one.
    pub fn callback_failed(&self, dropped: bool) {
        self.callback_failures.with_label_values(&[if dropped { "dropped" } else { "retried" }]).inc();
    }

    /// A live stream opened; it counts until the guard is dropped.
    pub fn stream_opened(&self) -> StreamGuard {
        self.streams.inc();
        StreamGuard(self.streams.clone())
    }

    /// Everything, in Prometheus' text format.
    pub fn render(&self, engine: &LiveEngine, outbox: OutboxFigures) -> String {
        let realtime = self.realtime(engine);
        let totals = engine.statistics().totals();
        let mut families = self.registry.gather();
        // The text encoder refuses a family without a sample (no queue yet, nothing counted).
        families.extend(
            self.derived(&realtime, &totals, outbox)
                .into_iter()
                .filter(|family| !family.get_metric().is_empty()),
        );
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut text = String::new();
        if let Err(err) = TextEncoder::new().encode_utf8(&families, &mut text) {
            tracing::error!(%err, "the metrics could not be written out");
        }
        text
    }

    /// The queues and workers, read again when the last reading is older than
    /// [`REALTIME_MAX_AGE`].
    fn realtime(&self, engine: &LiveEngine) -> Arc<Realtime> {
        let mut cached = self.realtime.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((read_at, realtime)) = cached.as_ref()
            && read_at.elapsed() < REALTIME_MAX_AGE
        {
            return realtime.clone();
        }
        let now = live::now();
        let realtime = Arc::new(engine.read(|engine| Realtime {
            queues: engine.queue_census(now),
            activities: engine.activity_census(),
            channels:
                engine.channels().iter().map(|channel| (channel.sid, channel.unique_name.clone())).collect(),
        }));
        *cached = Some((Instant::now(), realtime.clone()));
        realtime
    }

    fn derived(&self, realtime: &Realtime, totals: &Totals, outbox: OutboxFigures) -> Vec<MetricFamily> {
        let queue_name = |queue: Option<Sid>| match queue {
            None => String::new(),
            Some(sid) => realtime
                .queues
                .iter()
                .find(|census| census.sid == sid)
                .map_or_else(|| sid.to_string(), |census| census.friendly_name.clone()),
        };
        // A deleted channel by its SID, apart from the tasks whose channel is not known.
        let channel_name = |channel: Option<Sid>| match channel {
            None => "unknown".to_owned(),
            Some(sid) => realtime
                .channels
                .iter()
                .find(|(known, _)| *known == sid)
                .map_or_else(|| sid.to_string(), |(_, name)| name.clone()),
        };
        let mut tasks = Vec::new();
        let mut longest = Vec::new();
        let mut available = Vec::new();
        let mut thresholds = Vec::new();
        for census in &realtime.queues {
            let queue = census.friendly_name.as_str();
            for ((channel, status), count) in &census.tasks {
                tasks.push(gauge(
                    &[("queue", queue), ("channel", channel), ("status", status)],
                    *count as f64,
                ));
            }
            longest.push(gauge(&[("queue", queue)], census.longest_waiting as f64));
            available.push(gauge(&[("queue", queue)], census.available_workers as f64));
            thresholds.push(gauge(&[("queue", queue)], f64::from(self.service_levels.of(queue))));
        }
        let workers: Vec<proto::Metric> = realtime
            .activities
            .iter()
            .map(|count| gauge(&[("activity", &count.friendly_name)], count.workers as f64))
            .collect();

        let mut entered = Vec::new();
        let mut ended = Vec::new();
        let mut moved = Vec::new();
        let mut reservations_created = Vec::new();
        let mut reservations = Vec::new();
        let mut accepted_waits = Vec::new();
        let mut abandoned_waits = Vec::new();
        let mut in_service_level = Vec::new();
        // Accepted within the threshold, and accepted, per queue (all channels).
        let mut service_level: Vec<(String, u64, u64)> = Vec::new();
        for group in &totals.groups {
            let (queue, channel) = (queue_name(group.queue), channel_name(group.channel()));
            let counts = group.counts();
            let labels = [("queue", queue.as_str()), ("channel", channel.as_str())];
            let with = |name: &'static str, value: &'static str| {
                [("queue", queue.as_str()), ("channel", channel.as_str()), (name, value)]
            };
            entered.push(counter(&labels, counts.tasks_entered));
            moved.push(counter(&labels, counts.tasks_moved));
            for (how, count) in [
                ("completed", counts.tasks_completed),
                ("canceled", counts.tasks_canceled),
                ("deleted", counts.tasks_deleted),
                ("transferred", counts.tasks_transferred),
            ] {
                ended.push(counter(&with("how", how), count));
            }
            reservations_created.push(counter(&labels, counts.reservations_created));
            for (outcome, count) in [
                ("accepted", counts.reservations_accepted),
                ("rejected", counts.reservations_rejected),
                ("timeout", counts.reservations_timed_out),
                ("canceled", counts.reservations_canceled),
                ("rescinded", counts.reservations_rescinded),
            ] {
                reservations.push(counter(&with("outcome", outcome), count));
            }
            let threshold = self.service_levels.of(&queue);
            let bounds = wait_bounds(threshold);
            accepted_waits.push(histogram(
                &labels,
                &bounds,
                |seconds| group.accepted_under(seconds),
                group.accepted_waits(),
                group.accepted_wait_ms,
            ));
            abandoned_waits.push(histogram(
                &labels,
                &bounds,
                |seconds| group.canceled_under(seconds),
                group.canceled_waits(),
                group.canceled_wait_ms,
            ));
            let within = group.accepted_under(threshold);
            in_service_level.push(counter(&labels, within));
            match service_level.iter_mut().find(|(name, _, _)| *name == queue) {
                Some((_, sum_within, sum_accepted)) => {
                    *sum_within += within;
                    *sum_accepted += group.accepted_waits();
                }
                None => service_level.push((queue.clone(), within, group.accepted_waits())),
            }
        }
        let service_level: Vec<proto::Metric> = service_level
            .iter()
            .filter(|(queue, _, accepted)| !queue.is_empty() && *accepted > 0)
            .map(|(queue, within, accepted)| gauge(&[("queue", queue)], *within as f64 / *accepted as f64))
            .collect();
        let outbox_depth = [
            ("queued", outbox.queued),
            ("sent", outbox.sent),
            ("failed", outbox.failed),
            ("canceled", outbox.canceled),
        ]
        .iter()
        .map(|(status, count)| gauge(&[("status", status)], *count as f64))
        .collect();

        use MetricType::{COUNTER, GAUGE, HISTOGRAM};
        vec![
            family("switchboard_tasks", "Live tasks in each queue, by channel and status", GAUGE, tasks),
            family(
                "switchboard_queue_longest_wait_seconds",
                "Seconds since the oldest waiting (pending or reserved) task of the queue was created",
                GAUGE,
                longest,
            ),
            family(
                "switchboard_queue_available_workers",
                "Workers of the queue in an available activity",
                GAUGE,
                available,
            ),
            family("switchboard_workers", "Workers in each activity", GAUGE, workers),
            family(
                "switchboard_queue_tasks_entered_total",
                "Tasks that entered the queue (queue `` is none)",
                COUNTER,
                entered,
            ),
            family(
                "switchboard_queue_tasks_moved_total",
                "Tasks moved on from the queue by their workflow",
                COUNTER,
                moved,
            ),
            family(
                "switchboard_tasks_ended_total",
                "Tasks completed, canceled (abandoned, for calls), deleted, or transferred away, by the queue they were in",
                COUNTER,
                ended,
            ),
            family(
                "switchboard_reservations_created_total",
                "Reservations offered to workers",
                COUNTER,
                reservations_created,
            ),
            family(
                "switchboard_reservations_total",
                "Reservations ended, by outcome: accepted, rejected, timeout, canceled, rescinded",
                COUNTER,
                reservations,
            ),
            family(
                "switchboard_wait_until_accepted_seconds",
                "Wait from a task's creation until a reservation of it was accepted (buckets count waits under each bound)",
                HISTOGRAM,
                accepted_waits,
            ),
            family(
                "switchboard_wait_until_abandoned_seconds",
                "Wait from a task's creation until it was canceled: the caller or texter gave up",
                HISTOGRAM,
                abandoned_waits,
            ),
            family(
                "switchboard_accepted_within_service_level_total",
                "Accepted reservations whose task waited under the queue's service-level threshold",
                COUNTER,
                in_service_level,
            ),
            family(
                "switchboard_service_level_threshold_seconds",
                "The queue's service-level threshold (metrics.service_level)",
                GAUGE,
                thresholds,
            ),
            family(
                "switchboard_service_level_ratio",
                "Share of the queue's accepted tasks accepted within its threshold, since the statistics began",
                GAUGE,
                service_level,
            ),
            family(
                "switchboard_sms_outbox",
                "Replies in the text-message outbox, by status",
                GAUGE,
                outbox_depth,
            ),
            family(
                "switchboard_sms_retries_total",
                "Reply attempts that failed and were scheduled again",
                COUNTER,
                vec![counter(&[], outbox.retries)],
            ),
        ]
    }
}

/// The histogram bounds for a queue whose threshold is `threshold` seconds.
fn wait_bounds(threshold: u32) -> Vec<u32> {
    let mut bounds = WAIT_BOUNDS.to_vec();
    if let Err(at) = bounds.binary_search(&threshold) {
        bounds.insert(at, threshold);
    }
    bounds
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<proto::LabelPair> {
    labels
        .iter()
        .map(|(name, value)| {
            let mut pair = proto::LabelPair::default();
            pair.set_name((*name).to_owned());
            pair.set_value((*value).to_owned());
            pair
        })
        .collect()
}

fn gauge(labels: &[(&str, &str)], value: f64) -> proto::Metric {
    let mut gauge = proto::Gauge::default();
    gauge.set_value(value);
    let mut metric = proto::Metric::from_gauge(gauge);
    metric.set_label(label_pairs(labels));
    metric
}

fn counter(labels: &[(&str, &str)], value: u64) -> proto::Metric {
    let mut counter = proto::Counter::default();
    counter.set_value(value as f64);
    let mut metric = proto::Metric::from_label(label_pairs(labels));
    metric.set_counter(counter);
    metric
}

/// A histogram of waits: `under(bound)` waits under each bound, `count` in all, `sum_ms` their
/// sum in milliseconds.
fn histogram(
    labels: &[(&str, &str)],
    bounds: &[u32],
    under: impl Fn(u32) -> u64,
    count: u64,
    sum_ms: i64,
) -> proto::Metric {
    let buckets = bounds
        .iter()
        .map(|&bound| {
            let mut bucket = proto::Bucket::default();
            bucket.set_upper_bound(f64::from(bound));
            bucket.set_cumulative_count(under(bound));
            bucket
        })
        .collect();
    let mut histogram = proto::Histogram::default();
    histogram.set_bucket(buckets);
    histogram.set_sample_count(count);
    histogram.set_sample_sum(sum_ms as f64 / 1000.0);
    let mut metric = proto::Metric::from_label(label_pairs(labels));
    metric.set_histogram(histogram);
    metric
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}
