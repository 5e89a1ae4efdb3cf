//! Checkpoints of one partition's normalization state: the state that produced the committed
//! rows and the next offset to read, serialized with postcard under a format version, with
//! the shape of the configuration that wrote them. A checkpoint of another shape (a feature or
//! a normalization was added or removed) is migrated by name when it is read.
//!
//! Most commits write a delta (what changed since the commit before, `normalize::delta`) on
//! the partition's chain; a whole checkpoint starts a new chain once the deltas weigh
//! `WHOLE_AFTER` times the whole one they stand on. So the bytes written stay within 4/3 of
//! the deltas', and recovery reads at most about four times the state. (Each delta also
//! holds the event-time buffer whole, about the input of `out_of_orderness`: with rolls as
//! often as that, it is most of a delta, and a ratio of 1 wrote whole checkpoints twice as
//! often for no gain in recovery.)

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::lake::commit::{CommitRecord, StateChain};
use crate::normalize::{Engine, PartitionDelta, PartitionState};
use crate::sink::RowMeta;

/// What a checkpoint holds: the state that produced the committed rows and the next offset.
#[derive(Serialize)]
struct CheckpointRef<'a> {
    version: u32,
    shape: &'a Shape,
    next: i64,
    state: &'a PartitionState<RowMeta>,
}

#[derive(Deserialize)]
struct Checkpoint {
    version: u32,
    shape: Shape,
    next: i64,
    state: PartitionState<RowMeta>,
}

/// A delta on the checkpoint before it: the same shape, the next offset, what changed.
#[derive(Serialize)]
struct DeltaRef<'a, D> {
    version: u32,
    shape: &'a Shape,
    next: i64,
    delta: D,
}

#[derive(Deserialize)]
struct Delta {
    version: u32,
    shape: Shape,
    next: i64,
    delta: PartitionDelta<RowMeta>,
}

/// A chain has at most this many deltas: recovery reads one file per delta.
const MAX_DELTAS: usize = 120;

/// A new chain starts once its deltas weigh this many times its whole checkpoint.
const WHOLE_AFTER: u64 = 3;

/// A partition's committed checkpoint chain, and what its parts weigh.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    pub lake: StateChain,
    whole_bytes: u64,
    delta_bytes: u64,
}

impl Chain {
    /// The chain of a recovered commit, from the sizes of what was read.
    pub fn recovered(rec: &CommitRecord, whole: usize, deltas: usize) -> Chain {
        Chain {
            lake: rec.checkpoint.clone(),
            whole_bytes: whole as u64,
            delta_bytes: deltas as u64,
        }
    }

    /// Whether the next checkpoint goes on this chain as a delta.
    pub fn takes_delta(&self) -> bool {
        self.lake.deltas.len() < MAX_DELTAS && self.delta_bytes < WHOLE_AFTER * self.whole_bytes
    }

    /// The chain once `rec` committed a checkpoint of `bytes` after `previous`.
    pub fn after(rec: &CommitRecord, previous: Option<&Chain>, bytes: u64) -> Chain {
        let lake = rec.checkpoint.clone();
        match previous.filter(|_| !lake.deltas.is_empty()) {
            Some(p) => Chain {
                lake,
                whole_bytes: p.whole_bytes,
                delta_bytes: p.delta_bytes + bytes,
            },
            None => Chain {
                lake,
                whole_bytes: bytes,
                delta_bytes: 0,
            },
        }
    }
}

/// What the checkpointed state is laid out by: its accumulators, the features and the
/// pass-through fields of buffered events. A checkpoint of another shape (the configuration
/// gained or lost a feature or a normalization) is migrated by name on recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Shape {
    accs: Vec<String>,
    features: Vec<String>,
    passthrough: Vec<String>,
}

impl Shape {
    pub(super) fn of(cfg: &Config, engine: &Engine) -> Shape {
        Shape {
            accs: engine.acc_signatures(),
            features: cfg.plan.features.clone(),
            passthrough: cfg.input.passthrough.iter().map(|p| p.column()).collect(),
        }
    }
}

/// For each name of `new`, its index in `old`.
fn index_map(old: &[String], new: &[String]) -> Vec<Option<usize>> {
    new.iter()
        .map(|n| old.iter().position(|o| o == n))
        .collect()
}

/// Bumped whenever the checkpoint's own format changes (2: rows keep their Kafka time; 3: the
/// checkpoint records its shape; 4: windows hold their values as time differences and not
/// their aggregate stacks; 5: a window's values are one byte string). Configuration changes
/// are handled by `Shape`.
const CHECKPOINT_VERSION: u32 = 5;

/// Serialize a partition's state and next offset into `w`, as it goes: the checkpoint of a
/// large state is never held in memory whole.
pub(super) fn write(
    shape: &Shape,
    next: i64,
    state: &PartitionState<RowMeta>,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    postcard::to_io(
        &CheckpointRef {
            version: CHECKPOINT_VERSION,
            shape,
            next,
            state,
        },
        w,
    )
    .map(|_| ())
    .map_err(std::io::Error::other)
}

/// Serialize what changed in a partition's state since its last checkpoint, as a delta on it.
pub(super) fn write_delta(
    shape: &Shape,
    next: i64,
    state: &PartitionState<RowMeta>,
    engine: &Engine,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let delta = DeltaRef {
        version: CHECKPOINT_VERSION,
        shape,
        next,
        delta: state.delta(engine),
    };
    postcard::to_io(&delta, w)
        .map(|_| ())
        .map_err(std::io::Error::other)
}

/// A checkpoint read back for this configuration.
pub(super) struct Restored {
    pub next: i64,
    pub state: PartitionState<RowMeta>,
    /// When the shape differed: (accumulators kept, new, dropped).
    pub migrated: Option<(usize, usize, usize)>,
}

fn check_version(version: u32) -> Result<(), String> {
    if version != CHECKPOINT_VERSION {
        return Err(format!(
            "version {version} (this build reads {CHECKPOINT_VERSION})"
        ));
    }
    Ok(())
}

/// Read a chain (a whole checkpoint and its deltas, oldest first), migrating it by name if
/// another configuration wrote it. Deltas are replayed after the migration, with this
/// configuration: a normalization kept has exactly the state it had, and one added learns
/// from the events of the deltas.
pub(super) fn decode(
    whole: &[u8],
    deltas: &[Vec<u8>],
    shape: &Shape,
    engine: &Engine,
) -> Result<Restored, String> {
    let ckpt: Checkpoint = postcard::from_bytes(whole).map_err(|e| e.to_string())?;
    check_version(ckpt.version)?;
    let Checkpoint {
        shape: old,
        mut next,
        mut state,
        ..
    } = ckpt;
    let migration = (old != *shape).then(|| Migration::new(&old, shape));
    if let Some(m) = &migration {
        state.migrate(engine, &m.accs, &m.features, |p| m.passthrough(p));
    }
    for (i, bytes) in deltas.iter().enumerate() {
        let d: Delta = postcard::from_bytes(bytes).map_err(|e| format!("delta {i}: {e}"))?;
        check_version(d.version)?;
        if d.shape != old {
            return Err(format!("delta {i} has another shape than its chain"));
        }
        let mut delta = d.delta;
        if let Some(m) = &migration {
            delta.migrate(engine, &m.accs, &m.features, |p| m.passthrough(p))?;
        }
        state
            .apply(engine, delta)
            .map_err(|e| format!("delta {i}: {e}"))?;
        next = d.next;
    }
    let migrated = migration.map(|m| {
        let kept = m.accs.iter().filter(|a| a.is_some()).count();
        (
            kept,
            m.accs.len() - kept,
            old.accs.len().saturating_sub(kept),
        )
    });
    Ok(Restored {
        next,
        state,
        migrated,
    })
}

/// Where each of this shape's accumulators, features and pass-through fields was in the old.
struct Migration {
    accs: Vec<Option<usize>>,
    features: Vec<Option<usize>>,
    pass: Vec<Option<usize>>,
}

impl Migration {
    fn new(old: &Shape, new: &Shape) -> Migration {
        Migration {
            accs: index_map(&old.accs, &new.accs),
            features: index_map(&old.features, &new.features),
            pass: index_map(&old.passthrough, &new.passthrough),
        }
    }

    fn passthrough(&self, m: &mut RowMeta) {
        let before = std::mem::take(&mut m.passthrough);
        m.passthrough = self
            .pass
            .iter()
            .map(|from| {
                from.and_then(|i| before.get(i).cloned())
                    .unwrap_or_default()
            })
            .collect();
    }
}
