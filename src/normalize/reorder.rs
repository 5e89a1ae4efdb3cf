//! The event-time buffer of one partition: events wait here until the watermark passes them
//! and leave in `(ts, seq)` order.
//!
//! Most events arrive in time order, so the buffer keeps a sorted run (a deque: O(1) in and
//! out) and only the events that arrive behind the run's newest go to a heap. Releasing takes
//! the smaller head of the two. The heap orders 24-byte keys `(ts, seq, slot)`; the events
//! themselves stay put in a slab, so sifting moves and compares only keys that sit together
//! in cache (a heap of whole events moved about 100 bytes per level and missed the cache on
//! most comparisons: 9% of the core benchmark's time).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};

use super::Event;

pub struct Reorder<P> {
    run: VecDeque<Event<P>>,
    behind: BinaryHeap<Reverse<(i64, i64, u32)>>,
    /// The events the heap's keys point to; `None` slots are listed in `free`.
    slab: Vec<Option<Event<P>>>,
    free: Vec<u32>,
}

impl<P> Default for Reorder<P> {
    fn default() -> Self {
        Reorder {
            run: VecDeque::new(),
            behind: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<P: Clone> Clone for Reorder<P> {
    fn clone(&self) -> Self {
        Reorder {
            run: self.run.clone(),
            behind: self.behind.clone(),
            slab: self.slab.clone(),
            free: self.free.clone(),
        }
    }
}

impl<P: std::fmt::Debug> std::fmt::Debug for Reorder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reorder")
            .field("run", &self.run.len())
            .field("behind", &self.behind.len())
            .finish()
    }
}

impl<P> Reorder<P> {
    pub fn push(&mut self, ev: Event<P>) {
        match self.run.back() {
            Some(b) if (ev.ts_ms, ev.seq) < (b.ts_ms, b.seq) => self.push_behind(ev),
            _ => self.run.push_back(ev),
        }
    }

    fn push_behind(&mut self, ev: Event<P>) {
        let key = (ev.ts_ms, ev.seq);
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(ev);
                s
            }
            None => {
                self.slab.push(Some(ev));
                (self.slab.len() - 1) as u32
            }
        };
        self.behind.push(Reverse((key.0, key.1, slot)));
    }

    /// The earliest event if its time is at most `wm`.
    pub fn pop_until(&mut self, wm: i64) -> Option<Event<P>> {
        let run_head = self.run.front().map(|e| (e.ts_ms, e.seq));
        let heap_head = self.behind.peek().map(|Reverse((ts, seq, _))| (*ts, *seq));
        let take_run = match (run_head, heap_head) {
            (Some(r), Some(h)) => r < h,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_run {
            if run_head.is_some_and(|(ts, _)| ts <= wm) {
                return self.run.pop_front();
            }
        } else if heap_head.is_some_and(|(ts, _)| ts <= wm) {
            let Reverse((_, _, slot)) = self.behind.pop()?;
            let ev = self.slab.get_mut(slot as usize)?.take();
            if self.behind.is_empty() {
                self.slab.clear();
                self.free.clear();
            } else {
                self.free.push(slot);
            }
            return ev;
        }
        None
    }

    /// Smallest `seq` buffered.
    pub fn min_seq(&self) -> Option<i64> {
        self.iter().map(|e| e.seq).min()
    }

    /// Change every buffered event in place (keys and times must stay as they are).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut Event<P>)) {
        self.run.iter_mut().for_each(&mut f);
        self.slab.iter_mut().flatten().for_each(f);
    }

    /// Every buffered event, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Event<P>> {
        self.run.iter().chain(self.slab.iter().flatten())
    }

    pub fn len(&self) -> usize {
        self.run.len() + self.behind.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checkpoints hold the buffer as two lists of events, the sorted run and the others in no
/// order; the heap is rebuilt when it is read.
impl<P: Serialize> Serialize for Reorder<P> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Seq<'a, P>(&'a [Option<Event<P>>], usize);
        impl<P: Serialize> Serialize for Seq<'_, P> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // The exact length up front: postcard writes it before the elements.
                let mut seq = s.serialize_seq(Some(self.1))?;
                for ev in self.0.iter().flatten() {
                    seq.serialize_element(ev)?;
                }
                seq.end()
            }
        }
        let mut st = s.serialize_struct("Reorder", 2)?;
        st.serialize_field("run", &self.run)?;
        st.serialize_field("behind", &Seq(&self.slab, self.behind.len()))?;
        st.end()
    }
}

impl<'de, P: Deserialize<'de>> Deserialize<'de> for Reorder<P> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(bound(deserialize = "P: Deserialize<'de>"))]
        struct Repr<P> {
            run: VecDeque<Event<P>>,
            behind: Vec<Event<P>>,
        }
        let Repr { run, behind } = Repr::deserialize(d)?;
        let mut r = Reorder {
            run,
            ..Reorder::default()
        };
        for ev in behind {
            r.push_behind(ev);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
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
}
