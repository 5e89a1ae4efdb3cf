//! The memory budget, enforced by the processor: rows waiting in open files and normalization
//! state are measured and kept within their shares of `[memory] budget`.

use std::time::{Duration, Instant};

use super::{PartitionId, Processor};
use crate::decode::PassValue;
use crate::sink::RowMeta;
use crate::telemetry::RowTimes;

/// How often the budget is checked.
const BUDGET_CHECK: Duration = Duration::from_millis(100);

/// Measuring the state walks every key and every buffered event (about 3.5 ms for the core
/// benchmark's 10,000 keys and 47,000 buffered events, 3.5% of the processor's time at every
/// `BUDGET_CHECK`), so the walks are spaced to take at most one part in this many of it,
/// unless new keys may have taken the state past its share (`Checks::keys_outgrew`).
const STATE_WALK_SHARE: u32 = 100;

/// When the budget was last checked, and the state's last measurement (after its evictions)
/// with the keys it held.
pub(super) struct Checks {
    at: Instant,
    state_at: Instant,
    state_every: Duration,
    state_bytes: usize,
    state_keys: usize,
}

impl Checks {
    /// Whether the state may have passed its share since it was measured: its measured bytes,
    /// scaled by the keys held now, exceed the share. Counting keys is cheap where measuring
    /// walks them all, and new keys are what grows the state fastest (200,000 new keys at
    /// 40,000 events/s grew it by a third of its share between two spaced walks).
    fn keys_outgrew(&self, keys: usize, share: usize) -> bool {
        let per_key = self.state_bytes as f64 / self.state_keys.max(1) as f64;
        keys > self.state_keys && per_key * keys as f64 > share as f64
    }

    pub(super) fn new(now: Instant) -> Self {
        Checks {
            at: now,
            state_at: now,
            state_every: BUDGET_CHECK,
            state_bytes: 0,
            state_keys: 0,
        }
    }
}

impl Processor {
    /// Keep buffered rows and state within the memory budget: flush the open files' row groups
    /// when rows use more than their share, and evict the least recently updated keys when
    /// state does. Rows are measured every `BUDGET_CHECK`; the state, which takes a walk over
    /// every key, at most every `BUDGET_CHECK` and no more than `1/STATE_WALK_SHARE` of the time,
    /// or at once when the keys held now could have taken it past its share.
    pub(super) fn enforce_budget(&mut self, now: Instant) {
        if now.saturating_duration_since(self.budget.at) < BUDGET_CHECK {
            return;
        }
        self.budget.at = now;
        let sink = self.sink_bytes();
        self.enforce_sink_share(sink, now);
        let share = self.memory.state_bytes as usize;
        if now.saturating_duration_since(self.budget.state_at) >= self.budget.state_every
            || self.budget.keys_outgrew(self.key_count(), share)
        {
            self.enforce_state_share(now);
        }
        let used = (sink + self.budget.state_bytes) as i64;
        (self.gauges.memory_bytes).set(&self.metrics.memory_bytes, used);
    }

    /// Flush row groups, then commit, while rows in open files exceed their share.
    fn enforce_sink_share(&mut self, sink: usize, now: Instant) {
        if sink as u64 > self.memory.sink_bytes {
            self.metrics.memory_pauses.inc();
            if let Err((key, e)) = self.sink.flush_row_groups() {
                self.failed(&key, &e.to_string(), now);
            }
            // What is left is dead letters and bookkeeping of uncommitted rows: commit them.
            if self.sink_bytes() as u64 > self.memory.sink_bytes {
                let keys: Vec<PartitionId> = self.parts.keys().cloned().collect();
                for key in keys {
                    if let Err(e) = self.roll(&key) {
                        self.failed(&key, &e.to_string(), now);
                    }
                }
            }
        }
    }

    /// Measure the state; evict the least recently updated keys when it exceeds its share.
    fn enforce_state_share(&mut self, now: Instant) {
        let started = Instant::now();
        let payload = |m: &RowMeta| {
            m.passthrough
                .iter()
                .filter_map(PassValue::as_str)
                .map(str::len)
                .sum::<usize>()
                + m.passthrough.capacity() * std::mem::size_of::<PassValue>()
        };
        let state: Vec<(PartitionId, usize, usize)> = self
            .parts
            .iter()
            .map(|(k, p)| {
                let (keys, pending) = p.norm.memory_bytes(payload);
                (k.clone(), keys, pending)
            })
            .collect();
        let state_total: usize = state.iter().map(|(_, k, p)| k + p).sum();
        let walked = started.elapsed();
        let share = self.memory.state_bytes as usize;
        self.budget.state_at = now;
        // Over its share, the state is measured again soon, to see what the eviction left.
        self.budget.state_every = if state_total > share {
            BUDGET_CHECK
        } else {
            BUDGET_CHECK.max(walked * STATE_WALK_SHARE)
        };
        tracing::debug!(
            state_bytes = state_total,
            walk_ms = walked.as_secs_f64() * 1e3,
            "memory accounted"
        );
        self.budget.state_bytes = if state_total > share {
            self.evict_state(state, state_total, share)
        } else {
            state_total
        };
        self.budget.state_keys = self.key_count();
    }

    /// Keys held over every partition (a count per partition, no walk).
    fn key_count(&self) -> usize {
        self.parts.values().map(|p| p.norm.key_count()).sum()
    }

    /// Every partition gives up the same fraction of its keys' bytes, down to 90% of the
    /// share. Returns the bytes the state is left with.
    fn evict_state(
        &mut self,
        state: Vec<(PartitionId, usize, usize)>,
        state_total: usize,
        share: usize,
    ) -> usize {
        let keep = (share as f64 * 0.9) / state_total as f64;
        let (mut evicted, mut left) = (0, 0);
        for (key, keys, pending) in state {
            if let Some(p) = self.parts.get_mut(&key) {
                let target = (keys as f64 * keep) as usize;
                evicted += p.norm.evict_to(target);
                left += target.min(keys) + pending;
            }
        }
        self.metrics.evicted_keys.inc_by(evicted);
        self.budget_evicted += evicted;
        tracing::warn!(
            evicted,
            state_bytes = state_total,
            budget_share = share,
            "normalization state over its memory budget: least recently updated keys evicted"
        );
        left
    }

    /// Bytes of rows waiting in open files, dead letters and the latency bookkeeping.
    fn sink_bytes(&self) -> usize {
        let times: usize = self.received.values().map(RowTimes::heap_bytes).sum();
        self.sink.buffered_bytes() + self.dead.held_bytes() + times
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(bytes: usize, keys: usize) -> Checks {
        Checks {
            state_bytes: bytes,
            state_keys: keys,
            ..Checks::new(Instant::now())
        }
    }

    #[test]
    fn new_keys_call_for_a_walk_once_they_could_pass_the_share() {
        let c = measured(1000, 10);
        assert!(!c.keys_outgrew(14, 1500));
        assert!(!c.keys_outgrew(15, 1500));
        assert!(c.keys_outgrew(16, 1500));
        assert!(!c.keys_outgrew(9, 1000), "fewer keys than measured");
    }

    #[test]
    fn an_unmeasured_state_waits_for_its_first_walk() {
        assert!(!measured(0, 0).keys_outgrew(1_000_000, 1));
    }
}
