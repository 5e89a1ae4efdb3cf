//! Logging setup, metrics, latency histograms, the progress line and the health endpoints.
//!
//! `metrics` holds every figure the job exports (Prometheus counters and gauges updated once
//! per batch, and hdrhistogram latency percentiles); `health` holds readiness (assignment, a
//! writable lake, decodable input, the services the job depends on); `server` serves
//! `/metrics`, `/healthz` and `/readyz`; `row_times` holds the times of rows not yet committed,
//! from which `metrics` records their latencies at the commit. The progress line reads the same
//! metrics, so the log and the endpoint never disagree.

mod health;
pub mod metrics;
mod process;
mod row_times;
pub mod server;

pub use health::Health;
pub use metrics::{GaugeShare, Metrics};
pub use row_times::{LatencySource, RowTimes};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Install the global subscriber; `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Wall-clock time as Unix milliseconds (0 if the clock is before 1970).
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The process's peak resident set size so far (Linux `VmHWM`), if the platform tells.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// A latency histogram in microseconds, 1 µs to 1 hour, 3 significant digits.
pub struct Latency {
    h: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        // Auto-resizing: `new` only fails for more than 5 significant digits.
        let mut h =
            Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits is valid"));
        h.auto(true);
        Latency { h }
    }
}

impl Latency {
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = self.h.record(us);
    }

    pub fn record_n(&mut self, d: Duration, n: u64) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = self.h.record_n(us, n);
    }

    /// Merge another histogram's values into this one.
    pub fn add(&mut self, other: &Latency) {
        let _ = self.h.add(&other.h);
    }

    pub fn percentiles(&self) -> Percentiles {
        let ms = |q: f64| self.h.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            count: self.h.len(),
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p999: ms(0.999),
            max: self.h.max() as f64 / 1000.0,
        }
    }
}

/// How long one slot of a [`RecentLatency`] covers; three slots make its window.
const SLOT: Duration = Duration::from_secs(20);

/// Latency over about the last minute: three histograms of 20 s each, the oldest dropped as
/// time passes, so the figures show recovery after an incident instead of a whole life.
pub struct RecentLatency {
    slots: [Latency; 3],
    current: usize,
    started: Instant,
}

impl RecentLatency {
    pub fn new(now: Instant) -> Self {
        RecentLatency {
            slots: Default::default(),
            current: 0,
            started: now,
        }
    }

    fn rotate(&mut self, now: Instant) {
        let mut turns = 0;
        while now.saturating_duration_since(self.started) >= SLOT && turns < 3 {
            self.current = (self.current + 1) % 3;
            self.slots[self.current] = Latency::default();
            self.started += SLOT;
            turns += 1;
        }
        if now.saturating_duration_since(self.started) >= SLOT {
            self.started = now;
        }
    }

    pub fn record(&mut self, d: Duration, now: Instant) {
        self.current(now).record(d);
    }

    /// The histogram that values seen at `now` go to (one rotation for a batch of values).
    pub fn current(&mut self, now: Instant) -> &mut Latency {
        self.rotate(now);
        &mut self.slots[self.current]
    }

    /// The percentiles of the last 40 to 60 seconds.
    pub fn percentiles(&mut self, now: Instant) -> Percentiles {
        self.rotate(now);
        let mut all = Latency::default();
        for s in &self.slots {
            all.add(s);
        }
        all.percentiles()
    }
}

/// Size of the normalization state, summed over partitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateFigures {
    pub dead_letters: u64,
    pub keys: usize,
    pub buffered: usize,
    pub bytes: usize,
    pub evicted: u64,
}

/// Rate-limited progress reporting.
pub struct Progress {
    every: Duration,
    last: Instant,
    last_consumed: u64,
}

impl Progress {
    pub fn new(every: Duration, now: Instant) -> Self {
        Progress {
            every,
            last: now,
            last_consumed: 0,
        }
    }

    pub fn due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= self.every
    }

    /// Log a progress line (callers ask `due` first). Latencies cover about the last minute.
    pub fn log(&mut self, now: Instant, m: &Metrics, state: StateFigures) {
        let dt = now
            .saturating_duration_since(self.last)
            .max(Duration::from_millis(1));
        let consumed = m.consumed.get();
        let rate = consumed.saturating_sub(self.last_consumed) as f64 / dt.as_secs_f64();
        let ev = m.percentiles(LatencySource::EventTime);
        let rc = m.percentiles(LatencySource::Received);
        tracing::info!(
            consumed,
            rate_per_s = rate.round(),
            lag = m.total_lag(),
            rows_written = m.rows_written.get(),
            dead_letters = state.dead_letters,
            late = m.late.get(),
            files = m.files.get(),
            keys = state.keys,
            buffered = state.buffered,
            state_bytes = state.bytes,
            evicted_keys = state.evicted,
            event_to_lake_p50_ms = ev.p50,
            event_to_lake_p90_ms = ev.p90,
            event_to_lake_p99_ms = ev.p99,
            event_to_lake_p999_ms = ev.p999,
            event_to_lake_max_ms = ev.max,
            received_to_lake_p50_ms = rc.p50,
            received_to_lake_p90_ms = rc.p90,
            received_to_lake_p99_ms = rc.p99,
            received_to_lake_p999_ms = rc.p999,
            received_to_lake_max_ms = rc.max,
            "progress"
        );
        self.last = now;
        self.last_consumed = consumed;
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub consumed: u64,
    pub rows_written: u64,
    pub dead_letters: BTreeMap<String, u64>,
    pub files: u64,
    pub bytes: u64,
    pub write_failures: u64,
    pub evicted_keys: u64,
    pub budget_evicted_keys: u64,
    pub latency: Percentiles,
}

/// The run summary as the CLI prints it at the end of a run.
impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "consumed {} records, wrote {} rows in {} files ({} bytes)",
            self.consumed, self.rows_written, self.files, self.bytes
        )?;
        for (reason, n) in &self.dead_letters {
            writeln!(f, "  dead letters: {n} {reason}")?;
        }
        let p = self.latency;
        if p.count > 0 {
            writeln!(
                f,
                "  receive → published latency (ms): p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                p.p50, p.p90, p.p99, p.p999, p.max
            )?;
        }
        if self.evicted_keys > 0 {
            writeln!(
                f,
                "  evicted keys: {} ({} over the memory budget)",
                self.evicted_keys, self.budget_evicted_keys
            )?;
        }
        if let Some(rss) = peak_rss_bytes() {
            writeln!(f, "  peak RSS: {rss} bytes")?;
        }
        Ok(())
    }
}
