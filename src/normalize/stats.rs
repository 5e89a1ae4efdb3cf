//! Numerically careful building blocks for window statistics.
//!
//! Everything here is exact where exactness is possible (counts, min, max, order statistics)
//! and backward-stable elsewhere: moments are accumulated with Welford's update relative to a
//! per-stream shift and combined with Chan et al.'s pairwise merge. Nothing ever subtracts an
//! evicted value from a running sum: sliding windows use Two-Stacks, so an eviction drops a
//! precomputed suffix aggregate instead (see `TwoStacks`).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

mod sorted;
pub use sorted::{Ranked, SortedValues};

/// A value in a window with the event time it arrived with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub ts: i64,
    pub x: f64,
}

/// An aggregate over a multiset of values that two-stacks can combine. Counts are kept by the
/// caller (they are implied by stack positions) so an aggregate stays 16 bytes.
pub trait Summary: Copy + std::fmt::Debug {
    fn of(x: f64, shift: f64) -> Self;
    /// Add one value to an aggregate over `n` values (a cheaper special case of `merge`).
    fn add(a: &Self, n: u64, x: f64, shift: f64) -> Self {
        Self::merge(a, n, &Self::of(x, shift), 1)
    }
    /// Combine `a` (over `na` values) with `b` (over `nb` values); both counts are > 0.
    fn merge(a: &Self, na: u64, b: &Self, nb: u64) -> Self;
}

/// Mean and sum of squared deviations of shifted values (`x - shift`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MeanM2 {
    pub mean: f64,
    pub m2: f64,
}

impl Summary for MeanM2 {
    fn of(x: f64, shift: f64) -> Self {
        MeanM2 {
            mean: x - shift,
            m2: 0.0,
        }
    }

    fn add(a: &Self, n: u64, x: f64, shift: f64) -> Self {
        // Welford: one division instead of the general merge's two.
        let v = x - shift;
        let d = v - a.mean;
        let mean = a.mean + d / (n + 1) as f64;
        MeanM2 {
            mean,
            m2: a.m2 + d * (v - mean),
        }
    }

    fn merge(a: &Self, na: u64, b: &Self, nb: u64) -> Self {
        // Chan, Golub and LeVeque's pairwise update. With identical means the delta is exactly
        // zero, so a constant window keeps m2 == 0 exactly.
        let (fa, fb) = (na as f64, nb as f64);
        let wb = fb / (fa + fb);
        let delta = b.mean - a.mean;
        MeanM2 {
            mean: a.mean + delta * wb,
            m2: a.m2 + b.m2 + delta * delta * (fa * wb),
        }
    }
}

/// Exact minimum and maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinMax {
    pub min: f64,
    pub max: f64,
}

impl Summary for MinMax {
    fn of(x: f64, _shift: f64) -> Self {
        MinMax { min: x, max: x }
    }

    fn merge(a: &Self, _na: u64, b: &Self, _nb: u64) -> Self {
        MinMax {
            min: a.min.min(b.min),
            max: a.max.max(b.max),
        }
    }
}

/// Running moments and extrema over an unbounded (append-only) stream of values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Running {
    pub n: u64,
    /// The first value seen: moments are accumulated relative to it for conditioning.
    pub shift: f64,
    pub mean: f64,
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Running {
    pub fn add(&mut self, x: f64) {
        if self.n == 0 {
            *self = Running {
                n: 1,
                shift: x,
                mean: 0.0,
                m2: 0.0,
                min: x,
                max: x,
            };
            return;
        }
        self.n += 1;
        let d = (x - self.shift) - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * ((x - self.shift) - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }
}

/// Two-Stacks sliding aggregation (Tangwongsan et al., "In-order sliding-window aggregation
/// in worst-case constant time" describes it as the baseline), with a sparse front stack. The
/// window's items live in the caller's deque; the first `front_len` of them form the front
/// region, and `back` aggregates the rest. The front stack holds suffix aggregates of the
/// front region (an aggregate of "length" `l` covers its last `l` items) for every multiple of
/// `SPARSE` and, densely, for the lengths of the partial block at its head, so its top always
/// covers the whole region. Popping the front drops the top; when that exposes a multiple
/// below the head, the block above it is computed again from the items (`SPARSE - 1` merges
/// every `SPARSE` pops). When the region is empty it is rebuilt from every item in one
/// backward pass (amortised O(1) per item). Every aggregate is the very expression the dense
/// backward pass would give, bit for bit, and checkpoints do not hold the stacks: `restore`
/// recomputes them from the items.
#[derive(Debug, Clone)]
pub struct TwoStacks<S> {
    front: Vec<S>,
    front_len: usize,
    back: Option<S>,
    back_n: u64,
}

/// One front aggregate is kept for every this many items: the stack of a 60-value window
/// holds 7 to 14 aggregates instead of 60, and each item costs one more merge.
const SPARSE: usize = 8;

/// How many aggregates the front stack holds for a region of `len` items.
fn stack_size(len: usize) -> usize {
    len / SPARSE + len % SPARSE
}

/// One step of the backward pass: the aggregate of length `l + 1` from that of length `l`.
fn extend<S: Summary>(x: f64, shift: f64, acc: Option<&S>, l: usize) -> S {
    let one = S::of(x, shift);
    match acc {
        Some(a) => S::merge(&one, 1, a, l as u64),
        None => one,
    }
}

impl<S: Summary> Default for TwoStacks<S> {
    fn default() -> Self {
        TwoStacks {
            front: Vec::new(),
            front_len: 0,
            back: None,
            back_n: 0,
        }
    }
}

impl<S: Summary> TwoStacks<S> {
    pub fn push_back(&mut self, x: f64, shift: f64) {
        self.back = Some(match &self.back {
            Some(b) => S::add(b, self.back_n, x, shift),
            None => S::of(x, shift),
        });
        self.back_n += 1;
    }

    /// Add an item that now precedes every item in the window (used when a processing-time
    /// query reaches further back than the last one).
    pub fn push_front(&mut self, x: f64, shift: f64) {
        let len = self.front_len;
        let agg = extend(x, shift, self.front.last(), len);
        // A new multiple closes the head's block: its dense aggregates are dropped.
        self.front.truncate(stack_size(len + 1) - 1);
        self.front.push(agg);
        self.front_len += 1;
    }

    /// Drop the oldest item. `items` is the window's content *before* the pop. The caller
    /// rebuilds first when `needs_rebuild` says so (that is where it may move the shift).
    pub fn pop_front(&mut self, items: &VecDeque<Item>, shift: f64) {
        self.front.pop();
        self.front_len = self.front_len.saturating_sub(1);
        // The new head's block, computed up from the multiple below it; the items of the
        // region now start at `items[1]`.
        while self.front.len() < stack_size(self.front_len) {
            // The top's length: the multiples below the head, then the block's aggregates.
            let multiples = self.front_len / SPARSE;
            let l = multiples * SPARSE + (self.front.len() - multiples);
            let x = items[self.front_len - l].x;
            let agg = extend(x, shift, self.front.last(), l);
            self.front.push(agg);
        }
        // The front stack only drains between rebuilds: give memory back as it does, halving
        // at most (each shrink copies what is left, so this stays amortised O(1) per pop).
        let len = self.front.len();
        if self.front.capacity() > 2 * len + 16 {
            self.front.shrink_to(len + len / 2 + 8);
        }
    }

    /// Load the front aggregate (see `Accumulator::warm`).
    pub fn front_bits(&self) -> u64 {
        if let Some(f) = self.front.last() {
            std::hint::black_box(*f);
        }
        self.front_len as u64
    }

    /// The front stack is exhausted: the next pop needs a rebuild from the items.
    pub fn needs_rebuild(&self) -> bool {
        self.front_len == 0
    }

    /// Recompute every aggregate from `items`, all into the front stack.
    pub fn rebuild(&mut self, items: &VecDeque<Item>, shift: f64) {
        *self = TwoStacks::restore(items, items.len(), shift);
    }

    /// How many of the window's oldest items the front stack covers (the rest are in `back`).
    pub fn front_len(&self) -> usize {
        self.front_len
    }

    /// The aggregate exactly as it was when `items` was the window and the front stack covered
    /// the first `front_len` of them: the front stack is the backward pass of `rebuild` (a
    /// `push_front` is one more step of that pass) and `back` is the in-order `add` of
    /// `push_back`, so every bit comes back and a checkpoint need not store the stacks.
    pub fn restore(items: &VecDeque<Item>, front_len: usize, shift: f64) -> Self {
        let front_len = front_len.min(items.len());
        let mut t = TwoStacks {
            front_len,
            ..TwoStacks::default()
        };
        let head_block = front_len / SPARSE * SPARSE;
        t.front.reserve_exact(stack_size(front_len));
        let mut acc: Option<S> = None;
        for (l, it) in items.range(..front_len).rev().enumerate() {
            let next = extend(it.x, shift, acc.as_ref(), l);
            if (l + 1) % SPARSE == 0 || l + 1 > head_block {
                t.front.push(next);
            }
            acc = Some(next);
        }
        for it in items.iter().skip(front_len) {
            t.push_back(it.x, shift);
        }
        t
    }

    /// The aggregate over the whole window and its count, or `None` when empty.
    pub fn query(&self) -> Option<(S, u64)> {
        let nf = self.front_len as u64;
        match (self.front.last(), &self.back) {
            (Some(f), Some(b)) => Some((S::merge(f, nf, b, self.back_n), nf + self.back_n)),
            (Some(f), None) => Some((*f, nf)),
            (None, Some(b)) => Some((*b, self.back_n)),
            (None, None) => None,
        }
    }

    /// Shrink the front stack's capacity when `over(capacity, len)` says it is too large.
    pub fn trim(&mut self, over: fn(usize, usize) -> bool, room: fn(usize) -> usize) {
        if over(self.front.capacity(), self.front.len()) {
            self.front.shrink_to(room(self.front.len()));
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.front.capacity() * std::mem::size_of::<S>()
    }
}

/// The `q` quantile of sorted values with linear interpolation at `q·(n − 1)`, numpy's default.
pub fn quantile<R: Ranked + ?Sized>(sorted: &R, q: f64) -> Option<f64> {
    let n = sorted.count();
    if n == 0 {
        return None;
    }
    let pos = q * (n - 1) as f64;
    let lo = pos.floor();
    let frac = pos - lo;
    let (a, b) = sorted.pair(lo as usize)?;
    let Some(b) = b else {
        return Some(a);
    };
    // numpy's _lerp: symmetric form so that the result is exact at both ends.
    Some(if frac >= 0.5 {
        b - (b - a) * (1.0 - frac)
    } else {
        a + (b - a) * frac
    })
}

/// `Q(q_hi) − Q(q_lo)` without the cancellation of subtracting two nearly equal quantiles:
/// each quantile is `a + (b − a)·f`, so the spread is `(a_hi − a_lo) + (b_hi − a_hi)·f_hi −
/// (b_lo − a_lo)·f_lo`, where every difference of neighbours is exact or nearly so.
pub fn quantile_spread<R: Ranked + ?Sized>(sorted: &R, q_lo: f64, q_hi: f64) -> Option<f64> {
    let n = sorted.count();
    if n == 0 {
        return None;
    }
    let parts = |q: f64| -> Option<(f64, f64)> {
        let pos = q * (n - 1) as f64;
        let (a, b) = sorted.pair(pos.floor() as usize)?;
        let step = b.map_or(0.0, |b| (b - a) * (pos - pos.floor()));
        Some((a, step))
    };
    let (a_lo, s_lo) = parts(q_lo)?;
    let (a_hi, s_hi) = parts(q_hi)?;
    Some((a_hi - a_lo) + (s_hi - s_lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let m2 = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>();
        (mean, m2)
    }

    #[test]
    fn two_stacks_matches_recomputation() {
        let xs: Vec<f64> = (0..200)
            .map(|i| ((i * 37) % 101) as f64 * 0.5 - 3.0)
            .collect();
        let mut items = VecDeque::new();
        let mut ts = TwoStacks::<MeanM2>::default();
        for (i, &x) in xs.iter().enumerate() {
            items.push_back(Item { ts: i as i64, x });
            ts.push_back(x, 1.0);
            while items.len() > 17 {
                if ts.needs_rebuild() {
                    ts.rebuild(&items, 1.0);
                }
                ts.pop_front(&items, 1.0);
                items.pop_front();
            }
            let window: Vec<f64> = items.iter().map(|it| it.x).collect();
            let (mean, m2) = naive(&window);
            let (agg, n) = ts.query().unwrap();
            assert_eq!(n as usize, window.len());
            assert!((agg.mean + 1.0 - mean).abs() < 1e-12);
            assert!((agg.m2 - m2).abs() < 1e-9 * m2.max(1.0));
        }
    }

    /// The dense Two-Stacks (an aggregate for every front item), as the reference.
    #[derive(Default)]
    struct Dense {
        front: VecDeque<MeanM2>,
        back: Option<MeanM2>,
        back_n: u64,
    }

    impl Dense {
        fn rebuild(&mut self, items: &VecDeque<Item>, shift: f64) {
            *self = Dense::default();
            for it in items.iter().rev() {
                let n = self.front.len();
                let next = extend(it.x, shift, self.front.front(), n);
                self.front.push_front(next);
            }
        }
        fn push_back(&mut self, x: f64, shift: f64) {
            self.back = Some(match &self.back {
                Some(b) => MeanM2::add(b, self.back_n, x, shift),
                None => MeanM2::of(x, shift),
            });
            self.back_n += 1;
        }
        fn push_front(&mut self, x: f64, shift: f64) {
            let n = self.front.len();
            let next = extend(x, shift, self.front.front(), n);
            self.front.push_front(next);
        }
        fn query(&self) -> Option<(MeanM2, u64)> {
            let nf = self.front.len() as u64;
            match (self.front.front(), &self.back) {
                (Some(f), Some(b)) => {
                    Some((MeanM2::merge(f, nf, b, self.back_n), nf + self.back_n))
                }
                (Some(f), None) => Some((*f, nf)),
                (None, Some(b)) => Some((*b, self.back_n)),
                (None, None) => None,
            }
        }
    }

    fn bits(q: Option<(MeanM2, u64)>) -> Option<(u64, u64, u64)> {
        q.map(|(a, n)| (a.mean.to_bits(), a.m2.to_bits(), n))
    }

    /// Pushes at both ends and pops, in a pseudo-random mix over windows of every size around
    /// the sparse spacing: the sparse stack answers bit for bit what the dense one does, and
    /// a stack restored from the items at any moment answers the same.
    #[test]
    fn sparse_front_stack_is_bit_for_bit_the_dense_one() {
        let shift = 0.37;
        let (mut items, mut sparse, mut dense) = (
            VecDeque::new(),
            TwoStacks::<MeanM2>::default(),
            Dense::default(),
        );
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let x = (seed % 10_007) as f64 * 0.013 - 40.0;
            let target = 1 + (step as usize / 500) % 40;
            match seed % 16 {
                0 => {
                    items.push_front(Item { ts: step, x });
                    sparse.push_front(x, shift);
                    dense.push_front(x, shift);
                }
                _ if items.len() > target => {
                    if sparse.needs_rebuild() {
                        assert!(dense.front.is_empty());
                        sparse.rebuild(&items, shift);
                        dense.rebuild(&items, shift);
                    }
                    sparse.pop_front(&items, shift);
                    dense.front.pop_front();
                    items.pop_front();
                }
                _ => {
                    items.push_back(Item { ts: step, x });
                    sparse.push_back(x, shift);
                    dense.push_back(x, shift);
                }
            }
            assert_eq!(sparse.front_len(), dense.front.len());
            assert_eq!(bits(sparse.query()), bits(dense.query()), "step {step}");
            let restored = TwoStacks::<MeanM2>::restore(&items, sparse.front_len(), shift);
            assert_eq!(bits(restored.query()), bits(sparse.query()), "step {step}");
            assert_eq!(sparse.front.len(), stack_size(sparse.front_len()));
        }
    }

    #[test]
    fn constant_window_has_exactly_zero_m2() {
        let mut items = VecDeque::new();
        let mut ts = TwoStacks::<MeanM2>::default();
        for i in 0..50 {
            items.push_back(Item { ts: i, x: 0.1 });
            ts.push_back(0.1, 7.3);
            if items.len() > 10 {
                if ts.needs_rebuild() {
                    ts.rebuild(&items, 7.3);
                }
                ts.pop_front(&items, 7.3);
                items.pop_front();
            }
            assert_eq!(ts.query().unwrap().0.m2, 0.0);
        }
    }

    #[test]
    fn quantiles_follow_numpy_linear() {
        let v: &[f64] = &[1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(v, 0.5), Some(2.5));
        assert_eq!(quantile(v, 0.25), Some(1.75));
        assert_eq!(quantile(v, 0.75), Some(3.25));
        assert_eq!(quantile(v, 1.0), Some(4.0));
        assert_eq!(quantile(&[5.0][..], 0.25), Some(5.0));
        assert_eq!(quantile(&[][..], 0.5), None);
        assert_eq!(quantile_spread(v, 0.25, 0.75), Some(1.5));
        assert_eq!(quantile_spread(&[2.0][..], 0.25, 0.75), Some(0.0));
    }

    #[test]
    fn running_tracks_extrema_and_moments() {
        let mut r = Running::default();
        for x in [3.0, 1.0, 4.0, 1.0, 5.0] {
            r.add(x);
        }
        assert_eq!((r.n, r.min, r.max), (5, 1.0, 5.0));
        let (mean, m2) = naive(&[3.0, 1.0, 4.0, 1.0, 5.0]);
        assert!((r.shift + r.mean - mean).abs() < 1e-15);
        assert!((r.m2 - m2).abs() < 1e-12);
    }
}
