//! End to end through a real broker: the golden records produced to a 2-partition topic, a
//! bounded run per case, the Parquet files read back and compared with the golden output.

mod common;

use std::time::Duration;

use common::broker::{self, Broker};
use common::{golden, golden_config, golden_mismatch, lake, produce_golden};
use normlake::config::Config;
use normlake::pipeline::{self, RunOptions};

fn bounded() -> RunOptions {
    RunOptions {
        until_end: true,
        progress_every: Duration::from_secs(60),
        ..RunOptions::default()
    }
}

async fn run_case(
    broker: &Broker,
    topic: &str,
    case: &golden::Case,
    root: &std::path::Path,
) -> normlake::telemetry::RunSummary {
    run_case_with(broker, topic, case, root, 1).await
}

/// One bounded run of a golden case with `workers` processor threads.
async fn run_case_with(
    broker: &Broker,
    topic: &str,
    case: &golden::Case,
    root: &std::path::Path,
    workers: usize,
) -> normlake::telemetry::RunSummary {
    let group = match workers {
        1 => format!("g-{}", case.name),
        n => format!("g{n}-{}", case.name),
    };
    let text = golden_config(&broker.addr(), topic, &group, root, case)
        + &format!("\n[runtime]\nworkers = {workers}\n");
    let cfg = Config::from_toml(&text, Vec::new()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    pipeline::run(cfg, bounded(), std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("{}: run failed: {e}", case.name))
}

fn committed(broker: &Broker, topic: &str, group: &str) -> Vec<i64> {
    broker::committed_offsets(&broker.addr(), group, topic, 2)
        .into_iter()
        .enumerate()
        .map(|(p, o)| o.unwrap_or_else(|| panic!("partition {p} has no committed offset")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_golden_case_matches_through_kafka_and_parquet() {
    every_golden_case_matches(1).await;
}

/// Each of the two partitions on a worker of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_golden_case_matches_through_kafka_and_parquet_with_two_workers() {
    every_golden_case_matches(2).await;
}

async fn every_golden_case_matches(workers: usize) {
    let broker = Broker::start();
    let topic = "golden";
    broker.create_topic(topic, 2).await;
    produce_golden(&broker.addr(), topic).await;
    let mut failures = Vec::new();
    for case in golden::cases() {
        let root = tempfile::tempdir().expect("lake dir");
        let summary = run_case_with(&broker, topic, &case, root.path(), workers).await;
        assert_eq!(summary.consumed, 1608, "{}", case.name);
        failures.extend(golden_mismatch(root.path(), &case));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_run_commits_the_end_offsets_and_a_second_run_writes_nothing() {
    let broker = Broker::start();
    let topic = "golden-offsets";
    broker.create_topic(topic, 2).await;
    produce_golden(&broker.addr(), topic).await;
    let case = golden::case("zscore_sliding_60s");
    let root = tempfile::tempdir().expect("lake dir");
    let first = run_case(&broker, topic, &case, root.path()).await;
    assert_eq!(first.consumed, 1608);
    assert!(first.rows_written > 0);
    assert_eq!(
        committed(&broker, topic, "g-zscore_sliding_60s"),
        vec![804, 804]
    );
    let before = lake::file_rows(root.path());
    let second = run_case(&broker, topic, &case, root.path()).await;
    assert_eq!(
        (second.consumed, second.rows_written, second.files),
        (0, 0, 0)
    );
    assert_eq!(
        lake::file_rows(root.path()),
        before,
        "the second run must not change the lake"
    );
}
