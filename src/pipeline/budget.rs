//! The memory budget, enforced by the processor: rows waiting in open files and normalization
//! state are measured and kept within their shares of `[memory] budget`.

use std::time::{Duration, Instant};

use super::{PartitionId, Processor};
use crate::sink::RowMeta;

/// How often the budget is checked: measuring walks every key.
const BUDGET_CHECK: Duration = Duration::from_millis(100);

impl Processor {
    /// Keep buffered rows and state within the memory budget: flush the open files' row groups
    /// when rows use more than their share, and evict the least recently updated keys when
    /// state does. Runs at most every `BUDGET_CHECK`, since measuring walks every key.
    pub(super) fn enforce_budget(&mut self, now: Instant) {
        if now.saturating_duration_since(self.budget_checked) < BUDGET_CHECK {
            return;
        }
        self.budget_checked = now;
        let sink = self.sink_bytes();
        let payload = |m: &RowMeta| {
            m.passthrough
                .iter()
                .flatten()
                .map(|s| s.capacity() + std::mem::size_of::<String>())
                .sum::<usize>()
                + m.passthrough.capacity() * std::mem::size_of::<Option<String>>()
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
        self.metrics.memory_bytes.set((sink + state_total) as i64);
        tracing::debug!(
            sink_bytes = sink,
            state_bytes = state_total,
            "memory accounted"
        );
        if sink as u64 > self.memory.sink_bytes() {
            self.metrics.memory_pauses.inc();
            if let Err((key, e)) = self.sink.flush_row_groups() {
                self.failed(&key, &e.to_string(), now);
            }
            // What is left is dead letters and bookkeeping of uncommitted rows: commit them.
            if self.sink_bytes() as u64 > self.memory.sink_bytes() {
                let keys: Vec<PartitionId> = self.parts.keys().cloned().collect();
                for key in keys {
                    if let Err(e) = self.roll(&key) {
                        self.failed(&key, &e.to_string(), now);
                    }
                }
            }
        }
        let share = self.memory.state_bytes() as usize;
        if state_total > share {
            // Every partition gives up the same fraction, down to 90% of the share.
            let keep = (share as f64 * 0.9) / state_total as f64;
            let mut evicted = 0;
            for (key, keys, _) in state {
                if let Some(p) = self.parts.get_mut(&key) {
                    evicted += p.norm.evict_to((keys as f64 * keep) as usize);
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
        }
    }

    /// Bytes of rows waiting in open files, dead letters and the latency bookkeeping.
    fn sink_bytes(&self) -> usize {
        let times: usize = self
            .received
            .values()
            .map(|v| v.capacity() * std::mem::size_of::<[i64; 3]>())
            .sum();
        self.sink.buffered_bytes() + self.dead.held_bytes() + times
    }
}
