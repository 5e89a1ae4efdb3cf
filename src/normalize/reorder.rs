//! The event-time buffer of one partition: events wait here until the watermark passes them
//! and leave in `(ts, seq)` order.
//!
//! Most events arrive in time order, so the buffer keeps a sorted run (a deque: O(1) in and
//! out) and only the events that arrive behind the run's newest go to a heap. Releasing takes
//! the smaller head of the two.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use serde::{Deserialize, Serialize};

use super::Event;

/// Buffered event ordered by `(ts, seq)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ByTime<P>(Event<P>);

impl<P> ByTime<P> {
    fn key(&self) -> (i64, i64) {
        (self.0.ts_ms, self.0.seq)
    }
}

impl<P> PartialEq for ByTime<P> {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}
impl<P> Eq for ByTime<P> {}
impl<P> PartialOrd for ByTime<P> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<P> Ord for ByTime<P> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.key().cmp(&o.key())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(serialize = "P: Serialize", deserialize = "P: Deserialize<'de>"))]
pub struct Reorder<P> {
    run: VecDeque<Event<P>>,
    behind: BinaryHeap<Reverse<ByTime<P>>>,
}

impl<P> Default for Reorder<P> {
    fn default() -> Self {
        Reorder {
            run: VecDeque::new(),
            behind: BinaryHeap::new(),
        }
    }
}

impl<P> Reorder<P> {
    pub fn push(&mut self, ev: Event<P>) {
        match self.run.back() {
            Some(b) if (ev.ts_ms, ev.seq) < (b.ts_ms, b.seq) => {
                self.behind.push(Reverse(ByTime(ev)))
            }
            _ => self.run.push_back(ev),
        }
    }

    /// The earliest event if its time is at most `wm`.
    pub fn pop_until(&mut self, wm: i64) -> Option<Event<P>> {
        let run_head = self.run.front().map(|e| (e.ts_ms, e.seq));
        let heap_head = self.behind.peek().map(|Reverse(b)| b.key());
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
            return self.behind.pop().map(|Reverse(ByTime(e))| e);
        }
        None
    }

    /// Smallest `seq` buffered.
    pub fn min_seq(&self) -> Option<i64> {
        let run = self.run.iter().map(|e| e.seq);
        let behind = self.behind.iter().map(|Reverse(b)| b.0.seq);
        run.chain(behind).min()
    }

    /// Change every buffered event in place (keys and times must stay as they are).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut Event<P>)) {
        self.run.iter_mut().for_each(&mut f);
        let behind = std::mem::take(&mut self.behind);
        self.behind = behind
            .into_iter()
            .map(|Reverse(ByTime(mut e))| {
                f(&mut e);
                Reverse(ByTime(e))
            })
            .collect();
    }

    /// Every buffered event, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Event<P>> {
        self.run
            .iter()
            .chain(self.behind.iter().map(|Reverse(b)| &b.0))
    }

    pub fn len(&self) -> usize {
        self.run.len() + self.behind.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
}
