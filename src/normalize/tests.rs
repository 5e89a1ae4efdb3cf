use super::*;

fn plan(window: Window, method: Method, include_current: bool, mode: TimeMode) -> Plan {
    Plan {
        features: vec!["v".into()],
        norms: vec![NormSpec {
            name: "k".into(),
            method,
            window,
            include_current,
            min_count: 2,
            degenerate: Degenerate::Unit,
            features: vec![0],
        }],
        layer: None,
        time_mode: mode,
        out_of_orderness_ms: 5_000,
        late: LatePolicy::DeadLetter,
        max_disorder_ms: 60_000,
        idle_ttl_ms: None,
    }
}

fn ev(seq: i64, ts: i64, v: Option<f64>) -> Event<()> {
    Event {
        key: "a".into(),
        ts_ms: ts,
        seq,
        features: vec![v.map_or(FeatureValue::Missing, FeatureValue::Value)],
        payload: (),
    }
}

const Z: Method = Method::Zscore { ddof: 0, eps: 0.0 };

fn run(p: Plan, evs: Vec<Event<()>>) -> (Emitted<()>, Vec<i64>) {
    let engine = Engine::new(p);
    let mut st = PartitionState::default();
    let mut out = engine.emitted();
    let mut late = Vec::new();
    for e in evs {
        if let Some(l) = st.push(&engine, e, &mut out) {
            late.push(l.seq);
        }
    }
    st.finish(&engine, &mut out);
    (out, late)
}

#[test]
fn event_time_orders_by_ts_then_offset_and_rejects_late() {
    let evs = vec![
        ev(0, 10_000, Some(1.0)),
        ev(1, 8_000, Some(2.0)),  // within 5 s: reordered before seq 0
        ev(2, 20_000, Some(3.0)), // watermark moves to 15 000
        ev(3, 9_000, Some(4.0)),  // 9 000 < 15 000: late
        ev(4, 20_000, Some(5.0)), // tie in ts, after seq 2
    ];
    let (out, late) = run(plan(Window::Expanding, Z, false, TimeMode::EventTime), evs);
    let order: Vec<i64> = out.events().iter().map(|e| e.seq).collect();
    assert_eq!(order, vec![1, 0, 2, 4]);
    assert_eq!(late, vec![3]);
    assert_eq!(out.results(0)[0].status, Status::Warmup);
    assert_eq!(out.results(2)[0].n, 2);
}

#[test]
fn an_event_exactly_at_t_minus_w_is_excluded() {
    let w = Window::SlidingTime { size_ms: 1_000 };
    let evs = vec![
        ev(0, 0, Some(1.0)),
        ev(1, 500, Some(2.0)),
        ev(2, 1_000, Some(3.0)),
    ];
    let (out, _) = run(plan(w, Z, false, TimeMode::EventTime), evs);
    // At t = 1000 the window is (0, 1000]: only the value at 500.
    assert_eq!(out.results(2)[0].n, 1);
}

#[test]
fn missing_values_never_change_state_and_report_n() {
    let evs = vec![
        ev(0, 0, Some(1.0)),
        ev(1, 1, None),
        ev(2, 2, Some(3.0)),
        ev(3, 3, Some(5.0)),
    ];
    let (out, _) = run(plan(Window::Expanding, Z, false, TimeMode::EventTime), evs);
    assert_eq!(out.results(1)[0].status, Status::Missing);
    assert_eq!(out.results(1)[0].n, 1);
    let r = out.results(3)[0];
    assert_eq!(r.n, 2);
    assert_eq!(r.center(), Some(2.0));
    assert_eq!(r.scale(), Some(1.0));
    assert_eq!(r.y(), Some(3.0));
}

#[test]
fn constant_windows_are_degenerate_with_unit_scale() {
    let evs = (0..5).map(|i| ev(i, i * 10, Some(0.3))).collect();
    let (out, _) = run(
        plan(
            Window::SlidingCount { count: 3 },
            Z,
            true,
            TimeMode::EventTime,
        ),
        evs,
    );
    let r = out.results(4)[0];
    assert_eq!(r.status, Status::Degenerate);
    assert_eq!((r.scale(), r.y(), r.n), (Some(1.0), Some(0.0), 3));
}

#[test]
fn processing_time_keeps_arrival_order_and_sees_newer_prior_values() {
    let w = Window::SlidingTime { size_ms: 1_000 };
    let evs = vec![
        ev(0, 5_000, Some(1.0)),
        ev(1, 5_500, Some(2.0)),
        ev(2, 4_200, Some(3.0)),
    ];
    let (out, late) = run(plan(w, Z, false, TimeMode::ProcessingTime), evs);
    assert!(late.is_empty());
    assert_eq!(
        out.events().iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    // Prior values with ts > 4200 − 1000: both earlier ones.
    assert_eq!(out.results(2)[0].n, 2);
}

#[test]
fn tumbling_previous_sees_the_whole_previous_bucket() {
    let w = Window::TumblingPrevious { size_ms: 100 };
    let evs = vec![
        ev(0, 10, Some(1.0)),
        ev(1, 20, Some(3.0)),
        ev(2, 110, Some(9.0)),
        ev(3, 150, Some(9.0)),
        ev(4, 310, Some(9.0)),
    ];
    let (out, _) = run(plan(w, Z, false, TimeMode::EventTime), evs);
    assert_eq!(out.results(2)[0].n, 2);
    assert_eq!(out.results(2)[0].center(), Some(2.0));
    assert_eq!(out.results(3)[0].n, 2);
    // Bucket 300 follows an empty bucket 200: nothing to see.
    assert_eq!(out.results(4)[0].n, 0);
}

#[test]
fn emit_unchanged_normalizes_late_events_without_learning_from_them() {
    let mut p = plan(Window::Expanding, Z, false, TimeMode::EventTime);
    p.late = LatePolicy::EmitUnchanged;
    let evs = vec![
        ev(0, 10_000, Some(1.0)),
        ev(1, 11_000, Some(3.0)),
        ev(2, 30_000, Some(5.0)), // watermark 25 000: the first two are released
        ev(3, 1_000, Some(100.0)), // late: y from (n 2, mean 2, sd 1), no learning
        ev(4, 31_000, Some(7.0)),
    ];
    let (out, late) = run(p, evs);
    assert!(late.is_empty(), "emit_unchanged never dead-letters");
    let seqs: Vec<i64> = out.events().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![0, 1, 3, 2, 4]);
    let r = out.results(2)[0];
    assert_eq!(r.status, Status::Late);
    assert_eq!(
        (r.n, r.center(), r.scale(), r.y()),
        (2, Some(2.0), Some(1.0), Some(98.0))
    );
    // seq 2 at 30 000 sees 1 and 3 only: the late 100 was not learned.
    assert_eq!(out.results(3)[0].n, 2);
    assert_eq!(out.results(4)[0].n, 3);
}

#[test]
fn idle_keys_are_evicted_and_counted() {
    let engine = Engine::new(plan(
        Window::SlidingTime { size_ms: 1_000 },
        Z,
        false,
        TimeMode::EventTime,
    ));
    let mut st: PartitionState<()> = PartitionState::default();
    let mut out = engine.emitted();
    let mut e = ev(0, 0, Some(1.0));
    e.key = "idle".into();
    assert!(st.push(&engine, e, &mut out).is_none());
    // Another key keeps the partition going for longer than the window and more than a sweep.
    for i in 1..5_000 {
        assert!(
            st.push(&engine, ev(i, 10 * i, Some(2.0)), &mut out)
                .is_none()
        );
    }
    st.sweep_idle(&engine);
    assert_eq!(st.key_count(), 1, "only the active key is left");
    assert_eq!(st.counters.evicted_keys, 1);
    let (bytes, values) = st.state_footprint();
    assert!(
        values > 0 && values <= 101,
        "the window holds at most 1 s of values: {values}"
    );
    assert!(bytes >= values * 16);
}

#[test]
fn degenerate_policies_zero_and_null() {
    let evs = || (0..4).map(|i| ev(i, i * 10, Some(0.5))).collect::<Vec<_>>();
    for (policy, want_y, want_scale) in [
        (Degenerate::Zero, Some(0.0), Some(0.0)),
        (Degenerate::Null, None, None),
    ] {
        let mut p = plan(Window::Expanding, Z, false, TimeMode::EventTime);
        p.norms[0].degenerate = policy;
        let (out, _) = run(p, evs());
        let r = out.results(3)[0];
        assert_eq!(r.status, Status::Degenerate, "{policy:?}");
        assert_eq!(
            (r.y(), r.scale(), r.n),
            (want_y, want_scale, 3),
            "{policy:?}"
        );
    }
}
