use super::*;
use crate::lake::commit as lake_commit;

fn record(topic: &Arc<str>, offset: i64, generation: u64) -> RawRecord {
    RawRecord {
        topic: topic.clone(),
        partition: 0,
        offset,
        key: None,
        value: format!(
            r#"{{"sensor_id":"k{}","ts":{},"temp":{offset}}}"#,
            offset % 3,
            1_795_000_000_000 + offset * 1000
        )
        .into_bytes(),
        timestamp_ms: None,
        generation,
    }
}

fn test_config(root: &std::path::Path, kafka_settings: &str) -> Config {
    let text = format!(
        "[kafka]\nbrokers = \"unused:9092\"\ntopics = [\"t\"]\n{kafka_settings}\n[input]\nkey_field = \"sensor_id\"\nfeatures = [\"temp\"]\n[[normalize]]\nname = \"z\"\nmethod = \"zscore\"\nwindow = \"expanding\"\n[lake]\nroot = \"{}\"\ntable = \"t\"\n[lake.rolling]\nmax_rows = 10\n",
        root.display()
    );
    Config::from_toml(&text, Vec::new()).unwrap()
}

/// A processor with partition t/0 committed up to offset 20 (lineage 0, one commit).
fn committed_to_20(root: &std::path::Path, kafka_settings: &str) -> (Processor, PartitionId) {
    let cfg = test_config(root, kafka_settings);
    let (commit_tx, _commit_rx) = std::sync::mpsc::channel();
    let (_seeked_tx, seeked_rx) = std::sync::mpsc::channel();
    let shared = super::workers::shared(&cfg, &Metrics::new()).unwrap();
    let mut p = Processor::new(&cfg, &shared, (0, 1), commit_tx, seeked_rx).unwrap();
    let topic: Arc<str> = "t".into();
    let key: PartitionId = (topic.clone(), 0);
    p.assigned(std::slice::from_ref(&key), &HashMap::new())
        .1
        .unwrap();
    p.records(
        (0..20).map(|o| record(&topic, o, 0)).collect(),
        Instant::now(),
    )
    .unwrap();
    p.finish_all(Instant::now()).unwrap();
    p.roll(&key).unwrap();
    (p, key)
}

#[test]
fn a_lake_within_the_partitions_watermarks_resumes_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (mut p, key) = committed_to_20(dir.path(), "");
    for marks in [(0, 20), (20, 20), (5, 500)] {
        let (positions, result) =
            p.assigned(std::slice::from_ref(&key), &[(key.clone(), marks)].into());
        result.unwrap();
        assert_eq!(positions[&key], Some(20), "{marks:?}");
    }
}

#[test]
fn a_lake_ahead_of_the_partition_stops_or_starts_a_new_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let (mut p, key) = committed_to_20(dir.path(), "");
    let marks: HashMap<PartitionId, (i64, i64)> = [(key.clone(), (0, 7))].into();
    let err = p
        .assigned(std::slice::from_ref(&key), &marks)
        .1
        .unwrap_err();
    assert!(
        matches!(
            err,
            PipelineError::LakeAhead {
                lake_next: 20,
                high: 7,
                ..
            }
        ),
        "{err}"
    );

    let (mut p, key) = committed_to_20(dir.path(), "on_offset_reset = \"restart_from_earliest\"");
    let (positions, result) = p.assigned(std::slice::from_ref(&key), &marks);
    result.unwrap();
    assert_eq!(positions[&key], None, "from the earliest offset");
    let part = &p.parts[&key];
    assert_eq!((part.lineage, part.seq, part.norm.key_count()), (1, 1, 0));
    let topic = key.0.clone();
    p.records(
        (0..7).map(|o| record(&topic, o, 0)).collect(),
        Instant::now(),
    )
    .unwrap();
    p.finish_all(Instant::now()).unwrap();
    p.roll(&key).unwrap();
    let (_, rec) = lake_commit::latest(&p.layout, "t", 0).unwrap().unwrap();
    assert_eq!((rec.seq, rec.lineage, rec.next_offset), (2, 1, 7));
    assert!(
        rec.files.iter().all(|f| f.dest.contains("part-t-0-l1-")),
        "{:?}",
        rec.files
    );
    // The new lineage is what the next assignment recovers.
    let (positions, result) =
        p.assigned(std::slice::from_ref(&key), &[(key.clone(), (0, 7))].into());
    result.unwrap();
    assert_eq!((positions[&key], p.parts[&key].lineage), (Some(7), 1));
}

#[test]
fn a_lake_behind_the_log_start_counts_the_loss_and_stops_or_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut p, key) = committed_to_20(dir.path(), "");
    let marks: HashMap<PartitionId, (i64, i64)> = [(key.clone(), (25, 90))].into();
    let err = p
        .assigned(std::slice::from_ref(&key), &marks)
        .1
        .unwrap_err();
    assert!(
        matches!(
            err,
            PipelineError::DataLost {
                lake_next: 20,
                low: 25,
                lost: 5,
                ..
            }
        ),
        "{err}"
    );
    let text = p.metrics.encode().unwrap();
    assert!(
        text.contains("normlake_lost_offsets_total{topic=\"t\",partition=\"0\"} 5"),
        "{text}"
    );

    let (mut p, key) = committed_to_20(dir.path(), "on_data_loss = \"continue\"");
    let (positions, result) = p.assigned(std::slice::from_ref(&key), &marks);
    result.unwrap();
    assert_eq!(positions[&key], Some(25));
    p.roll(&key).unwrap();
    let (_, rec) = lake_commit::latest(&p.layout, "t", 0).unwrap().unwrap();
    assert_eq!(rec.next_offset, 25, "the skip is committed");
}

/// A roll fails while nothing is committed yet, so the partition restarts from the
/// beginning. Records read before that seek are still in flight; they must not be taken
/// as the new beginning (which would skip everything before them).
#[test]
fn records_in_flight_from_before_a_seek_are_not_a_new_start() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[kafka]\nbrokers = \"unused:9092\"\ntopics = [\"t\"]\n[input]\nkey_field = \"sensor_id\"\nfeatures = [\"temp\"]\n[[normalize]]\nname = \"z\"\nmethod = \"zscore\"\nwindow = \"expanding\"\n[lake]\nroot = \"{}\"\ntable = \"t\"\n[lake.rolling]\nmax_rows = 10\n",
        dir.path().display()
    );
    let cfg = Config::from_toml(&text, Vec::new()).unwrap();
    // A file where the first hour's directory must go: every roll fails.
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    let blocker = dir.path().join("t/dt=2026-11-18");
    std::fs::write(&blocker, b"in the way").unwrap();

    let (commit_tx, commit_rx) = std::sync::mpsc::channel();
    let (seeked_tx, seeked_rx) = std::sync::mpsc::channel();
    let shared = super::workers::shared(&cfg, &Metrics::new()).unwrap();
    let mut p = Processor::new(&cfg, &shared, (0, 1), commit_tx, seeked_rx).unwrap();
    let topic: Arc<str> = "t".into();
    let key: PartitionId = (topic.clone(), 0);
    p.assigned(std::slice::from_ref(&key), &HashMap::new())
        .1
        .unwrap();
    p.parts.get_mut(&key).unwrap().starts_generation(1);
    let t0 = Instant::now();
    p.records((0..20).map(|o| record(&topic, o, 1)).collect(), t0)
        .unwrap();
    p.roll_due(t0);
    assert!(p.parts[&key].is_failed(), "the roll failed");
    // Nothing may commit a failed partition's position: its rows were abandoned.
    p.roll(&key).unwrap();
    assert!(
        lake_commit::latest(&p.layout, "t", 0).unwrap().is_none(),
        "a failed partition was committed"
    );
    // After the back-off the partition is recovered (nothing committed) and seeks back.
    let later = t0 + Duration::from_secs(1);
    p.retry_failed(later);
    let seek = commit_rx.try_iter().find(|r| !r.seek.is_empty()).unwrap();
    assert_eq!(seek.seek, vec![(key.clone(), None)]);
    // Records 12.. were read before the seek and arrive now: dropped.
    p.records((12..20).map(|o| record(&topic, o, 1)).collect(), later)
        .unwrap();
    assert_eq!(p.parts[&key].next, None, "no new start from stale records");
    // The source reports the seek; records from the beginning arrive.
    std::fs::remove_file(&blocker).unwrap();
    seeked_tx
        .send(Seeked {
            part: key.clone(),
            generation: 2,
            ok: true,
        })
        .unwrap();
    p.seeks_done();
    p.records((0..20).map(|o| record(&topic, o, 2)).collect(), later)
        .unwrap();
    assert_eq!(p.parts[&key].next, Some(20));
    p.finish_all(later).unwrap();
    p.roll(&key).unwrap();
    assert_eq!(p.metrics.rows_written.get(), 20, "every record, once");
}

/// Four partitions on two workers, offline: every record is written once, and the summary,
/// read after both workers are done, says so (it was read when the first one finished).
#[test]
fn two_workers_write_every_partition_and_sum_up_after_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path(), "");
    cfg.runtime.workers = Some(2);
    let topic: Arc<str> = "t".into();
    let chunks: Vec<Vec<RawRecord>> = (0..40)
        .map(|c| {
            let (partition, first) = (c % 4, (c / 4) * 25);
            (first..first + 25)
                .map(|o| RawRecord {
                    partition,
                    ..record(&topic, o as i64, 0)
                })
                .collect()
        })
        .collect();
    let parts = (0..4).map(|p| (topic.clone(), p)).collect();
    let s = process_offline(&cfg, parts, chunks, Metrics::new()).unwrap();
    assert_eq!((s.consumed, s.rows_written), (1000, 1000));
    let layout = Layout::new(dir.path().to_str().unwrap(), "t");
    for p in 0..4 {
        let (_, rec) = lake_commit::latest(&layout, "t", p).unwrap().unwrap();
        assert_eq!(rec.next_offset, 250, "partition {p}");
    }
}

#[test]
fn rolls_write_deltas_on_a_chain_that_recovery_reads_back_under_either_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path(), "");
    let metrics = Metrics::new();
    let (commit_tx, _commit_rx) = std::sync::mpsc::channel();
    let (_seeked_tx, seeked_rx) = std::sync::mpsc::channel();
    let shared = super::workers::shared(&cfg, &metrics).unwrap();
    let mut p = Processor::new(&cfg, &shared, (0, 1), commit_tx, seeked_rx).unwrap();
    let topic: Arc<str> = "t".into();
    let key: PartitionId = (topic.clone(), 0);
    p.assigned(std::slice::from_ref(&key), &HashMap::new())
        .1
        .unwrap();
    // Roll every 10 records until the newest commit is a delta, after a few whole ones (how
    // many depends on the checkpoints' sizes, which vary with the clock's digits).
    let layout = Layout::new(dir.path().to_str().unwrap(), "t");
    let mut next = 0;
    let rec = loop {
        let records = (next..next + 10).map(|o| record(&topic, o, 0));
        p.records(records.collect(), Instant::now()).unwrap();
        p.roll(&key).unwrap();
        next += 10;
        let (_, rec) = lake_commit::latest(&layout, "t", 0).unwrap().unwrap();
        if next >= 60 && !rec.checkpoint.deltas.is_empty() {
            break rec;
        }
        assert!(next < 300, "no delta after {next} records: {rec:?}");
    };
    let whole = metrics.whole_checkpoints.get();
    assert!(whole >= 1 && whole < metrics.commits.get());
    let live_keys = p.parts[&key].norm.key_count();

    // The same configuration: the chain goes on from where it was.
    let (tx, _rx) = std::sync::mpsc::channel();
    let (_stx, srx) = std::sync::mpsc::channel();
    let mut again = Processor::new(&cfg, &shared, (0, 1), tx, srx).unwrap();
    let got = again.recover(&key).unwrap();
    assert_eq!((got.next, got.norm.key_count()), (Some(next), live_keys));
    let chain = got.chain.expect("a chain to go on");
    assert_eq!(chain.lake, rec.checkpoint);

    // A feature and a normalization added: migrated, deltas replayed, and a new chain next.
    let changed = Config::from_toml(
        &format!(
            "[kafka]\nbrokers = \"unused:9092\"\ntopics = [\"t\"]\n[input]\nkey_field = \"sensor_id\"\nfeatures = [\"temp\", \"hum\"]\n[[normalize]]\nname = \"z\"\nmethod = \"zscore\"\nwindow = \"expanding\"\n[[normalize]]\nname = \"r\"\nmethod = \"robust\"\nwindow = \"sliding_time\"\nsize = \"1m\"\n[lake]\nroot = \"{}\"\ntable = \"t\"\n",
            dir.path().display()
        ),
        Vec::new(),
    )
    .unwrap();
    let shared = super::workers::shared(&changed, &Metrics::new()).unwrap();
    let (tx, _rx) = std::sync::mpsc::channel();
    let (_stx, srx) = std::sync::mpsc::channel();
    let mut migrated = Processor::new(&changed, &shared, (0, 1), tx, srx).unwrap();
    let got = migrated.recover(&key).unwrap();
    assert_eq!((got.next, got.norm.key_count()), (Some(next), live_keys));
    assert!(got.chain.is_none(), "a migrated state starts a new chain");
}
