//! Core pipeline throughput without Kafka: pre-encoded JSON events (10,000 keys × 8 features,
//! one event per key per second of event time) through decode → normalize (`sliding_time(60s)`
//! z-score) → Arrow → Parquet zstd → commit, with `pipeline::process_offline`, printed beside
//! a ceiling run of the same input with no normalization (decode → Arrow → Parquet → commit),
//! and the same pipeline with the same events as Avro (Confluent's wire format; the writer
//! schema comes from a registry on loopback, once).
//! The record path runs on one thread (a second one only hands the chunks over).
//!
//! Run: `cargo bench --bench pipeline` (optionally `-- --events N --repeat N`).

use std::sync::Arc;
use std::time::Instant;

mod common;

use common::{FEATURES, KEYS, Sensors};
use normlake::config::Config;
use normlake::pipeline::process_offline;
use normlake::source::RawRecord;
use normlake::telemetry::{Metrics, peak_rss_bytes};

// The binary's allocator, so that the figures are the job's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CHUNK: usize = 2048;

/// The ceiling keeps the raw feature columns and nothing else: the configuration file needs a
/// normalization, so it is removed from the checked configuration, and processing time skips
/// the watermark buffer.
fn config(root: &std::path::Path, normalize: bool, registry: Option<&str>) -> Config {
    let features: Vec<String> = (0..FEATURES).map(|i| format!("\"f{i}\"")).collect();
    let norm = "[[normalize]]\nname = \"z\"\nmethod = \"zscore\"\nwindow = \"sliding_time\"\nsize = \"60s\"\n";
    let avro = registry.map_or(String::new(), |url| {
        format!("format = \"avro_confluent\"\n[input.schema_registry]\nurl = \"{url}\"\n")
    });
    let text = format!(
        "[kafka]\nbrokers = \"unused:9092\"\ntopics = [\"bench\"]\n[input]\nkey_field = \"id\"\nfeatures = [{}]\n{avro}{norm}[lake]\nroot = \"{}\"\ntable = \"t\"\n[lake.rolling]\nmax_rows = 1000000\nmax_age = \"1h\"\ninactivity = \"1h\"\n",
        features.join(", "),
        root.display()
    );
    let mut cfg = Config::from_toml(&text, Vec::new()).expect("config");
    if !normalize {
        cfg.plan.norms.clear();
        cfg.plan.time_mode = normlake::normalize::TimeMode::ProcessingTime;
    }
    cfg
}

/// The input: JSON (or the same events as Avro) as a sensor would send it, encoded before
/// timing starts.
fn events(n: u64, avro: bool) -> Vec<Vec<RawRecord>> {
    let topic: Arc<str> = "bench".into();
    let mut sensors = Sensors::default();
    let schema = apache_avro::Schema::parse_str(&common::avro_schema()).expect("schema");
    let records: Vec<RawRecord> = (0..n)
        .map(|i| {
            let (ts, v) = if avro {
                let (_, ts, v) = sensors.avro_event(i, &schema);
                (ts, v)
            } else {
                let (_, ts, v) = sensors.event(i);
                (ts, v.into_bytes())
            };
            RawRecord {
                topic: topic.clone(),
                partition: 0,
                offset: i as i64,
                key: None,
                value: v,
                timestamp_ms: Some(ts),
                generation: 0,
            }
        })
        .collect();
    records.chunks(CHUNK).map(<[RawRecord]>::to_vec).collect()
}

fn run(normalize: bool, registry: Option<&str>, n: u64) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(dir.path(), normalize, registry);
    let generated = Instant::now();
    let input = events(n, registry.is_some());
    eprintln!(
        "(input of {n} events encoded in {:.2} s, not timed)",
        generated.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let s =
        process_offline(&cfg, vec![("bench".into(), 0)], input, Metrics::new()).expect("process");
    let took = start.elapsed().as_secs_f64();
    assert_eq!(s.consumed, n);
    eprintln!(
        "({} rows in {} files, {:.1} MB of Parquet: {:.0} bytes a row)",
        s.rows_written,
        s.files,
        s.bytes as f64 / 1e6,
        s.bytes as f64 / s.rows_written.max(1) as f64
    );
    let layout = normlake::lake::Layout::new(dir.path().to_str().expect("utf-8"), "t");
    let ckpt: u64 = layout
        .store()
        .list_sized("t/_normlake/state")
        .expect("list the checkpoints")
        .into_iter()
        .filter(|(k, _)| k.ends_with(".ckpt"))
        .map(|(_, len)| len)
        .max()
        .unwrap_or(0);
    eprintln!("(largest state checkpoint {:.1} MB)", ckpt as f64 / 1e6);
    n as f64 / took
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = arg("--events", 1_000_000);
    let repeat = arg("--repeat", 3) as usize;
    println!(
        "core pipeline, {n} events, {KEYS} keys x {FEATURES} features, Parquet with the default codec (zstd(1)), median / best of {repeat}"
    );
    let mut results = Vec::new();
    let registry = common::serve_schema();
    // `--only pipeline` (or `ceiling`) runs one of them, for profiling.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    for (name, normalize, avro) in [
        ("ceiling: decode + Arrow + Parquet", false, false),
        ("pipeline: + sliding_time(60s) z-score", true, false),
        ("pipeline, the same events as Avro", true, true),
    ] {
        if only.as_deref().is_some_and(|o| !name.starts_with(o)) {
            results.push(f64::NAN);
            continue;
        }
        let registry = avro.then_some(registry.as_str());
        let mut rates: Vec<f64> = (0..repeat).map(|_| run(normalize, registry, n)).collect();
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        let best = rates[rates.len() - 1];
        println!("{name:<42} {:>10.0} / {:>10.0} events/s", median, best);
        results.push(median);
    }
    println!(
        "pipeline / ceiling: {:.0}% (target >= 60%, and >= 600,000 events/s)",
        100.0 * results[1] / results[0]
    );
    println!(
        "Avro / JSON input: {:.0}% (target >= 100%: Avro no slower per event)",
        100.0 * results[2] / results[1]
    );
    if let Some(rss) = peak_rss_bytes() {
        println!(
            "peak RSS of the benchmark process: {:.0} MiB",
            rss as f64 / 1048576.0
        );
    }
}
