//! Shared helpers for integration tests: a real broker, the golden data set and its
//! comparison rules, and reading a lake back.
#![allow(dead_code)]

pub mod broker;
pub mod golden;
pub mod job;
pub mod lake;
pub mod metastore;
pub mod registry;
pub mod s3;
pub mod scrape;

use std::time::{Duration, Instant};

/// Poll `f` (every 200 ms) until it gives a value; fail the test after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Produce the golden records to their partitions in order and check that every record got
/// the offset the golden files name.
pub async fn produce_golden(brokers: &str, topic: &str) {
    let golden = golden::records();
    let records: Vec<broker::Record> = golden
        .iter()
        .map(|r| broker::Record::keyed(r.partition, r.key.clone(), r.value.clone()))
        .collect();
    let got = broker::produce(brokers, topic, &records).await;
    let want: Vec<(i32, i64)> = golden.iter().map(|r| (r.partition, r.offset)).collect();
    assert_eq!(got, want, "the broker must assign the golden offsets");
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
    golden_mismatch_with(lake_root, case, |r| r.to_string())
}

/// As `golden_mismatch`, with the expected dead-letter reasons as an input format names them.
pub fn golden_mismatch_with(
    lake_root: &std::path::Path,
    case: &golden::Case,
    reason: impl Fn(&str) -> String,
) -> Option<String> {
    let got = lake::rows(&lake_root.join("golden"), &case.features, golden::NORM);
    let got_dl = lake::dead_letters(&lake_root.join("_dead_letter/golden"));
    let (want, want_dl) = golden::expected(&case.name);
    let want_dl = want_dl.into_iter().map(|(k, r)| (k, reason(&r))).collect();
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
