//! The lake's commit log and state checkpoints: what makes delivery exactly-once.
//!
//! ```text
//! <table>/_normlake/log/<stream>-<partition>/<seq>.json     commit records (the truth)
//! <table>/_normlake/state/<stream>-<partition>/<seq>.ckpt   normalization state checkpoints
//! <table>/_normlake/state/<stream>-<partition>/<seq>.delta  what changed since the one before
//! ```
//! A commit's state is a chain: a whole checkpoint and the deltas committed on it since,
//! oldest first. The caller decides when a commit starts a new chain.
//! One roll of one input partition commits like this:
//! 1. Its data and dead-letter files are complete and synced under hidden temporary names.
//! 2. The state checkpoint, whole or a delta, is written (temporary name, sync, rename).
//! 3. The commit record is written the same way. **This is the commit point.** It lists
//!    every (temporary → final) file name, the checkpoint, and the next offset to read.
//! 4. The files are renamed to their final names (roll-forward: a crash here is finished by
//!    recovery, which repeats the renames whose temporary file still exists).
//! 5. Records older than the previous commit, and checkpoints older than its chain, are
//!    deleted.
//!
//! Recovery of a partition: read its newest commit record, finish its renames, delete any other
//! temporary file of the partition (work that never committed), load the checkpoint, and
//! resume reading at the record's next offset. A file is in the table exactly once: files of
//! uncommitted work are never renamed, and committed files are never written again, because
//! reading resumes after them, with the state that produced them.

use serde::{Deserialize, Serialize};

use super::{LakeError, Layout};

/// A file of a commit: written under `tmp`, visible as `dest` (keys relative to the root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMove {
    pub tmp: String,
    pub dest: String,
}

/// One committed roll of one input partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    pub seq: u64,
    pub stream: String,
    pub partition: i32,
    /// Everything below this offset is accounted for: in a committed file, a dead letter, or
    /// the checkpoint's event-time buffer.
    pub next_offset: i64,
    pub files: Vec<FileMove>,
    /// The partition's state: the key of a whole checkpoint (relative to the root), or, once
    /// there are deltas on it, the list of the whole checkpoint's key and theirs. A build from
    /// before deltas cannot read a list, so it stops instead of resuming from the whole
    /// checkpoint alone.
    pub checkpoint: StateChain,
    /// Deltas as the first builds with deltas wrote them, beside a whole checkpoint's key;
    /// moved into `checkpoint` when a record is read.
    #[serde(default, rename = "checkpoint_deltas", skip_serializing)]
    pub legacy_deltas: Vec<String>,
    pub rows: u64,
    pub dead_letters: u64,
    pub committed_at_ms: i64,
    /// The partition's event-time watermark at this commit: every later row of the partition
    /// has a time at or after it (late events aside). Absent before the first event.
    #[serde(default)]
    pub watermark_ms: Option<i64>,
    /// Which incarnation of the input partition these offsets belong to: 0 at first, one more
    /// each time the job is told to start again from the earliest offset of a recreated topic.
    /// File names carry it, so a new lineage never overwrites an old one's files.
    #[serde(default)]
    pub lineage: u32,
    /// The partition had no record for the configured idle timeout when this was committed:
    /// it does not hold back the lake's watermark until a later commit says otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idle: bool,
}

impl CommitRecord {
    /// A record to commit; `commit` fills in the checkpoint's key.
    pub fn new(stream: &str, partition: i32, seq: u64, next_offset: i64) -> CommitRecord {
        CommitRecord {
            seq,
            stream: stream.to_string(),
            partition,
            next_offset,
            files: Vec::new(),
            checkpoint: StateChain::default(),
            legacy_deltas: Vec::new(),
            rows: 0,
            dead_letters: 0,
            committed_at_ms: 0,
            watermark_ms: None,
            lineage: 0,
            idle: false,
        }
    }
}

/// Failures of the commit protocol.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("commit record {key} is unreadable: {source}")]
    Record {
        key: String,
        source: serde_json::Error,
    },
    #[error("commit record {record} names {file}, which is neither published nor pending")]
    MissingFile { record: String, file: String },
    #[error("commit record {record} names the checkpoint {checkpoint}, which is missing")]
    MissingCheckpoint { record: String, checkpoint: String },
}

impl Layout {
    fn normlake_key(&self) -> String {
        format!("{}/_normlake", self.table_key())
    }

    fn log_key(&self, stream: &str, partition: i32) -> String {
        format!("{}/log/{stream}-{partition}", self.normlake_key())
    }

    fn state_key(&self, stream: &str, partition: i32) -> String {
        format!("{}/state/{stream}-{partition}", self.normlake_key())
    }

    /// Check that the table's metadata directory can be written (for readiness).
    pub fn probe_writable(&self) -> Result<(), LakeError> {
        let probe = format!("{}/probe", self.normlake_key());
        self.store().put(&probe, Vec::new())?;
        self.store().delete(&probe)
    }
}

/// The last segment of a key.
fn base_name(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(_, n)| n)
}

fn record_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

/// A commit record's key among the keys of a log directory.
fn is_record(key: &str) -> bool {
    let n = base_name(key);
    !n.starts_with('.') && n.ends_with(".json")
}

fn read_record(layout: &Layout, key: &str) -> Result<Option<CommitRecord>, CommitError> {
    let Some(bytes) = layout.store().get(key)? else {
        return Ok(None);
    };
    let mut rec: CommitRecord =
        serde_json::from_slice(&bytes).map_err(|source| CommitError::Record {
            key: key.to_string(),
            source,
        })?;
    rec.checkpoint.deltas.append(&mut rec.legacy_deltas);
    Ok(Some(rec))
}

/// The newest commit record of a partition, with its key, if any.
pub fn latest(
    layout: &Layout,
    stream: &str,
    partition: i32,
) -> Result<Option<(String, CommitRecord)>, CommitError> {
    let keys = layout.store().list(&layout.log_key(stream, partition))?;
    let Some(newest) = keys.into_iter().filter(|k| is_record(k)).max() else {
        return Ok(None);
    };
    Ok(read_record(layout, &newest)?.map(|r| (newest, r)))
}

/// The newest commit record of every input partition of the table, whichever instance
/// wrote it.
pub fn newest_records(layout: &Layout) -> Result<Vec<CommitRecord>, CommitError> {
    let keys = layout
        .store()
        .list(&format!("{}/log", layout.normlake_key()))?;
    // Newest record per partition directory (keys are sorted, names are zero-padded).
    let mut newest: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for k in keys.iter().filter(|k| is_record(k)) {
        if let Some((dir, _)) = k.rsplit_once('/') {
            newest.insert(dir, k);
        }
    }
    let mut out = Vec::with_capacity(newest.len());
    for key in newest.values() {
        out.extend(read_record(layout, key)?);
    }
    Ok(out)
}

/// The lake's watermark, from the newest commit record of every input partition, whichever
/// instance wrote it (see [`watermark_of`]). `None` while an active partition has none.
pub fn lake_watermark(layout: &Layout) -> Result<Option<i64>, CommitError> {
    Ok(watermark_of(&newest_records(layout)?))
}

/// The watermark of a table's input partitions, from their newest records: the smallest of
/// the active ones (a partition without a watermark yet holds everything back), or, when
/// every partition is idle, the largest.
pub fn watermark_of(records: &[CommitRecord]) -> Option<i64> {
    let active: Vec<&CommitRecord> = records.iter().filter(|r| !r.idle).collect();
    if active.is_empty() {
        return records.iter().filter_map(|r| r.watermark_ms).max();
    }
    active
        .iter()
        .map(|r| r.watermark_ms)
        .try_fold(i64::MAX, |low, w| w.map(|w| low.min(w)))
}

/// A partition's committed state: a whole checkpoint and the deltas on it, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateChain {
    pub whole: String,
    pub deltas: Vec<String>,
}

impl Serialize for StateChain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.deltas.is_empty() {
            s.serialize_str(&self.whole)
        } else {
            s.collect_seq(std::iter::once(&self.whole).chain(&self.deltas))
        }
    }
}

impl<'de> Deserialize<'de> for StateChain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Whole(String),
            Chain(Vec<String>),
        }
        let (whole, deltas) = match Stored::deserialize(d)? {
            Stored::Whole(whole) => (whole, Vec::new()),
            Stored::Chain(mut keys) if !keys.is_empty() => (keys.remove(0), keys),
            Stored::Chain(_) => return Err(serde::de::Error::custom("an empty checkpoint chain")),
        };
        Ok(StateChain { whole, deltas })
    }
}

impl StateChain {
    /// The commit sequence of its whole checkpoint (from the key's name).
    fn first_seq(&self) -> Option<u64> {
        base_name(&self.whole).split('.').next()?.parse().ok()
    }
}

/// How a commit stores the partition's state.
#[derive(Debug, Clone, Copy)]
pub enum StateWrite<'a> {
    /// A whole checkpoint, starting a chain; the chain of the commit before, if any, is kept
    /// as long as that commit is.
    Whole { previous: Option<&'a StateChain> },
    /// A delta on the chain of the commit before.
    Delta { on: &'a StateChain },
}

/// Commit one roll: checkpoint, record (the commit point), publishing, clean-up. The
/// checkpoint's keys are set in the record that is written and returned.
pub fn commit(
    layout: &Layout,
    mut rec: CommitRecord,
    state: StateWrite<'_>,
    checkpoint: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<CommitRecord, CommitError> {
    let (stream, partition, seq) = (rec.stream.clone(), rec.partition, rec.seq);
    let store = layout.store();
    let dir = layout.state_key(&stream, partition);
    let (key, previous) = match state {
        StateWrite::Whole { previous } => {
            let key = format!("{dir}/{seq:020}.ckpt");
            rec.checkpoint = StateChain {
                whole: key.clone(),
                deltas: Vec::new(),
            };
            (key, previous)
        }
        StateWrite::Delta { on } => {
            let key = format!("{dir}/{seq:020}.delta");
            rec.checkpoint = on.clone();
            rec.checkpoint.deltas.push(key.clone());
            (key, Some(on))
        }
    };
    store.put_streamed(&key, checkpoint)?;
    let key = format!(
        "{}/{}",
        layout.log_key(&stream, partition),
        record_name(seq)
    );
    let body = serde_json::to_vec_pretty(&rec).map_err(|source| CommitError::Record {
        key: key.clone(),
        source,
    })?;
    store.put(&key, body)?;
    finish_publishing(layout, &key, &rec)?;
    let keep_state = previous.and_then(StateChain::first_seq);
    forget_older(layout, &stream, partition, seq, keep_state);
    Ok(rec)
}

/// Publish every file of a committed record that is still under its temporary key.
fn finish_publishing(layout: &Layout, record: &str, rec: &CommitRecord) -> Result<(), CommitError> {
    let store = layout.store();
    for f in &rec.files {
        if store.exists(&f.tmp)? {
            store.publish(&f.tmp, &f.dest)?;
        } else if !store.exists(&f.dest)? {
            return Err(CommitError::MissingFile {
                record: record.to_string(),
                file: f.dest.clone(),
            });
        }
    }
    Ok(())
}

/// Delete records older than the one before `seq` (kept for inspection), and checkpoints
/// older than that one's chain (which starts at `chain_from`).
fn forget_older(layout: &Layout, stream: &str, partition: i32, seq: u64, chain_from: Option<u64>) {
    let previous = seq.saturating_sub(1);
    let store = layout.store();
    for (dir, keep_from) in [
        (layout.log_key(stream, partition), previous),
        (
            layout.state_key(stream, partition),
            chain_from.map_or(previous, |c| c.min(previous)),
        ),
    ] {
        let Ok(keys) = store.list(&dir) else { continue };
        for key in keys {
            let old = base_name(&key)
                .split('.')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n < keep_from);
            if old && let Err(err) = store.delete(&key) {
                tracing::warn!(key = %key, error = %err, "cannot delete an old commit file");
            }
        }
    }
}

/// What recovery found for a partition.
#[derive(Debug)]
pub struct Recovered {
    pub record: CommitRecord,
    /// The chain's whole checkpoint.
    pub checkpoint: Vec<u8>,
    /// Its deltas, oldest first.
    pub deltas: Vec<Vec<u8>>,
}

/// Recover one partition: finish the newest commit, delete uncommitted temporary files of the
/// partition, and return the record with its checkpoint (`None`: nothing committed yet).
pub fn recover(
    layout: &Layout,
    stream: &str,
    partition: i32,
) -> Result<Option<Recovered>, CommitError> {
    recover_with(layout, stream, partition, &temporary_files(layout)?)
}

/// Every temporary data or dead-letter file in the table, of every input partition: one
/// listing that [`recover_with`] shares between the partitions of one assignment (on a large
/// table, and on S3 above all, listing is the expensive part of recovery).
pub fn temporary_files(layout: &Layout) -> Result<Vec<String>, CommitError> {
    let store = layout.store();
    let mut out = Vec::new();
    for dir in [layout.table_key().to_string(), layout.dead_letter_key()] {
        out.extend(
            store
                .list(&dir)?
                .into_iter()
                .filter(|k| is_temporary(k) && !k.contains("/_normlake/")),
        );
    }
    Ok(out)
}

fn is_temporary(key: &str) -> bool {
    let n = base_name(key);
    n.starts_with(".part-") && n.ends_with(".tmp")
}

/// [`recover`] with the table's temporary files listed beforehand by [`temporary_files`].
pub fn recover_with(
    layout: &Layout,
    stream: &str,
    partition: i32,
    temporary: &[String],
) -> Result<Option<Recovered>, CommitError> {
    let found = latest(layout, stream, partition)?;
    if let Some((key, rec)) = &found {
        finish_publishing(layout, key, rec)?;
    }
    remove_uncommitted(layout, stream, partition, temporary)?;
    let Some((key, record)) = found else {
        return Ok(None);
    };
    let read = |checkpoint: &String| match layout.store().get(checkpoint) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(CommitError::MissingCheckpoint {
            record: key.clone(),
            checkpoint: checkpoint.clone(),
        }),
        Err(e) => Err(e.into()),
    };
    let checkpoint = read(&record.checkpoint.whole)?;
    let deltas = record
        .checkpoint
        .deltas
        .iter()
        .map(read)
        .collect::<Result<_, _>>()?;
    Ok(Some(Recovered {
        record,
        checkpoint,
        deltas,
    }))
}

/// Delete every temporary data or dead-letter file of one input partition, in the store (from
/// the listing given; a file it names that is gone already was published since) and in an
/// object store's local spool.
fn remove_uncommitted(
    layout: &Layout,
    stream: &str,
    partition: i32,
    temporary: &[String],
) -> Result<(), CommitError> {
    // `.part-<stream>-<partition>-<first offset>.tmp`, exactly: with topics `t` and `t-1`,
    // `.part-t-1-0-5.tmp` is partition 0 of `t-1`, not partition 1 of `t`.
    let prefix = format!(".part-{stream}-{partition}-");
    let ours = |key: &str| {
        base_name(key)
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .is_some_and(|first| first.parse::<u64>().is_ok())
    };
    let store = layout.store();
    for key in temporary.iter().filter(|k| ours(k)) {
        store.delete(key)?;
        tracing::info!(key = %key, "removed uncommitted file");
    }
    if let Some(spool) = store.spool() {
        // Files being built when the process stopped; the spool mirrors the keys.
        let local = super::Store::local(&spool.to_string_lossy());
        for dir in [layout.table_key().to_string(), layout.dead_letter_key()] {
            for key in local.list(&dir)? {
                if is_temporary(&key) && ours(&key) {
                    local.delete(&key)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
