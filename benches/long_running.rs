//! The shape of a long-running job rather than a burst: 2,000 keys x 3 features at 8,000
//! events/s of event time (4 events per key per second) in 4 partitions, a 60 s sliding
//! z-score and a 5-minute sliding robust normalization, and a roll of each partition every
//! 5 s of event time (10,000 rows). The 5-minute windows hold 1,200 values each once full.
//!
//! It prints the job's CPU seconds per million events (the process's CPU time, minus the
//! CPU the input's generation takes, measured alone first) and the bytes of state
//! checkpoints written per second of event time, beside the input's bytes per second.
//!
//! Run: `cargo bench --bench long_running` (optionally `-- --minutes N --workers N`).

use std::sync::Arc;
use std::time::Instant;

mod common;

use common::arg;

use normlake::config::Config;
use normlake::pipeline::process_offline;
use normlake::source::RawRecord;
use normlake::telemetry::{Metrics, peak_rss_bytes};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const KEYS: u64 = 2_000;
const RATE: u64 = 8_000;
const PARTITIONS: u64 = 4;
const CHUNK: u64 = 2_048;
/// Rows per roll of one partition: 5 s of its events.
const ROLL_ROWS: u64 = 5 * RATE / PARTITIONS;

fn config(root: &std::path::Path, workers: u64) -> Config {
    let text = format!(
        r#"
[kafka]
brokers = "unused:9092"
topics = ["sensors"]
[input]
key_field = "id"
features = ["a", "b", "c"]
[[normalize]]
name = "z1m"
method = "zscore"
window = "sliding_time"
size = "60s"
[[normalize]]
name = "r5m"
method = "robust"
window = "sliding_time"
size = "5m"
[lake]
root = "{}"
table = "t"
[lake.rolling]
max_rows = {ROLL_ROWS}
max_age = "1h"
inactivity = "1h"
[runtime]
workers = {workers}
"#,
        root.display()
    );
    Config::from_toml(&text, Vec::new()).expect("config")
}

/// Event `i`: key `i % KEYS`, in time order, values on a slow random walk per key.
fn event(i: u64, walk: &mut [f64], seed: &mut u64) -> (u64, i64, Vec<u8>) {
    let key = i % KEYS;
    let ts = 1_795_000_000_000 + (i * 1000 / RATE) as i64;
    let mut v = format!("{{\"id\":\"sensor-{key:04}\",\"ts\":{ts}");
    for (f, name) in ["a", "b", "c"].iter().enumerate() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let step = ((*seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5;
        let x = &mut walk[(key as usize) * 3 + f];
        *x += step;
        v.push_str(&format!(",\"{name}\":{:.3}", *x));
    }
    v.push('}');
    (key % PARTITIONS, ts, v.into_bytes())
}

/// The input in chunks of one partition each, generated as it is consumed.
fn input(n: u64) -> impl Iterator<Item = Vec<RawRecord>> + Send + 'static {
    let topic: Arc<str> = "sensors".into();
    let mut walk = vec![20.0; (KEYS * 3) as usize];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next_offset = [0i64; PARTITIONS as usize];
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= n {
            return None;
        }
        let mut parts: Vec<Vec<RawRecord>> = vec![Vec::new(); PARTITIONS as usize];
        let end = (i + CHUNK).min(n);
        while i < end {
            let (p, ts, value) = event(i, &mut walk, &mut seed);
            let offset = next_offset[p as usize];
            next_offset[p as usize] += 1;
            parts[p as usize].push(RawRecord {
                topic: topic.clone(),
                partition: p as i32,
                offset,
                key: None,
                value,
                timestamp_ms: Some(ts),
                generation: 0,
            });
            i += 1;
        }
        Some(parts.into_iter().flatten().collect())
    })
}

fn cpu_seconds() -> f64 {
    let me = procfs::process::Process::myself().expect("/proc/self");
    let stat = me.stat().expect("stat");
    (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64
}

fn main() {
    let minutes = arg("--minutes", 8);
    let workers = arg("--workers", 1);
    let n = minutes * 60 * RATE;
    println!(
        "long-running shape: {KEYS} keys x 3 features, {RATE} events/s of event time for {minutes} min ({n} events), 60 s z-score + 5 min robust, a roll per partition every 5 s, {workers} worker(s)"
    );
    let c0 = cpu_seconds();
    let input_bytes: u64 = input(n).flatten().map(|r| r.value.len() as u64).sum();
    let generation = cpu_seconds() - c0;
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(dir.path(), workers);
    let metrics = Metrics::new();
    let partitions = (0..PARTITIONS as i32)
        .map(|p| ("sensors".into(), p))
        .collect();
    let (c1, t1) = (cpu_seconds(), Instant::now());
    let s = process_offline(&cfg, partitions, input(n), metrics.clone()).expect("process");
    let (cpu, took) = (cpu_seconds() - c1 - generation, t1.elapsed().as_secs_f64());
    assert_eq!(s.consumed, n);
    let seconds = (n / RATE) as f64;
    let input_rate = input_bytes as f64 / seconds;
    let ckpt_rate = metrics.checkpoint_bytes.get() as f64 / seconds;
    println!(
        "  {:.0} events/s, {cpu:.1} CPU-s for the job ({generation:.1} CPU-s of input generation not counted)",
        n as f64 / took
    );
    println!(
        "  CPU-s per million events: {:.2} (target <= 5)",
        cpu / (n as f64 / 1e6)
    );
    println!(
        "  checkpoint bytes per second of event time: {:.2} MB/s, the input {:.2} MB/s: {:.1}x (target <= 2x)",
        ckpt_rate / 1e6,
        input_rate / 1e6,
        ckpt_rate / input_rate
    );
    println!(
        "  commits: {} ({} with a whole checkpoint, the others a delta), rows: {}",
        metrics.commits.get(),
        metrics.whole_checkpoints.get(),
        s.rows_written
    );
    if let Some(rss) = peak_rss_bytes() {
        println!("  peak RSS: {:.0} MiB", rss as f64 / 1048576.0);
    }
}
