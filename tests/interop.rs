//! Other engines read the lake with no options: DuckDB (`read_parquet(…, hive_partitioning =
//! true)`), pyarrow (`dataset(…, partitioning='hive')`) and Spark SQL with Hive support (the
//! generated DDL, then `MSCK REPAIR TABLE`). Each must see the row count, the rows per
//! partition and a sample of normalized values that normlake wrote. The readers come from PyPI
//! and `scripts/test` installs them.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::broker::Broker;
use common::job;

const EVENTS: u64 = 12_000;

#[tokio::test(flavor = "multi_thread")]
async fn duckdb_pyarrow_and_spark_read_what_normlake_wrote() {
    let broker = Broker::start();
    broker.create_topic("interop", 2).await;
    let addr = broker.addr();
    tokio::task::spawn_blocking(move || job::produce(&addr, "interop", EVENTS))
        .await
        .expect("produce");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    let cfg = job::write_config(
        dir.path(),
        "interop.toml",
        &job::config(&broker.addr(), "interop", "interop-g", &root, ""),
    );
    job::run_to_end(&cfg, &dir.path().join("job.log"));

    // What normlake wrote, read back with the Rust Parquet reader.
    let content = job::content(&root);
    let rows = &content.rows["z1m"];
    let mut want_parts: BTreeMap<String, u64> = BTreeMap::new();
    let mut want_sample: BTreeMap<String, Option<f64>> = BTreeMap::new();
    let mut offsets = std::collections::BTreeSet::new();
    for ((p, o, feature), row) in rows {
        if feature != "temp" {
            continue;
        }
        offsets.insert((*p, *o));
        let t = chrono::DateTime::from_timestamp_millis(row.ts_ms).expect("time");
        *want_parts
            .entry(t.format("dt=%Y-%m-%d/hr=%H").to_string())
            .or_default() += 1;
        if o % 97 == 0 {
            want_sample.insert(format!("{p}/{o}"), row.y);
        }
    }
    assert!(!want_parts.is_empty() && !want_sample.is_empty());

    let ddl = Command::new(env!("CARGO_BIN_EXE_normlake"))
        .args(["ddl", "--config"])
        .arg(&cfg)
        .output()
        .expect("ddl");
    assert!(ddl.status.success());
    let ddl_file = dir.path().join("table.sql");
    std::fs::write(&ddl_file, &ddl.stdout).expect("write ddl");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/read_lake.py");
    let table = root.join("t");
    let spark_dir = dir.path().join("spark");
    let seen = common::python_json([
        std::ffi::OsStr::new(script),
        table.as_ref(),
        ddl_file.as_ref(),
        spark_dir.as_ref(),
    ]);
    for engine in ["duckdb", "pyarrow", "spark"] {
        let e = &seen[engine];
        assert_eq!(
            e["total"].as_u64(),
            Some(offsets.len() as u64),
            "{engine}: rows"
        );
        let parts: BTreeMap<String, u64> =
            serde_json::from_value(e["partitions"].clone()).expect("partitions");
        assert_eq!(parts, want_parts, "{engine}: rows per partition");
        let sample: BTreeMap<String, Option<f64>> =
            serde_json::from_value(e["sample"].clone()).expect("sample");
        assert_eq!(sample, want_sample, "{engine}: normalized values");
    }
}
