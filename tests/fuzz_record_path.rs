//! Fuzzing with proptest generators: the decoder over arbitrary bytes, and the whole record
//! path (decode → normalize → Arrow → Parquet → commit) over hostile records. The property is
//! that nothing panics and every record is accounted for: a row or a dead letter with a known
//! reason. Case counts are bounded so the suite stays fast; raise `PROPTEST_CASES` to fuzz
//! longer.

use std::sync::Arc;

use normlake::config::Config;
use normlake::decode::Decoder;
use normlake::pipeline::process_offline;
use normlake::source::RawRecord;
use normlake::telemetry::Metrics;
use proptest::prelude::*;

const KNOWN_REASONS: [&str; 8] = [
    "malformed_json",
    "not_an_object",
    "missing_key",
    "missing_or_invalid_time",
    "late_event",
    "empty_message",
    "number_out_of_range",
    "time_out_of_range",
];

fn config(root: &std::path::Path) -> Config {
    let text = format!(
        r#"
[kafka]
brokers = "unused:9092"
topics = ["fuzz"]
[input]
key_field = "sensor_id"
features = ["temp", "hum"]
passthrough = ["site"]
[time]
out_of_orderness = "200s"
[[normalize]]
name = "z"
method = "zscore"
window = "sliding_time"
size = "10s"
[[normalize]]
name = "r"
method = "robust"
window = "sliding_count"
count = 5
[[normalize]]
name = "m"
method = "minmax"
window = "expanding"
[layer_norm]
[lake]
root = "{}"
table = "t"
"#,
        root.display()
    );
    Config::from_toml(&text, Vec::new()).expect("config")
}

/// A JSON value text, hostile more often than not.
fn json_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("1e400".to_string()),
        Just("-0".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("\"\"".to_string()),
        Just("\"NaN\"".to_string()),
        Just("123456789012345678901234567890".to_string()),
        any::<f64>().prop_map(|f| if f.is_finite() {
            format!("{f:e}")
        } else {
            "1".into()
        }),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<u64>().prop_map(|u| u.to_string()),
        any::<String>().prop_map(|s| serde_json::to_string(&s).expect("string")),
        (1usize..300).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
    ]
}

fn time_value() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => (1_795_000_000_000i64..1_795_000_100_000).prop_map(|t| t.to_string()),
        1 => any::<i64>().prop_map(|t| t.to_string()),
        1 => json_value(),
    ]
}

/// A message value: an object with hostile fields, mutated JSON, or arbitrary bytes.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let object = || {
        (
            prop_oneof![
                4 => (0u8..8).prop_map(|k| format!("\"s{k}\"")),
                1 => json_value(),
            ],
            time_value(),
            json_value(),
            prop_oneof![3 => (0.0f64..100.0).prop_map(|f| f.to_string()), 1 => json_value()],
            json_value(),
            any::<bool>(),
        )
            .prop_map(|(key, ts, temp, hum, site, dup)| {
                let mut s = format!(
                    r#"{{"sensor_id":{key},"ts":{ts},"temp":{temp},"hum":{hum},"site":{site}"#
                );
                if dup {
                    s.push_str(r#","temp":1.5"#);
                }
                s.push('}');
                s.into_bytes()
            })
    };
    prop_oneof![
        6 => object(),
        2 => (object(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut v, at, b)| {
            let i = at.index(v.len() + 1);
            v.insert(i.min(v.len()), b);
            v
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn record() -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>, Option<i64>)> {
    (
        message(),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..12)),
        prop::option::of(prop_oneof![6 => Just(1_795_000_050_000i64), 1 => any::<i64>()]),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), ts in any::<Option<i64>>()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = config(dir.path());
        let dec = Decoder::new(cfg.input.clone());
        let _ = dec.decode_at(Some(&bytes), &bytes, ts);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_whole_record_path_accounts_for_every_record(records in prop::collection::vec(record(), 1..120)) {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = config(dir.path());
        let topic: Arc<str> = Arc::from("fuzz");
        let raw: Vec<RawRecord> = records
            .into_iter()
            .enumerate()
            .map(|(i, (value, key, ts))| RawRecord {
                topic: topic.clone(),
                partition: 0,
                offset: i as i64,
                key,
                value,
                timestamp_ms: ts,
                generation: 0,
            })
            .collect();
        let n = raw.len() as u64;
        let chunks: Vec<Vec<RawRecord>> = raw.chunks(17).map(<[RawRecord]>::to_vec).collect();
        let summary = process_offline(&cfg, vec![(topic, 0)], chunks, Metrics::new())
            .expect("the record path must not fail on bad input");
        let dead: u64 = summary.dead_letters.values().sum();
        prop_assert_eq!(summary.consumed, n);
        prop_assert_eq!(summary.rows_written + dead, n, "{:?}", summary.dead_letters);
        for reason in summary.dead_letters.keys() {
            prop_assert!(KNOWN_REASONS.contains(&reason.as_str()), "{}", reason);
        }
    }
}
