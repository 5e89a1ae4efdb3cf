//! Checkpoints of one partition's normalization state: the state that produced the committed
//! rows and the next offset to read, serialized with postcard under a format version, with
//! the shape of the configuration that wrote them. A checkpoint of another shape (a feature or
//! a normalization was added or removed) is migrated by name when it is read.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::normalize::{Engine, PartitionState};
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

/// A checkpoint read back for this configuration.
pub(super) struct Restored {
    pub next: i64,
    pub state: PartitionState<RowMeta>,
    /// When the shape differed: (accumulators kept, new, dropped).
    pub migrated: Option<(usize, usize, usize)>,
}

/// Read a checkpoint, migrating it by name if another configuration wrote it.
pub(super) fn decode(bytes: &[u8], shape: &Shape, engine: &Engine) -> Result<Restored, String> {
    let ckpt: Checkpoint = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
    if ckpt.version != CHECKPOINT_VERSION {
        return Err(format!(
            "version {} (this build reads {CHECKPOINT_VERSION})",
            ckpt.version
        ));
    }
    let Checkpoint {
        shape: old,
        next,
        mut state,
        ..
    } = ckpt;
    if old == *shape {
        return Ok(Restored {
            next,
            state,
            migrated: None,
        });
    }
    let accs = index_map(&old.accs, &shape.accs);
    let features = index_map(&old.features, &shape.features);
    let pass = index_map(&old.passthrough, &shape.passthrough);
    state.migrate(engine, &accs, &features, |m: &mut RowMeta| {
        let before = std::mem::take(&mut m.passthrough);
        m.passthrough = pass
            .iter()
            .map(|from| {
                from.and_then(|i| before.get(i).cloned())
                    .unwrap_or_default()
            })
            .collect();
    });
    let kept = accs.iter().filter(|a| a.is_some()).count();
    Ok(Restored {
        next,
        state,
        migrated: Some((kept, accs.len() - kept, old.accs.len().saturating_sub(kept))),
    })
}
