//! Registration in a real Hive Metastore (Hive 2.3's Thrift server from pyspark's jars), read
//! back by Spark SQL connected to the same metastore, with no `MSCK REPAIR`:
//! - the table and every partition, with hostile partition values, per-partition counts equal
//!   to the lake's, and new columns after a schema change;
//! - a metastore down at start, then stopped in the middle of a run and restarted: every
//!   partition ends up registered exactly once, and the lake never waited;
//! - a `kill -9` while the metastore is down: the next start registers what is missing;
//! - idleness: with `[time] idle_timeout`, a silent input partition stops holding back
//!   completion, so `_SUCCESS` and `on_complete` registration happen; without it, they do not.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::broker::{self, Broker, free_port};
use common::job::{self, Job};
use common::metastore::Metastore;
use common::scrape;
use normlake::lake::{HiveTable, Layout};

/// 2026-11-18T10:00:00Z.
const T0: i64 = 1_794_996_000_000;
const MINUTE: i64 = 60_000;

/// Site values that need escaping in a path, or are not ASCII.
const SITES: [&str; 6] = ["plain", "a/b", "k=v", "100%", "two words", "東京"];

fn event(key: &str, ts: i64, site: &str, temp: f64) -> String {
    format!(
        r#"{{"sensor_id":"{key}","ts":{ts},"temp":{temp},"hum":1.5,"pres":2.5,"site":{}}}"#,
        serde_json::to_string(site).expect("json")
    )
}

/// `n` events per site on partition `p`, one a minute from minute `from`.
fn records(p: i32, from: i64, n: i64) -> Vec<broker::Record> {
    let mut out = Vec::new();
    for m in from..from + n {
        for (i, site) in SITES.iter().enumerate() {
            let v = event(&format!("s{p}-{i}"), T0 + m * MINUTE, site, m as f64);
            out.push(broker::Record::value(p, v));
        }
    }
    out
}

fn config(broker: &Broker, topic: &str, root: &Path, metastore: &str, extra: &str) -> String {
    job::config(&broker.addr(), topic, &format!("{topic}-g"), root, "")
        + "\n[lake.partitioning]\ntime = \"dt=%Y-%m-%d/hr=%H\"\nfields = [\"site\"]\n"
        + &format!(
            "\n[lake.metastore]\nuri = \"{metastore}\"\ndatabase = \"lakehouse\"\ntimeout = \"3s\"\n"
        )
        + extra
}

fn hive_table() -> HiveTable {
    HiveTable {
        name: "t".into(),
        columns: Vec::new(),
        partition_columns: vec!["dt".into(), "hr".into(), "site".into()],
        location: String::new(),
    }
}

/// Rows per partition in the lake, by raw partition values.
fn lake_counts(root: &Path) -> BTreeMap<Vec<String>, u64> {
    let table = root.join("t");
    let mut out = BTreeMap::new();
    for (file, rows) in common::lake::file_rows(&table) {
        let rel = Path::new(&file)
            .strip_prefix(&table)
            .expect("in the table")
            .parent()
            .expect("in a partition")
            .to_string_lossy()
            .to_string();
        let p = hive_table()
            .partition_of(&rel)
            .expect("a partition directory");
        *out.entry(p.values).or_default() += rows as u64;
    }
    out
}

/// Rows per partition as Spark SQL reads them through the metastore, and the partition list.
fn spark_counts(seen: &serde_json::Value) -> (BTreeMap<Vec<String>, u64>, Vec<String>) {
    let counts: Vec<(Vec<String>, u64)> =
        serde_json::from_value(seen["counts"].clone()).expect("counts");
    let partitions: Vec<String> =
        serde_json::from_value(seen["partitions"].clone()).expect("partitions");
    (counts.into_iter().collect(), partitions)
}

/// Spark sees exactly the lake: the same partitions, each once, with the same row counts.
fn assert_spark_sees_the_lake(hms: &Metastore, root: &Path) -> serde_json::Value {
    let seen = hms.spark("lakehouse", "t");
    let (counts, partitions) = spark_counts(&seen);
    let want = lake_counts(root);
    assert!(!want.is_empty(), "the lake has data");
    assert_eq!(
        counts, want,
        "rows per partition, Spark SQL against the lake"
    );
    let dirs = Layout::new(root.to_str().expect("utf-8"), "t")
        .partition_dirs()
        .expect("list");
    let mut names: Vec<String> = dirs.keys().cloned().collect();
    names.sort();
    let mut got = partitions.clone();
    got.sort();
    assert_eq!(got, names, "SHOW PARTITIONS names every directory once");
    seen
}

fn metric(port: u16, name: &str) -> f64 {
    scrape::get(port, "/metrics")
        .map(|(_, t)| scrape::value(&scrape::samples(&t), name))
        .unwrap_or(-1.0)
}

/// Wait until `done` holds.
fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    common::wait_for(what, timeout, || done().then_some(()));
}

#[tokio::test(flavor = "multi_thread")]
async fn spark_reads_the_registered_table_and_a_schema_change() {
    let _one = job::exclusive().await;
    let hms = Metastore::start();
    let broker = Broker::start();
    broker.create_topic("reg", 2).await;
    broker::produce(&broker.addr(), "reg", &records(0, 0, 90)).await;
    broker::produce(&broker.addr(), "reg", &records(1, 30, 40)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    let text = config(&broker, "reg", &root, &hms.uri(), "");
    let cfg = job::write_config(dir.path(), "reg.toml", &text);
    job::run_to_end(&cfg, &dir.path().join("run1.log"));
    let seen = assert_spark_sees_the_lake(&hms, &root);
    let columns: Vec<(String, String)> =
        serde_json::from_value(seen["columns"].clone()).expect("columns");
    assert!(columns.contains(&("temp_z1m".into(), "double".into())));
    assert!(!columns.iter().any(|(c, _)| c == "temp_z5"));

    // A new normalization adds columns: the table gets them, old partitions read as null.
    let extra = "\n[[normalize]]\nname = \"z5\"\nmethod = \"zscore\"\nwindow = \"sliding_count\"\ncount = 5\n";
    let text = text.replace("\n[lake]\n", &format!("{extra}\n[lake]\n"));
    let cfg = job::write_config(dir.path(), "reg2.toml", &text);
    broker::produce(&broker.addr(), "reg", &records(0, 200, 5)).await;
    job::run_to_end(&cfg, &dir.path().join("run2.log"));
    let seen = assert_spark_sees_the_lake(&hms, &root);
    let columns: Vec<(String, String)> =
        serde_json::from_value(seen["columns"].clone()).expect("columns");
    assert!(
        columns.contains(&("temp_z5".into(), "double".into())),
        "DESCRIBE shows the new column: {columns:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metastore_down_at_start_and_restarted_mid_run_ends_with_every_partition_once() {
    let _one = job::exclusive().await;
    let broker = Broker::start();
    broker.create_topic("down", 2).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    // Nothing listens on the metastore's port yet.
    let hms_port = free_port();
    let text = config(
        &broker,
        "down",
        &root,
        &format!("thrift://127.0.0.1:{hms_port}"),
        "",
    );
    let cfg = job::write_config(dir.path(), "down.toml", &text);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = dir.path().join("job.log");
    let mut run = Job::start_with(&cfg, false, &log, &["--metrics-listen", &listen]);
    broker::produce(&broker.addr(), "down", &records(0, 0, 30)).await;
    broker::produce(&broker.addr(), "down", &records(1, 0, 30)).await;
    let ends = broker::end_offsets(&broker.addr(), "down", 2);
    job::wait_committed(&root, "down", &ends, Duration::from_secs(60));
    wait_until("failed metastore attempts", Duration::from_secs(30), || {
        metric(port, "normlake_metastore_failures_total") >= 1.0
    });
    assert!(metric(port, "normlake_metastore_backlog_partitions") > 0.0);

    let mut hms = Metastore::start_on(hms_port);
    wait_until("the backlog to drain", Duration::from_secs(120), || {
        metric(port, "normlake_metastore_backlog_partitions") == 0.0
            && metric(port, "normlake_metastore_partitions_registered_total") > 0.0
    });
    hms.stop();
    broker::produce(&broker.addr(), "down", &records(0, 60, 60)).await;
    let ends = broker::end_offsets(&broker.addr(), "down", 2);
    job::wait_committed(&root, "down", &ends, Duration::from_secs(60));
    hms.restart();
    wait_until(
        "the backlog to drain again",
        Duration::from_secs(120),
        || metric(port, "normlake_metastore_backlog_partitions") == 0.0,
    );
    run.terminate();
    assert_eq!(run.wait(Duration::from_secs(60)), Some(true), "clean exit");
    assert_spark_sees_the_lake(&hms, &root);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_commit_and_registration_is_registered_by_the_next_start() {
    let _one = job::exclusive().await;
    let broker = Broker::start();
    broker.create_topic("kill", 2).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    let hms_port = free_port();
    let text = config(
        &broker,
        "kill",
        &root,
        &format!("thrift://127.0.0.1:{hms_port}"),
        "",
    );
    let cfg = job::write_config(dir.path(), "kill.toml", &text);
    let mut run = Job::start(&cfg, false, &dir.path().join("run1.log"));
    broker::produce(&broker.addr(), "kill", &records(0, 0, 40)).await;
    broker::produce(&broker.addr(), "kill", &records(1, 20, 40)).await;
    let ends = broker::end_offsets(&broker.addr(), "kill", 2);
    job::wait_committed(&root, "kill", &ends, Duration::from_secs(60));
    run.kill9();

    let hms = Metastore::start_on(hms_port);
    job::run_to_end(&cfg, &dir.path().join("run2.log"));
    assert_spark_sees_the_lake(&hms, &root);
}

/// Records of partition 0 for minute 150 onwards, one every 300 ms, until `stop`.
fn trickle(
    addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut m = 150;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            broker::produce(&addr, "idle", &records(0, m, 1)).await;
            m += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

/// Whether any directory of the hour on 2026-11-18 is marked complete.
fn hour_complete(root: &Path, hour: &str) -> bool {
    let dirs = Layout::new(root.to_str().expect("utf-8"), "t")
        .partition_dirs()
        .expect("list");
    let prefix = format!("dt=2026-11-18/hr={hour}/");
    dirs.iter()
        .any(|(d, p)| d.starts_with(&prefix) && p.complete)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_input_stops_holding_back_completion_and_on_complete_registration() {
    let _one = job::exclusive().await;
    let hms = Metastore::start();
    let broker = Broker::start();
    broker.create_topic("idle", 2).await;
    // Partition 0 reaches 12:29; partition 1 stops at 11:09 and then stays silent.
    broker::produce(&broker.addr(), "idle", &records(0, 0, 150)).await;
    broker::produce(&broker.addr(), "idle", &records(1, 0, 70)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeding = trickle(broker.addr(), stop.clone());

    // Without an idle timeout the silent partition holds 11:00-12:00 open.
    let held = dir.path().join("held");
    let text = config(&broker, "idle", &held, &hms.uri(), "")
        .replace("group_id = \"idle-g\"", "group_id = \"idle-held\"")
        .replace("database = \"lakehouse\"", "database = \"held\"");
    let cfg = job::write_config(dir.path(), "held.toml", &text);
    let mut run = Job::start(&cfg, false, &dir.path().join("held.log"));
    // With one: after 2 s of silence the partition is idle, and the hour completes.
    let root = dir.path().join("lake");
    let text = config(
        &broker,
        "idle",
        &root,
        &hms.uri(),
        "add_partitions = \"on_complete\"\n\n[time]\nidle_timeout = \"2s\"\n",
    );
    let cfg = job::write_config(dir.path(), "idle.toml", &text);
    let mut idle_run = Job::start(&cfg, false, &dir.path().join("idle.log"));
    wait_until("11:00-12:00 to complete", Duration::from_secs(90), || {
        hour_complete(&root, "11")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(hour_complete(&held, "10"), "10:00 completes either way");
    assert!(
        !hour_complete(&held, "11"),
        "without idle_timeout 11:00 stays open"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feeding.await.expect("trickle");
    run.terminate();
    idle_run.terminate();
    assert_eq!(run.wait(Duration::from_secs(60)), Some(true));
    assert_eq!(idle_run.wait(Duration::from_secs(60)), Some(true));

    // on_complete: exactly the complete partitions are in the metastore.
    let complete: Vec<String> = Layout::new(root.to_str().expect("utf-8"), "t")
        .partition_dirs()
        .expect("list")
        .into_iter()
        .filter(|(_, p)| p.complete)
        .map(|(d, _)| d)
        .collect();
    assert!(
        complete
            .iter()
            .any(|d| d.starts_with("dt=2026-11-18/hr=11/"))
    );
    let (_, mut partitions) = spark_counts(&hms.spark("lakehouse", "t"));
    partitions.sort();
    assert_eq!(
        partitions, complete,
        "on_complete registers complete partitions only"
    );
}
