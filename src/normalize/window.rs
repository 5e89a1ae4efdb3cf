//! One statistic stream: the values of one feature of one key, seen through one window, with
//! just the aggregate its method needs. `Accumulator::observe` is the whole life cycle of an
//! event: move the window to the event, optionally learn, compute center and scale, learn.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

mod codec;
mod ew;

pub(super) use codec::{Blob, take_f64};

use ew::ew_cs;
pub use ew::{DecayMemo, Ewm, EwmTime};

use super::spec::{Method, NormSpec, Window};
use super::stats::{
    Item, MeanM2, MinMax, Running, SortedValues, TwoStacks, quantile, quantile_spread,
};

/// What the method needs from a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Moments,
    Extrema,
    Order,
}

impl Need {
    pub fn of(method: &Method) -> Need {
        match method {
            Method::Zscore { .. } => Need::Moments,
            Method::Minmax { .. } | Method::Maxabs => Need::Extrema,
            Method::Robust { .. } => Need::Order,
        }
    }
}

/// The statistic that applies to one event: `x` restores as `y·scale + shift + center_rel`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CenterScale {
    pub n: u64,
    /// `None` while the window holds no values.
    pub value: Option<(f64, f64, f64)>,
}

impl CenterScale {
    pub fn empty(n: u64) -> Self {
        CenterScale { n, value: None }
    }
}

/// Aggregate over a bounded, evictable window.
#[derive(Debug, Clone)]
enum WindowAgg {
    Moments(TwoStacks<MeanM2>),
    Extrema(TwoStacks<MinMax>),
    Order(SortedValues),
}

impl WindowAgg {
    fn new(need: Need) -> Self {
        match need {
            Need::Moments => WindowAgg::Moments(TwoStacks::default()),
            Need::Extrema => WindowAgg::Extrema(TwoStacks::default()),
            Need::Order => WindowAgg::Order(SortedValues::default()),
        }
    }
}

/// Values of a sliding (time or count) or tumbling window in processing order of their event
/// time, plus the aggregate. In processing-time mode events may arrive with older timestamps;
/// values that fell out of the newest window are parked in `retired` (up to `max_disorder`)
/// so such an event still sees every prior value inside its own window.
///
/// A checkpoint holds the values, the shift and where the front stack ends, not the
/// aggregate's stacks: `TwoStacks::restore` recomputes them bit for bit (see `codec`).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "codec::BoundedIn")]
pub struct Bounded {
    items: VecDeque<Item>,
    /// Boxed: only processing-time mode with out-of-order timestamps parks values, and the
    /// window struct is on the hot path of every event.
    #[allow(clippy::box_collection)]
    retired: Option<Box<VecDeque<Item>>>,
    agg: WindowAgg,
    shift: Option<f64>,
}

impl Bounded {
    fn new(need: Need) -> Self {
        Bounded {
            items: VecDeque::new(),
            retired: None,
            agg: WindowAgg::new(need),
            shift: None,
        }
    }

    fn shift(&self) -> f64 {
        self.shift.unwrap_or(0.0)
    }

    fn push_back(&mut self, it: Item) {
        let shift = *self.shift.get_or_insert(it.x);
        self.items.push_back(it);
        match &mut self.agg {
            WindowAgg::Moments(t) => t.push_back(it.x, shift),
            WindowAgg::Extrema(t) => t.push_back(it.x, shift),
            WindowAgg::Order(s) => s.insert(it.x),
        }
    }

    fn push_front(&mut self, it: Item) {
        let shift = *self.shift.get_or_insert(it.x);
        self.items.push_front(it);
        match &mut self.agg {
            WindowAgg::Moments(t) => t.push_front(it.x, shift),
            WindowAgg::Extrema(t) => t.push_front(it.x, shift),
            WindowAgg::Order(s) => s.insert(it.x),
        }
    }

    fn pop_front(&mut self) -> Option<Item> {
        let needs_rebuild = match &self.agg {
            WindowAgg::Moments(t) => t.needs_rebuild(),
            WindowAgg::Extrema(t) => t.needs_rebuild(),
            WindowAgg::Order(_) => false,
        };
        if needs_rebuild {
            self.rebuild();
        }
        let shift = self.shift();
        match &mut self.agg {
            WindowAgg::Moments(t) => t.pop_front(&self.items, shift),
            WindowAgg::Extrema(t) => t.pop_front(&self.items, shift),
            WindowAgg::Order(_) => {}
        }
        let it = self.items.pop_front()?;
        if let WindowAgg::Order(s) = &mut self.agg {
            s.remove(it.x);
        }
        Some(it)
    }

    /// Recompute the aggregate from the items, all into the front stack. The back stack is
    /// empty afterwards, so this is where the shift may move: to the newest value, which keeps
    /// the moments well conditioned after a change of level (a fixed first value would cost
    /// digits forever after a regime change).
    fn rebuild(&mut self) {
        if let Some(newest) = self.items.back() {
            self.shift = Some(newest.x);
        }
        let shift = self.shift();
        match &mut self.agg {
            WindowAgg::Moments(t) => t.rebuild(&self.items, shift),
            WindowAgg::Extrema(t) => t.rebuild(&self.items, shift),
            WindowAgg::Order(_) => {}
        }
        self.trim();
    }

    /// Insert keeping `(ts, arrival)` order; out-of-order inserts rebuild the aggregate.
    fn insert_by_time(&mut self, it: Item) {
        match self.items.back() {
            Some(b) if it.ts < b.ts => {
                let at = self.items.partition_point(|v| v.ts <= it.ts);
                self.items.insert(at, it);
                match &mut self.agg {
                    WindowAgg::Order(s) => s.insert(it.x),
                    _ => self.rebuild(),
                }
            }
            _ => self.push_back(it),
        }
    }

    /// Keep exactly the values with `ts > lo` in the window; park the others while they are
    /// newer than `keep_above`.
    fn advance(&mut self, lo: i64, keep_above: i64) {
        while self.items.front().is_some_and(|f| f.ts <= lo) {
            if let Some(it) = self.pop_front()
                && it.ts > keep_above
            {
                self.retired.get_or_insert_default().push_back(it);
            }
        }
        if let Some(mut retired) = self.retired.take() {
            while retired.back().is_some_and(|r| r.ts > lo) {
                if let Some(it) = retired.pop_back() {
                    self.push_front(it);
                }
            }
            while retired.front().is_some_and(|r| r.ts <= keep_above) {
                retired.pop_front();
            }
            if !retired.is_empty() {
                self.retired = Some(retired);
            }
        }
        // Order windows never rebuild, so they trim here (cheap to check, rare to act).
        if matches!(self.agg, WindowAgg::Order(_)) {
            self.trim();
        }
    }

    /// Give back capacity a shrunken window no longer needs: deques grow by doubling, and a
    /// window of 300 values would otherwise hold room for 512 (the state budget is per
    /// retained value). Reallocating only when over 5/4 of the need keeps this amortised O(1).
    fn trim(&mut self) {
        fn over(cap: usize, len: usize) -> bool {
            cap > len + len / 8 + 8
        }
        fn room(len: usize) -> usize {
            len + len / 8 + 4
        }
        let len = self.items.len();
        if over(self.items.capacity(), len) {
            self.items.shrink_to(room(len));
        }
        if let Some(r) = &mut self.retired
            && over(r.capacity(), r.len())
        {
            r.shrink_to(room(r.len()));
        }
        match &mut self.agg {
            WindowAgg::Order(s) => s.trim(over, room),
            WindowAgg::Moments(t) => t.trim(over, room),
            WindowAgg::Extrema(t) => t.trim(over, room),
        }
    }

    fn truncate_to(&mut self, count: usize) {
        while self.items.len() > count {
            self.pop_front();
        }
    }

    fn len(&self) -> u64 {
        self.items.len() as u64
    }

    fn center_scale(&self, method: &Method) -> CenterScale {
        let n = self.len();
        let shift = self.shift();
        let value = match (&self.agg, method) {
            (WindowAgg::Moments(t), Method::Zscore { ddof, eps }) => t
                .query()
                .map(|(a, n)| (shift, a.mean, zscale(a.m2, n, *ddof, *eps))),
            (WindowAgg::Extrema(t), _) => t.query().map(|(a, _)| extrema_cs(method, a)),
            (WindowAgg::Order(s), Method::Robust { q_lo, q_hi }) => order_cs(s, *q_lo, *q_hi),
            _ => None,
        };
        CenterScale { n, value }
    }

    fn heap_bytes(&self) -> usize {
        let item = std::mem::size_of::<Item>();
        let agg = match &self.agg {
            WindowAgg::Moments(t) => t.heap_bytes(),
            WindowAgg::Extrema(t) => t.heap_bytes(),
            WindowAgg::Order(s) => s.heap_bytes(),
        };
        let retired = self.retired.as_ref().map_or(0, |r| r.capacity());
        (self.items.capacity() + retired) * item + agg
    }

    fn retained(&self) -> usize {
        self.items.len() + self.retired.as_ref().map_or(0, |r| r.len())
    }
}

/// Scale of a z-score from moments.
fn zscale(m2: f64, n: u64, ddof: u32, eps: f64) -> f64 {
    let dof = n.saturating_sub(ddof as u64) as f64;
    let var = if dof > 0.0 { m2 / dof } else { f64::NAN };
    if eps > 0.0 {
        (var + eps).sqrt()
    } else {
        var.sqrt()
    }
}

/// `(shift, center relative to shift, scale)` for extrema-based methods; the shift is 0.
fn extrema_cs(method: &Method, a: MinMax) -> (f64, f64, f64) {
    match method {
        Method::Minmax { a: lo, b: hi, .. } => {
            let s = (a.max - a.min) / (hi - lo);
            (0.0, a.min - lo * s, s)
        }
        _ => (0.0, 0.0, a.min.abs().max(a.max.abs())),
    }
}

fn order_cs(sorted: &SortedValues, q_lo: f64, q_hi: f64) -> Option<(f64, f64, f64)> {
    let median = quantile(sorted, 0.5)?;
    Some((0.0, median, quantile_spread(sorted, q_lo, q_hi)?))
}

/// A tumbling bucket that only grows until it is replaced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Bag {
    Running(Running),
    Order(SortedValues),
}

impl Bag {
    fn new(need: Need) -> Self {
        match need {
            Need::Order => Bag::Order(SortedValues::default()),
            _ => Bag::Running(Running::default()),
        }
    }

    fn add(&mut self, x: f64) {
        match self {
            Bag::Running(r) => r.add(x),
            Bag::Order(s) => s.insert(x),
        }
    }

    fn center_scale(&self, method: &Method) -> CenterScale {
        match self {
            Bag::Running(r) => running_cs(r, method),
            Bag::Order(s) => {
                let (q_lo, q_hi) = match method {
                    Method::Robust { q_lo, q_hi } => (*q_lo, *q_hi),
                    _ => (0.25, 0.75),
                };
                CenterScale {
                    n: s.len() as u64,
                    value: order_cs(s, q_lo, q_hi),
                }
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Bag::Running(_) => 0,
            Bag::Order(s) => s.heap_bytes(),
        }
    }
}

fn running_cs(r: &Running, method: &Method) -> CenterScale {
    if r.n == 0 {
        return CenterScale::empty(0);
    }
    let value = match method {
        Method::Zscore { ddof, eps } => (r.shift, r.mean, zscale(r.m2, r.n, *ddof, *eps)),
        Method::Robust { .. } => return CenterScale::empty(r.n),
        _ => extrema_cs(
            method,
            MinMax {
                min: r.min,
                max: r.max,
            },
        ),
    };
    CenterScale {
        n: r.n,
        value: Some(value),
    }
}

/// The state of one (key, feature, normalization) statistic stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Accumulator {
    Expanding(Running),
    /// Sliding by time, sliding by count and tumbling share one evictable window.
    Bounded(Bounded),
    TumblingPrevious {
        bucket: i64,
        current: Bag,
        previous: Option<Bag>,
    },
    Ewm(Ewm),
    EwmTime(EwmTime),
}

impl Accumulator {
    pub fn new(window: &Window, method: &Method) -> Self {
        let need = Need::of(method);
        match window {
            Window::Expanding => Accumulator::Expanding(Running::default()),
            Window::SlidingTime { .. } | Window::SlidingCount { .. } | Window::Tumbling { .. } => {
                Accumulator::Bounded(Bounded::new(need))
            }
            Window::TumblingPrevious { .. } => Accumulator::TumblingPrevious {
                bucket: i64::MIN,
                current: Bag::new(need),
                previous: None,
            },
            Window::Ewm { .. } => Accumulator::Ewm(Ewm::default()),
            Window::EwmTime { .. } => Accumulator::EwmTime(EwmTime::default()),
        }
    }

    /// Process one event at time `t` with valid value `x` (or none) under `spec`: returns the statistic
    /// that applies to it and updates the state. `newest_ts` is the newest event time seen for
    /// this key (equal to `t` in event-time mode), `max_disorder_ms` how far behind it values
    /// are kept for out-of-order events in processing-time mode.
    pub fn observe(
        &mut self,
        spec: &NormSpec,
        t: i64,
        x: Option<f64>,
        newest_ts: i64,
        max_disorder_ms: i64,
        memo: &mut DecayMemo,
    ) -> CenterScale {
        let (window, method, include_current) = (&spec.window, &spec.method, spec.include_current);
        match self {
            Accumulator::Expanding(r) => learn_predict(
                include_current,
                x,
                r,
                |r, x| r.add(x),
                |r| running_cs(r, method),
            ),
            Accumulator::Bounded(b) => {
                let at = Arrival {
                    t,
                    newest_ts,
                    max_disorder_ms,
                };
                observe_bounded(b, spec, at, x)
            }
            Accumulator::TumblingPrevious {
                bucket,
                current,
                previous,
            } => {
                let size = match window {
                    Window::TumblingPrevious { size_ms } => *size_ms,
                    _ => 1,
                };
                let cs = roll_bucket(
                    bucket,
                    current,
                    previous,
                    bucket_start(t, size),
                    size,
                    method,
                );
                if let Some(x) = x
                    && bucket_start(t, size) == *bucket
                {
                    current.add(x);
                }
                cs
            }
            Accumulator::Ewm(e) => {
                let alpha = match window {
                    Window::Ewm { alpha } => *alpha,
                    _ => 1.0,
                };
                learn_predict(
                    include_current,
                    x,
                    e,
                    |e, x| e.update(alpha, x),
                    |e| ew_cs(e.n, e.mean, e.var, method),
                )
            }
            Accumulator::EwmTime(e) => {
                let h = match window {
                    Window::EwmTime { halflife_ms } => *halflife_ms,
                    _ => 1,
                };
                let update = |e: &mut EwmTime, x: f64| e.update(t, x, h, memo);
                learn_predict(include_current, x, e, update, |e| {
                    ew_cs(e.n, e.mean, e.variance(), method)
                })
            }
        }
    }

    /// The statistic that applies at `t` without changing anything (late events under
    /// `emit_unchanged`).
    pub fn peek(&self, method: &Method) -> CenterScale {
        match self {
            Accumulator::Expanding(r) => running_cs(r, method),
            Accumulator::Bounded(b) => b.center_scale(method),
            Accumulator::TumblingPrevious { previous, .. } => previous
                .as_ref()
                .map(|p| p.center_scale(method))
                .unwrap_or(CenterScale::empty(0)),
            Accumulator::Ewm(e) => ew_cs(e.n, e.mean, e.var, method),
            Accumulator::EwmTime(e) => {
                let var = if e.weight > 0.0 { e.s / e.weight } else { 0.0 };
                ew_cs(e.n, e.mean, var, method)
            }
        }
    }

    /// Read the memory `observe` is about to touch (the oldest and newest values and the
    /// front aggregate). Called for every stream of a key before any is observed, the loads
    /// are independent, so their cache misses overlap instead of queueing one per stream.
    pub fn warm(&self) -> u64 {
        match self {
            Accumulator::Bounded(b) => {
                let front = b.items.front().map_or(0, |i| i.ts as u64);
                let back = b.items.back().map_or(0, |i| i.x.to_bits());
                let agg = match &b.agg {
                    WindowAgg::Moments(t) => t.front_bits(),
                    WindowAgg::Extrema(t) => t.front_bits(),
                    WindowAgg::Order(s) => s.first().map_or(0, f64::to_bits),
                };
                front ^ back ^ agg
            }
            _ => 0,
        }
    }

    /// Heap bytes held and values retained, for the state-size figures.
    pub fn footprint(&self) -> (usize, usize) {
        match self {
            Accumulator::Bounded(b) => (b.heap_bytes(), b.retained()),
            Accumulator::TumblingPrevious {
                current, previous, ..
            } => (
                current.heap_bytes() + previous.as_ref().map_or(0, Bag::heap_bytes),
                0,
            ),
            _ => (0, 0),
        }
    }
}

/// When an event arrives: its time, the key's newest event time, and how far behind that
/// values are kept (processing time).
#[derive(Debug, Clone, Copy)]
struct Arrival {
    t: i64,
    newest_ts: i64,
    max_disorder_ms: i64,
}

/// A window of the values themselves (sliding by time or count, tumbling): evict what has
/// left it, then learn and predict.
fn observe_bounded(b: &mut Bounded, spec: &NormSpec, at: Arrival, x: Option<f64>) -> CenterScale {
    let Arrival {
        t,
        newest_ts,
        max_disorder_ms,
    } = at;
    match spec.window {
        Window::SlidingTime { size_ms } => {
            let keep_above = newest_ts.saturating_sub(size_ms + max_disorder_ms);
            b.advance(t.saturating_sub(size_ms), keep_above);
        }
        Window::Tumbling { size_ms } => {
            let lo = bucket_start(t, size_ms) - 1;
            let newest_lo = bucket_start(newest_ts, size_ms) - 1;
            b.advance(lo, newest_lo.saturating_sub(max_disorder_ms));
        }
        _ => {}
    }
    let count = match spec.window {
        Window::SlidingCount { count } => Some(count),
        _ => None,
    };
    let add = |b: &mut Bounded, x: f64| {
        let it = Item { ts: t, x };
        match count {
            Some(c) => {
                b.push_back(it);
                b.truncate_to(c);
            }
            None => b.insert_by_time(it),
        }
    };
    let method = &spec.method;
    learn_predict(spec.include_current, x, b, add, |b| b.center_scale(method))
}

/// `tumbling_previous`: move to the bucket `b` starts when it is newer (the one before it
/// becomes the statistic), and answer the previous bucket's statistic.
fn roll_bucket(
    bucket: &mut i64,
    current: &mut Bag,
    previous: &mut Option<Bag>,
    b: i64,
    size: i64,
    method: &Method,
) -> CenterScale {
    if b > *bucket {
        let need = match current {
            Bag::Order(_) => Need::Order,
            Bag::Running(_) => Need::Moments,
        };
        let old = std::mem::replace(current, Bag::new(need));
        *previous = if *bucket != i64::MIN && b - *bucket == size {
            Some(old)
        } else {
            None
        };
        *bucket = b;
    }
    if b == *bucket {
        previous
            .as_ref()
            .map(|p| p.center_scale(method))
            .unwrap_or(CenterScale::empty(0))
    } else {
        // An out-of-order event (processing time) for an older bucket.
        CenterScale::empty(0)
    }
}

fn learn_predict<S>(
    include_current: bool,
    x: Option<f64>,
    state: &mut S,
    mut learn: impl FnMut(&mut S, f64),
    predict: impl Fn(&S) -> CenterScale,
) -> CenterScale {
    match x {
        Some(x) if include_current => {
            learn(state, x);
            predict(state)
        }
        Some(x) => {
            let cs = predict(state);
            learn(state, x);
            cs
        }
        None => predict(state),
    }
}

/// Start of the epoch-aligned bucket holding `t` (floor division, also before 1970).
pub fn bucket_start(t: i64, size: i64) -> i64 {
    t.div_euclid(size) * size
}
