//! Shared helpers for integration tests: a real broker, the golden data set and its
//! comparison rules, and reading a lake back.
#![allow(dead_code)]

pub mod broker;
pub mod golden;
pub mod job;
pub mod lake;
pub mod s3;
pub mod scrape;

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

/// Produce the golden records to their partitions in order and check that every record got
/// the offset the golden files name.
pub async fn produce_golden(brokers: &str, topic: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "1")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let records = golden::records();
    let mut pending = Vec::new();
    for r in &records {
        let rec = FutureRecord::to(topic)
            .partition(r.partition)
            .key(&r.key)
            .payload(&r.value);
        let fut = producer
            .send_result(rec)
            .unwrap_or_else(|(e, _)| panic!("enqueue {}/{}: {e}", r.partition, r.offset));
        pending.push((r.partition, r.offset, fut));
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    for (p, o, fut) in pending {
        let delivery = fut
            .await
            .expect("delivery report")
            .unwrap_or_else(|(e, _)| panic!("deliver {p}/{o}: {e}"));
        assert_eq!(
            (delivery.partition, delivery.offset),
            (p, o),
            "the broker must assign the golden offsets"
        );
    }
}

/// A normlake configuration for `topic` on `brokers` with a golden case's normalization.
pub fn golden_config(
    brokers: &str,
    topic: &str,
    group: &str,
    lake_root: &std::path::Path,
    case: &golden::Case,
) -> String {
    format!(
        "[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{group}\"\n\n{}\n[lake]\nroot = \"{}\"\ntable = \"golden\"\n",
        case.toml_sections(),
        lake_root.display()
    )
}

/// How a lake written for a golden case (table `golden`) differs from the golden output:
/// `None` when it matches.
pub fn golden_mismatch(lake_root: &std::path::Path, case: &golden::Case) -> Option<String> {
    let got = lake::rows(&lake_root.join("golden"), &case.features, golden::NORM);
    let got_dl = lake::dead_letters(&lake_root.join("_dead_letter/golden"));
    let (want, want_dl) = golden::expected(&case.name);
    let diffs = golden::compare(&got, &got_dl, &want, &want_dl);
    (!diffs.is_empty()).then(|| {
        format!(
            "{}: {} differences, first: {}",
            case.name,
            diffs.len(),
            diffs[0]
        )
    })
}

/// Run `python3` with these arguments and parse what it prints as JSON. The lake readers it
/// imports (DuckDB, pyarrow, pyspark) are installed by `scripts/test`.
pub fn python_json<I, S>(args: I) -> serde_json::Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = std::process::Command::new("python3")
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the readers failed (scripts/test installs duckdb, pyarrow and pyspark):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}
