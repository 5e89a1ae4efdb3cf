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
    let mut p = Processor::new(&cfg, commit_tx, seeked_rx, Metrics::new()).unwrap();
    let topic: Arc<str> = "t".into();
    let key: PartitionId = (topic.clone(), 0);
    p.assigned(std::slice::from_ref(&key)).1.unwrap();
    p.parts.get_mut(&key).unwrap().min_generation = 1;
    let t0 = Instant::now();
    p.records((0..20).map(|o| record(&topic, o, 1)).collect(), t0)
        .unwrap();
    p.roll_due(t0);
    assert!(p.parts[&key].failed.is_some(), "the roll failed");
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
