//! One statistic stream: the values of one feature of one key, seen through one window, with
//! just the aggregate its method needs. `Accumulator::observe` is the whole life cycle of an
//! event: move the window to the event, optionally learn, compute center and scale, learn.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

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
/// A checkpoint holds the values (event times as differences, a couple of bytes each), the
/// shift and where the front stack ends, not the aggregate's stacks: `TwoStacks::restore`
/// recomputes them bit for bit. That is a third of the bytes the stacks took.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "BoundedIn")]
pub struct Bounded {
    items: VecDeque<Item>,
    /// Boxed: only processing-time mode with out-of-order timestamps parks values, and the
    /// window struct is on the hot path of every event.
    #[allow(clippy::box_collection)]
    retired: Option<Box<VecDeque<Item>>>,
    agg: WindowAgg,
    shift: Option<f64>,
}

/// A window's values as one byte string: per value, the difference of its event time from the
/// one before (zigzag LEB128, a byte or two for steady streams) and its 8 bytes. One string per
/// window, not one serde element per value: a checkpoint is mostly this, and writing it value by
/// value through the serializer cost several times as much.
struct TimeDeltas<'a>(&'a VecDeque<Item>);

thread_local! {
    /// Reused between windows while a checkpoint is written.
    static DELTAS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Serialize for TimeDeltas<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DELTAS.with_borrow_mut(|buf| {
            buf.clear();
            buf.reserve(self.0.len() * 11);
            let mut prev = 0i64;
            for it in self.0 {
                let d = it.ts.wrapping_sub(prev);
                let mut z = ((d << 1) ^ (d >> 63)) as u64;
                while z >= 0x80 {
                    buf.push((z as u8) | 0x80);
                    z >>= 7;
                }
                buf.push(z as u8);
                buf.extend_from_slice(&it.x.to_le_bytes());
                prev = it.ts;
            }
            s.serialize_bytes(buf)
        })
    }
}

/// The values of [`TimeDeltas`] read back.
fn decode_deltas(bytes: &[u8]) -> Result<VecDeque<Item>, String> {
    let mut items = Vec::with_capacity(bytes.len() / 9);
    let (mut at, mut prev) = (0usize, 0i64);
    while at < bytes.len() {
        let mut z = 0u64;
        let mut shift = 0;
        loop {
            let b = *bytes.get(at).ok_or("a window's values end inside a time")?;
            at += 1;
            if shift > 63 {
                return Err("a window's time difference is too long".into());
            }
            z |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let x: [u8; 8] = bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or("a window's values end inside a value")?;
        at += 8;
        prev = prev.wrapping_add(d);
        items.push(Item {
            ts: prev,
            x: f64::from_le_bytes(x),
        });
    }
    Ok(items.into())
}

/// Owned bytes from any serde format (postcard reads them in one piece).
struct Blob(Vec<u8>);

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

#[derive(Serialize)]
enum AggOut<'a> {
    Moments,
    Extrema,
    Order(&'a SortedValues),
}

#[derive(Serialize)]
struct BoundedOut<'a> {
    items: TimeDeltas<'a>,
    retired: Option<&'a VecDeque<Item>>,
    agg: AggOut<'a>,
    front_len: u64,
    shift: Option<f64>,
}

/// Variants in the order of `AggOut`.
#[derive(Deserialize)]
enum AggIn {
    Moments,
    Extrema,
    Order(SortedValues),
}

#[derive(Deserialize)]
struct BoundedIn {
    items: Blob,
    #[allow(clippy::box_collection)]
    retired: Option<Box<VecDeque<Item>>>,
    agg: AggIn,
    front_len: u64,
    shift: Option<f64>,
}

impl Serialize for Bounded {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (agg, front_len) = match &self.agg {
            WindowAgg::Moments(t) => (AggOut::Moments, t.front_len()),
            WindowAgg::Extrema(t) => (AggOut::Extrema, t.front_len()),
            WindowAgg::Order(v) => (AggOut::Order(v), 0),
        };
        BoundedOut {
            items: TimeDeltas(&self.items),
            retired: self.retired.as_deref(),
            agg,
            front_len: front_len as u64,
            shift: self.shift,
        }
        .serialize(s)
    }
}

impl TryFrom<BoundedIn> for Bounded {
    type Error = String;
    fn try_from(b: BoundedIn) -> Result<Self, String> {
        let items = decode_deltas(&b.items.0)?;
        let shift = b.shift.unwrap_or(0.0);
        let front_len = b.front_len as usize;
        let agg = match b.agg {
            AggIn::Moments => WindowAgg::Moments(TwoStacks::restore(&items, front_len, shift)),
            AggIn::Extrema => WindowAgg::Extrema(TwoStacks::restore(&items, front_len, shift)),
            AggIn::Order(v) => WindowAgg::Order(v),
        };
        Ok(Bounded {
            items,
            retired: b.retired,
            agg,
            shift: b.shift,
        })
    }
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
        match &mut self.agg {
            WindowAgg::Moments(t) => t.pop_front(),
            WindowAgg::Extrema(t) => t.pop_front(),
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
            (WindowAgg::Order(s), Method::Robust { q_lo, q_hi }) => {
                order_cs(s.as_slice(), *q_lo, *q_hi)
            }
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

fn order_cs(sorted: &[f64], q_lo: f64, q_hi: f64) -> Option<(f64, f64, f64)> {
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
                    n: s.as_slice().len() as u64,
                    value: order_cs(s.as_slice(), q_lo, q_hi),
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

/// Exponentially weighted moments by event count (Finch, "Incremental calculation of
/// weighted mean and variance", 2009).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Ewm {
    n: u64,
    mean: f64,
    var: f64,
}

/// Exponentially weighted moments on event time with a half-life (West's weighted update).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct EwmTime {
    n: u64,
    last_ts: i64,
    weight: f64,
    mean: f64,
    s: f64,
}

fn ew_cs(n: u64, mean: f64, var: f64, method: &Method) -> CenterScale {
    if n == 0 {
        return CenterScale::empty(0);
    }
    let eps = match method {
        Method::Zscore { eps, .. } => *eps,
        _ => 0.0,
    };
    let s = if eps > 0.0 {
        (var + eps).sqrt()
    } else {
        var.sqrt()
    };
    CenterScale {
        n,
        value: Some((0.0, mean, s)),
    }
}

/// The last time decay computed while processing one event. The features of a key usually
/// share the time since their last value, so one `exp` serves them all.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecayMemo {
    last: Option<(i64, i64, f64)>,
}

impl DecayMemo {
    /// `0.5^(dt/h)`, computed as `exp(dt · ln(0.5)/h)`: the same value, a fraction of powf's cost.
    fn decay(&mut self, dt: i64, halflife_ms: i64) -> f64 {
        match self.last {
            Some((d, h, v)) if d == dt && h == halflife_ms => v,
            _ => {
                let v = (dt as f64 * (-std::f64::consts::LN_2 / halflife_ms as f64)).exp();
                self.last = Some((dt, halflife_ms, v));
                v
            }
        }
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
                match window {
                    Window::SlidingTime { size_ms } => {
                        let keep_above = newest_ts.saturating_sub(*size_ms + max_disorder_ms);
                        b.advance(t.saturating_sub(*size_ms), keep_above);
                    }
                    Window::Tumbling { size_ms } => {
                        let lo = bucket_start(t, *size_ms) - 1;
                        let newest_lo = bucket_start(newest_ts, *size_ms) - 1;
                        b.advance(lo, newest_lo.saturating_sub(max_disorder_ms));
                    }
                    _ => {}
                }
                let count = match window {
                    Window::SlidingCount { count } => Some(*count),
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
                learn_predict(include_current, x, b, add, |b| b.center_scale(method))
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
                let b = bucket_start(t, size);
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
                let cs = if b == *bucket {
                    previous
                        .as_ref()
                        .map(|p| p.center_scale(method))
                        .unwrap_or(CenterScale::empty(0))
                } else {
                    // An out-of-order event (processing time) for an older bucket.
                    CenterScale::empty(0)
                };
                if let Some(x) = x
                    && b == *bucket
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
                let update = |e: &mut Ewm, x: f64| {
                    if e.n == 0 {
                        *e = Ewm {
                            n: 1,
                            mean: x,
                            var: 0.0,
                        };
                    } else {
                        let d = x - e.mean;
                        e.mean += alpha * d;
                        e.var = (1.0 - alpha) * (e.var + d * alpha * d);
                        e.n += 1;
                    }
                };
                learn_predict(include_current, x, e, update, |e| {
                    ew_cs(e.n, e.mean, e.var, method)
                })
            }
            Accumulator::EwmTime(e) => {
                let h = match window {
                    Window::EwmTime { halflife_ms } => *halflife_ms,
                    _ => 1,
                };
                let update = |e: &mut EwmTime, x: f64| {
                    if e.n == 0 {
                        *e = EwmTime {
                            n: 1,
                            last_ts: t,
                            weight: 1.0,
                            mean: x,
                            s: 0.0,
                        };
                        return;
                    }
                    // Out-of-order timestamps (processing time) count as simultaneous.
                    let d = memo.decay((t - e.last_ts).max(0), h);
                    e.weight = d * e.weight + 1.0;
                    e.s *= d;
                    let m_new = e.mean + (x - e.mean) / e.weight;
                    e.s += (x - e.mean) * (x - m_new);
                    e.mean = m_new;
                    e.last_ts = e.last_ts.max(t);
                    e.n += 1;
                };
                learn_predict(include_current, x, e, update, |e| {
                    let var = if e.weight > 0.0 { e.s / e.weight } else { 0.0 };
                    ew_cs(e.n, e.mean, var, method)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_values_survive_their_byte_encoding_exactly() {
        let times = [
            0,
            1,
            -1,
            i64::MAX,
            i64::MIN,
            1_795_000_000_000,
            1_795_000_000_000,
            5,
        ];
        let values = [
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            1e300,
            -7.25,
            f64::MAX,
            3.5,
            1.0 / 3.0,
        ];
        let items: VecDeque<Item> = times
            .iter()
            .zip(values)
            .map(|(&ts, x)| Item { ts, x })
            .collect();
        let bytes = postcard::to_stdvec(&TimeDeltas(&items)).expect("serialize");
        let blob: Blob = postcard::from_bytes(&bytes).expect("deserialize");
        let back = decode_deltas(&blob.0).expect("decode");
        assert_eq!(back.len(), items.len());
        for (a, b) in back.iter().zip(&items) {
            assert_eq!((a.ts, a.x.to_bits()), (b.ts, b.x.to_bits()));
        }
        // A steady stream costs a byte or two per time.
        let steady: VecDeque<Item> = (0..100)
            .map(|i| Item {
                ts: 1_795_000_000_000 + i * 1_000,
                x: 1.0,
            })
            .collect();
        let bytes = postcard::to_stdvec(&TimeDeltas(&steady)).expect("serialize");
        assert!(bytes.len() < 100 * 10 + 16, "{} bytes", bytes.len());
        // Cut anywhere inside a value or a time: an error, not a wrong window.
        let blob: Blob = postcard::from_bytes(&bytes).expect("deserialize");
        for cut in [1, 5, blob.0.len() - 1] {
            assert!(decode_deltas(&blob.0[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_deltas(&[0xff; 12]).is_err(), "an overlong time");
    }
}
