//! Logging setup, the job's counters and its latency histogram.
//!
//! Counters are plain atomics updated once per batch; the processor owns the latency
//! histogram (hdrhistogram, microsecond resolution) of "record received → its file published"
//! and prints a progress line with rates and percentiles at a fixed interval.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Totals of one run, shared between stages.
#[derive(Debug, Default)]
pub struct Counters {
    pub consumed: AtomicU64,
    pub rows_written: AtomicU64,
    pub dead_letters: AtomicU64,
    pub late: AtomicU64,
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub commits: AtomicU64,
    pub write_failures: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
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

/// Size of the normalization state, summed over partitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateFigures {
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

    /// Log a progress line (callers ask `due` first).
    pub fn log(&mut self, now: Instant, c: &Counters, latency: &Latency, state: StateFigures) {
        let dt = now
            .saturating_duration_since(self.last)
            .max(Duration::from_millis(1));
        let consumed = Counters::get(&c.consumed);
        let rate = (consumed - self.last_consumed) as f64 / dt.as_secs_f64();
        let p = latency.percentiles();
        tracing::info!(
            consumed,
            rate_per_s = rate.round(),
            rows_written = Counters::get(&c.rows_written),
            dead_letters = Counters::get(&c.dead_letters),
            late = Counters::get(&c.late),
            files = Counters::get(&c.files),
            keys = state.keys,
            buffered = state.buffered,
            state_bytes = state.bytes,
            evicted_keys = state.evicted,
            commit_latency_p50_ms = p.p50,
            commit_latency_p99_ms = p.p99,
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
    pub latency: Percentiles,
}
