//! What changed in one key's state since its partition's last checkpoint, kept so that the
//! next checkpoint can be a delta: the events the key learned from, in order (each event's
//! time and its features' valid values), which recovery replays through the same code that
//! learned from them the first time. A key whose log passes a quarter of its state is marked
//! to be written whole instead, so a journal costs at most half the memory of its key (the
//! log is compared as it doubles): a job whose rolls are minutes apart does not hold its
//! state twice.
//!
//! Journals belong to a checkpoint epoch: the partition starts a new epoch when a checkpoint
//! is committed, and a journal of an earlier epoch is empty in effect (it is cleared when its
//! key next learns). Nothing is done per key at a checkpoint.

use super::FeatureValue;
use super::window::take_f64;
use crate::varint::{put_varint, take_varint};

/// Log length at which a journal first compares itself with its key's state.
const FIRST_CHECK: usize = 256;
/// A log longer than this share of its key's state gives way to writing the key whole.
const LOG_SHARE: usize = 4;

#[derive(Debug, Clone, Default)]
pub(super) struct Journal {
    /// The checkpoint epoch the journal records (0: none; partitions start at epoch 1).
    epoch: u64,
    /// The key was created in this epoch: recovery starts it empty before replaying.
    fresh: bool,
    /// The log outgrew its share of the key's state: the delta holds the key whole.
    whole: bool,
    prev_ts: i64,
    check_at: usize,
    /// Per event: the time's difference from the previous one (zigzag LEB128), then each
    /// feature's value as 8 bytes, NaN for none (valid values are finite).
    log: Vec<u8>,
}

/// What a journal says about its key in the current epoch.
pub(super) enum Change<'a> {
    Unchanged,
    /// Created this epoch (`fresh`), then learned from the events of the log.
    Events {
        fresh: bool,
        log: &'a [u8],
    },
    Whole,
}

impl Journal {
    /// The journal of a key created in `epoch`.
    pub(super) fn created(epoch: u64) -> Journal {
        Journal {
            epoch,
            fresh: true,
            check_at: FIRST_CHECK,
            ..Journal::default()
        }
    }

    pub(super) fn change(&self, epoch: u64) -> Change<'_> {
        match (self.epoch == epoch, self.whole) {
            (false, _) => Change::Unchanged,
            (true, true) => Change::Whole,
            (true, false) => Change::Events {
                fresh: self.fresh,
                log: &self.log,
            },
        }
    }

    fn enter(&mut self, epoch: u64) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.fresh = false;
            self.whole = false;
            self.prev_ts = 0;
            self.check_at = FIRST_CHECK;
            self.log.clear();
        }
    }

    /// Record an event the key learns from at time `t`, with the first `n` features.
    /// `state_bytes` tells what writing the key whole costs; it is asked only as the log
    /// doubles.
    pub(super) fn record(
        &mut self,
        epoch: u64,
        t: i64,
        features: &[FeatureValue],
        n: usize,
        state_bytes: impl FnOnce() -> usize,
    ) {
        self.enter(epoch);
        if self.whole {
            return;
        }
        put_event(&mut self.log, &mut self.prev_ts, t, n, |i| features.get(i));
        if self.log.len() >= self.check_at {
            if self.log.len() * LOG_SHARE > state_bytes() {
                self.whole = true;
                self.log = Vec::new();
            } else {
                self.check_at = self.log.len() * 2;
            }
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.log.capacity()
    }
}

/// Append an event at `t` after one at `prev` with `n` features, feature `i` being `f(i)`.
fn put_event<'a>(
    log: &mut Vec<u8>,
    prev: &mut i64,
    t: i64,
    n: usize,
    f: impl Fn(usize) -> Option<&'a FeatureValue>,
) {
    put_varint(log, t.wrapping_sub(*prev));
    *prev = t;
    for i in 0..n {
        let x = f(i).and_then(|v| v.valid()).unwrap_or(f64::NAN);
        log.extend_from_slice(&x.to_le_bytes());
    }
}

/// A log of events with `n` features, with its features laid out by another configuration:
/// feature `i` of the result is feature `from_old[i]` of the log, or none.
pub(super) fn remap(log: &[u8], n: usize, from_old: &[Option<usize>]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(log.len());
    let mut prev = 0;
    replay(log, n, |t, old| {
        put_event(&mut out, &mut prev, t, from_old.len(), |i| {
            from_old.get(i).copied().flatten().and_then(|o| old.get(o))
        });
    })?;
    Ok(out)
}

/// Read a log back: `each` gets every event's time and `n` feature values, in order.
pub(super) fn replay(
    log: &[u8],
    n: usize,
    mut each: impl FnMut(i64, &[FeatureValue]),
) -> Result<(), String> {
    let (mut at, mut t) = (0usize, 0i64);
    let mut features = vec![FeatureValue::Missing; n];
    while at < log.len() {
        t = t.wrapping_add(take_varint(log, &mut at)?);
        for f in features.iter_mut() {
            let x = take_f64(log, &mut at)?;
            *f = if x.is_nan() {
                FeatureValue::Missing
            } else {
                FeatureValue::Value(x)
            };
        }
        each(t, &features);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_replays_its_events_and_outgrows_into_whole() {
        let mut j = Journal::created(1);
        let events = [
            (
                1_795_000_000_000,
                vec![FeatureValue::Value(1.5), FeatureValue::Missing],
            ),
            (
                1_794_999_999_000,
                vec![FeatureValue::Invalid, FeatureValue::Value(-0.0)],
            ),
            (i64::MIN, vec![FeatureValue::Value(f64::MAX)]),
        ];
        for (t, f) in &events {
            j.record(1, *t, f, 2, || usize::MAX);
        }
        let Change::Events { fresh: true, log } = j.change(1) else {
            panic!("a created key with events")
        };
        let mut back = Vec::new();
        replay(log, 2, |t, f| back.push((t, f.to_vec()))).expect("replay");
        let valid = |f: &[FeatureValue]| -> Vec<Option<u64>> {
            (0..2)
                .map(|i| f.get(i).and_then(|v| v.valid()).map(f64::to_bits))
                .collect()
        };
        assert_eq!(back.len(), 3);
        for ((t, f), (bt, bf)) in events.iter().zip(&back) {
            assert_eq!((t, valid(f)), (bt, valid(bf)));
        }
        assert!(replay(&log[..log.len() - 1], 2, |_, _| {}).is_err());
        // Another epoch: unchanged until the key learns, then not fresh.
        assert!(matches!(j.change(2), Change::Unchanged));
        j.record(2, 5, &[], 2, || usize::MAX);
        assert!(matches!(j.change(2), Change::Events { fresh: false, .. }));
        // A log past a quarter of the state (17 bytes an event, compared at 256, 512 and
        // 1,024 bytes): the key is written whole and the log let go.
        for t in 1..40 {
            j.record(2, t, &[], 2, || 4096);
        }
        assert!(matches!(j.change(2), Change::Events { .. }));
        for t in 40..70 {
            j.record(2, t, &[], 2, || 4096);
        }
        assert!(matches!(j.change(2), Change::Whole));
        assert_eq!(j.heap_bytes(), 0);
    }
}
