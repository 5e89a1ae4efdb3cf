//! Hostile records through the real broker, one per class, each with its expected outcome: a
//! row (and where it lands) or a dead letter with its reason. The job keeps running, writes
//! nothing outside its table and accounts for every offset.

mod common;

use std::collections::BTreeMap;

use common::broker::{self, Broker};
use common::job;

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// A row with this key.
    Row(&'static str),
    Dead(&'static str),
}

/// (Kafka key, value, expected outcome).
type Case = (Option<Vec<u8>>, Option<Vec<u8>>, Outcome);

const TS: i64 = 1_795_000_000_000;

fn ev(key: &str, ts: i64) -> Vec<u8> {
    format!(
        r#"{{"sensor_id":{},"ts":{ts},"temp":1.5,"hum":2.5,"pres":3.5}}"#,
        serde_json::to_string(key).expect("key")
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_hostile_input_class_has_its_outcome() {
    let broker = Broker::start();
    broker.create_topic("hostile", 1).await;
    let n = 100_000;
    let huge_value = {
        let mut v = format!(r#"{{"sensor_id":"big","ts":{TS},"temp":1,"pad":""#).into_bytes();
        v.extend(std::iter::repeat_n(b'x', 4 << 20));
        v.extend(br#""}"#);
        v
    };
    let cases: Vec<Case> = vec![
        // Before 1970 (first, so the watermark does not make it late).
        (None, Some(ev("old", -86_400_000)), Outcome::Row("old")),
        (None, Some(ev("ok", TS)), Outcome::Row("ok")),
        // A message of 4 MiB (the producer's limit is raised; the consumer's defaults fetch
        // messages up to 50 MB).
        (None, Some(huge_value), Outcome::Row("big")),
        // A tombstone and an empty value.
        (Some(b"k".to_vec()), None, Outcome::Dead("empty_message")),
        (None, Some(Vec::new()), Outcome::Dead("empty_message")),
        // Deep nesting, in an ignored field and at the top.
        (
            None,
            Some(
                format!(
                    r#"{{"sensor_id":"deep","ts":{TS},"x":{}{}}}"#,
                    "[".repeat(n),
                    "]".repeat(n)
                )
                .into_bytes(),
            ),
            Outcome::Row("deep"),
        ),
        (
            None,
            Some(format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
            Outcome::Dead("not_an_object"),
        ),
        // Non-UTF-8 bytes in a field normlake reads, and a binary Kafka key.
        (
            Some(vec![0xff, 0x00, 0xfe]),
            Some(
                format!(r#"{{"sensor_id":"a","ts":{TS},"site":"#)
                    .into_bytes()
                    .into_iter()
                    .chain(*b"\"\xff\"}")
                    .collect(),
            ),
            Outcome::Dead("malformed_json"),
        ),
        // Numbers out of range.
        (
            None,
            Some(format!(r#"{{"sensor_id":"n","ts":{TS},"temp":1e400}}"#).into_bytes()),
            Outcome::Dead("number_out_of_range"),
        ),
        (
            None,
            Some(format!(r#"{{"sensor_id":"n2","ts":{TS},"temp":1e300}}"#).into_bytes()),
            Outcome::Row("n2"),
        ),
        // Duplicate fields: the last one wins.
        (
            None,
            Some(format!(r#"{{"sensor_id":"x","ts":{TS},"sensor_id":"dup"}}"#).into_bytes()),
            Outcome::Row("dup"),
        ),
        // Empty values.
        (None, Some(b"{}".to_vec()), Outcome::Dead("missing_key")),
        (
            None,
            Some(format!(r#"{{"sensor_id":"","ts":{TS}}}"#).into_bytes()),
            Outcome::Dead("missing_key"),
        ),
        // A key with control characters.
        (
            None,
            Some(ev("a\u{0}b\n\u{1b}[31m/../", TS)),
            Outcome::Row("a\u{0}b\n\u{1b}[31m/../"),
        ),
        // Far in the future (beyond the producer's timestamp plus `max_ahead`), and beyond
        // year 9999.
        (
            None,
            Some(ev("future", TS + 365 * 86_400_000)),
            Outcome::Dead("time_out_of_range"),
        ),
        (
            None,
            Some(ev("y10k", 253_402_300_800_000)),
            Outcome::Dead("time_out_of_range"),
        ),
    ];
    // The Kafka time of every record is the first event time (the producer's clock).
    let records: Vec<broker::Record> = cases
        .iter()
        .map(|(key, value, _)| broker::Record {
            partition: 0,
            key: key.clone(),
            value: value.clone(),
            timestamp: Some(TS),
        })
        .collect();
    let offsets = broker::produce_with(
        &broker.addr(),
        "hostile",
        &records,
        &[("message.max.bytes", "16000000")],
    )
    .await;
    let want: Vec<(i32, i64)> = (0..cases.len() as i64).map(|i| (0, i)).collect();
    assert_eq!(offsets, want);

    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    let text = job::config(&broker.addr(), "hostile", "hostile-g", &root, "");
    let cfg = job::write_config(dir.path(), "hostile.toml", &text);
    job::run_to_end(&cfg, &dir.path().join("job.log"));

    let content = job::content(&root);
    let mut got: BTreeMap<i64, Outcome> = BTreeMap::new();
    for ((_, o, _), row) in &content.rows["z1m"] {
        let key = cases
            .iter()
            .find_map(|(_, _, want)| match want {
                Outcome::Row(k) if *k == row.key => Some(*k),
                _ => None,
            })
            .unwrap_or("<unexpected key>");
        got.insert(*o, Outcome::Row(key));
    }
    for ((_, o), reason) in &content.dead {
        let r = [
            "empty_message",
            "not_an_object",
            "malformed_json",
            "number_out_of_range",
            "missing_key",
            "time_out_of_range",
        ]
        .into_iter()
        .find(|r| r == reason)
        .unwrap_or("<unexpected reason>");
        got.insert(*o, Outcome::Dead(r));
    }
    let want: BTreeMap<i64, Outcome> = cases
        .iter()
        .enumerate()
        .map(|(i, (_, _, w))| (i as i64, w.clone()))
        .collect();
    assert_eq!(got, want);

    // Nothing outside the table or its dead-letter area; the 1969 row is in its own partition.
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .expect("root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["_dead_letter", "t"]);
    assert!(root.join("t/dt=1969-12-31/hr=00").is_dir());
}
