//! Which partitions this processor owns and where each resumes: recovery from the lake on
//! assignment, dropping work on revoke, seeks the source reports, and the back-off and
//! recovery of a partition whose roll failed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{CommitRequest, PartitionId, PartitionProgress, PipelineError, Processor, checkpoint};
use crate::config::{DataLoss, OffsetReset};
use crate::lake::commit as lake_commit;

impl Processor {
    /// Drop the uncommitted files and dead letters of these partitions.
    pub(super) fn abandon_work(&mut self, parts: &[PartitionId]) {
        self.sink.abandon(parts);
        self.dead.abandon(parts);
    }

    /// Take the source's reports of seeks carried out: from their generation on, a partition's
    /// records come from the requested position. A failed seek is asked again.
    pub(super) fn seeks_done(&mut self) {
        while let Ok(s) = self.seeked.try_recv() {
            let Some(p) = self.parts.get_mut(&s.part) else {
                continue;
            };
            if let Some(target) = p.seek_done(s.generation, s.ok) {
                let _ = self.to_source.send(CommitRequest::seek(s.part, target));
            }
        }
    }

    /// Recover newly assigned partitions from the lake, check their positions against the
    /// partitions' (low, high) watermarks, and answer where to read from.
    pub(super) fn assigned(
        &mut self,
        parts: &[PartitionId],
        watermarks: &HashMap<PartitionId, (i64, i64)>,
    ) -> (HashMap<PartitionId, Option<i64>>, Result<(), PipelineError>) {
        let mut positions = HashMap::new();
        // One listing of the table's temporary files for every partition of the assignment.
        let temporary = match lake_commit::temporary_files(&self.layout) {
            Ok(t) => t,
            Err(e) => return (positions, Err(e.into())),
        };
        for key in parts {
            let recovered = self
                .recover_from(key, &temporary)
                .and_then(|p| self.reconcile(key, p, watermarks.get(key).copied()));
            match recovered {
                Ok(p) => {
                    positions.insert(key.clone(), p.next);
                    self.parts.insert(key.clone(), p);
                }
                Err(e) => return (positions, Err(e)),
            }
        }
        (positions, Ok(()))
    }

    pub(super) fn recover(
        &mut self,
        key: &PartitionId,
    ) -> Result<PartitionProgress, PipelineError> {
        let temporary = lake_commit::temporary_files(&self.layout)?;
        self.recover_from(key, &temporary)
    }

    /// Recover a partition; `temporary` is the table's temporary files, listed beforehand.
    pub(super) fn recover_from(
        &mut self,
        key: &PartitionId,
        temporary: &[String],
    ) -> Result<PartitionProgress, PipelineError> {
        let (stream, partition) = (&*key.0, key.1);
        self.abandon_work(std::slice::from_ref(key));
        self.received.remove(key);
        let found = lake_commit::recover_with(&self.layout, stream, partition, temporary)?;
        let Some(found) = found else {
            tracing::info!(
                topic = stream,
                partition,
                "nothing committed yet: reading from the beginning"
            );
            return Ok(PartitionProgress::fresh());
        };
        let ckpt_err = |op, message: String| PipelineError::Checkpoint {
            stream: stream.to_string(),
            partition,
            op,
            message,
        };
        let ckpt = checkpoint::decode(&found.checkpoint, &found.deltas, &self.shape, &self.engine)
            .map_err(|m| ckpt_err("read", m))?;
        // After a migration the deltas would not replay on what follows: a new chain starts.
        let chain = ckpt.migrated.is_none().then(|| {
            let deltas = found.deltas.iter().map(Vec::len).sum();
            checkpoint::Chain::recovered(&found.record, found.checkpoint.len(), deltas)
        });
        if let Some((kept, new, dropped)) = ckpt.migrated {
            tracing::info!(
                topic = stream,
                partition,
                kept,
                new,
                dropped,
                "the configuration changed since the checkpoint: state migrated by name"
            );
        }
        tracing::info!(
            topic = stream,
            partition,
            next_offset = ckpt.next,
            commit = found.record.seq,
            deltas = found.deltas.len(),
            keys = ckpt.state.key_count(),
            buffered = ckpt.state.pending_len(),
            "recovered from the lake"
        );
        Ok(PartitionProgress::recovered(
            ckpt.state,
            ckpt.next,
            found.record.seq,
            found.record.lineage,
            chain,
        ))
    }

    /// Compare a recovered partition's lake position with the partition's (low, high)
    /// watermarks. A lake ahead of the partition's end (a recreated topic) and a lake behind
    /// its log start (records lost to retention) are never passed over in silence: each
    /// stops the job, or is handled as `kafka.on_offset_reset` / `kafka.on_data_loss` say.
    pub(super) fn reconcile(
        &self,
        key: &PartitionId,
        mut p: PartitionProgress,
        watermarks: Option<(i64, i64)>,
    ) -> Result<PartitionProgress, PipelineError> {
        let (Some(next), Some((low, high))) = (p.next, watermarks) else {
            return Ok(p);
        };
        let (topic, partition) = (key.0.to_string(), key.1);
        if next > high {
            if self.on_offset_reset == OffsetReset::Fail {
                return Err(PipelineError::LakeAhead {
                    topic,
                    partition,
                    lake_next: next,
                    high,
                });
            }
            let new = p.new_lineage();
            let lineage = new.lineage;
            tracing::warn!(
                topic,
                partition,
                lake_next = next,
                high,
                lineage,
                "the lake is ahead of the partition (recreated topic?): starting a new lineage from the earliest offset with fresh state; earlier files stay in the lake"
            );
            return Ok(new);
        }
        if next < low {
            let lost = low - next;
            self.metrics.lost_offsets(&topic, partition, lost as u64);
            tracing::error!(
                topic,
                partition,
                lake_next = next,
                log_start = low,
                lost,
                "records were deleted (retention) before the lake read them"
            );
            if self.on_data_loss == DataLoss::Fail {
                return Err(PipelineError::DataLost {
                    topic,
                    partition,
                    lake_next: next,
                    low,
                    lost,
                });
            }
            p.next = Some(low);
        }
        Ok(p)
    }

    pub(super) fn revoked(&mut self, parts: &[PartitionId]) {
        for key in parts {
            // Uncommitted work of a revoked partition is abandoned: the new owner resumes from
            // the lake's commit record with the state checkpointed there.
            self.parts.remove(key);
            self.received.remove(key);
        }
        self.abandon_work(parts);
    }

    /// A roll failed: drop the partition's uncommitted work and recover it from the lake after
    /// a back-off. Nothing uncommitted is visible and no offset moved, so nothing is lost.
    pub(super) fn failed(&mut self, key: &PartitionId, error: &str, now: Instant) {
        self.metrics.write_failures.inc();
        self.metrics.health.set_lake_writable(false);
        self.abandon_work(std::slice::from_ref(key));
        self.received.remove(key);
        if let Some(p) = self.parts.get_mut(key) {
            let backoff = p.failed(now);
            tracing::error!(topic = %key.0, partition = key.1, error, retry_in_ms = backoff.as_millis() as u64, "writing to the lake failed; the partition will resume from its last commit");
        }
    }

    /// Recover failed partitions whose back-off has passed, and seek the source back.
    pub(super) fn retry_failed(&mut self, now: Instant) {
        let ready: Vec<(PartitionId, Duration)> = self
            .parts
            .iter()
            .filter_map(|(k, p)| p.retry_due(now).map(|b| (k.clone(), b)))
            .collect();
        for (key, backoff) in ready {
            match self.recover(&key) {
                Ok(mut p) => {
                    let position = p.seek_to_position();
                    if let Some(old) = self.parts.get(&key) {
                        p.succeeds(old);
                    }
                    self.parts.insert(key.clone(), p);
                    let _ = self
                        .to_source
                        .send(CommitRequest::seek(key.clone(), position));
                    tracing::info!(topic = %key.0, partition = key.1, ?position, "recovered after a failed roll");
                }
                Err(e) => {
                    if let Some(p) = self.parts.get_mut(&key) {
                        let next = p.retry_failed(now, backoff);
                        tracing::error!(topic = %key.0, partition = key.1, error = %e, retry_in_ms = next.as_millis() as u64, "recovery failed");
                    }
                }
            }
        }
    }
}
