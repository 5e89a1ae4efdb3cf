//! The event-time buffer of one partition: events wait here until the watermark passes them
//! and leave in `(ts, seq)` order.
//!
//! Events arrive nearly in time order, in a few interleaved ascending runs (sensors batch
//! their sends, producers interleave them). The buffer keeps such runs as they come, each a
//! deque in `(ts, seq)` order (patience sorting): an event joins the run it last joined if it
//! is not older than that run's newest, else the run with the newest tail not after it, else
//! starts a run. Releasing takes the smallest head among the runs from a heap of at most
//! `MAX_RUNS` 24-byte keys, which stays in L1 cache; events move only when they leave. When
//! the order is so scrambled that runs would exceed `MAX_RUNS`, the rest go to a heap of keys
//! over a slab. (A heap of whole events, the first version, moved about 100 bytes per level
//! and missed the cache on most comparisons: 9% of the core benchmark.)

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};

use super::Event;

/// Runs kept at once; the disorder of real streams needs a few dozen.
const MAX_RUNS: usize = 128;

type Key = (i64, i64);

fn key<P>(e: &Event<P>) -> Key {
    (e.ts_ms, e.seq)
}

/// Keys `(ts, seq, where)`, smallest first: the heads of the runs and of the overflow (where
/// is the run, or `OVERFLOW`), and the overflow's events (where is the slab slot).
type Heap = BinaryHeap<Reverse<(i64, i64, u32)>>;

/// `where` of an overflow heap entry (runs are numbered below it).
const OVERFLOW: u32 = u32::MAX;

#[derive(Clone)]
pub struct Reorder<P> {
    /// Ascending runs; `None` slots are free (listed in `free_runs`).
    runs: Vec<Option<VecDeque<Event<P>>>>,
    /// The newest key of each run (meaningless for free slots).
    tails: Vec<Key>,
    free_runs: Vec<u32>,
    /// The run the last event joined.
    last: Option<u32>,
    /// One entry per non-empty run (its head), plus one for the overflow's smallest.
    heads: Heap,
    /// Events that found no run: a heap of keys over a slab.
    overflow: Heap,
    slab: Vec<Option<Event<P>>>,
    free_slab: Vec<u32>,
    len: usize,
}

impl<P> Default for Reorder<P> {
    fn default() -> Self {
        Reorder {
            runs: Vec::new(),
            tails: Vec::new(),
            free_runs: Vec::new(),
            last: None,
            heads: BinaryHeap::new(),
            overflow: BinaryHeap::new(),
            slab: Vec::new(),
            free_slab: Vec::new(),
            len: 0,
        }
    }
}

impl<P: std::fmt::Debug> std::fmt::Debug for Reorder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reorder")
            .field("len", &self.len)
            .field("runs", &(self.runs.len() - self.free_runs.len()))
            .field("overflow", &self.overflow.len())
            .finish()
    }
}

impl<P> Reorder<P> {
    pub fn push(&mut self, ev: Event<P>) {
        let k = key(&ev);
        self.len += 1;
        let fits = |r: u32| self.runs[r as usize].is_some() && self.tails[r as usize] <= k;
        let run = match self.last.filter(|&r| fits(r)) {
            Some(r) => Some(r),
            // The run whose tail is the newest not after this event.
            None => (0..self.runs.len() as u32)
                .filter(|&r| fits(r))
                .max_by_key(|&r| self.tails[r as usize]),
        };
        if let Some(r) = run {
            if let Some(q) = &mut self.runs[r as usize] {
                q.push_back(ev);
            }
            self.tails[r as usize] = k;
            self.last = Some(r);
            return;
        }
        if self.runs.len() - self.free_runs.len() < MAX_RUNS {
            let r = match self.free_runs.pop() {
                Some(r) => r,
                None => {
                    self.runs.push(None);
                    self.tails.push(k);
                    (self.runs.len() - 1) as u32
                }
            };
            self.runs[r as usize] = Some(VecDeque::from([ev]));
            self.tails[r as usize] = k;
            self.heads.push(Reverse((k.0, k.1, r)));
            self.last = Some(r);
            return;
        }
        let slot = match self.free_slab.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(ev);
                s
            }
            None => {
                self.slab.push(Some(ev));
                (self.slab.len() - 1) as u32
            }
        };
        let was_top = self.overflow.peek().map(|Reverse((t, s, _))| (*t, *s));
        self.overflow.push(Reverse((k.0, k.1, slot)));
        // The overflow is represented in `heads` by its smallest key.
        if was_top.is_none_or(|t| k < t) {
            if was_top.is_some() {
                self.heads.retain(|Reverse((_, _, w))| *w != OVERFLOW);
            }
            self.heads.push(Reverse((k.0, k.1, OVERFLOW)));
        }
    }

    /// The earliest event if its time is at most `wm`.
    pub fn pop_until(&mut self, wm: i64) -> Option<Event<P>> {
        let &Reverse((ts, _, from)) = self.heads.peek()?;
        if ts > wm {
            return None;
        }
        self.heads.pop();
        self.len -= 1;
        if from == OVERFLOW {
            let Reverse((_, _, slot)) = self.overflow.pop()?;
            let ev = self.slab.get_mut(slot as usize)?.take();
            if let Some(Reverse((t, s, _))) = self.overflow.peek() {
                self.heads.push(Reverse((*t, *s, OVERFLOW)));
                self.free_slab.push(slot);
            } else {
                self.slab.clear();
                self.free_slab.clear();
            }
            return ev;
        }
        let r = from as usize;
        let q = self.runs.get_mut(r)?.as_mut()?;
        let ev = q.pop_front();
        match q.front() {
            Some(next) => {
                let k = key(next);
                self.heads.push(Reverse((k.0, k.1, from)));
            }
            None => {
                self.runs[r] = None;
                self.free_runs.push(from);
                if self.last == Some(from) {
                    self.last = None;
                }
            }
        }
        ev
    }

    /// The earliest event, which `pop_until` hands out next unless an earlier one comes first.
    pub fn peek(&self) -> Option<&Event<P>> {
        let &Reverse((_, _, from)) = self.heads.peek()?;
        if from == OVERFLOW {
            let &Reverse((_, _, slot)) = self.overflow.peek()?;
            return self.slab.get(slot as usize)?.as_ref();
        }
        self.runs.get(from as usize)?.as_ref()?.front()
    }

    /// Smallest `seq` buffered.
    pub fn min_seq(&self) -> Option<i64> {
        self.iter().map(|e| e.seq).min()
    }

    /// Change every buffered event in place (keys and times must stay as they are).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut Event<P>)) {
        self.runs.iter_mut().flatten().flatten().for_each(&mut f);
        self.slab.iter_mut().flatten().for_each(f);
    }

    /// Every buffered event, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Event<P>> {
        self.runs
            .iter()
            .flatten()
            .flatten()
            .chain(self.slab.iter().flatten())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Checkpoints hold the buffered events as one list in no particular order (the runs are
/// rebuilt when it is read; the release order is the total `(ts, seq)` order either way).
impl<P: Serialize> Serialize for Reorder<P> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct All<'a, P>(&'a Reorder<P>);
        impl<P: Serialize> Serialize for All<'_, P> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // The exact length up front: postcard writes it before the elements.
                let mut seq = s.serialize_seq(Some(self.0.len))?;
                for ev in self.0.iter() {
                    seq.serialize_element(ev)?;
                }
                seq.end()
            }
        }
        let mut st = s.serialize_struct("Reorder", 1)?;
        st.serialize_field("events", &All(self))?;
        st.end()
    }
}

impl<'de, P: Deserialize<'de>> Deserialize<'de> for Reorder<P> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(bound(deserialize = "P: Deserialize<'de>"))]
        struct Repr<P> {
            events: Vec<Event<P>>,
        }
        let Repr { mut events } = Repr::deserialize(d)?;
        events.sort_unstable_by_key(key);
        let mut r = Reorder::default();
        for ev in events {
            r.push(ev);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests;
