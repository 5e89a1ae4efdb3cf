//! Normalize-only throughput (no Kafka, no decoding, no files): 10,000 keys × 8 features,
//! one event per key per second of event time, in event-time mode with the default 5 s
//! out-of-orderness (so every event goes through the watermark buffer). Prints feature
//! updates per second per window and the state bytes per retained value.
//!
//! Then decoding alone: the same events as JSON and as Avro (Confluent's wire format), in
//! events per second on one thread.
//!
//! Then what waiting for memory costs: the sliding window at that many keys against 100 keys
//! whose state stays in cache (`-- --only cache`).
//!
//! Run: `cargo bench --bench normalize` (optionally `-- --keys N --rounds N`).

use std::time::Instant;

mod common;

use common::arg;

use normlake::normalize::{
    Degenerate, Engine, Event, FeatureValue, LatePolicy, Method, NormSpec, PartitionState, Plan,
    TimeMode, Window,
};

const FEATURES: usize = 8;

fn plan(window: Window, method: Method) -> Plan {
    Plan {
        features: (0..FEATURES).map(|i| format!("f{i}")).collect(),
        norms: vec![NormSpec {
            name: "k".into(),
            method,
            window,
            include_current: false,
            min_count: 2,
            degenerate: Degenerate::Unit,
            features: (0..FEATURES).collect(),
        }],
        layer: None,
        time_mode: TimeMode::EventTime,
        out_of_orderness_ms: 5_000,
        late: LatePolicy::DeadLetter,
        max_disorder_ms: 0,
        idle_ttl_ms: None,
    }
}

struct Figures {
    updates_per_s: f64,
    bytes_per_value: Option<f64>,
    retained: usize,
}

fn bench(window: Window, method: Method, keys: usize, rounds: usize) -> Figures {
    let engine = Engine::new(plan(window, method));
    let names: Vec<Box<str>> = (0..keys).map(|k| format!("sensor-{k:05}").into()).collect();
    let mut state: PartitionState<()> = PartitionState::default();
    let mut out = engine.emitted();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    // Pre-build the events so only the engine is timed.
    let mut events = Vec::with_capacity(keys * rounds);
    let mut seq = 0i64;
    for r in 0..rounds {
        for (k, name) in names.iter().enumerate() {
            let ts = 1_700_000_000_000 + r as i64 * 1_000 + (k as i64 * 1_000) / keys as i64;
            let features = (0..FEATURES)
                .map(|f| FeatureValue::Value(20.0 + f as f64 + rnd()))
                .collect();
            events.push(Event {
                key: name.clone(),
                ts_ms: ts,
                seq,
                features,
                payload: (),
            });
            seq += 1;
        }
    }
    let n = events.len();
    let start = Instant::now();
    for ev in events {
        state.push(&engine, ev, &mut out);
        if out.len() >= keys {
            out.clear();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (bytes, retained) = state.state_footprint();
    Figures {
        updates_per_s: (n * FEATURES) as f64 / secs,
        bytes_per_value: (retained > 0).then(|| bytes as f64 / retained as f64),
        retained,
    }
}

/// Decoded events per second (median of three) of `values`.
fn decode_rate(dec: &normlake::decode::Decoder, values: &[Vec<u8>]) -> f64 {
    let mut rates: Vec<f64> = (0..3)
        .map(|_| {
            let start = Instant::now();
            let mut ok = 0usize;
            for v in values {
                ok += dec.decode(None, v).is_ok() as usize;
            }
            assert_eq!(ok, values.len());
            values.len() as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[1]
}

fn decode_bench(n: u64) {
    use normlake::decode::{Decoder, InputFormat, InputSpec, KeySource, SchemaLookup, TimeFormat};
    let spec = |format| InputSpec {
        format,
        key: KeySource::Field("id".into()),
        time_field: "ts".into(),
        time_format: TimeFormat::EpochMillis,
        features: (0..FEATURES).map(|f| format!("f{f}")).collect(),
        passthrough: Vec::new(),
        max_ahead_ms: None,
        partition_fields: Vec::new(),
    };
    let schema = apache_avro::Schema::parse_str(&common::avro_schema()).expect("schema");
    let mut sensors = common::Sensors::default();
    let json: Vec<Vec<u8>> = (0..n).map(|i| sensors.event(i).2.into_bytes()).collect();
    let mut sensors = common::Sensors::default();
    let avro: Vec<Vec<u8>> = (0..n).map(|i| sensors.avro_event(i, &schema).2).collect();
    let json_dec = Decoder::new(spec(InputFormat::Json));
    let mut avro_dec = Decoder::new(spec(InputFormat::AvroConfluent));
    avro_dec
        .add_schema(common::AVRO_ID, SchemaLookup::Found(common::avro_schema()))
        .expect("schema");
    let (j, a) = (decode_rate(&json_dec, &json), decode_rate(&avro_dec, &avro));
    let bytes = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() as f64 / v.len() as f64;
    println!("decode only, {n} events of {FEATURES} features, one thread");
    println!(
        "  JSON  {:>6.2} M events/s ({:.0} bytes an event)",
        j / 1e6,
        bytes(&json)
    );
    println!(
        "  Avro  {:>6.2} M events/s ({:.0} bytes an event)  Avro / JSON: {:.0}% (target >= 100%)",
        a / 1e6,
        bytes(&avro),
        100.0 * a / j
    );
}

fn main() {
    let keys = arg("--keys", 10_000) as usize;
    let z = Method::Zscore { ddof: 0, eps: 0.0 };
    let cases: [(&str, Window, Method, usize, f64); 7] = [
        ("expanding zscore", Window::Expanding, z, 120, 20e6),
        (
            "sliding_time(60s) zscore",
            Window::SlidingTime { size_ms: 60_000 },
            z,
            180,
            8e6,
        ),
        (
            "sliding_count(100) zscore",
            Window::SlidingCount { count: 100 },
            z,
            200,
            8e6,
        ),
        (
            "ewm_time(2m) zscore",
            Window::EwmTime {
                halflife_ms: 120_000,
            },
            z,
            120,
            20e6,
        ),
        (
            "robust sliding_time(5m)",
            Window::SlidingTime { size_ms: 300_000 },
            Method::Robust {
                q_lo: 0.25,
                q_hi: 0.75,
            },
            360,
            0.0,
        ),
        (
            // 1,200 values a window, as a 5-minute window at 4 events/s.
            "robust sliding_time(20m)",
            Window::SlidingTime { size_ms: 1_200_000 },
            Method::Robust {
                q_lo: 0.25,
                q_hi: 0.75,
            },
            1_400,
            0.0,
        ),
        (
            "robust sliding_count(20000)",
            Window::SlidingCount { count: 20_000 },
            Method::Robust {
                q_lo: 0.25,
                q_hi: 0.75,
            },
            24_000,
            0.0,
        ),
    ];
    println!(
        "normalize-only, {keys} keys x {FEATURES} features, 1 event/s/key, event-time mode, one thread"
    );
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    for (name, w, m, rounds, target) in cases {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        if only.is_none() && name.contains("20000") {
            // 20,000 values a window for every key would take an hour: asked for by name,
            // with fewer keys.
            println!("  {name:<28} run with -- --only \"sliding_count(20000)\" --keys 40");
            continue;
        }
        let rounds = arg("--rounds", rounds as u64) as usize;
        // The machine is shared: run each case three times, print the median and the best.
        let mut runs: Vec<Figures> = (0..arg("--repeat", 3))
            .map(|_| bench(w, m, keys, rounds))
            .collect();
        runs.sort_by(|a, b| a.updates_per_s.total_cmp(&b.updates_per_s));
        let best = runs.last().map_or(0.0, |f| f.updates_per_s);
        let f = &runs[runs.len() / 2];
        let per_value = f
            .bytes_per_value
            .map(|b| format!("{b:.1} B/retained value ({} values)", f.retained))
            .unwrap_or_else(|| "no retained values".into());
        let tgt = if target > 0.0 {
            format!(" (target >= {:.0} M)", target / 1e6)
        } else {
            String::new()
        };
        println!(
            "  {name:<28} median {:>6.2} M, best {:>6.2} M feature-updates/s{tgt}  {per_value}",
            f.updates_per_s / 1e6,
            best / 1e6
        );
    }
    if only.is_none() || only.as_deref() == Some("cache") {
        memory_wait(keys);
    }
    if only.is_none() || only.as_deref() == Some("decode") {
        decode_bench(arg("--decode-events", 1_000_000));
    }
}

/// What the state's memory layout costs: `sliding_time(60s)` at `keys` keys against the same
/// number of events over 100 keys, whose whole state stays in the core's cache. The difference
/// is the time each event waits for its key's state to come from memory, and bounds what any
/// layout of the state (or grouping of events by key) could save.
fn memory_wait(keys: usize) {
    const CACHED: usize = 100;
    let (w, m) = (
        Window::SlidingTime { size_ms: 60_000 },
        Method::Zscore { ddof: 0, eps: 0.0 },
    );
    let events = keys * 180;
    let median = |k: usize| {
        let mut r: Vec<f64> = (0..3)
            .map(|_| bench(w, m, k, events / k).updates_per_s)
            .collect();
        r.sort_by(f64::total_cmp);
        r[1]
    };
    let (far, near) = (median(keys), median(CACHED));
    let ns = |updates_per_s: f64| 1e9 * FEATURES as f64 / updates_per_s;
    println!(
        "  memory wait, sliding_time(60s): {:.2} M/s at {keys} keys, {:.2} M/s at {CACHED} keys (state in cache): {:.0} of {:.0} ns an event wait for the key's state",
        far / 1e6,
        near / 1e6,
        ns(far) - ns(near),
        ns(far)
    );
}
