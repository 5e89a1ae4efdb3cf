//! Checkpoint deltas: what changed in a partition's state since its last checkpoint, so that
//! a checkpoint's cost follows the events since the last one and not the size of the state.
//!
//! A delta holds the partition's small parts whole (watermark, event-time buffer, counters),
//! the keys dropped since, and for each key that changed either the events it learned from
//! (its journal) or, when that log outgrew the key, the key whole. `apply` brings the state
//! restored from the checkpoint before to this one: it drops, then replays each key's
//! events through `learn`, the code that learned from them the first time, so the result
//! is the live state bit for bit.

use std::collections::HashMap;

use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use super::journal::{self, Change, Journal};
use super::reorder::Reorder;
use super::window::{Accumulator, Blob};
use super::{Engine, EngineCounters, KeyState, PartitionState, learn, remap_accs, remap_pending};

type Keys = HashMap<Box<str>, KeyState, foldhash::fast::RandomState>;

#[derive(Serialize)]
#[serde(bound(serialize = "P: Serialize"))]
struct DeltaOut<'a, P> {
    features: u32,
    max_ts: Option<i64>,
    pending: &'a Reorder<P>,
    processed: u64,
    counters: EngineCounters,
    removed: &'a [Box<str>],
    keys: ChangedKeys<'a>,
}

/// The keys changed in `epoch`, as a sequence of [`KeyOut`].
struct ChangedKeys<'a> {
    keys: &'a Keys,
    epoch: u64,
}

#[derive(Serialize)]
struct KeyOut<'a> {
    key: &'a str,
    newest_ts: i64,
    change: ChangeOut<'a>,
}

/// Variants in the order of `ChangeIn`.
#[derive(Serialize)]
enum ChangeOut<'a> {
    Events { fresh: bool, log: Bytes<'a> },
    Whole(&'a [Accumulator]),
}

/// A byte string serialized in one piece.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for ChangedKeys<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let changed = || {
            self.keys.iter().filter_map(|(name, k)| {
                let change = match k.journal.change(self.epoch) {
                    Change::Unchanged => return None,
                    Change::Events { fresh, log } => ChangeOut::Events {
                        fresh,
                        log: Bytes(log),
                    },
                    Change::Whole => ChangeOut::Whole(&k.accs),
                };
                Some(KeyOut {
                    key: name,
                    newest_ts: k.newest_ts,
                    change,
                })
            })
        };
        let mut seq = s.serialize_seq(Some(changed().count()))?;
        for k in changed() {
            seq.serialize_element(&k)?;
        }
        seq.end()
    }
}

/// A delta read back, to [`PartitionState::apply`] to the state it was written on.
#[derive(Deserialize)]
#[serde(bound(deserialize = "P: Deserialize<'de>"))]
pub struct PartitionDelta<P> {
    features: u32,
    max_ts: Option<i64>,
    pending: Reorder<P>,
    processed: u64,
    counters: EngineCounters,
    removed: Vec<Box<str>>,
    keys: Vec<KeyIn>,
}

#[derive(Deserialize)]
struct KeyIn {
    key: Box<str>,
    newest_ts: i64,
    change: ChangeIn,
}

#[derive(Deserialize)]
enum ChangeIn {
    Events { fresh: bool, log: Blob },
    Whole(Vec<Accumulator>),
}

impl<P> PartitionState<P> {
    /// What changed since the last checkpoint, to serialize as a delta on it.
    pub fn delta<'a>(&'a self, engine: &Engine) -> impl Serialize + 'a
    where
        P: Serialize,
    {
        DeltaOut {
            features: engine.plan.features.len() as u32,
            max_ts: self.max_ts,
            pending: &self.pending,
            processed: self.processed,
            counters: self.counters,
            removed: &self.removed,
            keys: ChangedKeys {
                keys: &self.keys,
                epoch: self.epoch,
            },
        }
    }

    /// A checkpoint of this state (whole or delta) is committed: what changes from now on
    /// goes into the next delta.
    pub fn checkpointed(&mut self) {
        self.epoch += 1;
        self.removed.clear();
    }

    /// Bring this state (restored from the checkpoint a delta was written on) to the state
    /// the delta was written from.
    pub fn apply(&mut self, engine: &Engine, d: PartitionDelta<P>) -> Result<(), String> {
        let n = engine.plan.features.len();
        if d.features as usize != n {
            return Err(format!(
                "the delta has {} features, the state {n}",
                d.features
            ));
        }
        for name in &d.removed {
            self.keys.remove(name);
        }
        let mut results = Vec::new();
        for k in d.keys {
            let key = match k.change {
                ChangeIn::Whole(accs) => {
                    let whole = KeyState {
                        accs,
                        newest_ts: k.newest_ts,
                        journal: Journal::default(),
                    };
                    self.keys.insert(k.key, whole);
                    continue;
                }
                ChangeIn::Events { fresh, log } => {
                    replay_key(engine, &mut self.keys, &k.key, fresh, &log.0, &mut results)?
                }
            };
            if key.newest_ts != k.newest_ts {
                return Err(format!("key {:?} replays to another time", k.key));
            }
        }
        self.max_ts = d.max_ts;
        self.pending = d.pending;
        self.processed = d.processed;
        self.counters = d.counters;
        Ok(())
    }
}

impl<P> PartitionDelta<P> {
    /// Adapt a delta written under another configuration, as `PartitionState::migrate` does
    /// the state it goes on.
    pub fn migrate(
        &mut self,
        engine: &Engine,
        acc_from_old: &[Option<usize>],
        feature_from_old: &[Option<usize>],
        payload: impl FnMut(&mut P),
    ) -> Result<(), String> {
        let fresh = engine.new_key();
        for k in &mut self.keys {
            match &mut k.change {
                ChangeIn::Whole(accs) => {
                    *accs = remap_accs(std::mem::take(accs), acc_from_old, &fresh.accs);
                }
                ChangeIn::Events { log, .. } => {
                    log.0 = journal::remap(&log.0, self.features as usize, feature_from_old)?;
                }
            }
        }
        remap_pending(&mut self.pending, feature_from_old, payload);
        self.features = feature_from_old.len() as u32;
        Ok(())
    }
}

/// Replay one key's logged events (on a new, empty key if it was created since).
fn replay_key<'a>(
    engine: &Engine,
    keys: &'a mut Keys,
    name: &str,
    fresh: bool,
    log: &[u8],
    results: &mut Vec<crate::normalize::SlotResult>,
) -> Result<&'a mut KeyState, String> {
    if fresh {
        keys.insert(name.into(), engine.new_key());
    }
    let key = keys
        .get_mut(name)
        .ok_or_else(|| format!("the delta changes key {name:?}, which the state lacks"))?;
    journal::replay(log, engine.plan.features.len(), |t, features| {
        results.clear();
        learn(engine, key, t, features, false, results);
    })?;
    Ok(key)
}

#[cfg(test)]
mod tests;
