//! A lake ahead of its topic or behind its log start is never read silently.
//! - Ahead: a topic deleted and recreated on the real broker (tansu). The bounded run stops
//!   non-zero with a message naming the topic, the partition and both offsets; with
//!   `on_offset_reset = "restart_from_earliest"` it starts a new lineage whose files sit beside
//!   the old ones, none overwritten.
//! - Behind: records deleted by retention before the lake read them, on librdkafka's mock
//!   cluster, which keeps only the newest 5 MB of a partition (tansu 0.6.0 cannot delete
//!   records). The run stops with the lost offsets counted; with `on_data_loss = "continue"`
//!   it goes on from the log start.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::broker::{self, Broker};
use common::job::{self, Job};
use common::lake;
use normlake::pipeline::{PipelineError, RunOptions};
use rdkafka::mocking::MockCluster;

/// Every published file of the lake with its bytes.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    job::lake_files(root)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read file");
            (p.display().to_string(), bytes)
        })
        .collect()
}

fn table_rows(root: &Path) -> usize {
    lake::file_rows(&root.join("t")).values().sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_topic_stops_the_job_or_starts_a_new_lineage() {
    let _one = job::exclusive().await;
    let broker = Broker::start();
    let addr = broker.addr();
    broker.create_topic("reset", 1).await;
    let a = addr.clone();
    tokio::task::spawn_blocking(move || job::produce(&a, "reset", 2000))
        .await
        .expect("produce");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    let text = job::config(&addr, "reset", "reset-g", &root, "");
    let cfg = job::write_config(dir.path(), "reset.toml", &text);
    job::run_to_end(&cfg, &dir.path().join("first.log"));
    let before = snapshot(&root);
    let rows_before = table_rows(&root);
    assert!(rows_before > 1900, "{rows_before} rows");

    broker::delete_topic(&addr, "reset").await;
    broker.create_topic("reset", 1).await;
    let a = addr.clone();
    tokio::task::spawn_blocking(move || job::produce_from(&a, "reset", 5000, 500, 64))
        .await
        .expect("produce");

    // Default: stop, say why, touch nothing.
    let log = dir.path().join("ahead.log");
    let mut run = Job::start(&cfg, true, &log);
    assert_eq!(run.wait(Duration::from_secs(120)), Some(false), "must fail");
    let said = std::fs::read_to_string(&log).expect("log");
    assert!(
        said.contains("the lake is ahead of reset/0")
            && said.contains("offset 2000")
            && said.contains("ends at 500"),
        "{said}"
    );
    assert_eq!(snapshot(&root), before, "nothing was written");

    // Opted in: a new lineage from the earliest offset; the old files stay as they were.
    let restart = text.replace(
        "[kafka.properties]",
        "on_offset_reset = \"restart_from_earliest\"\n[kafka.properties]",
    );
    let cfg = job::write_config(dir.path(), "restart.toml", &restart);
    job::run_to_end(&cfg, &dir.path().join("restart.log"));
    let after = snapshot(&root);
    for (path, bytes) in &before {
        assert_eq!(after.get(path), Some(bytes), "{path} is unchanged");
    }
    let new: Vec<&String> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(!new.is_empty());
    assert!(
        new.iter().all(|p| p.contains("part-reset-0-l1-")),
        "new files are named for the new lineage: {new:?}"
    );
    let rows_new = table_rows(&root) - rows_before;
    assert!(rows_new > 450 && rows_new <= 500, "{rows_new} new rows");

    // A further run is in the new lineage and reads nothing again.
    job::run_to_end(&cfg, &dir.path().join("again.log"));
    assert_eq!(snapshot(&root), after);
}

/// The test configuration on the mock cluster, with `kafka_setting` in `[kafka]`.
fn mock_config(brokers: &str, root: &Path, kafka_setting: &str) -> normlake::config::Config {
    let text = job::config(brokers, "gone", "gone-g", root, "").replace(
        "[kafka.properties]",
        &format!("{kafka_setting}\n[kafka.properties]"),
    );
    normlake::config::Config::from_toml(&text, Vec::new()).expect("config")
}

async fn run_bounded(
    cfg: normlake::config::Config,
    metrics: normlake::telemetry::Metrics,
) -> Result<normlake::telemetry::RunSummary, PipelineError> {
    let opts = RunOptions {
        until_end: true,
        metrics,
        ..RunOptions::default()
    };
    normlake::pipeline::run(cfg, opts, std::future::pending()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn records_lost_to_retention_are_counted_and_stop_the_job() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("gone", 1, 1).expect("topic");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    let b = brokers.clone();
    tokio::task::spawn_blocking(move || job::produce(&b, "gone", 100))
        .await
        .expect("produce");
    run_bounded(mock_config(&brokers, &root, ""), Default::default())
        .await
        .expect("first run");
    // Over 5 MB more: the mock partition drops its oldest batches, the first 100 included.
    let b = brokers.clone();
    tokio::task::spawn_blocking(move || job::produce_from(&b, "gone", 100, 60_000, 64))
        .await
        .expect("produce");

    let metrics = normlake::telemetry::Metrics::new();
    let err = run_bounded(mock_config(&brokers, &root, ""), metrics.clone())
        .await
        .expect_err("records were lost: the run must stop");
    let PipelineError::DataLost {
        lake_next,
        low,
        lost,
        ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!((*lake_next, *low - *lake_next), (100, *lost), "{err}");
    assert!(err.to_string().contains("gone/0"), "{err}");
    let scraped = metrics.encode().expect("metrics");
    assert!(
        scraped.contains(&format!(
            "normlake_lost_offsets_total{{topic=\"gone\",partition=\"0\"}} {lost}"
        )),
        "{scraped}"
    );

    let metrics = normlake::telemetry::Metrics::new();
    let cfg = mock_config(&brokers, &root, "on_data_loss = \"continue\"");
    let summary = run_bounded(cfg, metrics.clone()).await.expect("continue");
    assert_eq!(
        summary.consumed as i64,
        60_100 - low,
        "read from the log start"
    );
    assert!(
        metrics
            .encode()
            .expect("metrics")
            .contains("normlake_lost_offsets_total")
    );
}
