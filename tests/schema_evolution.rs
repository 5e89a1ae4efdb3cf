//! Schema evolution: a job that gains a feature and a normalization between two runs adds
//! nullable columns, keeps the state of every normalization it still has (the checkpoint is
//! migrated by name), and leaves a table that DuckDB and pyarrow read whole, old files and new.

mod common;

use std::collections::BTreeSet;

use common::broker::Broker;
use common::job;

const EVENTS: u64 = 3_000;

#[tokio::test(flavor = "multi_thread")]
async fn adding_a_feature_and_a_normalization_keeps_state_and_readers() {
    let broker = Broker::start();
    broker.create_topic("evolve", 1).await;
    let addr = broker.addr();
    tokio::task::spawn_blocking(move || job::produce(&addr, "evolve", EVENTS))
        .await
        .expect("produce");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    let full = |root: &std::path::Path, group: &str| {
        job::config(&broker.addr(), "evolve", group, root, "")
    };
    // Before: two features and only the sliding z-score.
    let before = full(&root, "evolve-g")
        .replace(
            "features = [\"temp\", \"hum\", \"pres\"]",
            "features = [\"temp\", \"hum\"]",
        )
        .replace(
            "[[normalize]]\nname = \"bn\"\nmethod = \"zscore\"\nwindow = \"expanding\"\neps = 1e-5\n",
            "",
        );
    assert!(!before.contains("\"bn\"") && !before.contains("\"pres\""));
    let cfg_before = job::write_config(dir.path(), "before.toml", &before);
    job::run_to_end(&cfg_before, &dir.path().join("before.log"));
    let old_files: BTreeSet<_> = normlake::lake::list_parquet(&root.join("t"))
        .expect("list")
        .into_iter()
        .collect();

    // After: the third feature and the expanding normalization join, over more input.
    let addr = broker.addr();
    tokio::task::spawn_blocking(move || job::produce_from(&addr, "evolve", EVENTS, EVENTS, 64))
        .await
        .expect("produce");
    let cfg_after = job::write_config(dir.path(), "after.toml", &full(&root, "evolve-g"));
    job::run_to_end(&cfg_after, &dir.path().join("after.log"));
    let new_files: Vec<_> = normlake::lake::list_parquet(&root.join("t"))
        .expect("list")
        .into_iter()
        .filter(|f| !old_files.contains(f))
        .collect();
    assert!(!old_files.is_empty() && !new_files.is_empty());
    let columns = |f: &std::path::PathBuf| -> Vec<String> {
        let file = std::fs::File::open(f).expect("open");
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    };
    for f in &old_files {
        assert!(!columns(f).contains(&"pres_bn".to_string()));
    }
    for f in &new_files {
        let c = columns(f);
        assert!(c.contains(&"pres".to_string()) && c.contains(&"temp_bn_status".to_string()));
    }

    // The sliding z-score of the features it had kept its state across the change: every
    // row equals a run with the new configuration from the start.
    let reference = dir.path().join("reference");
    let cfg_ref = job::write_config(dir.path(), "ref.toml", &full(&reference, "ref-g"));
    job::run_to_end(&cfg_ref, &dir.path().join("ref.log"));
    let kept: Vec<String> = vec!["temp".into(), "hum".into()];
    let got = common::lake::rows(&root.join("t"), &kept, "z1m");
    let want = common::lake::rows(&reference.join("t"), &kept, "z1m");
    assert_eq!(got.len(), want.len());
    let differ = want.iter().filter(|(k, w)| got.get(*k) != Some(*w)).count();
    assert_eq!(differ, 0, "rows of the kept normalization differ");

    // Readers merge the schemas: old rows have nulls in the new columns.
    let script = r#"
import json, sys, duckdb, pyarrow as pa, pyarrow.dataset as ds, pyarrow.parquet as pq
t = sys.argv[1]
d = duckdb.connect().execute(
    f"SELECT count(*), count(pres_bn_status), count(temp_z1m_status) FROM read_parquet('{t}/**/*.parquet', hive_partitioning = true, union_by_name = true)"
).fetchone()
files = ds.dataset(t, format="parquet", partitioning="hive").files
schema = pa.unify_schemas([pq.read_schema(f) for f in files])
tab = ds.dataset(t, format="parquet", partitioning="hive", schema=schema).to_table()
a = [tab.num_rows, tab.num_rows - tab.column("pres_bn_status").null_count, tab.num_rows - tab.column("temp_z1m_status").null_count]
print(json.dumps({"duckdb": list(d), "pyarrow": a}))
"#;
    let table = root.join("t");
    let seen = common::python_json([std::ffi::OsStr::new("-c"), script.as_ref(), table.as_ref()]);
    let rows_in = |files: &[std::path::PathBuf]| -> u64 {
        files
            .iter()
            .map(|f| {
                let file = std::fs::File::open(f).expect("open");
                parquet::file::reader::FileReader::metadata(
                    &parquet::file::reader::SerializedFileReader::new(file).expect("parquet"),
                )
                .file_metadata()
                .num_rows() as u64
            })
            .sum()
    };
    let old: Vec<_> = old_files.iter().cloned().collect();
    let (old_rows, new_rows) = (rows_in(&old), rows_in(&new_files));
    for engine in ["duckdb", "pyarrow"] {
        let v: Vec<u64> = serde_json::from_value(seen[engine].clone()).expect("counts");
        assert_eq!(
            v,
            [old_rows + new_rows, new_rows, old_rows + new_rows],
            "{engine}"
        );
    }
}
