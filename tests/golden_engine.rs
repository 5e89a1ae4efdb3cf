//! Every golden case through the job's own record path in process, with no broker: the
//! records go through `pipeline::process_offline` (the processor a run uses: admission,
//! decode, normalize, Parquet, the lake commit), and the lake is read back and compared. The
//! end-to-end tests run the same cases through Kafka.

mod common;

use std::sync::Arc;

use common::golden;
use normlake::config::Config;
use normlake::source::RawRecord;

fn run_case(case: &golden::Case, lake_root: &std::path::Path) {
    let text = common::golden_config("unused:9092", "t", "g", lake_root, case);
    let cfg = Config::from_toml(&text, Vec::new()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let topic: Arc<str> = "t".into();
    let records: Vec<RawRecord> = golden::records()
        .into_iter()
        .map(|r| RawRecord {
            topic: topic.clone(),
            partition: r.partition,
            offset: r.offset,
            key: Some(r.key.into_bytes()),
            value: r.value.into_bytes(),
            timestamp_ms: None,
            generation: 0,
        })
        .collect();
    // One chunk per partition, as the source hands them over.
    let batches: Vec<Vec<RawRecord>> = [0, 1]
        .map(|p| {
            records
                .iter()
                .filter(|r| r.partition == p)
                .cloned()
                .collect()
        })
        .into();
    let partitions = vec![(topic.clone(), 0), (topic, 1)];
    normlake::pipeline::process_offline(&cfg, partitions, batches, Default::default())
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
}

#[test]
fn every_golden_case_matches_through_the_record_path() {
    let cases = golden::cases();
    assert_eq!(cases.len(), 11, "the golden set has 11 cases");
    let mut failures = Vec::new();
    for case in &cases {
        let dir = tempfile::tempdir().expect("lake dir");
        run_case(case, dir.path());
        failures.extend(common::golden_mismatch(dir.path(), case));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
