//! Partition commit markers: `_SUCCESS` appears in a Hive partition exactly when the lake's
//! watermark (the smallest of every Kafka partition's, as recorded in the lake) has passed the
//! partition's end, and late data does not reopen a complete partition.

mod common;

use std::path::Path;

use common::broker::{self, Broker};
use common::job;

/// 2026-11-18T10:00:00Z.
const T0: i64 = 1_794_996_000_000;
const MINUTE: i64 = 60_000;

async fn produce(brokers: &str, partition: i32, minutes: std::ops::Range<i64>) {
    let records: Vec<broker::Record> = minutes
        .map(|m| {
            let value = format!(
                r#"{{"sensor_id":"s{partition}","ts":{},"temp":{m},"hum":1,"pres":2}}"#,
                T0 + m * MINUTE
            );
            broker::Record::value(partition, value)
        })
        .collect();
    broker::produce(brokers, "markers", &records).await;
}

fn complete(root: &Path, hour: &str) -> bool {
    root.join(format!("t/dt=2026-11-18/hr={hour}/_SUCCESS"))
        .exists()
}

fn files(root: &Path, hour: &str) -> usize {
    normlake::lake::list_parquet(&root.join(format!("t/dt=2026-11-18/hr={hour}")))
        .expect("list")
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn success_appears_exactly_when_the_watermark_passes() {
    let broker = Broker::start();
    broker.create_topic("markers", 2).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    let cfg = job::write_config(
        dir.path(),
        "markers.toml",
        &job::config(&broker.addr(), "markers", "markers-g", &root, ""),
    );
    let run = |n: u32| job::run_to_end(&cfg, &dir.path().join(format!("run{n}.log")));

    // Partition 0 reaches 12:29, partition 1 only 11:09: the lake's watermark is 11:08:55.
    produce(&broker.addr(), 0, 0..150).await;
    produce(&broker.addr(), 1, 0..70).await;
    run(1);
    assert!(
        complete(&root, "10"),
        "10:00-11:00 ended before the watermark"
    );
    assert!(
        !complete(&root, "11"),
        "11:00-12:00 has not ended for partition 1"
    );
    assert!(!complete(&root, "12"));

    // Partition 1 catches up to 12:39; partition 0 now holds the watermark at 12:28:55.
    produce(&broker.addr(), 1, 70..160).await;
    run(2);
    assert!(complete(&root, "11"));
    assert!(!complete(&root, "12"), "partition 0 has not passed 13:00");

    // A late event for the complete hour 10 is a dead letter, not a new file there.
    let before = files(&root, "10");
    produce(&broker.addr(), 0, 30..31).await;
    run(3);
    assert_eq!(
        files(&root, "10"),
        before,
        "a complete partition is not reopened"
    );
    let content = job::content(&root);
    assert_eq!(
        content.dead.values().filter(|r| *r == "late_event").count(),
        1
    );
}
