//! A state restored from a full checkpoint and its deltas goes on exactly as the live state
//! did: every row after any checkpoint is the same, bit for bit.

use super::super::*;

/// Every kind of window, with keys dropped as idle and over a budget, late events emitted
/// unchanged, and values that include ±0, missing and invalid ones.
fn plan(mode: TimeMode) -> Plan {
    let norm = |name: &str, method, window, include_current| NormSpec {
        name: name.into(),
        method,
        window,
        include_current,
        min_count: 2,
        degenerate: Degenerate::Unit,
        features: vec![0, 1],
    };
    let z = Method::Zscore { ddof: 1, eps: 0.0 };
    let robust = Method::Robust {
        q_lo: 0.25,
        q_hi: 0.75,
    };
    let minmax = Method::Minmax {
        a: 0.0,
        b: 1.0,
        clip: true,
    };
    Plan {
        features: vec!["a".into(), "b".into()],
        norms: vec![
            norm("z", z, Window::SlidingTime { size_ms: 2_000 }, false),
            norm("r", robust, Window::SlidingTime { size_ms: 3_000 }, true),
            norm("m", minmax, Window::SlidingCount { count: 5 }, false),
            norm("t", z, Window::Tumbling { size_ms: 1_000 }, true),
            norm(
                "p",
                robust,
                Window::TumblingPrevious { size_ms: 500 },
                false,
            ),
            norm("e", Method::Maxabs, Window::Ewm { alpha: 0.3 }, false),
            norm("h", z, Window::EwmTime { halflife_ms: 700 }, true),
            norm("x", z, Window::Expanding, false),
        ],
        layer: None,
        time_mode: mode,
        out_of_orderness_ms: 300,
        late: LatePolicy::EmitUnchanged,
        max_disorder_ms: 1_000,
        idle_ttl_ms: Some(1_500),
    }
}

/// A stream of 10,000 events over 40 keys, in rough time order with some disorder.
fn events() -> Vec<Event<()>> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let value = |r: u64| match r % 11 {
        0 => FeatureValue::Missing,
        1 => FeatureValue::Invalid,
        2 => FeatureValue::Value(0.0),
        3 => FeatureValue::Value(-0.0),
        _ => FeatureValue::Value((r % 1000) as f64 / 7.0 - 60.0),
    };
    (0..10_000)
        .map(|i| {
            let r = next();
            // Keys 30–39 appear in bursts, so they go idle and come back.
            let key = if (i / 700) % 2 == 0 { r % 40 } else { r % 30 };
            Event {
                key: format!("k{key}").into(),
                ts_ms: i * 3 + (r >> 40) as i64 % 400 - 200,
                seq: i,
                features: vec![value(r >> 8), value(r >> 24)],
                payload: (),
            }
        })
        .collect()
}

type Row = (i64, Vec<(u64, u64, u64, u64, Status)>);

fn rows(out: &mut Emitted<()>) -> Vec<Row> {
    let rows = out
        .rows()
        .map(|(e, rs)| {
            let bits = |v: Option<f64>| v.map_or(u64::MAX, f64::to_bits);
            let rs = rs
                .iter()
                .map(|r| {
                    (
                        bits(r.y()),
                        bits(r.center()),
                        bits(r.scale()),
                        r.n,
                        r.status,
                    )
                })
                .collect();
            (e.seq, rs)
        })
        .collect();
    out.clear();
    rows
}

/// Push events `from..` into `st`, dropping keys over a budget at fixed points, and return
/// the rows with the index of the event that emitted them (the end's are `events.len()`).
fn run_from(
    engine: &Engine,
    st: &mut PartitionState<()>,
    events: &[Event<()>],
    from: usize,
    mut at_checkpoint: impl FnMut(usize, &mut PartitionState<()>),
) -> Vec<(usize, Row)> {
    let mut out = engine.emitted();
    let mut all = Vec::new();
    for (i, ev) in events.iter().enumerate().skip(from) {
        at_checkpoint(i, st);
        if i % 1_300 == 1_299 {
            st.evict_to(3_000);
        }
        st.push(engine, ev.clone(), &mut out);
        all.extend(rows(&mut out).into_iter().map(|r| (i, r)));
    }
    st.finish(engine, &mut out);
    all.extend(rows(&mut out).into_iter().map(|r| (events.len(), r)));
    all
}

fn restore(engine: &Engine, base: &[u8], deltas: &[Vec<u8>]) -> PartitionState<()> {
    let mut st: PartitionState<()> = postcard::from_bytes(base).expect("base");
    for d in deltas {
        let d: PartitionDelta<()> = postcard::from_bytes(d).expect("delta");
        st.apply(engine, d).expect("apply");
    }
    st
}

fn restored_states_go_on_as_the_live_one(mode: TimeMode) {
    let engine = Engine::new(plan(mode));
    let events = events();
    // (event index, base, deltas): a checkpoint every 97–350 events, a whole one every fifth.
    let mut chains: Vec<(usize, Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
    let (mut base, mut deltas) = (Vec::new(), Vec::<Vec<u8>>::new());
    let mut live = PartitionState::default();
    let mut n = 0;
    let live_rows = run_from(&engine, &mut live, &events, 0, |i, st| {
        if i % 97 != 0 && i % 350 != 0 {
            return;
        }
        if n % 5 == 0 {
            base = postcard::to_stdvec(&*st).expect("whole");
            deltas.clear();
        } else {
            deltas.push(postcard::to_stdvec(&st.delta(&engine)).expect("delta"));
        }
        n += 1;
        st.checkpointed();
        chains.push((i, base.clone(), deltas.clone()));
    });
    assert!(chains.len() > 50 && live.counters.evicted_keys > 0);
    assert!(live.counters.budget_evicted_keys > 0);
    assert!(live.counters.late > 0 || mode == TimeMode::ProcessingTime);
    for (i, base, deltas) in &chains {
        let mut st = restore(&engine, base, deltas);
        let got = run_from(&engine, &mut st, &events, *i, |_, _| {});
        let want: Vec<_> = live_rows.iter().filter(|(j, _)| j >= i).cloned().collect();
        assert_eq!(
            got,
            want,
            "restored at event {i} from {} deltas",
            deltas.len()
        );
    }
}

#[test]
fn event_time_state_restored_from_deltas_goes_on_bit_for_bit() {
    restored_states_go_on_as_the_live_one(TimeMode::EventTime);
}

#[test]
fn processing_time_state_restored_from_deltas_goes_on_bit_for_bit() {
    restored_states_go_on_as_the_live_one(TimeMode::ProcessingTime);
}

#[test]
fn a_delta_that_names_a_key_the_state_lacks_is_an_error() {
    let engine = Engine::new(plan(TimeMode::EventTime));
    let mut st = PartitionState::default();
    let mut out = engine.emitted();
    st.checkpointed();
    let base = postcard::to_stdvec(&st).expect("whole");
    for ev in events().into_iter().take(50) {
        st.push(&engine, ev, &mut out);
    }
    st.checkpointed();
    for ev in events().into_iter().skip(50).take(50) {
        st.push(&engine, ev, &mut out);
    }
    let delta = postcard::to_stdvec(&st.delta(&engine)).expect("delta");
    // Applied to the state before the first events (not the one it was written on).
    assert!(restore_err(&engine, &base, &delta).contains("lacks"));
}

fn restore_err(engine: &Engine, base: &[u8], delta: &[u8]) -> String {
    let mut st: PartitionState<()> = postcard::from_bytes(base).expect("base");
    let d: PartitionDelta<()> = postcard::from_bytes(delta).expect("delta");
    st.apply(engine, d).expect_err("a delta on the wrong state")
}
