//! Partitioning by day in a time zone and by an input field with hostile values, through the
//! real broker: every value lands in its own escaped directory inside the table, a value too
//! long for a path is a dead letter, nothing is written outside the table, the DDL lists the
//! partitions with their original values, and DuckDB and pyarrow read the values back.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::broker::{self, Broker};
use common::job;

/// 2026-11-18T15:30Z: the 19th in Tokyo.
const TS: i64 = 1_795_015_800_000;

fn all_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_partition_values_stay_inside_the_table() {
    let broker = Broker::start();
    broker.create_topic("parts", 1).await;
    let long = "x".repeat(300);
    // (site value or None for an absent field, expected directory or None for a dead letter)
    let sites: Vec<(Option<&str>, Option<&str>)> = vec![
        (Some("eu-west-1a"), Some("site=eu-west-1a")),
        (Some("../../../etc"), Some("site=..%2F..%2F..%2Fetc")),
        (Some(".."), Some("site=..")),
        (Some("/"), Some("site=%2F")),
        (Some("100%"), Some("site=100%25")),
        (Some("a=b"), Some("site=a%3Db")),
        (Some("line\nbreak"), Some("site=line%0Abreak")),
        (Some("日本-東京"), Some("site=日本-東京")),
        (Some("it's"), Some("site=it%27s")),
        (Some(""), Some("site=__HIVE_DEFAULT_PARTITION__")),
        (None, Some("site=__HIVE_DEFAULT_PARTITION__")),
        (Some(long.as_str()), None),
    ];
    let records: Vec<broker::Record> = sites
        .iter()
        .enumerate()
        .map(|(i, (site, _))| {
            let site_field = site
                .map(|s| format!(",\"site\":{}", serde_json::to_string(s).expect("json")))
                .unwrap_or_default();
            let value = format!(
                r#"{{"sensor_id":"k{i}","ts":{},"temp":1.5,"hum":2.5,"pres":3.5{site_field}}}"#,
                TS + i as i64
            );
            broker::Record::value(0, value)
        })
        .collect();
    broker::produce(&broker.addr(), "parts", &records).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    let text = job::config(&broker.addr(), "parts", "parts-g", &root, "")
        + "\n[lake.partitioning]\ntime = \"dt=%Y-%m-%d\"\ntime_zone = \"Asia/Tokyo\"\nfields = [\"site\"]\n";
    let cfg = job::write_config(dir.path(), "parts.toml", &text);
    job::run_to_end(&cfg, &dir.path().join("job.log"));

    // Nothing outside the table, its metadata and the dead-letter area.
    let mut files = Vec::new();
    all_files(&root, &mut files);
    for f in &files {
        let rel = f.strip_prefix(&root).expect("under the root");
        let first = rel.components().next().expect("component");
        assert!(
            ["t", "_dead_letter"].contains(&first.as_os_str().to_str().unwrap_or("")),
            "{} is outside the table",
            f.display()
        );
    }
    // Each row in its directory, the long value a dead letter.
    let mut want_dirs: BTreeMap<String, usize> = BTreeMap::new();
    for (_, d) in &sites {
        if let Some(d) = d {
            *want_dirs.entry(format!("dt=2026-11-19/{d}")).or_default() += 1;
        }
    }
    let mut got_dirs: BTreeMap<String, usize> = BTreeMap::new();
    for (path, batch) in common::lake::batches(&root.join("t")) {
        let rel = path
            .parent()
            .and_then(|p| p.strip_prefix(root.join("t")).ok())
            .expect("partition dir")
            .display()
            .to_string();
        assert!(
            batch.schema().field_with_name("site").is_err(),
            "a partition field is not a column of the files"
        );
        *got_dirs.entry(rel).or_default() += batch.num_rows();
    }
    assert_eq!(got_dirs, want_dirs);
    let content = job::content(&root);
    let dead: Vec<&String> = content.dead.values().collect();
    assert_eq!(dead, ["invalid_partition_value"]);

    // The DDL names the partitions with their original values.
    let ddl = Command::new(env!("CARGO_BIN_EXE_normlake"))
        .args(["ddl", "--config"])
        .arg(&cfg)
        .output()
        .expect("ddl");
    let ddl = String::from_utf8_lossy(&ddl.stdout);
    assert!(
        ddl.contains("PARTITIONED BY (`dt` STRING, `site` STRING)"),
        "{ddl}"
    );
    assert!(ddl.contains("`site`='../../../etc'"), "{ddl}");
    assert!(ddl.contains("`site`='it''s'"), "{ddl}");

    // Other engines decode the escaped values back to the originals.
    let script = r#"
import json, sys, duckdb, pyarrow.dataset as ds
t = sys.argv[1]
d = duckdb.connect().execute(
    f"SELECT site, count(*) FROM read_parquet('{t}/**/*.parquet', hive_partitioning = true) GROUP BY ALL"
).fetchall()
a = ds.dataset(t, format="parquet", partitioning="hive").to_table().column("site").to_pylist()
counts = {}
for s in a:
    counts[s] = counts.get(s, 0) + 1
print(json.dumps({"duckdb": {str(k): v for k, v in d}, "pyarrow": {str(k): v for k, v in counts.items()}}))
"#;
    let table = root.join("t");
    let seen = common::python_json([std::ffi::OsStr::new("-c"), script.as_ref(), table.as_ref()]);
    for engine in ["duckdb", "pyarrow"] {
        let got: BTreeMap<String, u64> =
            serde_json::from_value(seen[engine].clone()).expect("counts");
        for v in [
            "../../../etc",
            "..",
            "/",
            "100%",
            "a=b",
            "line\nbreak",
            "日本-東京",
            "it's",
        ] {
            assert_eq!(got.get(v), Some(&1), "{engine} reads {v:?} back: {got:?}");
        }
    }
}
