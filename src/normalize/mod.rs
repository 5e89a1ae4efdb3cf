//! Windowed running normalization per key: pure, synchronous, no I/O.
//!
//! This module owns the semantics of `docs/normalization-spec.md`: event-time ordering with
//! a per-partition watermark, late-event policy, the statistic streams per
//! `(partition, key, feature, normalization)`, warm-up, degenerate scales and statuses. It
//! knows nothing of Kafka or files: an event carries an opaque payload `P` that comes back
//! out with the result (the wiring puts Kafka coordinates and pass-through fields there).

mod delta;
mod journal;
pub mod reorder;
pub mod spec;
pub mod stats;
pub mod window;

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use delta::PartitionDelta;
use journal::Journal;
use reorder::Reorder;
pub use spec::{Degenerate, LatePolicy, LayerSpec, Method, NormSpec, Plan, Slot, TimeMode, Window};
use window::{Accumulator, CenterScale, DecayMemo};

/// A feature as it came in the event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum FeatureValue {
    /// Absent or `null`.
    Missing,
    /// Present but not a finite number.
    Invalid,
    Value(f64),
}

impl FeatureValue {
    pub fn valid(self) -> Option<f64> {
        match self {
            FeatureValue::Value(x) if x.is_finite() => Some(x),
            _ => None,
        }
    }
}

/// A decoded event; `seq` is its position in its partition (the Kafka offset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event<P> {
    pub key: Box<str>,
    pub ts_ms: i64,
    pub seq: i64,
    pub features: Vec<FeatureValue>,
    pub payload: P,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    Ok,
    Warmup,
    Degenerate,
    Missing,
    Invalid,
    Late,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warmup => "warmup",
            Status::Degenerate => "degenerate",
            Status::Missing => "missing",
            Status::Invalid => "invalid",
            Status::Late => "late",
        }
    }
}

/// The result of one slot (feature × normalization) for one event. Nulls are stored as NaN
/// (none of the three can be NaN otherwise) to keep a result at 40 bytes instead of 64: every
/// event writes one per slot, so this is memory traffic on the hot path.
#[derive(Debug, Clone, Copy)]
pub struct SlotResult {
    y: f64,
    center: f64,
    scale: f64,
    pub n: u64,
    pub status: Status,
}

fn or_nan(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

fn some(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

impl SlotResult {
    pub fn new(
        y: Option<f64>,
        center: Option<f64>,
        scale: Option<f64>,
        n: u64,
        status: Status,
    ) -> Self {
        SlotResult {
            y: or_nan(y),
            center: or_nan(center),
            scale: or_nan(scale),
            n,
            status,
        }
    }

    /// A result without a value (warm-up, missing, invalid, …).
    pub fn null(n: u64, status: Status) -> Self {
        SlotResult::new(None, None, None, n, status)
    }

    pub fn y(&self) -> Option<f64> {
        some(self.y)
    }

    pub fn center(&self) -> Option<f64> {
        some(self.center)
    }

    pub fn scale(&self) -> Option<f64> {
        some(self.scale)
    }
}

impl PartialEq for SlotResult {
    fn eq(&self, o: &Self) -> bool {
        (self.y(), self.center(), self.scale(), self.n, self.status)
            == (o.y(), o.center(), o.scale(), o.n, o.status)
    }
}

/// Emitted events with their results: row `i` has `slots` results, in slot order
/// (`Plan::slots`), stored flat so that emitting a row allocates nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted<P> {
    slots: usize,
    events: Vec<Event<P>>,
    results: Vec<SlotResult>,
}

impl<P> Emitted<P> {
    pub fn new(slots: usize) -> Self {
        Emitted {
            slots,
            events: Vec::new(),
            results: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn clear(&mut self) {
        self.events.clear();
        self.results.clear();
    }

    pub fn events(&self) -> &[Event<P>] {
        &self.events
    }

    /// The results of row `i` (empty when out of range).
    pub fn results(&self, i: usize) -> &[SlotResult] {
        self.results
            .get(i * self.slots..(i + 1) * self.slots)
            .unwrap_or(&[])
    }

    pub fn rows(&self) -> impl Iterator<Item = (&Event<P>, &[SlotResult])> {
        self.events
            .iter()
            .zip(self.results.chunks_exact(self.slots.max(1)))
    }
}

/// Counters the telemetry reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineCounters {
    pub late: u64,
    /// Keys dropped: idle past their TTL, or the least recently updated over the memory budget.
    pub evicted_keys: u64,
    /// Of those, the keys dropped over the memory budget.
    pub budget_evicted_keys: u64,
}

/// The compiled plan shared by every partition.
#[derive(Debug)]
pub struct Engine {
    plan: Plan,
    slots: Vec<Slot>,
    /// For each slot with a normalization: its index into a key's accumulators.
    acc_of_slot: Vec<Option<usize>>,
    accs: Vec<(usize, usize)>,
}

impl Engine {
    pub fn new(plan: Plan) -> Arc<Engine> {
        let slots = plan.slots();
        let mut accs = Vec::new();
        let acc_of_slot = slots
            .iter()
            .map(|s| {
                s.norm.map(|ni| {
                    accs.push((s.feature, ni));
                    accs.len() - 1
                })
            })
            .collect();
        Arc::new(Engine {
            plan,
            slots,
            acc_of_slot,
            accs,
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// An empty output batch for this engine's slots.
    pub fn emitted<P>(&self) -> Emitted<P> {
        Emitted::new(self.slots.len())
    }

    /// What each of a key's accumulators is, in order: its output column, window and method.
    /// A checkpoint records these so that a changed configuration can keep the state of every
    /// normalization it still has.
    pub fn acc_signatures(&self) -> Vec<String> {
        self.accs
            .iter()
            .filter_map(|&(fi, ni)| {
                let n = self.plan.norms.get(ni)?;
                let f = self.plan.features.get(fi)?;
                Some(format!("{f}_{}|{:?}|{:?}", n.name, n.window, n.method))
            })
            .collect()
    }

    fn new_key(&self) -> KeyState {
        KeyState {
            journal: Journal::default(),
            accs: self
                .accs
                .iter()
                .filter_map(|&(_, ni)| {
                    let n = self.plan.norms.get(ni)?;
                    Some(Accumulator::new(&n.window, &n.method))
                })
                .collect(),
            newest_ts: i64::MIN,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyState {
    accs: Vec<Accumulator>,
    newest_ts: i64,
    /// What changed since the last checkpoint (not part of one).
    #[serde(skip)]
    journal: Journal,
}

impl KeyState {
    /// Ask for the cache lines of this key's accumulators (not yet what they point to).
    fn prefetch(&self) {
        let bytes = std::mem::size_of_val(self.accs.as_slice());
        let base = self.accs.as_ptr().cast::<u8>();
        for off in (0..bytes).step_by(64) {
            prefetch(base.wrapping_add(off));
        }
    }
}

/// Ask the CPU to bring the cache line holding `p` in, without waiting for it. A hint: it
/// changes no result, and does nothing on targets without the instruction.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing the program sees, whatever the
    // address; SSE is part of every x86_64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// What writing a key's accumulators whole costs, about.
fn accs_bytes(accs: &[Accumulator]) -> usize {
    accs.iter()
        .map(|a| std::mem::size_of::<Accumulator>() + a.footprint().0)
        .sum()
}

/// All normalization state of one input partition: watermark, buffered events, keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(serialize = "P: Serialize", deserialize = "P: Deserialize<'de>"))]
pub struct PartitionState<P> {
    max_ts: Option<i64>,
    pending: Reorder<P>,
    keys: HashMap<Box<str>, KeyState, foldhash::fast::RandomState>,
    processed: u64,
    pub counters: EngineCounters,
    /// The checkpoint epoch: key journals of this epoch hold what changed since the last
    /// checkpoint (see `journal`).
    #[serde(skip, default = "first_epoch")]
    epoch: u64,
    /// Keys dropped since the last checkpoint (idle or over the budget).
    #[serde(skip)]
    removed: Vec<Box<str>>,
}

fn first_epoch() -> u64 {
    1
}

impl<P> Default for PartitionState<P> {
    fn default() -> Self {
        PartitionState {
            max_ts: None,
            pending: Reorder::default(),
            keys: HashMap::default(),
            processed: 0,
            counters: EngineCounters::default(),
            epoch: first_epoch(),
            removed: Vec::new(),
        }
    }
}

/// How often (in processed events) idle keys are swept.
const SWEEP_EVERY: u64 = 4096;

impl<P> PartitionState<P> {
    /// The watermark before the next event: `max ts − B`, or −∞ before any event.
    pub fn watermark(&self, engine: &Engine) -> i64 {
        match self.max_ts {
            Some(m) => m.saturating_sub(engine.plan.out_of_orderness_ms),
            None => i64::MIN,
        }
    }

    /// Smallest `seq` still buffered (not yet emitted).
    pub fn min_pending_seq(&self) -> Option<i64> {
        self.pending.min_seq()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Take one event in arrival order. Results ready to write go to `out`; a late event under
    /// the `dead_letter` policy is handed back untouched.
    pub fn push(
        &mut self,
        engine: &Engine,
        ev: Event<P>,
        out: &mut Emitted<P>,
    ) -> Option<Event<P>> {
        if engine.plan.time_mode == TimeMode::ProcessingTime {
            self.max_ts = Some(self.max_ts.map_or(ev.ts_ms, |m| m.max(ev.ts_ms)));
            self.process(engine, ev, false, out);
            return None;
        }
        let wm = self.watermark(engine);
        if ev.ts_ms < wm {
            self.counters.late += 1;
            return match engine.plan.late {
                LatePolicy::DeadLetter => Some(ev),
                LatePolicy::EmitUnchanged => {
                    self.process(engine, ev, true, out);
                    None
                }
            };
        }
        self.max_ts = Some(self.max_ts.map_or(ev.ts_ms, |m| m.max(ev.ts_ms)));
        self.pending.push(ev);
        self.release(engine, self.watermark(engine), out);
        None
    }

    /// End of a bounded input: the watermark moves to +∞ and every buffered event is emitted.
    pub fn finish(&mut self, engine: &Engine, out: &mut Emitted<P>) {
        self.release(engine, i64::MAX, out);
    }

    fn release(&mut self, engine: &Engine, wm: i64, out: &mut Emitted<P>) {
        while let Some(ev) = self.pending.pop_until(wm) {
            self.process(engine, ev, false, out);
        }
    }

    fn process(&mut self, engine: &Engine, ev: Event<P>, late: bool, out: &mut Emitted<P>) {
        // The event after this one is most likely the earliest still buffered: have its key's
        // accumulators come into the cache while this one is worked on.
        if let Some(next) = self.pending.peek()
            && let Some(k) = self.keys.get(&*next.key)
        {
            k.prefetch();
        }
        let epoch = self.epoch;
        let key = match self.keys.get_mut(&*ev.key) {
            Some(k) => k,
            None => self.keys.entry(ev.key.clone()).or_insert_with(|| KeyState {
                journal: Journal::created(epoch),
                ..engine.new_key()
            }),
        };
        if !late {
            let (accs, n) = (&key.accs, engine.plan.features.len());
            key.journal
                .record(epoch, ev.ts_ms, &ev.features, n, || accs_bytes(accs));
        }
        learn(engine, key, ev.ts_ms, &ev.features, late, &mut out.results);
        out.events.push(ev);
        self.processed += 1;
        if self.processed.is_multiple_of(SWEEP_EVERY) {
            self.sweep_idle(engine);
        }
    }

    /// Drop keys idle longer than the TTL (measured against the newest event time).
    pub fn sweep_idle(&mut self, engine: &Engine) {
        let ttl = engine.plan.effective_idle_ttl_ms();
        let (Some(now), true) = (self.max_ts, ttl < i64::MAX) else {
            return;
        };
        let horizon = now
            .saturating_sub(ttl)
            .saturating_sub(engine.plan.out_of_orderness_ms);
        let before = self.keys.len();
        let removed = &mut self.removed;
        self.keys.retain(|name, k| {
            let keep = k.newest_ts > horizon;
            if !keep {
                removed.push(name.clone());
            }
            keep
        });
        self.counters.evicted_keys += (before - self.keys.len()) as u64;
    }

    /// Adapt state checkpointed under another configuration to this engine. `acc_from_old`
    /// gives, for each of this engine's accumulators, the index of the same accumulator in the
    /// old state (if it had it); new ones start empty, dropped ones are forgotten.
    /// `feature_from_old` does the same for the feature values of buffered events, and
    /// `payload` adapts their payloads.
    pub fn migrate(
        &mut self,
        engine: &Engine,
        acc_from_old: &[Option<usize>],
        feature_from_old: &[Option<usize>],
        payload: impl FnMut(&mut P),
    ) {
        let fresh = engine.new_key();
        for k in self.keys.values_mut() {
            k.accs = remap_accs(std::mem::take(&mut k.accs), acc_from_old, &fresh.accs);
        }
        remap_pending(&mut self.pending, feature_from_old, payload);
    }

    /// Estimated bytes this state holds in memory: keys with their window state, and buffered
    /// events (`payload_bytes` tells the heap size of an event's payload).
    /// Returns (keys, buffered events).
    pub fn memory_bytes(&self, payload_bytes: impl Fn(&P) -> usize) -> (usize, usize) {
        let keys: usize = self.keys.iter().map(|(k, s)| key_bytes(k, s)).sum();
        let pending: usize = self
            .pending
            .iter()
            .map(|e| {
                std::mem::size_of::<Event<P>>()
                    + e.key.len()
                    + e.features.capacity() * std::mem::size_of::<FeatureValue>()
                    + payload_bytes(&e.payload)
            })
            .sum();
        (keys, pending)
    }

    /// Drop the least recently updated keys (oldest newest event time first) until the keys
    /// hold at most `target` bytes. Returns the number of keys dropped.
    pub fn evict_to(&mut self, target: usize) -> u64 {
        let mut sizes: Vec<(i64, usize, Box<str>)> = self
            .keys
            .iter()
            .map(|(k, s)| (s.newest_ts, key_bytes(k, s), k.clone()))
            .collect();
        let mut total: usize = sizes.iter().map(|(_, b, _)| b).sum();
        if total <= target {
            return 0;
        }
        sizes.sort_unstable_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
        let mut dropped = 0;
        for (_, bytes, key) in sizes {
            if total <= target {
                break;
            }
            self.keys.remove(&key);
            self.removed.push(key);
            total -= bytes;
            dropped += 1;
        }
        self.counters.evicted_keys += dropped;
        self.counters.budget_evicted_keys += dropped;
        dropped
    }

    /// Bytes of heap held by window values and values retained, summed over keys.
    pub fn state_footprint(&self) -> (usize, usize) {
        self.keys
            .values()
            .flat_map(|k| k.accs.iter())
            .fold((0, 0), |(b, n), a| {
                let (ab, an) = a.footprint();
                (b + ab, n + an)
            })
    }
}

/// One event of a key at time `t`: update the key's statistics (unless the event is late)
/// and push each slot's result. Recovery replays a checkpoint delta's events through this too.
fn learn(
    engine: &Engine,
    key: &mut KeyState,
    t: i64,
    features: &[FeatureValue],
    late: bool,
    results: &mut Vec<SlotResult>,
) {
    let plan = &engine.plan;
    if !late {
        key.newest_ts = key.newest_ts.max(t);
    }
    let newest = key.newest_ts.max(t);
    let max_disorder = match plan.time_mode {
        TimeMode::ProcessingTime => plan.max_disorder_ms,
        TimeMode::EventTime => 0,
    };
    let mut memo = DecayMemo::default();
    let warm = key.accs.iter().fold(0u64, |a, acc| a ^ acc.warm());
    std::hint::black_box(warm);
    let layer = plan.layer.as_ref().map(|l| layer_stats(l, features));
    for (slot, acc_ix) in engine.slots.iter().zip(&engine.acc_of_slot) {
        let fv = features
            .get(slot.feature)
            .copied()
            .unwrap_or(FeatureValue::Missing);
        let spec_acc = slot
            .norm
            .zip(*acc_ix)
            .and_then(|(ni, ai)| Some((plan.norms.get(ni)?, ai)));
        let r = match (spec_acc, &layer) {
            (Some((spec, ai)), _) if ai < key.accs.len() => {
                let acc = &mut key.accs[ai];
                let cs = if late {
                    acc.peek(&spec.method)
                } else {
                    acc.observe(spec, t, fv.valid(), newest, max_disorder, &mut memo)
                };
                let clip = match spec.method {
                    Method::Minmax { a, b, clip: true } => Some((a, b)),
                    _ => None,
                };
                finish_slot(fv, cs, spec.min_count, clip, spec.degenerate, late)
            }
            (None, Some((l, cs))) if slot.norm.is_none() => {
                finish_slot(fv, *cs, l.min_count, None, Degenerate::Unit, late)
            }
            _ => SlotResult::null(0, Status::Missing),
        };
        results.push(r);
    }
}

/// A key's accumulators laid out by another configuration, laid out by this one: for each
/// of `fresh` (this configuration's empty ones), the old one it was, if any.
fn remap_accs(
    mut old: Vec<Accumulator>,
    from_old: &[Option<usize>],
    fresh: &[Accumulator],
) -> Vec<Accumulator> {
    from_old
        .iter()
        .zip(fresh)
        .map(|(from, new)| {
            from.and_then(|i| old.get_mut(i).map(|a| std::mem::replace(a, new.clone())))
                .unwrap_or_else(|| new.clone())
        })
        .collect()
}

/// Buffered events' features and payloads laid out by this configuration.
fn remap_pending<P>(
    pending: &mut Reorder<P>,
    feature_from_old: &[Option<usize>],
    mut payload: impl FnMut(&mut P),
) {
    pending.for_each_mut(|e| {
        let old = std::mem::take(&mut e.features);
        e.features = feature_from_old
            .iter()
            .map(|from| {
                from.and_then(|i| old.get(i).copied())
                    .unwrap_or(FeatureValue::Missing)
            })
            .collect();
        payload(&mut e.payload);
    });
}

/// Memory of one key's entry: the map slot (with its control byte and the spare capacity of a
/// map at 7/8 load), the key text, the accumulators and their heap.
fn key_bytes(key: &str, s: &KeyState) -> usize {
    let slot = (std::mem::size_of::<(Box<str>, KeyState)>() + 1) * 8 / 7;
    slot + key.len()
        + s.accs.capacity() * std::mem::size_of::<Accumulator>()
        + s.accs.iter().map(|a| a.footprint().0).sum::<usize>()
        + s.journal.heap_bytes()
}

fn layer_stats<'a>(l: &'a LayerSpec, features: &[FeatureValue]) -> (&'a LayerSpec, CenterScale) {
    let valid = || {
        l.features
            .iter()
            .filter_map(|&f| features.get(f).and_then(|v| v.valid()))
    };
    let n = valid().count();
    if n == 0 {
        return (l, CenterScale::empty(0));
    }
    let mean = valid().sum::<f64>() / n as f64;
    // Two passes with the compensating term: exact enough for a handful of values.
    let (ss, comp) = valid().fold((0.0, 0.0), |(ss, c), x| {
        (ss + (x - mean) * (x - mean), c + (x - mean))
    });
    let var = (ss - comp * comp / n as f64) / n as f64;
    let scale = (var + l.eps).sqrt();
    (
        l,
        CenterScale {
            n: n as u64,
            value: Some((0.0, mean, scale)),
        },
    )
}

fn finish_slot(
    fv: FeatureValue,
    cs: CenterScale,
    min_count: u64,
    clip: Option<(f64, f64)>,
    degenerate: Degenerate,
    late: bool,
) -> SlotResult {
    let null = |status| SlotResult::null(cs.n, status);
    let x = match fv {
        FeatureValue::Missing => return null(Status::Missing),
        FeatureValue::Invalid => return null(Status::Invalid),
        FeatureValue::Value(x) if !x.is_finite() => return null(Status::Invalid),
        FeatureValue::Value(x) => x,
    };
    let late_or = |s| if late { Status::Late } else { s };
    let Some((shift, c_rel, s)) = cs.value else {
        return null(late_or(Status::Warmup));
    };
    if cs.n < min_count {
        return null(late_or(Status::Warmup));
    }
    let center = shift + c_rel;
    if s == 0.0 {
        return match degenerate {
            Degenerate::Null => null(late_or(Status::Degenerate)),
            Degenerate::Unit => SlotResult::new(
                Some(x - center),
                Some(center),
                Some(1.0),
                cs.n,
                late_or(Status::Degenerate),
            ),
            Degenerate::Zero => SlotResult::new(
                Some(0.0),
                Some(center),
                Some(0.0),
                cs.n,
                late_or(Status::Degenerate),
            ),
        };
    }
    // Relative to the rounded center, so that `x = y·s + center` holds to a few ulp.
    let mut y = (x - center) / s;
    if let Some((a, b)) = clip {
        y = y.clamp(a, b);
    }
    SlotResult::new(Some(y), Some(center), Some(s), cs.n, late_or(Status::Ok))
}

#[cfg(test)]
mod tests;
