//! Avro input in Confluent's wire format, end to end: records encoded by Confluent's own
//! Python client (`tests/avro/encode.py`, `AvroSerializer`), which registers its schemas in the
//! test registry (`common::registry`), produced to a real broker and read by the job.

mod common;

use std::path::Path;
use std::time::Duration;

use common::broker::{self, Broker, Record};
use common::registry::Registry;
use common::{golden, golden_config, golden_mismatch_with, job, scrape, wait_for};
use normlake::config::Config;
use normlake::pipeline::{self, RunOptions};
use serde_json::{Value, json};

/// A feature as the golden data has it: a number, null, or something invalid.
const FEATURE: &str = r#"["null","double","boolean","long","string",
    {"type":"map","values":["null","boolean","long","double","string"]}]"#;

/// The golden records' schema, and a second version with the fields reordered and two added.
fn golden_schemas() -> [String; 2] {
    let v1 = format!(
        r#"{{"type":"record","name":"Reading","namespace":"sensors","fields":[
        {{"name":"sensor_id","type":["null","string"],"default":null}},
        {{"name":"ts","type":["null","long","string"],"default":null}},
        {{"name":"site","type":["null","string"],"default":null}},
        {{"name":"temp","type":{FEATURE},"default":null}},
        {{"name":"hum","type":{FEATURE},"default":null}},
        {{"name":"pres","type":{FEATURE},"default":null}}]}}"#
    );
    let v2 = format!(
        r#"{{"type":"record","name":"Reading","namespace":"sensors","fields":[
        {{"name":"firmware","type":"string","default":"1.0"}},
        {{"name":"pres","type":{FEATURE},"default":null}},
        {{"name":"hum","type":{FEATURE},"default":null}},
        {{"name":"temp","type":{FEATURE},"default":null}},
        {{"name":"tags","type":{{"type":"array","items":"string"}},"default":[]}},
        {{"name":"site","type":["null","string"],"default":null}},
        {{"name":"ts","type":["null","long","string"],"default":null}},
        {{"name":"sensor_id","type":["null","string"],"default":null}}]}}"#
    );
    [v1, v2]
}

/// Encode with Confluent's `AvroSerializer`: `records` are `{"schema": i, "value": …}` or
/// `{"raw": "text"}`.
fn encode(
    registry: &Registry,
    topic: &str,
    schemas: &[String],
    records: Vec<Value>,
) -> Vec<Vec<u8>> {
    let job = json!({
        "registry": registry.url(),
        "topic": topic,
        "schemas": schemas,
        "records": records,
    });
    let mut child = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/avro/encode.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(job.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("encode.py");
    assert!(
        out.status.success(),
        "encode.py failed (scripts/test installs confluent-kafka):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hex: Vec<String> = serde_json::from_slice(&out.stdout).expect("a JSON list");
    hex.iter().map(|h| from_hex(h)).collect()
}

fn from_hex(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The golden records as Avro, the two schema versions taking turns; the records that are
/// not JSON objects stay as they are (not Avro at all).
fn golden_as_avro(registry: &Registry, topic: &str) -> Vec<Record> {
    let golden = golden::records();
    let requests: Vec<Value> = golden
        .iter()
        .map(|r| match serde_json::from_str::<Value>(&r.value) {
            Ok(v @ Value::Object(_)) => json!({ "schema": r.offset % 2, "value": v }),
            _ => json!({ "raw": r.value }),
        })
        .collect();
    let values = encode(registry, topic, &golden_schemas(), requests);
    golden
        .iter()
        .zip(values)
        .map(|(r, v)| Record::keyed(r.partition, r.key.clone(), v))
        .collect()
}

fn avro_input(text: &str, registry: &Registry) -> String {
    text.replacen("[input]\n", "[input]\nformat = \"avro_confluent\"\n", 1)
        + &format!("\n[input.schema_registry]\nurl = \"{}\"\n", registry.url())
}

fn bounded() -> RunOptions {
    RunOptions {
        until_end: true,
        progress_every: Duration::from_secs(60),
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_golden_case_matches_with_avro_records() {
    let broker = Broker::start();
    let registry = Registry::start();
    let topic = "golden-avro";
    broker.create_topic(topic, 2).await;
    let records = golden_as_avro(&registry, topic);
    let got = broker::produce(&broker.addr(), topic, &records).await;
    let want: Vec<(i32, i64)> = golden::records()
        .iter()
        .map(|r| (r.partition, r.offset))
        .collect();
    assert_eq!(got, want, "the broker must assign the golden offsets");
    let mut failures = Vec::new();
    for case in golden::cases() {
        let root = tempfile::tempdir().expect("lake dir");
        let group = format!("avro-{}", case.name);
        let text = golden_config(&broker.addr(), topic, &group, root.path(), &case);
        let cfg = Config::from_toml(&avro_input(&text, &registry), Vec::new())
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let summary = pipeline::run(cfg, bounded(), std::future::pending())
            .await
            .unwrap_or_else(|e| panic!("{}: run failed: {e}", case.name));
        assert_eq!(summary.consumed, 1608, "{}", case.name);
        failures.extend(golden_mismatch_with(root.path(), &case, avro_reason));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // Each run fetched the two schemas once.
    assert_eq!(registry.lookups(), 2 * golden::cases().len() as u64);
}

/// What is not a JSON object in the golden data was produced as it is: with Avro input it is
/// `not_avro`.
fn avro_reason(json_reason: &str) -> String {
    match json_reason {
        "malformed_json" | "not_an_object" => "not_avro".into(),
        other => other.into(),
    }
}

fn reading(i: i64) -> Value {
    json!({
        "sensor_id": format!("s{}", i % 5),
        "ts": 1_795_000_000_000_i64 + i * 1000,
        "site": "eu",
        "temp": 20.0 + (i % 7) as f64,
        "hum": 0.5,
        "pres": 1000.0 + i as f64,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_truncated_and_foreign_records_are_dead_lettered_by_reason() {
    let broker = Broker::start();
    let registry = Registry::start();
    let topic = "bad-avro";
    broker.create_topic(topic, 1).await;
    let schemas = golden_schemas();
    let good = encode(
        &registry,
        topic,
        &schemas,
        vec![
            json!({"schema": 0, "value": reading(0)}),
            json!({"schema": 1, "value": reading(1)}),
        ],
    );
    let mut unknown = good[0].clone();
    unknown[1..5].copy_from_slice(&999_u32.to_be_bytes());
    let truncated = good[1][..good[1].len() - 3].to_vec();
    let values = [
        good[0].clone(),
        unknown,
        truncated,
        br#"{"sensor_id":"s1"}"#.to_vec(),
        good[1].clone(),
    ];
    let records: Vec<Record> = values.into_iter().map(|v| Record::value(0, v)).collect();
    broker::produce(&broker.addr(), topic, &records).await;
    let root = tempfile::tempdir().expect("lake dir");
    let text = job::config(&broker.addr(), topic, "bad", root.path(), "");
    let cfg = Config::from_toml(&avro_input(&text, &registry), Vec::new()).expect("config");
    let summary = pipeline::run(cfg, bounded(), std::future::pending())
        .await
        .expect("run");
    assert_eq!(summary.consumed, 5);
    let dead = common::lake::dead_letters(&root.path().join("_dead_letter/t"));
    let want: golden::DeadLetters = [
        ((0, 1), "unknown_schema".to_string()),
        ((0, 2), "malformed_avro".to_string()),
        ((0, 3), "not_avro".to_string()),
    ]
    .into();
    assert_eq!(dead, want);
    let rows = job::content(root.path()).rows["z1m"].clone();
    let offsets: std::collections::BTreeSet<i64> = rows.keys().map(|(_, o, _)| *o).collect();
    assert_eq!(offsets, [0, 4].into());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_outage_pauses_the_partition_and_loses_nothing() {
    let _one = job::exclusive().await;
    let broker = Broker::start();
    let mut registry = Registry::start();
    let topic = "outage";
    broker.create_topic(topic, 2).await;
    let schemas = golden_schemas();
    // Both versions are registered now; the job meets the second only during the outage.
    let first: Vec<Value> = (0..40)
        .map(|i| json!({"schema": 0, "value": reading(i)}))
        .collect();
    let second: Vec<Value> = (40..80)
        .map(|i| json!({"schema": 1, "value": reading(i)}))
        .collect();
    let first = encode(&registry, topic, &schemas, first);
    let second = encode(&registry, topic, &schemas, second);
    let to_records = |values: Vec<Vec<u8>>| -> Vec<Record> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| Record::value((i % 2) as i32, v))
            .collect()
    };

    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().join("lake");
    // Processing time: every record is written as it comes, none held by the watermark.
    let text = job::config(&broker.addr(), topic, "outage", &root, "")
        + "\n[time]\nmode = \"processing_time\"\n";
    let cfg = job::write_config(dir.path(), "avro.toml", &avro_input(&text, &registry));
    let port = broker::free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = dir.path().join("job.log");
    let mut run = job::Job::start_with(&cfg, false, &log, &["--metrics-listen", &listen]);
    broker::produce(&broker.addr(), topic, &to_records(first)).await;
    let ends = broker::end_offsets(&broker.addr(), topic, 2);
    job::wait_committed(&root, topic, &ends, Duration::from_secs(60));

    registry.stop();
    broker::produce(&broker.addr(), topic, &to_records(second)).await;
    let metric = |name: &str| {
        scrape::get(port, "/metrics")
            .map(|(_, body)| scrape::value(&scrape::samples(&body), name))
            .unwrap_or(0.0)
    };
    wait_for("failed registry requests", Duration::from_secs(60), || {
        (metric("normlake_schema_registry_failures_total") >= 2.0).then_some(())
    });
    wait_for("a partition waiting", Duration::from_secs(30), || {
        (metric("normlake_partitions_waiting_for_schema") >= 1.0).then_some(())
    });
    wait_for("/readyz to fail", Duration::from_secs(30), || {
        scrape::get(port, "/readyz").filter(|(s, _)| *s == 503)
    });
    assert_eq!(
        metric("normlake_dead_letters_total{reason=\"unknown_schema\"}"),
        0.0
    );

    registry.restart();
    let ends = broker::end_offsets(&broker.addr(), topic, 2);
    job::wait_committed(&root, topic, &ends, Duration::from_secs(120));
    wait_for("/readyz to pass again", Duration::from_secs(30), || {
        scrape::get(port, "/readyz").filter(|(s, _)| *s == 200)
    });
    run.terminate();
    assert_eq!(run.wait(Duration::from_secs(60)), Some(true), "clean exit");

    let content = job::content(&root);
    assert!(content.dead.is_empty(), "{:?}", content.dead);
    let rows = &content.rows["z1m"];
    let mut offsets: Vec<(i32, i64)> = rows.keys().map(|(p, o, _)| (*p, *o)).collect();
    offsets.dedup();
    let want: Vec<(i32, i64)> = (0..2).flat_map(|p| (0..40).map(move |o| (p, o))).collect();
    assert_eq!(offsets, want, "every record once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_run_waits_for_the_registry_and_reads_to_the_end() {
    let broker = Broker::start();
    let mut registry = Registry::start();
    let topic = "bounded-outage";
    broker.create_topic(topic, 2).await;
    let requests: Vec<Value> = (0..60)
        .map(|i| json!({"schema": i % 2, "value": reading(i)}))
        .collect();
    let values = encode(&registry, topic, &golden_schemas(), requests);
    let records: Vec<Record> = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| Record::value((i % 2) as i32, v))
        .collect();
    broker::produce(&broker.addr(), topic, &records).await;
    registry.stop();
    let root = tempfile::tempdir().expect("lake dir");
    let text = job::config(&broker.addr(), topic, "bounded", root.path(), "")
        + "\n[time]\nmode = \"processing_time\"\n";
    let cfg = Config::from_toml(&avro_input(&text, &registry), Vec::new()).expect("config");
    let opts = bounded();
    let metrics = opts.metrics.clone();
    let run = tokio::spawn(pipeline::run(cfg, opts, std::future::pending()));
    wait_for("failed registry requests", Duration::from_secs(30), || {
        (metrics.registry_failures.get() >= 2).then_some(())
    });
    registry.restart();
    let summary = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the run ends once the registry answers")
        .expect("join")
        .expect("run");
    assert!(summary.consumed >= 60);
    let content = job::content(root.path());
    assert!(content.dead.is_empty(), "{:?}", content.dead);
    let mut offsets: Vec<(i32, i64)> = content.rows["z1m"]
        .keys()
        .map(|(p, o, _)| (*p, *o))
        .collect();
    offsets.dedup();
    let want: Vec<(i32, i64)> = (0..2).flat_map(|p| (0..30).map(move |o| (p, o))).collect();
    assert_eq!(offsets, want, "every record once");
}

const NESTED: &str = r#"{"type":"record","name":"Nested","namespace":"sensors","fields":[
    {"name":"meta","type":{"type":"record","name":"Meta","fields":[
        {"name":"id","type":"string"},
        {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"site","type":"string"}]}},
    {"name":"payload","type":{"type":"record","name":"Payload","fields":[
        {"name":"temp","type":"double"},
        {"name":"count","type":["null","int","string"]},
        {"name":"ratio","type":"float"}]}},
    {"name":"ok","type":"boolean"},
    {"name":"seen","type":{"type":"long","logicalType":"timestamp-micros"}}]}"#;

const SEEN_US: i64 = 1_795_000_000_000_123;

fn nested_reading(i: i64) -> Value {
    let count = if i == 3 { json!("x") } else { json!(i) };
    json!({
        "meta": {"id": format!("s{}", i % 2), "ts": 1_795_000_000_000_i64 + i * 1000, "site": "eu"},
        "payload": {"temp": 20.0 + i as f64, "count": count, "ratio": 0.5},
        "ok": i % 2 == 0,
        "seen": SEEN_US + i,
    })
}

fn nested_config(brokers: &str, topic: &str, root: &Path, registry: &Registry) -> String {
    format!(
        r#"
[kafka]
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "nested"

[input]
format = "avro_confluent"
key_field = "meta.id"
time_field = "meta.ts"
features = ["payload.temp"]
passthrough = [
  "meta.site",
  {{ field = "payload.count", type = "int64" }},
  {{ field = "payload.ratio", type = "float64" }},
  {{ field = "ok", type = "bool" }},
  {{ field = "seen", type = "timestamp" }},
]

[input.schema_registry]
url = "{}"

[[normalize]]
name = "z"
method = "zscore"
window = "expanding"

[time]
mode = "processing_time"

[lake]
root = "{}"
table = "n"
"#,
        registry.url(),
        root.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_and_typed_columns_read_with_their_types_in_duckdb_and_spark() {
    let broker = Broker::start();
    let registry = Registry::start();
    let topic = "nested";
    broker.create_topic(topic, 1).await;
    let requests = (0..6)
        .map(|i| json!({"schema": 0, "value": nested_reading(i)}))
        .collect();
    let values = encode(&registry, topic, &[NESTED.to_string()], requests);
    let records: Vec<Record> = values.into_iter().map(|v| Record::value(0, v)).collect();
    broker::produce(&broker.addr(), topic, &records).await;
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().join("lake");
    let text = nested_config(&broker.addr(), topic, &root, &registry);
    let cfg_file = job::write_config(dir.path(), "nested.toml", &text);
    let opts = bounded();
    let metrics = opts.metrics.clone();
    let cfg = Config::from_toml(&text, Vec::new()).expect("config");
    let summary = pipeline::run(cfg, opts, std::future::pending())
        .await
        .expect("run");
    assert_eq!((summary.consumed, summary.rows_written), (6, 6));
    // The string where an integer belongs is null, and counted; the row is kept.
    assert_eq!(metrics.invalid_values_of("payload_count"), 1);

    // The timestamp column holds the writer's microseconds.
    let table = root.join("n");
    let seen: Vec<i64> = common::lake::batches(&table)
        .iter()
        .flat_map(|(_, b)| {
            use arrow::array::AsArray;
            let a = b
                .column_by_name("seen")
                .expect("seen")
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .clone();
            a.values().to_vec()
        })
        .collect();
    assert_eq!(seen, (0..6).map(|i| SEEN_US + i).collect::<Vec<_>>());

    let ddl = std::process::Command::new(env!("CARGO_BIN_EXE_normlake"))
        .args(["ddl", "--config"])
        .arg(&cfg_file)
        .output()
        .expect("ddl");
    assert!(ddl.status.success());
    let ddl_file = dir.path().join("table.sql");
    std::fs::write(&ddl_file, &ddl.stdout).expect("write ddl");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/column_types.py");
    let spark_dir = dir.path().join("spark");
    let mut args: Vec<std::ffi::OsString> = vec![
        script.into(),
        table.into(),
        ddl_file.into(),
        spark_dir.into(),
    ];
    args.extend(["payload_count", "payload_ratio", "ok", "meta_site"].map(Into::into));
    let seen = common::python_json(args);
    let want_rows = json!([
        ["0", "0.5", "true", "eu"],
        ["1", "0.5", "false", "eu"],
        ["2", "0.5", "true", "eu"],
        [null, "0.5", "false", "eu"],
        ["4", "0.5", "true", "eu"],
        ["5", "0.5", "false", "eu"],
    ]);
    let want_types = [
        (
            "duckdb",
            [
                ("payload_temp_z", "DOUBLE"),
                ("meta_site", "VARCHAR"),
                ("payload_count", "BIGINT"),
                ("payload_ratio", "DOUBLE"),
                ("ok", "BOOLEAN"),
                ("seen", "TIMESTAMP WITH TIME ZONE"),
            ],
        ),
        (
            "spark",
            [
                ("payload_temp_z", "double"),
                ("meta_site", "string"),
                ("payload_count", "bigint"),
                ("payload_ratio", "double"),
                ("ok", "boolean"),
                ("seen", "timestamp"),
            ],
        ),
    ];
    for (engine, types) in want_types {
        for (column, t) in types {
            assert_eq!(
                seen[engine]["types"][column].as_str(),
                Some(t),
                "{engine}: {column} in {}",
                seen[engine]["types"]
            );
        }
        assert_eq!(seen[engine]["rows"], want_rows, "{engine}: rows");
    }
}
