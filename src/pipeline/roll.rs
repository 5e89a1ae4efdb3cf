//! Rolls: when a partition's files are due, and sealing them and committing them to the lake
//! with a checkpoint of the partition's state (`lake::commit` has the protocol), then asking
//! the source to commit the group offset.

use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use super::progress::PartitionProgress;
use super::{PartitionId, PipelineError, Processor, checkpoint};
use crate::lake::commit::{self as lake_commit, CommitRecord, FileMove, StateWrite};
use crate::source::CommitRequest;
use crate::telemetry::unix_ms;

impl Processor {
    /// Roll the partitions whose files are due, and those with uncommitted progress older than
    /// the roll age (a partition whose events all wait in the buffer still checkpoints).
    pub(super) fn roll_due(&mut self, now: Instant) {
        let mut due: Vec<PartitionId> = Vec::new();
        for (key, why) in self.sink.due(now) {
            tracing::debug!(topic = %key.0, partition = key.1, why, "files due to roll");
            due.push(key);
        }
        for (k, p) in &self.parts {
            if p.commit_due(now, self.max_age) && !due.contains(k) {
                due.push(k.clone());
            }
        }
        for key in due {
            if let Err(e) = self.roll(&key) {
                self.failed(&key, &e.to_string(), now);
            }
        }
    }

    /// Input partitions with no record for the idle timeout commit once more, marked idle, so
    /// they stop holding back the lake's watermark (and so completion). Their next record
    /// makes them active again, and their next commit says so.
    pub(super) fn idle_partitions(&mut self, now: Instant) {
        let Some(timeout) = self.idle_timeout else {
            return;
        };
        let due: Vec<PartitionId> = self
            .parts
            .iter()
            .filter(|(_, p)| p.idle_due(now, timeout))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(p) = self.parts.get_mut(&key) {
                p.go_idle(now);
            }
            tracing::info!(topic = %key.0, partition = key.1, ?timeout, "input partition idle: it no longer holds back completion");
            if let Err(e) = self.roll(&key) {
                self.failed(&key, &e.to_string(), now);
            }
        }
    }

    /// Seal and commit one partition's files and state, then request the group commit.
    pub(super) fn roll(&mut self, key: &PartitionId) -> Result<(), PipelineError> {
        // A failed partition's uncommitted work was abandoned: committing its position would
        // skip it.
        let Some((part, next)) = self
            .parts
            .get(key)
            .and_then(|p| p.to_commit().map(|next| (p, next)))
        else {
            return Ok(());
        };
        let started = Instant::now();
        let mut sealed = self.sink.seal(&key.0, key.1, part.lineage)?;
        let dead = self.dead.seal(&key.0, key.1, part.lineage)?;
        sealed.files.extend(dead.files);
        sealed.dead_letters += dead.dead_letters;
        sealed.bytes += dead.bytes;
        let files: Vec<FileMove> = sealed
            .files
            .iter()
            .map(|(tmp, dest)| FileMove {
                tmp: tmp.clone(),
                dest: dest.clone(),
            })
            .collect();
        let seq = part.seq + 1;
        let record_watermark = Some(part.norm.watermark(&self.engine)).filter(|w| *w != i64::MIN);
        let mut record = CommitRecord::new(&key.0, key.1, seq, next);
        record.files = files;
        record.rows = sealed.rows as u64;
        record.dead_letters = sealed.dead_letters as u64;
        record.committed_at_ms = unix_ms();
        record.watermark_ms = record_watermark;
        record.lineage = part.lineage;
        record.idle = part.is_idle();
        let chain = self.commit_with_checkpoint(part, record)?;
        let dirs = super::registration::partition_dirs(&self.layout, &sealed.files);
        self.published(&dirs);
        if let Some(r) = &self.registrar {
            r.published(dirs);
        }
        if sealed.rows_after_complete > 0 {
            self.metrics
                .rows_after_complete
                .inc_by(sealed.rows_after_complete as u64);
            tracing::warn!(topic = %key.0, partition = key.1, rows = sealed.rows_after_complete, "rows written into partitions already marked complete (_SUCCESS)");
        }
        if let Some(part) = self.parts.get_mut(key) {
            part.committed(seq, next);
            part.chain = Some(chain);
            part.norm.checkpointed();
        }
        let committed_ms = unix_ms();
        if let Some(times) = self.received.remove(key) {
            self.metrics.record_latencies(committed_ms, &times);
        }
        self.metrics
            .committed_at(&key.0, key.1, record_watermark, committed_ms);
        let m = &self.metrics;
        m.commit_duration.observe(started.elapsed().as_secs_f64());
        m.rows_written.inc_by(sealed.rows as u64);
        m.files.inc_by(sealed.files.len() as u64);
        m.bytes.inc_by(sealed.bytes);
        m.commits.inc();
        m.health.set_lake_writable(true);
        tracing::debug!(topic = %key.0, partition = key.1, seq, next, files = sealed.files.len(), rows = sealed.rows, "committed");
        let _ = self.to_source.send(CommitRequest {
            offsets: vec![(key.0.clone(), key.1, next)],
            seek: Vec::new(),
            done: None,
        });
        Ok(())
    }

    /// Commit `record` with a checkpoint of the partition's state: a delta on its chain, or
    /// whole when the chain says a new one starts. Returns the chain after it.
    fn commit_with_checkpoint(
        &self,
        part: &PartitionProgress,
        record: CommitRecord,
    ) -> Result<checkpoint::Chain, PipelineError> {
        let next = record.next_offset;
        let chain = part.chain.as_ref();
        let delta = chain.filter(|c| c.takes_delta());
        let state = match delta {
            Some(c) => StateWrite::Delta { on: &c.lake },
            None => StateWrite::Whole {
                previous: chain.map(|c| &c.lake),
            },
        };
        let mut written = 0;
        let committed = lake_commit::commit(&self.layout, record, state, &mut |w| {
            let mut counted = Counted { inner: w, bytes: 0 };
            let done = match delta {
                Some(_) => checkpoint::write_delta(
                    &self.shape,
                    next,
                    &part.norm,
                    &self.engine,
                    &mut counted,
                ),
                None => checkpoint::write(&self.shape, next, &part.norm, &mut counted),
            };
            written = counted.bytes;
            done
        })?;
        self.metrics.checkpoint_bytes.inc_by(written);
        if delta.is_none() {
            self.metrics.whole_checkpoints.inc();
        }
        Ok(checkpoint::Chain::after(&committed, chain, written))
    }

    /// Commit every partition with progress, then confirm the group offsets synchronously.
    pub(super) fn commit_all_and_confirm(&mut self) -> Result<(), PipelineError> {
        for key in self.parts.keys().cloned().collect::<Vec<_>>() {
            if self.parts.get(&key).is_some_and(|p| !p.is_failed()) {
                self.roll(&key)?;
            }
        }
        let offsets: Vec<(Arc<str>, i32, i64)> = self
            .parts
            .iter()
            .filter_map(|(k, p)| p.committed.map(|o| (k.0.clone(), k.1, o)))
            .collect();
        let (done_tx, done_rx) = sync_channel(1);
        let req = CommitRequest {
            offsets,
            seek: Vec::new(),
            done: Some(done_tx),
        };
        if self.to_source.send(req).is_err() {
            return Err(PipelineError::FinalCommit("the source is gone".into()));
        }
        match done_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(PipelineError::FinalCommit(e)),
            Err(_) => Err(PipelineError::FinalCommit(
                "no answer from the source".into(),
            )),
        }
    }
}

/// A writer that counts the bytes through it.
struct Counted<'a> {
    inner: &'a mut dyn std::io::Write,
    bytes: u64,
}

impl std::io::Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
