//! Every figure the job exports, in one Prometheus registry.
//!
//! Names follow `normlake_<what>_<unit>[_total]`. Labels stay low-cardinality: a dead-letter
//! reason, a latency source, a Kafka topic and partition number; never a key or a partition
//! value. Counters and gauges are atomics the stages update once per batch. Latency
//! percentiles come from hdrhistograms (exact to 3 significant digits, unlike bucketed
//! histograms) and are exported as gauges with a `quantile` label, because the Prometheus
//! client has no summary type; the commit duration is a classic bucketed histogram.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::{Latency, Percentiles};

/// Where an end-to-end latency is measured from (to the lake commit of the row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencySource {
    /// The event's own timestamp.
    EventTime,
    /// The Kafka record's timestamp (append or create time, as the topic is configured).
    KafkaTime,
    /// When normlake received the record.
    Received,
}

impl LatencySource {
    pub const ALL: [LatencySource; 3] = [
        LatencySource::EventTime,
        LatencySource::KafkaTime,
        LatencySource::Received,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LatencySource::EventTime => "event_time",
            LatencySource::KafkaTime => "kafka_time",
            LatencySource::Received => "received",
        }
    }
}

type ReasonLabel = [(&'static str, &'static str); 1];
type PartitionLabels = [(&'static str, String); 2];

/// The job's metrics. Cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    pub consumed: Counter,
    pub rows_written: Counter,
    dead_letters: Family<ReasonLabel, Counter>,
    pub late: Counter,
    pub files: Counter,
    pub bytes: Counter,
    pub commits: Counter,
    pub commit_duration: Histogram,
    pub write_failures: Counter,
    pub dead_letter_retries: Counter,
    consumer_lag: Family<PartitionLabels, Gauge>,
    /// Not exported (Prometheus sums the series itself); for the progress line.
    lag_total: Gauge,
    pub assigned_partitions: Gauge,
    pub state_keys: Gauge,
    pub state_bytes: Gauge,
    pub buffered_events: Gauge,
    pub evicted_keys: Counter,
    pub memory_bytes: Gauge,
    pub partitions_complete: Counter,
    pub rows_after_complete: Counter,
    pub memory_pauses: Counter,
    pub input_undecodable: Counter,
    lost_offsets: Family<PartitionLabels, Counter>,
    pub metastore_registered: Counter,
    pub metastore_failures: Counter,
    pub metastore_backlog: Gauge,
    latency: Arc<LatencySet>,
    pub health: Health,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            consumed: Counter::default(),
            rows_written: Counter::default(),
            dead_letters: Family::default(),
            late: Counter::default(),
            files: Counter::default(),
            bytes: Counter::default(),
            commits: Counter::default(),
            commit_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            write_failures: Counter::default(),
            dead_letter_retries: Counter::default(),
            consumer_lag: Family::default(),
            lag_total: Gauge::default(),
            assigned_partitions: Gauge::default(),
            state_keys: Gauge::default(),
            state_bytes: Gauge::default(),
            buffered_events: Gauge::default(),
            evicted_keys: Counter::default(),
            memory_bytes: Gauge::default(),
            partitions_complete: Counter::default(),
            rows_after_complete: Counter::default(),
            memory_pauses: Counter::default(),
            input_undecodable: Counter::default(),
            lost_offsets: Family::default(),
            metastore_registered: Counter::default(),
            metastore_failures: Counter::default(),
            metastore_backlog: Gauge::default(),
            latency: Arc::new(LatencySet::default()),
            health: Health::default(),
            registry: Arc::new(Registry::default()),
        };
        let mut r = Registry::default();
        m.register_flow(&mut r);
        m.register_state(&mut r);
        m.register_metastore(&mut r);
        r.register_collector(Box::new(LatencyCollector(m.latency.clone())));
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// What flows through the job: records, rows, dead letters, files, commits, failures.
    fn register_flow(&self, r: &mut Registry) {
        r.register(
            "normlake_records_consumed",
            "Kafka records read",
            self.consumed.clone(),
        );
        r.register(
            "normlake_rows_written",
            "Rows committed to the lake",
            self.rows_written.clone(),
        );
        r.register(
            "normlake_dead_letters",
            "Records sent to the dead-letter destination, by reason",
            self.dead_letters.clone(),
        );
        r.register(
            "normlake_late_events",
            "Events behind the watermark",
            self.late.clone(),
        );
        r.register(
            "normlake_files_committed",
            "Files published in the lake",
            self.files.clone(),
        );
        r.register(
            "normlake_bytes_committed",
            "Bytes of the files published in the lake",
            self.bytes.clone(),
        );
        r.register(
            "normlake_commits",
            "Lake commits (one per roll of an input partition)",
            self.commits.clone(),
        );
        r.register(
            "normlake_commit_duration_seconds",
            "Duration of a roll: seal, checkpoint, commit record, publish",
            self.commit_duration.clone(),
        );
        r.register(
            "normlake_write_failures",
            "Failed appends, seals or commits (the partition resumes from its last commit)",
            self.write_failures.clone(),
        );
        r.register(
            "normlake_dead_letter_retries",
            "Retries of a dead-letter destination that was down",
            self.dead_letter_retries.clone(),
        );
    }

    /// What the job holds and owns: lag, partitions, state, memory, markers, input health.
    fn register_state(&self, r: &mut Registry) {
        r.register(
            "normlake_consumer_lag_messages",
            "Records behind the high watermark, per input partition (librdkafka statistics)",
            self.consumer_lag.clone(),
        );
        r.register(
            "normlake_assigned_partitions",
            "Input partitions this instance owns",
            self.assigned_partitions.clone(),
        );
        r.register(
            "normlake_state_keys",
            "Keys with normalization state",
            self.state_keys.clone(),
        );
        r.register(
            "normlake_state_bytes",
            "Bytes of normalization state",
            self.state_bytes.clone(),
        );
        r.register(
            "normlake_buffered_events",
            "Events waiting for the watermark",
            self.buffered_events.clone(),
        );
        r.register(
            "normlake_state_evicted_keys",
            "Keys evicted (idle past their window or TTL, or over the memory budget)",
            self.evicted_keys.clone(),
        );
        r.register(
            "normlake_memory_bytes",
            "Memory the budget accounts for: buffered rows, open writers, state",
            self.memory_bytes.clone(),
        );
        r.register(
            "normlake_memory_pressure_flushes",
            "Early flushes because the memory budget was reached",
            self.memory_pauses.clone(),
        );
        r.register(
            "normlake_partitions_complete",
            "Hive partitions marked complete with _SUCCESS",
            self.partitions_complete.clone(),
        );
        r.register("normlake_rows_after_complete", "Rows written into a partition already marked complete (processing time or emit_unchanged)", self.rows_after_complete.clone());
        r.register(
            "normlake_input_undecodable_batches",
            "Fetched message batches the consumer could not decode (a codec this build lacks, a corrupt batch)",
            self.input_undecodable.clone(),
        );
        r.register(
            "normlake_lost_offsets",
            "Offsets deleted from a partition (retention) before the lake read them",
            self.lost_offsets.clone(),
        );
    }

    /// Registration in the Hive Metastore (zero when there is none).
    fn register_metastore(&self, r: &mut Registry) {
        r.register(
            "normlake_metastore_partitions_registered",
            "Partitions added to the Hive Metastore",
            self.metastore_registered.clone(),
        );
        r.register(
            "normlake_metastore_failures",
            "Failed metastore attempts (retried with back-off; the lake is unaffected)",
            self.metastore_failures.clone(),
        );
        r.register(
            "normlake_metastore_backlog_partitions",
            "Partitions in the lake waiting to be added to the metastore",
            self.metastore_backlog.clone(),
        );
    }

    pub fn dead_letter(&self, reason: &'static str) {
        self.dead_letters.get_or_create(&[("reason", reason)]).inc();
    }

    pub fn dead_letters_by_reason(&self, reason: &'static str) -> u64 {
        self.dead_letters
            .get(&[("reason", reason)])
            .map_or(0, |c| c.get())
    }

    /// Replace the per-partition lag figures (from one librdkafka statistics report).
    pub fn set_lag(&self, lags: impl IntoIterator<Item = (String, i32, i64)>) {
        self.consumer_lag.clear();
        let mut total = 0;
        for (topic, partition, lag) in lags {
            total += lag;
            self.consumer_lag
                .get_or_create(&[("topic", topic), ("partition", partition.to_string())])
                .set(lag);
        }
        self.lag_total.set(total);
    }

    /// Count offsets of a partition that retention deleted before the lake read them.
    pub fn lost_offsets(&self, topic: &str, partition: i32, n: u64) {
        self.lost_offsets
            .get_or_create(&[
                ("topic", topic.to_string()),
                ("partition", partition.to_string()),
            ])
            .inc_by(n);
    }

    /// Sum of the per-partition lag figures of the last report.
    pub fn total_lag(&self) -> i64 {
        self.lag_total.get()
    }

    /// The latency histograms, indexed by `LatencySource as usize`.
    pub fn latencies(&self) -> MutexGuard<'_, [Latency; 3]> {
        self.latency.lock()
    }

    pub fn percentiles(&self, source: LatencySource) -> Percentiles {
        self.latency.lock()[source as usize].percentiles()
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Readiness: partitions assigned, the lake writable, no undecodable input lately, and the
/// metastore (if any) answering.
#[derive(Debug, Clone, Default)]
pub struct Health {
    assigned: Arc<AtomicUsize>,
    lake_writable: Arc<AtomicBool>,
    /// Unix ms of the last batch the consumer could not decode (0: never).
    undecodable_at: Arc<AtomicI64>,
    /// Unix ms since when the metastore has not answered (0: it answers, or there is none).
    metastore_down_since: Arc<AtomicI64>,
    /// How long it may not answer before the job is not ready.
    metastore_unready_after_ms: Arc<AtomicI64>,
}

/// How long an undecodable batch keeps the job not ready. librdkafka fetches the batch again
/// and again, so a partition that stays stuck keeps it not ready.
const UNDECODABLE_FOR_MS: i64 = 60_000;

impl Health {
    pub fn set_assigned(&self, n: usize) {
        self.assigned.store(n, Ordering::Relaxed);
    }

    pub fn set_lake_writable(&self, ok: bool) {
        self.lake_writable.store(ok, Ordering::Relaxed);
    }

    pub fn set_input_undecodable(&self, now_ms: i64) {
        self.undecodable_at.store(now_ms, Ordering::Relaxed);
    }

    /// The job registers into a metastore: readiness fails once it has not answered for
    /// `after`.
    pub fn watch_metastore(&self, after: std::time::Duration) {
        let ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        self.metastore_unready_after_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether the metastore answered the last attempt, at `now_ms`.
    pub fn set_metastore_reachable(&self, ok: bool, now_ms: i64) {
        if ok {
            self.metastore_down_since.store(0, Ordering::Relaxed);
        } else {
            let _ = self.metastore_down_since.compare_exchange(
                0,
                now_ms,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn metastore_down_too_long(&self, now_ms: i64) -> bool {
        let since = self.metastore_down_since.load(Ordering::Relaxed);
        let after = self.metastore_unready_after_ms.load(Ordering::Relaxed);
        since > 0 && now_ms.saturating_sub(since) >= after
    }

    /// Why the job is not ready, if it is not.
    pub fn not_ready(&self) -> Option<&'static str> {
        let undecodable_at = self.undecodable_at.load(Ordering::Relaxed);
        if self.assigned.load(Ordering::Relaxed) == 0 {
            Some("no input partitions assigned")
        } else if !self.lake_writable.load(Ordering::Relaxed) {
            Some("the lake is not writable")
        } else if undecodable_at > 0
            && crate::telemetry::unix_ms() - undecodable_at < UNDECODABLE_FOR_MS
        {
            Some("an input batch cannot be decoded")
        } else if self.metastore_down_too_long(crate::telemetry::unix_ms()) {
            Some("the metastore has not answered for longer than lake.metastore.unready_after")
        } else {
            None
        }
    }
}

/// One latency histogram per source.
#[derive(Default)]
struct LatencySet(Mutex<[Latency; 3]>);

impl LatencySet {
    fn lock(&self) -> MutexGuard<'_, [Latency; 3]> {
        // A panic while recording cannot leave a histogram inconsistent in a way that matters
        // for a figure: use it anyway.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct LatencyCollector(Arc<LatencySet>);

impl std::fmt::Debug for LatencyCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LatencyCollector")
    }
}

impl Collector for LatencyCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let figures: Vec<(LatencySource, Percentiles)> = {
            let h = self.0.lock();
            LatencySource::ALL
                .iter()
                .map(|s| (*s, h[*s as usize].percentiles()))
                .collect()
        };
        let mut m = encoder.encode_descriptor(
            "normlake_latency_seconds",
            "End-to-end latency to the lake commit (hdrhistogram percentiles; quantile 1 is the maximum)",
            None,
            MetricType::Gauge,
        )?;
        for (source, p) in &figures {
            if p.count == 0 {
                continue;
            }
            for (q, ms) in [
                ("0.5", p.p50),
                ("0.9", p.p90),
                ("0.99", p.p99),
                ("0.999", p.p999),
                ("1", p.max),
            ] {
                let labels = [("from", source.as_str()), ("quantile", q)];
                ConstGauge::new(ms / 1000.0).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut c = encoder.encode_descriptor(
            "normlake_latency_rows",
            "Rows measured by the latency percentiles",
            None,
            MetricType::Gauge,
        )?;
        for (source, p) in &figures {
            let labels = [("from", source.as_str())];
            ConstGauge::new(p.count as i64).encode(c.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecodable_batch_fails_readiness_for_a_while() {
        let h = Health::default();
        h.set_assigned(1);
        h.set_lake_writable(true);
        assert_eq!(h.not_ready(), None);
        let now = crate::telemetry::unix_ms();
        h.set_input_undecodable(now);
        assert_eq!(h.not_ready(), Some("an input batch cannot be decoded"));
        h.set_input_undecodable(now - UNDECODABLE_FOR_MS - 1);
        assert_eq!(h.not_ready(), None);
    }
}
