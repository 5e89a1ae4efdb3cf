//! Core pipeline throughput without Kafka: pre-encoded JSON events (10,000 keys × 8 features,
//! one event per key per second of event time) through decode → normalize (`sliding_time(60s)`
//! z-score) → Arrow → Parquet zstd → commit, with `pipeline::process_offline`, printed beside
//! a ceiling run of the same input with no normalization (decode → Arrow → Parquet → commit),
//! and the same pipeline with the same events as Avro (Confluent's wire format; the writer
//! schema comes from a registry on loopback, once).
//! The keys are spread over 4 input partitions. The record path runs on one worker thread (a
//! second one hands the chunks over, a third routes them), then on two; the per-column codecs
//! (normalized floats uncompressed) are compared with every column in zstd(1), and the five
//! outputs of the normalization with `outputs = ["y"]`.
//!
//! Run: `cargo bench --bench pipeline` (optionally `-- --events N --repeat N --only NAME`).

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

/// Input partitions: the keys are spread over them (a key stays in one), so that two workers
/// each have their own.
const PARTITIONS: i32 = 4;

/// What one run measures.
#[derive(Clone, Copy)]
struct Variant {
    normalize: bool,
    avro: bool,
    workers: usize,
    /// Every column zstd(1), the normalized floats included (the per-column default leaves
    /// those uncompressed).
    all_zstd: bool,
    /// `outputs = ["y"]`: the normalized value alone, no center, scale, n or status.
    y_only: bool,
}

/// What one run printed.
struct Figures {
    events_per_s: f64,
    bytes_per_row: f64,
}

/// The ceiling keeps the raw feature columns and nothing else: the configuration file needs a
/// normalization, so it is removed from the checked configuration, and processing time skips
/// the watermark buffer.
fn config(root: &std::path::Path, v: Variant, registry: Option<&str>) -> Config {
    let features: Vec<String> = (0..FEATURES).map(|i| format!("\"f{i}\"")).collect();
    let outputs = if v.y_only { "outputs = [\"y\"]\n" } else { "" };
    let norm = format!(
        "[[normalize]]\nname = \"z\"\nmethod = \"zscore\"\nwindow = \"sliding_time\"\nsize = \"60s\"\n{outputs}"
    );
    let avro = registry.map_or(String::new(), |url| {
        format!("format = \"avro_confluent\"\n[input.schema_registry]\nurl = \"{url}\"\n")
    });
    let codec = if v.all_zstd {
        "[lake.parquet]\nnormalized_codec = \"zstd\"\n"
    } else {
        ""
    };
    let text = format!(
        "[kafka]\nbrokers = \"unused:9092\"\ntopics = [\"bench\"]\n[input]\nkey_field = \"id\"\nfeatures = [{}]\n{avro}{norm}[lake]\nroot = \"{}\"\ntable = \"t\"\n[lake.rolling]\nmax_rows = 1000000\nmax_age = \"1h\"\ninactivity = \"1h\"\n{codec}[runtime]\nworkers = {}\n",
        features.join(", "),
        root.display(),
        v.workers,
    );
    let mut cfg = Config::from_toml(&text, Vec::new()).expect("config");
    if !v.normalize {
        cfg.plan.norms.clear();
        cfg.plan.time_mode = normlake::normalize::TimeMode::ProcessingTime;
    }
    cfg
}

/// The input: JSON (or the same events as Avro) as a sensor would send it, encoded before
/// timing starts; each partition's records in chunks, the partitions' chunks in turn.
fn events(n: u64, avro: bool) -> Vec<Vec<RawRecord>> {
    let topic: Arc<str> = "bench".into();
    let mut sensors = Sensors::default();
    let schema = apache_avro::Schema::parse_str(&common::avro_schema()).expect("schema");
    let mut parts: Vec<Vec<RawRecord>> = vec![Vec::new(); PARTITIONS as usize];
    for i in 0..n {
        let (ts, v) = if avro {
            let (_, ts, v) = sensors.avro_event(i, &schema);
            (ts, v)
        } else {
            let (_, ts, v) = sensors.event(i);
            (ts, v.into_bytes())
        };
        // Keys go round in order, so key i % KEYS is always in the same partition.
        let p = (i % KEYS % PARTITIONS as u64) as usize;
        let offset = parts[p].len() as i64;
        parts[p].push(RawRecord {
            topic: topic.clone(),
            partition: p as i32,
            offset,
            key: None,
            value: v,
            timestamp_ms: Some(ts),
            generation: 0,
        });
    }
    let mut chunks: Vec<std::slice::Chunks<RawRecord>> =
        parts.iter().map(|p| p.chunks(CHUNK)).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for c in &mut chunks {
            out.extend(c.next().map(<[RawRecord]>::to_vec));
        }
        if out.len() == before {
            return out;
        }
    }
}

fn run(v: Variant, registry: Option<&str>, n: u64) -> Figures {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(dir.path(), v, registry);
    let generated = Instant::now();
    let input = events(n, registry.is_some());
    eprintln!(
        "(input of {n} events encoded in {:.2} s, not timed)",
        generated.elapsed().as_secs_f64()
    );
    let partitions = (0..PARTITIONS).map(|p| ("bench".into(), p)).collect();
    let start = Instant::now();
    let s = process_offline(&cfg, partitions, input, Metrics::new()).expect("process");
    let took = start.elapsed().as_secs_f64();
    assert_eq!(s.consumed, n);
    let bytes_per_row = s.bytes as f64 / s.rows_written.max(1) as f64;
    eprintln!(
        "({} rows in {} files, {:.1} MB of Parquet: {bytes_per_row:.0} bytes a row)",
        s.rows_written,
        s.files,
        s.bytes as f64 / 1e6,
    );
    let layout = normlake::lake::Layout::new(dir.path().to_str().expect("utf-8"), "t");
    let ckpt: u64 = layout
        .store()
        .list_sized("t/_normlake/state")
        .expect("list the checkpoints")
        .into_iter()
        .filter(|(k, _)| k.ends_with(".ckpt"))
        .map(|(_, len)| len)
        .sum();
    eprintln!("(state checkpoints at the end {:.1} MB)", ckpt as f64 / 1e6);
    Figures {
        events_per_s: n as f64 / took,
        bytes_per_row,
    }
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
        "core pipeline, {n} events, {KEYS} keys x {FEATURES} features in {PARTITIONS} partitions, Parquet with the default codecs, median / best of {repeat}"
    );
    let registry = common::serve_schema();
    // `--only pipeline` (or `ceiling`) runs one of them, for profiling.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let base = Variant {
        normalize: true,
        avro: false,
        workers: 1,
        all_zstd: false,
        y_only: false,
    };
    let variants = [
        (
            "ceiling: decode + Arrow + Parquet",
            Variant {
                normalize: false,
                ..base
            },
        ),
        ("pipeline: + sliding_time(60s) z-score", base),
        (
            "pipeline, the same events as Avro",
            Variant { avro: true, ..base },
        ),
        ("pipeline, 2 workers", Variant { workers: 2, ..base }),
        (
            "pipeline, every column zstd(1)",
            Variant {
                all_zstd: true,
                ..base
            },
        ),
        (
            "pipeline, outputs = [\"y\"]",
            Variant {
                y_only: true,
                ..base
            },
        ),
    ];
    let mut results = Vec::new();
    for (name, v) in variants {
        if only.as_deref().is_some_and(|o| !name.starts_with(o)) {
            results.push(Figures {
                events_per_s: f64::NAN,
                bytes_per_row: f64::NAN,
            });
            continue;
        }
        let registry = v.avro.then_some(registry.as_str());
        let mut runs: Vec<Figures> = (0..repeat).map(|_| run(v, registry, n)).collect();
        runs.sort_by(|a, b| a.events_per_s.total_cmp(&b.events_per_s));
        let best = runs[runs.len() - 1].events_per_s;
        let median = runs.swap_remove(runs.len() / 2);
        println!(
            "{name:<42} {:>10.0} / {:>10.0} events/s, {:.0} B/row",
            median.events_per_s, best, median.bytes_per_row
        );
        results.push(median);
    }
    let rate = |i: usize| results[i].events_per_s;
    println!(
        "one worker: {:.0} events/s (target >= 450,000); pipeline / ceiling: {:.0}%",
        rate(1),
        100.0 * rate(1) / rate(0)
    );
    println!(
        "Avro / JSON input: {:.0}% (target >= 100%: Avro no slower per event)",
        100.0 * rate(2) / rate(1)
    );
    println!(
        "two workers / one: {:.2}x (target >= 1.7x)",
        rate(3) / rate(1)
    );
    println!(
        "Parquet bytes per row, per-column codecs / every column zstd(1): {:.0} / {:.0} B = {:.3}x (target <= 1.10x); the per-column codecs' speed: {:.0}% of all-zstd's",
        results[1].bytes_per_row,
        results[4].bytes_per_row,
        results[1].bytes_per_row / results[4].bytes_per_row,
        100.0 * rate(1) / rate(4)
    );
    println!(
        "outputs = [\"y\"] / all five: {:.2}x the events/s, {:.0} / {:.0} B per row",
        rate(5) / rate(1),
        results[5].bytes_per_row,
        results[1].bytes_per_row
    );
    if let Some(rss) = peak_rss_bytes() {
        println!(
            "peak RSS of the benchmark process: {:.0} MiB",
            rss as f64 / 1048576.0
        );
    }
}
