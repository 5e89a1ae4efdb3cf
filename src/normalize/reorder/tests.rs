use super::*;

fn ev(ts: i64, seq: i64) -> Event<()> {
    Event {
        key: "k".into(),
        ts_ms: ts,
        seq,
        features: vec![],
        payload: (),
    }
}

#[test]
fn releases_in_time_then_seq_order_up_to_the_watermark() {
    let mut r = Reorder::default();
    for (ts, seq) in [(10, 0), (30, 1), (20, 2), (30, 3), (5, 4), (20, 5)] {
        r.push(ev(ts, seq));
    }
    assert_eq!(r.min_seq(), Some(0));
    let mut got = Vec::new();
    while let Some(e) = r.pop_until(25) {
        got.push((e.ts_ms, e.seq));
    }
    assert_eq!(got, vec![(5, 4), (10, 0), (20, 2), (20, 5)]);
    assert_eq!(r.len(), 2);
    while let Some(e) = r.pop_until(i64::MAX) {
        got.push((e.ts_ms, e.seq));
    }
    assert_eq!(&got[4..], &[(30, 1), (30, 3)]);
    assert!(r.is_empty());
}

#[test]
fn a_checkpointed_buffer_releases_the_same_events_in_the_same_order() {
    let mut r = Reorder::default();
    // Behind the run, with slots freed and reused before the checkpoint.
    for (ts, seq) in [
        (50, 0),
        (10, 1),
        (40, 2),
        (20, 3),
        (30, 4),
        (60, 5),
        (15, 6),
    ] {
        r.push(ev(ts, seq));
    }
    assert_eq!(r.pop_until(12).map(|e| e.seq), Some(1));
    r.push(ev(35, 7));
    r.push(ev(35, 8));
    let bytes = postcard::to_stdvec(&r).expect("serialize");
    let mut back: Reorder<()> = postcard::from_bytes(&bytes).expect("deserialize");
    assert_eq!(back.len(), r.len());
    assert_eq!(back.min_seq(), Some(0));
    let drain = |r: &mut Reorder<()>| {
        std::iter::from_fn(|| r.pop_until(i64::MAX))
            .map(|e| (e.ts_ms, e.seq))
            .collect::<Vec<_>>()
    };
    let expected = vec![
        (15, 6),
        (20, 3),
        (30, 4),
        (35, 7),
        (35, 8),
        (40, 2),
        (50, 0),
        (60, 5),
    ];
    assert_eq!(drain(&mut back), expected);
    assert_eq!(drain(&mut r), expected);
    assert!(r.is_empty() && back.is_empty());
}

/// Against a sorted model, under every kind of disorder: nearly sorted, saw-tooth,
/// reversed (more runs than `MAX_RUNS`, so the overflow heap is used) and random, with
/// releases interleaved and a checkpoint round trip halfway.
#[test]
fn releases_like_a_sorted_model_whatever_the_disorder() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for pattern in 0..4 {
        let mut r: Reorder<()> = Reorder::default();
        let mut model = std::collections::BTreeSet::new();
        let mut max_ts = 0;
        for seq in 0..3_000i64 {
            let ts = match pattern {
                0 => seq * 10 - rnd(30) as i64,
                1 => (seq / 100) * 1_000 + (seq % 10) * 50,
                2 => 100_000 - seq,
                _ => rnd(50_000) as i64,
            };
            r.push(ev(ts, seq));
            model.insert((ts, seq));
            max_ts = max_ts.max(ts);
            if seq == 1_500 {
                let bytes = postcard::to_stdvec(&r).expect("serialize");
                r = postcard::from_bytes(&bytes).expect("deserialize");
            }
            // Reversed input is released only at the end, so it needs the overflow.
            if pattern != 2 && rnd(8) == 0 {
                let wm = max_ts - rnd(2_000) as i64;
                while let Some(e) = r.pop_until(wm) {
                    let first = model.pop_first().expect("model has it");
                    assert_eq!((e.ts_ms, e.seq), first, "pattern {pattern}");
                    assert!(e.ts_ms <= wm);
                }
                assert!(model.first().is_none_or(|f| f.0 > wm), "pattern {pattern}");
            }
            assert_eq!(r.len(), model.len());
        }
        assert_eq!(r.min_seq(), model.iter().map(|k| k.1).min());
        if pattern == 2 {
            assert!(r.overflow.len() > 1_000, "the overflow heap is exercised");
        }
        while let Some(e) = r.pop_until(i64::MAX) {
            assert_eq!(
                Some((e.ts_ms, e.seq)),
                model.pop_first(),
                "pattern {pattern}"
            );
        }
        assert!(model.is_empty() && r.is_empty());
    }
}

#[test]
fn peek_shows_the_event_the_next_pop_hands_out() {
    let mut r = Reorder::default();
    // Descending times start a run each, past `MAX_RUNS`, so the overflow is used as well;
    // then a few ascending runs interleaved.
    let mut seq = 0;
    for ts in (0..(MAX_RUNS as i64 + 40)).rev() {
        r.push(ev(ts * 3, seq));
        seq += 1;
    }
    for i in 0..60 {
        r.push(ev(100 + (i % 3) * 50 + i, seq));
        seq += 1;
    }
    assert!(r.peek().is_some());
    while let Some(next) = r.peek().map(|e| (e.ts_ms, e.seq)) {
        let popped = r.pop_until(i64::MAX).map(|e| (e.ts_ms, e.seq));
        assert_eq!(popped, Some(next));
    }
    assert!(r.is_empty());
    assert_eq!(r.peek(), None);
}
