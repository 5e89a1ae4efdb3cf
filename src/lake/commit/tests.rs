use super::*;

fn setup() -> (tempfile::TempDir, Layout) {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path().to_str().unwrap(), "t");
    (dir, layout)
}

fn pending(layout: &Layout, name: &str) -> FileMove {
    let d = "t/dt=2026-11-26/hr=02";
    let tmp = format!("{d}/.{name}.tmp");
    layout.store().put(&tmp, b"data".to_vec()).unwrap();
    FileMove {
        tmp,
        dest: format!("{d}/{name}.parquet"),
    }
}

fn exists(layout: &Layout, key: &str) -> bool {
    layout.store().exists(key).unwrap()
}

#[test]
fn a_commit_publishes_its_files_and_recovery_returns_its_checkpoint() {
    let (_d, layout) = setup();
    let f = pending(&layout, "part-s-0-0-9");
    let draft = CommitRecord {
        files: vec![f.clone()],
        rows: 10,
        committed_at_ms: 1,
        watermark_ms: Some(5),
        ..CommitRecord::new("s", 0, 1, 10)
    };
    let rec = commit(
        &layout,
        draft,
        StateWrite::Whole { previous: None },
        &mut |w: &mut dyn std::io::Write| w.write_all(b"state-1"),
    )
    .unwrap();
    assert!(exists(&layout, &f.dest));
    assert!(!exists(&layout, &f.tmp));
    let got = recover(&layout, "s", 0).unwrap().unwrap();
    assert_eq!(got.record, rec);
    assert_eq!(got.checkpoint, b"state-1");
    assert!(recover(&layout, "s", 1).unwrap().is_none());
    assert_eq!(lake_watermark(&layout).unwrap(), Some(5));
}

#[test]
fn recovery_rolls_a_committed_publish_forward_and_drops_uncommitted_files() {
    let (_d, layout) = setup();
    let committed = pending(&layout, "part-s-0-0-9");
    let uncommitted = pending(&layout, "part-s-0-10");
    let other_partition = pending(&layout, "part-s-1-0");
    // A crash right after the commit point: the record exists, the publish did not happen.
    let ckpt = format!("{}/00000000000000000001.ckpt", layout.state_key("s", 0));
    layout.store().put(&ckpt, b"st".to_vec()).unwrap();
    let rec = CommitRecord {
        seq: 1,
        stream: "s".into(),
        partition: 0,
        next_offset: 10,
        files: vec![committed.clone()],
        checkpoint: StateChain {
            whole: ckpt,
            deltas: Vec::new(),
        },
        legacy_deltas: Vec::new(),
        rows: 10,
        dead_letters: 0,
        committed_at_ms: 0,
        watermark_ms: None,
        lineage: 0,
        idle: false,
    };
    layout
        .store()
        .put(
            &format!("{}/{}", layout.log_key("s", 0), record_name(1)),
            serde_json::to_vec(&rec).unwrap(),
        )
        .unwrap();
    let got = recover(&layout, "s", 0).unwrap().unwrap();
    assert_eq!(got.record.next_offset, 10);
    assert!(exists(&layout, &committed.dest), "rolled forward");
    assert!(
        !exists(&layout, &uncommitted.tmp),
        "uncommitted work removed"
    );
    assert!(
        exists(&layout, &other_partition.tmp),
        "other partitions untouched"
    );
    assert_eq!(layout.table_files().unwrap().len(), 1);
    // One partition without a watermark holds the lake's back.
    assert_eq!(lake_watermark(&layout).unwrap(), None);
}

#[test]
fn recovery_deletes_only_its_own_partitions_files_when_topic_names_share_a_prefix() {
    let (_d, layout) = setup();
    // Partition 1 of `s`, and partition 0 of `s-1`, whose name starts the same way.
    let mine = pending(&layout, "part-s-1-0");
    let other_topic = pending(&layout, "part-s-1-0-7");
    let temporary = temporary_files(&layout).unwrap();
    assert_eq!(temporary.len(), 2);
    assert!(recover_with(&layout, "s", 1, &temporary).unwrap().is_none());
    assert!(!exists(&layout, &mine.tmp));
    assert!(
        exists(&layout, &other_topic.tmp),
        "another topic's work is kept"
    );
    assert!(
        recover_with(&layout, "s-1", 0, &temporary)
            .unwrap()
            .is_none()
    );
    assert!(!exists(&layout, &other_topic.tmp));
}

#[test]
fn a_record_whose_checkpoint_is_gone_is_an_error_not_a_fresh_start() {
    let (_d, layout) = setup();
    commit(
        &layout,
        CommitRecord::new("s", 0, 1, 10),
        StateWrite::Whole { previous: None },
        &mut |w: &mut dyn std::io::Write| w.write_all(b"x"),
    )
    .unwrap();
    let ckpt = format!("{}/00000000000000000001.ckpt", layout.state_key("s", 0));
    layout.store().delete(&ckpt).unwrap();
    assert!(matches!(
        recover(&layout, "s", 0),
        Err(CommitError::MissingCheckpoint { .. })
    ));
}

#[test]
fn old_records_and_checkpoints_are_cleaned_up() {
    let (_d, layout) = setup();
    for seq in 1..=5 {
        commit(
            &layout,
            CommitRecord::new("s", 0, seq, seq as i64 * 10),
            StateWrite::Whole { previous: None },
            &mut |w: &mut dyn std::io::Write| w.write_all(b"x"),
        )
        .unwrap();
    }
    let logs = layout.store().list(&layout.log_key("s", 0)).unwrap().len();
    let states = layout
        .store()
        .list(&layout.state_key("s", 0))
        .unwrap()
        .len();
    assert_eq!((logs, states), (2, 2));
    assert_eq!(latest(&layout, "s", 0).unwrap().unwrap().1.seq, 5);
}

#[test]
fn idle_partitions_do_not_hold_the_watermark_back_unless_all_are_idle() {
    let rec = |p: i32, w: Option<i64>, idle: bool| CommitRecord {
        watermark_ms: w,
        idle,
        ..CommitRecord::new("t", p, 1, 10)
    };
    assert_eq!(watermark_of(&[]), None);
    assert_eq!(
        watermark_of(&[rec(0, Some(5), false), rec(1, Some(3), false)]),
        Some(3)
    );
    assert_eq!(
        watermark_of(&[rec(0, Some(5), false), rec(1, Some(3), true)]),
        Some(5)
    );
    assert_eq!(
        watermark_of(&[rec(0, Some(5), false), rec(1, None, false)]),
        None
    );
    assert_eq!(
        watermark_of(&[rec(0, Some(5), false), rec(1, None, true)]),
        Some(5)
    );
    assert_eq!(
        watermark_of(&[rec(0, Some(5), true), rec(1, Some(3), true)]),
        Some(5)
    );
}

#[test]
fn a_chain_of_deltas_is_recovered_in_order_and_kept_while_a_kept_record_names_it() {
    let (_d, layout) = setup();
    let state_files = || layout.store().list(&layout.state_key("s", 0)).unwrap();
    let mut chain: Option<StateChain> = None;
    // Whole at 1, deltas at 2 and 3, whole at 4, delta at 5.
    for seq in 1..=5u64 {
        let state = match (&chain, seq) {
            (Some(on), 2 | 3 | 5) => StateWrite::Delta { on },
            (previous, _) => StateWrite::Whole {
                previous: previous.as_ref(),
            },
        };
        let body = format!("state-{seq}");
        let rec = commit(
            &layout,
            CommitRecord::new("s", 0, seq, seq as i64 * 10),
            state,
            &mut |w: &mut dyn std::io::Write| w.write_all(body.as_bytes()),
        )
        .unwrap();
        chain = Some(rec.checkpoint.clone());
        if seq == 3 {
            let got = recover(&layout, "s", 0).unwrap().unwrap();
            assert_eq!(got.checkpoint, b"state-1");
            assert_eq!(got.deltas, vec![b"state-2".to_vec(), b"state-3".to_vec()]);
            assert_eq!(state_files().len(), 3, "the whole chain is kept");
        }
        if seq == 4 {
            // Record 3 is kept for inspection, so its chain is too.
            assert_eq!(state_files().len(), 4);
        }
    }
    let got = recover(&layout, "s", 0).unwrap().unwrap();
    assert_eq!(got.checkpoint, b"state-4");
    assert_eq!(got.deltas, vec![b"state-5".to_vec()]);
    assert_eq!(
        state_files().len(),
        2,
        "records before 4 are gone, and their chain"
    );
    // A delta the record names that is gone: an error, not a state without it.
    let delta = got.record.checkpoint.deltas[0].clone();
    layout.store().delete(&delta).unwrap();
    assert!(matches!(
        recover(&layout, "s", 0),
        Err(CommitError::MissingCheckpoint { checkpoint, .. }) if checkpoint == delta
    ));
}

/// A record with deltas names its chain as a list, which a build from before deltas (whose
/// `checkpoint` is a string) cannot read: it stops instead of resuming from the whole
/// checkpoint alone. A record without deltas is written as before; one written by the first
/// builds with deltas (a string and `checkpoint_deltas`) reads as its chain.
#[test]
fn a_chain_with_deltas_is_unreadable_to_a_build_without_them() {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct BeforeDeltas {
        checkpoint: String,
        next_offset: i64,
    }
    let mut rec = CommitRecord::new("s", 0, 3, 30);
    rec.checkpoint = StateChain {
        whole: "w.ckpt".into(),
        deltas: Vec::new(),
    };
    let whole = serde_json::to_vec(&rec).unwrap();
    assert!(serde_json::from_slice::<BeforeDeltas>(&whole).is_ok());
    rec.checkpoint.deltas = vec!["a.delta".into(), "b.delta".into()];
    let chained = serde_json::to_value(&rec).unwrap();
    assert_eq!(
        chained["checkpoint"],
        serde_json::json!(["w.ckpt", "a.delta", "b.delta"])
    );
    assert!(serde_json::from_value::<BeforeDeltas>(chained.clone()).is_err());
    assert_eq!(
        serde_json::from_value::<CommitRecord>(chained).unwrap(),
        rec
    );

    let (_d, layout) = setup();
    let mut first = serde_json::to_value(CommitRecord::new("s", 0, 1, 10)).unwrap();
    first["checkpoint"] = serde_json::json!("w.ckpt");
    first["checkpoint_deltas"] = serde_json::json!(["a.delta"]);
    let key = "t/_normlake/log/s-0/00000000000000000001.json";
    (layout.store())
        .put(key, serde_json::to_vec(&first).unwrap())
        .unwrap();
    let (_, read) = latest(&layout, "s", 0).unwrap().unwrap();
    assert_eq!(read.checkpoint.whole, "w.ckpt");
    assert_eq!(read.checkpoint.deltas, ["a.delta"]);
    assert!(read.legacy_deltas.is_empty());
}
