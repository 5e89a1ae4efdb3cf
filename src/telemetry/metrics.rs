//! Every figure the job exports, in one Prometheus registry.
//!
//! Names follow `normlake_<what>_<unit>[_total]`. Labels stay low-cardinality: a dead-letter
//! reason, a latency source, a Kafka topic and partition number; never a key or a partition
//! value. Counters and gauges are atomics the stages update once per batch. End-to-end
//! latency is a Prometheus histogram (buckets from 10 ms to about 11 minutes), so panels show
//! recent figures and aggregate across instances; hdrhistograms over about the last minute
//! give the exact percentiles of the progress line and the run summary. Every dead-letter
//! reason's series exists from the start, at 0.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::{Health, LatencySource, Percentiles, RecentLatency, RowTimes};

type ReasonLabel = [(&'static str, &'static str); 1];
type PartitionLabels = [(&'static str, String); 2];
type LatencyHistograms = Family<ReasonLabel, Histogram, fn() -> Histogram>;

/// End-to-end latency buckets: 10 ms doubling to 655 s (about 11 minutes).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 17))
}

fn partition_labels(topic: &str, partition: i32) -> PartitionLabels {
    [
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ]
}

/// The job's metrics. Cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    pub consumed: Counter,
    pub rows_written: Counter,
    dead_letters: Family<ReasonLabel, Counter>,
    pub late: Counter,
    pub files: Counter,
    pub bytes: Counter,
    /// Bytes of state checkpoints written.
    pub checkpoint_bytes: Counter,
    /// Of the checkpoints, those written whole (the others are deltas).
    pub whole_checkpoints: Counter,
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
    /// Failed Schema Registry requests (the record waits and the request is retried).
    pub registry_failures: Counter,
    /// Writer schemas fetched from the Schema Registry.
    pub schemas_fetched: Counter,
    /// Input partitions waiting for the Schema Registry.
    pub partitions_waiting: Gauge,
    /// Feature and pass-through values of another type than their column's, by column.
    invalid_values: Family<[(&'static str, String); 1], Counter>,
    latency_seconds: LatencyHistograms,
    owned: Family<PartitionLabels, Gauge>,
    /// Unix seconds of the last lake commit.
    last_commit: Gauge<f64, AtomicU64>,
    pub open_files: Gauge,
    /// Each input partition's event-time watermark, Unix ms.
    watermarks: Arc<Mutex<BTreeMap<(String, i32), i64>>>,
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
            checkpoint_bytes: Counter::default(),
            whole_checkpoints: Counter::default(),
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
            registry_failures: Counter::default(),
            schemas_fetched: Counter::default(),
            partitions_waiting: Gauge::default(),
            invalid_values: Family::default(),
            latency_seconds: Family::new_with_constructor(latency_histogram),
            owned: Family::default(),
            last_commit: Gauge::default(),
            open_files: Gauge::default(),
            watermarks: Arc::default(),
            latency: Arc::new(LatencySet::default()),
            health: Health::default(),
            registry: Arc::new(Registry::default()),
        };
        let mut r = Registry::default();
        m.register_flow(&mut r);
        m.register_state(&mut r);
        m.register_metastore(&mut r);
        m.register_input(&mut r);
        m.register_operations(&mut r);
        r.register_collector(Box::new(WatermarkCollector(m.watermarks.clone())));
        r.register_collector(Box::new(super::process::ProcessCollector));
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
            "normlake_committed_bytes",
            "Bytes of the files published in the lake",
            self.bytes.clone(),
        );
        r.register(
            "normlake_checkpoint_bytes",
            "Bytes of the state checkpoints written (one per roll of an input partition)",
            self.checkpoint_bytes.clone(),
        );
        r.register(
            "normlake_whole_checkpoints",
            "State checkpoints written whole, each starting a new chain; every other commit writes a delta on its partition's chain",
            self.whole_checkpoints.clone(),
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

    /// What an operator alerts on beyond the flow: build, ownership, freshness, open files.
    fn register_operations(&self, r: &mut Registry) {
        let build = Family::<[(&'static str, &'static str); 2], Gauge>::default();
        build
            .get_or_create(&[
                ("version", env!("CARGO_PKG_VERSION")),
                (
                    "revision",
                    option_env!("NORMLAKE_GIT_REVISION").unwrap_or("unknown"),
                ),
            ])
            .set(1);
        r.register(
            "normlake_build_info",
            "The running build: version and git revision",
            build,
        );
        r.register(
            "normlake_latency_seconds",
            "End-to-end latency of a row, to its lake commit, from the event time, the Kafka timestamp or its receipt",
            self.latency_seconds.clone(),
        );
        r.register(
            "normlake_partition_owned",
            "1 for each input partition this instance owns",
            self.owned.clone(),
        );
        r.register(
            "normlake_last_commit_timestamp_seconds",
            "Unix time of the last lake commit (0: none yet)",
            self.last_commit.clone(),
        );
        r.register(
            "normlake_open_files",
            "Parquet files being written (not yet committed)",
            self.open_files.clone(),
        );
    }

    /// Registration in the Hive Metastore (zero when there is none).
    fn register_input(&self, r: &mut Registry) {
        r.register(
            "normlake_schema_registry_failures",
            "Failed Schema Registry requests (the records wait, and the request is retried)",
            self.registry_failures.clone(),
        );
        r.register(
            "normlake_schemas_fetched",
            "Avro writer schemas fetched from the Schema Registry",
            self.schemas_fetched.clone(),
        );
        r.register(
            "normlake_partitions_waiting_for_schema",
            "Input partitions whose next record waits for the Schema Registry",
            self.partitions_waiting.clone(),
        );
        r.register(
            "normlake_invalid_values",
            "Values of another type than their column's (written as null), by column",
            self.invalid_values.clone(),
        );
    }

    /// A value of `column` of another type than the column's.
    pub fn invalid_value(&self, column: &str) {
        self.invalid_values
            .get_or_create(&[("column", column.to_string())])
            .inc();
    }

    pub fn invalid_values_of(&self, column: &str) -> u64 {
        self.invalid_values
            .get(&[("column", column.to_string())])
            .map_or(0, |c| c.get())
    }

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

    /// Record the latencies of the rows of `times`, committed at `committed_ms`.
    pub fn record_latencies(&self, committed_ms: i64, times: &RowTimes) {
        let now = Instant::now();
        let histograms = LatencySource::ALL.map(|s| {
            (self.latency_seconds)
                .get_or_create(&[("from", s.as_str())])
                .clone()
        });
        let mut recent = self.latency.lock();
        for ((source, h), r) in (LatencySource::ALL.iter().zip(&histograms)).zip(recent.iter_mut())
        {
            let window = r.current(now);
            for (t, rows) in times.runs(*source) {
                if t != i64::MIN {
                    let age = Duration::from_millis(committed_ms.saturating_sub(t).max(0) as u64);
                    window.record_n(age, rows);
                    (0..rows).for_each(|_| h.observe(age.as_secs_f64()));
                }
            }
        }
    }

    /// Percentiles over about the last minute.
    pub fn percentiles(&self, source: LatencySource) -> Percentiles {
        self.latency.lock()[source as usize].percentiles(Instant::now())
    }

    /// Every dead-letter reason's series, at 0 until its first letter.
    pub fn declare_dead_letter_reasons(&self, reasons: impl IntoIterator<Item = &'static str>) {
        for r in reasons {
            let _ = self.dead_letters.get_or_create(&[("reason", r)]);
        }
    }

    /// The input partitions this instance owns.
    pub fn set_owned(&self, parts: impl IntoIterator<Item = (String, i32)>) {
        self.owned.clear();
        for (topic, partition) in parts {
            self.owned
                .get_or_create(&partition_labels(&topic, partition))
                .set(1);
        }
        // A partition no longer owned has no watermark here.
        self.watermarks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(t, p), _| self.owned.get(&partition_labels(t, *p)).is_some());
    }

    /// A lake commit of an input partition whose event-time watermark is `watermark_ms`.
    pub fn committed_at(
        &self,
        topic: &str,
        partition: i32,
        watermark_ms: Option<i64>,
        now_ms: i64,
    ) {
        self.last_commit.set(now_ms as f64 / 1000.0);
        if let Some(w) = watermark_ms {
            self.watermarks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((topic.to_string(), partition), w);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The recent latency of each source, for the progress line and the run summary.
struct LatencySet(Mutex<[RecentLatency; 3]>);

impl Default for LatencySet {
    fn default() -> Self {
        let now = Instant::now();
        LatencySet(Mutex::new([
            RecentLatency::new(now),
            RecentLatency::new(now),
            RecentLatency::new(now),
        ]))
    }
}

impl LatencySet {
    fn lock(&self) -> MutexGuard<'_, [RecentLatency; 3]> {
        // A panic while recording cannot leave a histogram inconsistent in a way that matters
        // for a figure: use it anyway.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Each owned input partition's event-time watermark and how far it is behind the clock,
/// computed at scrape time.
#[derive(Debug)]
struct WatermarkCollector(Arc<Mutex<BTreeMap<(String, i32), i64>>>);

impl Collector for WatermarkCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let marks: Vec<((String, i32), i64)> = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let now_ms = crate::telemetry::unix_ms();
        let mut w = encoder.encode_descriptor(
            "normlake_watermark_timestamp_seconds",
            "Event-time watermark of each owned input partition at its last commit (Unix time)",
            None,
            MetricType::Gauge,
        )?;
        for ((topic, p), ms) in &marks {
            let labels = partition_labels(topic, *p);
            ConstGauge::new(*ms as f64 / 1000.0).encode(w.encode_family(&labels)?)?;
        }
        let mut l = encoder.encode_descriptor(
            "normlake_watermark_lag_seconds",
            "How far each owned input partition's watermark is behind the wall clock",
            None,
            MetricType::Gauge,
        )?;
        for ((topic, p), ms) in &marks {
            let labels = partition_labels(topic, *p);
            let lag = (now_ms - ms) as f64 / 1000.0;
            ConstGauge::new(lag).encode(l.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// One worker's part of a gauge that sums every worker's: each worker sets its own value, and
/// the gauge moves by the difference from the value it set last.
#[derive(Debug, Default)]
pub struct GaugeShare {
    last: i64,
}

impl GaugeShare {
    pub fn set(&mut self, gauge: &Gauge, value: i64) {
        gauge.inc_by(value - self.last);
        self.last = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_latency_forgets_what_is_older_than_a_minute() {
        let t0 = Instant::now();
        let mut r = RecentLatency::new(t0);
        r.record(Duration::from_secs(10), t0);
        assert_eq!(r.percentiles(t0).count, 1);
        r.record(Duration::from_millis(100), t0 + Duration::from_secs(30));
        assert_eq!(r.percentiles(t0 + Duration::from_secs(30)).count, 2);
        let later = r.percentiles(t0 + Duration::from_secs(61));
        assert_eq!(later.count, 1, "the first slot has rotated out");
        assert!(later.p99 < 200.0);
        assert_eq!(r.percentiles(t0 + Duration::from_secs(600)).count, 0);
    }

    #[test]
    fn committed_row_times_record_every_row_with_a_known_time() {
        let rows = crate::telemetry::row_times::SAMPLE;
        let mut times = RowTimes::default();
        rows.iter().for_each(|r| times.push(*r));
        let m = Metrics::new();
        m.record_latencies(6_000, &times);
        let counts: Vec<u64> = LatencySource::ALL
            .iter()
            .map(|s| m.percentiles(*s).count)
            .collect();
        assert_eq!(counts, [5, 3, 5], "every row with a known time, once");
        let received = m.percentiles(LatencySource::Received);
        assert!((received.max - 1_000.0).abs() < 2.0, "{}", received.max);
        let text = m.encode().unwrap();
        assert!(
            text.contains("normlake_latency_seconds_count{from=\"kafka_time\"} 3"),
            "{text}"
        );
    }
}
