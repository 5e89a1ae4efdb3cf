//! The lake's commit log and state checkpoints: what makes delivery exactly-once.
//!
//! ```text
//! <table>/_normlake/log/<stream>-<partition>/<seq>.json     commit records (the truth)
//! <table>/_normlake/state/<stream>-<partition>/<seq>.ckpt   normalization state checkpoints
//! ```
//! One roll of one input partition commits like this:
//! 1. Its data and dead-letter files are complete and synced under hidden temporary names.
//! 2. The state checkpoint is written (temporary name, sync, rename).
//! 3. The commit record is written the same way. **This is the commit point.** It lists
//!    every (temporary → final) file name, the checkpoint, and the next offset to read.
//! 4. The files are renamed to their final names (roll-forward: a crash here is finished by
//!    recovery, which repeats the renames whose temporary file still exists).
//! 5. Records and checkpoints older than the previous commit are deleted.
//!
//! Recovery of a partition: read its newest commit record, finish its renames, delete any other
//! temporary file of the partition (work that never committed), load the checkpoint, and
//! resume reading at the record's next offset. A file is in the table exactly once: files of
//! uncommitted work are never renamed, and committed files are never written again, because
//! reading resumes after them, with the state that produced them.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{LakeError, Layout, rename_durably};

/// A file of a commit: written under `tmp`, visible as `dest` (paths relative to the root).
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
    /// The checkpoint file, relative to the root.
    pub checkpoint: String,
    pub rows: u64,
    pub dead_letters: u64,
    pub committed_at_ms: i64,
    /// The partition's event-time watermark at this commit: every later row of the partition
    /// has a time at or after it (late events aside). Absent before the first event.
    #[serde(default)]
    pub watermark_ms: Option<i64>,
}

/// Failures of the commit protocol.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("commit record {path} is unreadable: {source}")]
    Record {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("commit record {record} names {file}, which is neither published nor pending")]
    MissingFile { record: PathBuf, file: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LakeError + '_ {
    move |source| LakeError::Write {
        path: path.to_path_buf(),
        source,
    }
}

impl Layout {
    fn normlake_dir(&self) -> PathBuf {
        self.table_dir().join("_normlake")
    }

    fn log_dir(&self, stream: &str, partition: i32) -> PathBuf {
        self.normlake_dir()
            .join("log")
            .join(format!("{stream}-{partition}"))
    }

    fn state_dir(&self, stream: &str, partition: i32) -> PathBuf {
        self.normlake_dir()
            .join("state")
            .join(format!("{stream}-{partition}"))
    }

    /// Check that the table's metadata directory can be written (for readiness).
    pub fn probe_writable(&self) -> Result<(), LakeError> {
        let dir = self.normlake_dir();
        let probe = write_atomically(&dir, "probe", b"")?;
        std::fs::remove_file(&probe).map_err(io_err(&probe))
    }

    /// A path relative to the root, as commit records store it.
    pub fn relative(&self, p: &Path) -> String {
        p.strip_prefix(self.root())
            .unwrap_or(p)
            .display()
            .to_string()
    }

    pub fn absolute(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }
}

/// Write `bytes` to `dir/name` atomically and durably.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, LakeError> {
    std::fs::create_dir_all(dir).map_err(|source| LakeError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(name);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    rename_durably(&tmp, &dest)?;
    Ok(dest)
}

/// The entries of a directory, `None` if it does not exist (yet).
fn read_dir_if_any(dir: &Path) -> Result<Option<std::fs::ReadDir>, LakeError> {
    match std::fs::read_dir(dir) {
        Ok(e) => Ok(Some(e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(dir)(e)),
    }
}

fn record_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

/// The newest commit record of a partition, if any.
pub fn latest(
    layout: &Layout,
    stream: &str,
    partition: i32,
) -> Result<Option<(PathBuf, CommitRecord)>, CommitError> {
    let dir = layout.log_dir(stream, partition);
    let Some(entries) = read_dir_if_any(&dir)? else {
        return Ok(None);
    };
    let mut newest: Option<PathBuf> = None;
    for entry in entries {
        let path = entry.map_err(io_err(&dir))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        if newest.as_ref().is_none_or(|n| path > *n) {
            newest = Some(path);
        }
    }
    let Some(path) = newest else { return Ok(None) };
    let text = std::fs::read(&path).map_err(io_err(&path))?;
    let rec = serde_json::from_slice(&text).map_err(|source| CommitError::Record {
        path: path.clone(),
        source,
    })?;
    Ok(Some((path, rec)))
}

/// The lake's watermark: the smallest watermark in the newest commit record of every input
/// partition that has one, from every instance writing the table. `None` while any of them
/// has none.
pub fn lake_watermark(layout: &Layout) -> Result<Option<i64>, CommitError> {
    let dir = layout.normlake_dir().join("log");
    let Some(entries) = read_dir_if_any(&dir)? else {
        return Ok(None);
    };
    let mut lowest: Option<i64> = None;
    for entry in entries {
        let name = entry.map_err(io_err(&dir))?.file_name();
        let name = name.to_string_lossy();
        let Some((stream, partition)) = name.rsplit_once('-') else {
            continue;
        };
        let Ok(partition) = partition.parse::<i32>() else {
            continue;
        };
        match latest(layout, stream, partition)? {
            Some((_, rec)) => match rec.watermark_ms {
                Some(w) => lowest = Some(lowest.map_or(w, |l| l.min(w))),
                None => return Ok(None),
            },
            None => continue,
        }
    }
    Ok(lowest)
}

/// Mark a partition directory (relative to the table) complete with an empty `_SUCCESS`.
pub fn mark_complete(layout: &Layout, rel_dir: &str) -> Result<(), LakeError> {
    write_atomically(&layout.table_dir().join(rel_dir), SUCCESS, b"").map(|_| ())
}

/// The name of the marker of a complete partition (Hadoop's convention).
pub const SUCCESS: &str = "_SUCCESS";

/// Commit one roll: checkpoint, record (the commit point), renames, clean-up.
#[allow(clippy::too_many_arguments)]
pub fn commit(
    layout: &Layout,
    stream: &str,
    partition: i32,
    seq: u64,
    next_offset: i64,
    files: Vec<FileMove>,
    checkpoint: &[u8],
    rows: u64,
    dead_letters: u64,
    now_ms: i64,
    watermark_ms: Option<i64>,
) -> Result<CommitRecord, CommitError> {
    let ckpt = write_atomically(
        &layout.state_dir(stream, partition),
        &format!("{seq:020}.ckpt"),
        checkpoint,
    )?;
    let rec = CommitRecord {
        seq,
        stream: stream.to_string(),
        partition,
        next_offset,
        files,
        checkpoint: layout.relative(&ckpt),
        rows,
        dead_letters,
        committed_at_ms: now_ms,
        watermark_ms,
    };
    let body = serde_json::to_vec_pretty(&rec).map_err(|source| CommitError::Record {
        path: layout.log_dir(stream, partition),
        source,
    })?;
    let path = write_atomically(&layout.log_dir(stream, partition), &record_name(seq), &body)?;
    finish_renames(layout, &path, &rec)?;
    forget_older(layout, stream, partition, seq);
    Ok(rec)
}

/// Repeat the renames of a committed record whose temporary file is still there.
fn finish_renames(layout: &Layout, record: &Path, rec: &CommitRecord) -> Result<(), CommitError> {
    for f in &rec.files {
        let tmp = layout.absolute(&f.tmp);
        let dest = layout.absolute(&f.dest);
        if tmp.exists() {
            rename_durably(&tmp, &dest)?;
        } else if !dest.exists() {
            return Err(CommitError::MissingFile {
                record: record.to_path_buf(),
                file: f.dest.clone(),
            });
        }
    }
    Ok(())
}

/// Delete records and checkpoints older than the one before `seq` (kept for inspection).
fn forget_older(layout: &Layout, stream: &str, partition: i32, seq: u64) {
    let keep_from = seq.saturating_sub(1);
    for dir in [
        layout.log_dir(stream, partition),
        layout.state_dir(stream, partition),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let old = name
                .split('.')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n < keep_from);
            if old && let Err(err) = std::fs::remove_file(e.path()) {
                tracing::warn!(path = %e.path().display(), error = %err, "cannot delete an old commit file");
            }
        }
    }
}

/// What recovery found for a partition.
#[derive(Debug)]
pub struct Recovered {
    pub record: CommitRecord,
    pub checkpoint: Vec<u8>,
}

/// Recover one partition: finish the newest commit, delete uncommitted temporary files of the
/// partition, and return the record with its checkpoint (`None`: nothing committed yet).
pub fn recover(
    layout: &Layout,
    stream: &str,
    partition: i32,
) -> Result<Option<Recovered>, CommitError> {
    let found = latest(layout, stream, partition)?;
    if let Some((path, rec)) = &found {
        finish_renames(layout, path, rec)?;
    }
    remove_uncommitted(layout, stream, partition)?;
    let Some((_, record)) = found else {
        return Ok(None);
    };
    let ckpt = layout.absolute(&record.checkpoint);
    let checkpoint = std::fs::read(&ckpt).map_err(io_err(&ckpt))?;
    Ok(Some(Recovered { record, checkpoint }))
}

/// Delete every temporary data or dead-letter file of one input partition.
fn remove_uncommitted(layout: &Layout, stream: &str, partition: i32) -> Result<(), CommitError> {
    let prefix = format!(".part-{stream}-{partition}-");
    let mut stack = vec![layout.table_dir(), layout.dead_letter_dir()];
    while let Some(dir) = stack.pop() {
        let Some(entries) = read_dir_if_any(&dir)? else {
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            if entry.file_type().map_err(io_err(&path))?.is_dir() {
                if name != "_normlake" {
                    stack.push(path);
                }
            } else if name.starts_with(&prefix) && name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                tracing::info!(path = %path.display(), "removed uncommitted file");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_str().unwrap(), "t");
        (dir, layout)
    }

    fn pending(layout: &Layout, name: &str) -> FileMove {
        let d = layout.table_dir().join("dt=2026-11-26/hr=02");
        std::fs::create_dir_all(&d).unwrap();
        let tmp = d.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, b"data").unwrap();
        FileMove {
            tmp: layout.relative(&tmp),
            dest: layout.relative(&d.join(format!("{name}.parquet"))),
        }
    }

    #[test]
    fn a_commit_publishes_its_files_and_recovery_returns_its_checkpoint() {
        let (_d, layout) = setup();
        let f = pending(&layout, "part-s-0-0-9");
        let rec = commit(
            &layout,
            "s",
            0,
            1,
            10,
            vec![f.clone()],
            b"state-1",
            10,
            0,
            1,
            Some(5),
        )
        .unwrap();
        assert!(layout.absolute(&f.dest).exists());
        assert!(!layout.absolute(&f.tmp).exists());
        let got = recover(&layout, "s", 0).unwrap().unwrap();
        assert_eq!(got.record, rec);
        assert_eq!(got.checkpoint, b"state-1");
        assert!(recover(&layout, "s", 1).unwrap().is_none());
    }

    #[test]
    fn recovery_rolls_a_committed_rename_forward_and_drops_uncommitted_files() {
        let (_d, layout) = setup();
        let committed = pending(&layout, "part-s-0-0-9");
        let uncommitted = pending(&layout, "part-s-0-10");
        let other_partition = pending(&layout, "part-s-1-0");
        // A crash right after the commit point: the record exists, the rename did not happen.
        let ckpt = write_atomically(
            &layout.state_dir("s", 0),
            "00000000000000000001.ckpt",
            b"st",
        )
        .unwrap();
        let rec = CommitRecord {
            seq: 1,
            stream: "s".into(),
            partition: 0,
            next_offset: 10,
            files: vec![committed.clone()],
            checkpoint: layout.relative(&ckpt),
            rows: 10,
            dead_letters: 0,
            committed_at_ms: 0,
            watermark_ms: None,
        };
        write_atomically(
            &layout.log_dir("s", 0),
            &record_name(1),
            &serde_json::to_vec(&rec).unwrap(),
        )
        .unwrap();
        let got = recover(&layout, "s", 0).unwrap().unwrap();
        assert_eq!(got.record.next_offset, 10);
        assert!(layout.absolute(&committed.dest).exists(), "rolled forward");
        assert!(
            !layout.absolute(&uncommitted.tmp).exists(),
            "uncommitted work removed"
        );
        assert!(
            layout.absolute(&other_partition.tmp).exists(),
            "other partitions untouched"
        );
        let listed = crate::lake::list_parquet(&layout.table_dir()).unwrap();
        assert_eq!(listed.len(), 1);
    }

    #[test]
    fn old_records_and_checkpoints_are_cleaned_up() {
        let (_d, layout) = setup();
        for seq in 1..=5 {
            commit(
                &layout,
                "s",
                0,
                seq,
                seq as i64 * 10,
                vec![],
                b"x",
                0,
                0,
                0,
                None,
            )
            .unwrap();
        }
        let logs = std::fs::read_dir(layout.log_dir("s", 0)).unwrap().count();
        let states = std::fs::read_dir(layout.state_dir("s", 0)).unwrap().count();
        assert_eq!((logs, states), (2, 2));
        assert_eq!(latest(&layout, "s", 0).unwrap().unwrap().1.seq, 5);
    }
}
