//! Property tests of the statistics: they hold for any input proptest can find.

use normlake::normalize::{
    Degenerate, Emitted, Engine, Event, FeatureValue, LatePolicy, Method, NormSpec, PartitionState,
    Plan, SlotResult, Status, TimeMode, Window,
};
use proptest::prelude::*;

fn plan(window: Window, method: Method, include_current: bool, min_count: u64) -> Plan {
    Plan {
        features: vec!["v".into()],
        norms: vec![NormSpec {
            name: "k".into(),
            method,
            window,
            include_current,
            min_count,
            degenerate: Degenerate::Unit,
            features: vec![0],
        }],
        layer: None,
        time_mode: TimeMode::EventTime,
        out_of_orderness_ms: 1_000,
        late: LatePolicy::DeadLetter,
        max_disorder_ms: 0,
        idle_ttl_ms: None,
    }
}

const Z: Method = Method::Zscore { ddof: 0, eps: 0.0 };

fn run(p: Plan, evs: Vec<(i64, i64, Option<f64>)>) -> Vec<Row> {
    let engine = Engine::new(p);
    let mut st = PartitionState::default();
    let mut out: Emitted<()> = engine.emitted();
    for (seq, ts, v) in evs {
        let ev = Event {
            key: "k".into(),
            ts_ms: ts,
            seq,
            features: vec![v.map_or(FeatureValue::Missing, FeatureValue::Value)],
            payload: (),
        };
        assert!(
            st.push(&engine, ev, &mut out).is_none(),
            "no event may be late here"
        );
    }
    st.finish(&engine, &mut out);
    out.rows()
        .map(|(e, r)| Row {
            seq: e.seq,
            ts_ms: e.ts_ms,
            r: r[0],
        })
        .collect()
}

/// One emitted row of the single-slot plans used here.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    seq: i64,
    ts_ms: i64,
    r: SlotResult,
}

/// Exact-enough reference: two-pass mean and variance of a small window.
fn reference(window: &[f64]) -> (f64, f64) {
    let n = window.len() as f64;
    let mean = window.iter().sum::<f64>() / n;
    let var = window.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var)
}

fn series() -> impl Strategy<Value = Vec<(i64, f64)>> {
    // (gap to the previous event in ms, value)
    prop::collection::vec((1i64..3_000, -1e3f64..1e3), 1..200)
}

fn timestamps(gaps: &[(i64, f64)]) -> Vec<(i64, i64, Option<f64>)> {
    let mut t = 1_000_000;
    gaps.iter()
        .enumerate()
        .map(|(i, (g, v))| {
            t += g;
            (i as i64, t, Some(*v))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The sliding aggregate equals a recomputation from scratch at every step.
    #[test]
    fn sliding_time_matches_recomputation(gaps in series(), size in 500i64..20_000) {
        let evs = timestamps(&gaps);
        let out = run(plan(Window::SlidingTime { size_ms: size }, Z, false, 2), evs.clone());
        for o in &out {
            let t = o.ts_ms;
            let window: Vec<f64> = evs.iter().filter(|(s, ts, _)| *s < o.seq && *ts > t - size).filter_map(|e| e.2).collect();
            let r = o.r;
            prop_assert_eq!(r.n as usize, window.len());
            if window.len() >= 2 {
                let (mean, var) = reference(&window);
                let c = r.center().unwrap();
                prop_assert!((c - mean).abs() <= 1e-9 * mean.abs().max(1.0), "center {} vs {}", c, mean);
                if var > 0.0 {
                    let s = r.scale().unwrap();
                    prop_assert!((s - var.sqrt()).abs() <= 1e-9 * var.sqrt(), "scale {} vs {}", s, var.sqrt());
                }
            }
        }
    }

    /// Min-max over a count window equals the extremes of the last N values.
    #[test]
    fn sliding_count_minmax_matches_recomputation(gaps in series(), count in 1usize..30) {
        let evs = timestamps(&gaps);
        let m = Method::Minmax { a: 0.0, b: 1.0, clip: false };
        let out = run(plan(Window::SlidingCount { count }, m, true, 1), evs.clone());
        for (i, o) in out.iter().enumerate() {
            let lo = (i + 1).saturating_sub(count);
            let w: Vec<f64> = evs[lo..=i].iter().filter_map(|e| e.2).collect();
            let min = w.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let r = o.r;
            prop_assert_eq!(r.n as usize, w.len());
            prop_assert_eq!(r.center(), Some(min));
            if max > min {
                prop_assert_eq!(r.scale(), Some(max - min));
            } else {
                prop_assert_eq!(r.status, Status::Degenerate);
            }
        }
    }

    /// Shuffling arrivals within the out-of-orderness bound changes nothing.
    #[test]
    fn event_time_output_is_invariant_to_arrival_order(gaps in series(), jitter in prop::collection::vec(0i64..1_000, 200)) {
        let ordered = timestamps(&gaps);
        // Arrive in order of ts + jitter (< B): no event is late, ties are impossible.
        let mut arrival: Vec<(i64, i64, Option<f64>)> = ordered.clone();
        arrival.sort_by_key(|(i, ts, _)| ts + jitter[*i as usize % jitter.len()]);
        let reseq: Vec<(i64, i64, Option<f64>)> = arrival.iter().enumerate().map(|(i, e)| (i as i64, e.1, e.2)).collect();
        let p = plan(Window::SlidingTime { size_ms: 5_000 }, Z, false, 2);
        let a = run(p.clone(), ordered);
        let b = run(p, reseq);
        let by_ts = |v: &[Row]| v.iter().map(|o| (o.ts_ms, o.r)).collect::<Vec<_>>();
        prop_assert_eq!(by_ts(&a), by_ts(&b));
    }

    /// z is invariant to x → a·x + b with a > 0; x = y·scale + center within 4 ulp.
    #[test]
    fn zscore_is_shift_and_scale_invariant_and_invertible(gaps in series(), a in 0.01f64..100.0, b in -1e4f64..1e4) {
        let evs = timestamps(&gaps);
        let moved: Vec<_> = evs.iter().map(|(s, t, v)| (*s, *t, v.map(|x| a * x + b))).collect();
        let p = plan(Window::SlidingCount { count: 25 }, Z, false, 2);
        let base = run(p.clone(), evs);
        let other = run(p, moved.clone());
        for ((x, y), ev) in base.iter().zip(&other).zip(&moved) {
            let (rx, ry) = (x.r, y.r);
            prop_assert_eq!(rx.status, ry.status);
            if let (Some(yx), Some(yy), Status::Ok) = (rx.y(), ry.y(), rx.status) {
                prop_assert!((yx - yy).abs() <= 1e-6 * yx.abs().max(1.0), "{} vs {}", yx, yy);
                let (v, s, c) = (ev.2.unwrap(), ry.scale().unwrap(), ry.center().unwrap());
                let back = yy * s + c;
                let bound = 4.0 * f64::EPSILON * v.abs().max(c.abs()).max((yy * s).abs());
                prop_assert!((back - v).abs() <= bound, "restored {} vs {} (bound {})", back, v, bound);
            }
        }
    }

    /// Missing values never change the state seen by the valid ones.
    #[test]
    fn missing_values_do_not_touch_state(gaps in series(), holes in prop::collection::vec(any::<bool>(), 200)) {
        let evs = timestamps(&gaps);
        let with_holes: Vec<_> = evs
            .iter()
            .flat_map(|(s, t, v)| {
                let mut e = vec![(2 * s, *t, *v)];
                if holes[*s as usize % holes.len()] {
                    e.push((2 * s + 1, *t, None));
                }
                e
            })
            .collect();
        let p = plan(Window::Expanding, Z, false, 2);
        let a = run(p.clone(), evs);
        let b: Vec<_> = run(p, with_holes).into_iter().filter(|o| o.seq % 2 == 0).collect();
        prop_assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            prop_assert_eq!(x.r, y.r);
        }
    }

    /// A constant window is degenerate, exactly.
    #[test]
    fn constant_windows_are_degenerate(v in -1e6f64..1e6, n in 3usize..50) {
        let evs: Vec<_> = (0..n).map(|i| (i as i64, 1_000 + i as i64, Some(v))).collect();
        for w in [Window::SlidingCount { count: 10 }, Window::SlidingTime { size_ms: 30 }, Window::Expanding, Window::Tumbling { size_ms: 1_000_000 }] {
            let out = run(plan(w, Z, true, 2), evs.clone());
            for o in out.iter().skip(2) {
                prop_assert_eq!(o.r.status, Status::Degenerate, "{:?}", w);
            }
        }
    }
}

/// A variance regime change of 1e8 → 1: the window after the change must be exact to 1e-9.
/// Subtract-on-evict (running sums) leaves an error many orders of magnitude larger, which
/// the test shows too, so it can tell the two apart.
#[test]
fn regime_change_keeps_full_relative_accuracy() {
    let mut evs = Vec::new();
    let mut state = 12345u64;
    let mut noise = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    for i in 0..2_000 {
        let scale = if i < 1_000 { 1e8 } else { 1.0 };
        evs.push((i as i64, 1_000 + i as i64, Some(scale * noise())));
    }
    let count = 100;
    let out = run(
        plan(Window::SlidingCount { count }, Z, false, 2),
        evs.clone(),
    );
    let values: Vec<f64> = evs.iter().filter_map(|e| e.2).collect();
    let mut worst: f64 = 0.0;
    let (mut sum, mut sumsq) = (0.0f64, 0.0f64);
    let mut naive_worst: f64 = 0.0;
    for (i, o) in out.iter().enumerate() {
        if i >= count {
            sum -= values[i - count];
            sumsq -= values[i - count] * values[i - count];
        }
        if i >= 1_200 {
            let w = &values[i - count..i];
            let (_, var) = reference(w);
            let s = o.r.scale().unwrap();
            worst = worst.max((s - var.sqrt()).abs() / var.sqrt());
            let n = count as f64;
            let naive_var = (sumsq / n - (sum / n) * (sum / n)).max(0.0);
            naive_worst = naive_worst.max((naive_var.sqrt() - var.sqrt()).abs() / var.sqrt());
        }
        sum += values[i];
        sumsq += values[i] * values[i];
    }
    assert!(
        worst <= 1e-9,
        "relative error after the regime change: {worst:e}"
    );
    assert!(
        naive_worst > 1e-6,
        "the subtract-on-evict control should fail here (error {naive_worst:e})"
    );
}

/// Bit patterns of one slot's result: y, center and scale as bits, n and status.
type SlotBits = (Option<u64>, Option<u64>, Option<u64>, u64, Status);

/// Bit patterns of the emitted rows, so that a restored state is checked to the last bit.
fn bits(rows: &Emitted<()>) -> Vec<(i64, Vec<SlotBits>)> {
    rows.rows()
        .map(|(e, r)| {
            let slots = r
                .iter()
                .map(|s| {
                    (
                        s.y().map(f64::to_bits),
                        s.center().map(f64::to_bits),
                        s.scale().map(f64::to_bits),
                        s.n,
                        s.status,
                    )
                })
                .collect();
            (e.seq, slots)
        })
        .collect()
}

/// Every bounded window and method, in both time modes, over a few keys.
fn checkpoint_plan(mode: TimeMode) -> Plan {
    let windows = [
        ("t", Window::SlidingTime { size_ms: 4_000 }),
        ("c", Window::SlidingCount { count: 7 }),
        ("b", Window::Tumbling { size_ms: 5_000 }),
        ("p", Window::TumblingPrevious { size_ms: 3_000 }),
        ("x", Window::Expanding),
        ("e", Window::EwmTime { halflife_ms: 2_000 }),
    ];
    let methods = [
        Z,
        Method::Minmax {
            a: 0.0,
            b: 1.0,
            clip: false,
        },
        Method::Robust {
            q_lo: 0.25,
            q_hi: 0.75,
        },
    ];
    let mut norms = Vec::new();
    for (wn, w) in windows {
        for (mi, m) in methods.iter().enumerate() {
            let robust_unbounded = matches!(m, Method::Robust { .. })
                && matches!(w, Window::Expanding | Window::EwmTime { .. });
            if robust_unbounded {
                continue;
            }
            norms.push(NormSpec {
                name: format!("{wn}{mi}"),
                method: *m,
                window: w,
                include_current: mi == 1,
                min_count: 2,
                degenerate: Degenerate::Unit,
                features: vec![0],
            });
        }
    }
    Plan {
        features: vec!["v".into()],
        norms,
        layer: None,
        time_mode: mode,
        out_of_orderness_ms: 1_500,
        late: LatePolicy::EmitUnchanged,
        max_disorder_ms: 3_000,
        idle_ttl_ms: None,
    }
}

fn feed(
    engine: &Engine,
    st: &mut PartitionState<()>,
    evs: &[(i64, i64, u8, Option<f64>)],
    out: &mut Emitted<()>,
) {
    for &(seq, ts, key, v) in evs {
        let ev = Event {
            key: format!("k{key}").into(),
            ts_ms: ts,
            seq,
            features: vec![v.map_or(FeatureValue::Missing, FeatureValue::Value)],
            payload: (),
        };
        assert!(st.push(engine, ev, out).is_none());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A checkpoint taken anywhere (written with postcard, as the job writes it, and read
    /// back) continues exactly as the state it was taken from: same rows, same bits. The
    /// window's aggregate stacks are not in the checkpoint but recomputed, so this is what
    /// keeps the output after a restart equal to the output without one.
    #[test]
    fn a_checkpoint_anywhere_continues_bit_for_bit(
        steps in prop::collection::vec((-1_500i64..2_500, 0u8..3, prop::option::weighted(0.9, -1e3f64..1e3), any::<bool>()), 1..300),
        cut in 0usize..300,
        processing_time in any::<bool>(),
    ) {
        let mut t = 1_000_000i64;
        let evs: Vec<(i64, i64, u8, Option<f64>)> = steps
            .iter()
            .enumerate()
            .map(|(i, &(gap, key, v, jump))| {
                // A level change now and then, so that the shift matters.
                t += gap;
                (i as i64, t, key, v.map(|x| if jump { x * 1e6 } else { x }))
            })
            .collect();
        let mode = if processing_time { TimeMode::ProcessingTime } else { TimeMode::EventTime };
        let engine = Engine::new(checkpoint_plan(mode));
        let cut = cut.min(evs.len());

        let mut straight = PartitionState::default();
        let mut a = engine.emitted();
        feed(&engine, &mut straight, &evs, &mut a);
        straight.finish(&engine, &mut a);

        let mut first = PartitionState::default();
        let mut b = engine.emitted();
        feed(&engine, &mut first, &evs[..cut], &mut b);
        let bytes = postcard::to_stdvec(&first).expect("checkpoint");
        let mut restored: PartitionState<()> = postcard::from_bytes(&bytes).expect("restore");
        feed(&engine, &mut restored, &evs[cut..], &mut b);
        restored.finish(&engine, &mut b);

        prop_assert_eq!(bits(&a), bits(&b));
    }
}
