//! The wiring: the one place that knows every stage.
//!
//! ```text
//!  KafkaSource (async task) ──SourceEvent──▶ Processor (blocking thread)
//!        ▲        bounded channel            decode → normalize → sink (Parquet, rolls)
//!        └────────── CommitRequest ◀──────── offsets that are durable in the lake
//! ```
//! The processor runs decoding, normalization and Parquet encoding on a dedicated blocking
//! thread so the runtime only moves messages. Offsets travel with the data: for each input
//! partition the processor knows the next offset to read, the smallest offset still buffered
//! by the normalizer (event-time reordering) and the smallest offset the sink has not yet
//! published. The group's offset is committed only up to the smallest of the three, after a
//! roll made the data below it durable.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::decode::{Decoder, Reject};
use crate::lake::Layout;
use crate::normalize::{Engine, Event, PartitionState};
use crate::sink::{
    DeadLetter, OutRows, OutputSchema, RollingPolicy, RowMeta, Sink, SinkError, writer_properties,
};
use crate::source::{CommitRequest, KafkaSource, RawRecord, SourceError, SourceEvent};
use crate::telemetry::{Counters, Latency, Progress, RunSummary};

/// Failures of a run, by stage.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("writing to the lake failed: {0}")]
    Sink(#[from] SinkError),
    #[error("the final offset commit failed: {0}")]
    FinalCommit(String),
    #[error("the processor thread failed: {0}")]
    Processor(String),
}

/// Runtime knobs of a run (the configuration file holds the semantics).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Read to the end offsets seen at start, emit every buffered event, commit and return.
    pub until_end: bool,
    pub progress_every: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            until_end: false,
            progress_every: Duration::from_secs(10),
        }
    }
}

/// Run the job until `shutdown` resolves (or, bounded, until the end of the input).
pub async fn run(
    cfg: Config,
    opts: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, PipelineError> {
    let source = KafkaSource::connect(&cfg.kafka, opts.until_end)?;
    let (tx, rx) = mpsc::channel::<SourceEvent>(16);
    let (commit_tx, commit_rx) = mpsc::unbounded_channel::<CommitRequest>();
    let processor = Processor::new(&cfg, commit_tx);
    let progress_every = opts.progress_every;
    let worker = tokio::task::spawn_blocking(move || processor.run(rx, progress_every));
    let source_result = source.run(tx, commit_rx, shutdown).await;
    let processed = worker
        .await
        .map_err(|e| PipelineError::Processor(e.to_string()))?;
    // A processor failure explains a source that saw it go away.
    let summary = processed?;
    source_result?;
    Ok(summary)
}

struct PartitionProgress {
    norm: PartitionState<RowMeta>,
    /// Next offset to read.
    next: i64,
    committed: i64,
}

/// Decode, normalize and write, on one thread.
pub struct Processor {
    decoder: Decoder,
    engine: Arc<Engine>,
    sink: Sink,
    parts: HashMap<(Arc<str>, i32), PartitionProgress>,
    commits: mpsc::UnboundedSender<CommitRequest>,
    counters: Arc<Counters>,
    dead_by_reason: BTreeMap<&'static str, u64>,
    latency: Latency,
    /// Receive times of rows not yet published, per input partition (for the latency figures).
    received: HashMap<(Arc<str>, i32), Vec<i64>>,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Processor {
    pub fn new(cfg: &Config, commits: mpsc::UnboundedSender<CommitRequest>) -> Processor {
        let engine = Engine::new(cfg.plan.clone());
        let schema = Arc::new(output_schema(cfg));
        let floats: Vec<&str> = schema.float_columns().collect();
        let hash = config_hash(cfg);
        let props = writer_properties(cfg.lake.compression, &floats, &hash);
        let sink = Sink::new(
            Layout::new(&cfg.lake.root, &cfg.lake.table),
            schema.clone(),
            props,
            RollingPolicy {
                max_rows: cfg.lake.rolling.max_rows,
                max_age: cfg.lake.rolling.max_age.0,
            },
        );
        Processor {
            decoder: Decoder::new(cfg.input.clone()),
            engine,
            sink,
            parts: HashMap::new(),
            commits,
            counters: Arc::new(Counters::default()),
            dead_by_reason: BTreeMap::new(),
            latency: Latency::default(),
            received: HashMap::new(),
        }
    }

    fn run(
        mut self,
        mut rx: mpsc::Receiver<SourceEvent>,
        progress_every: Duration,
    ) -> Result<RunSummary, PipelineError> {
        let mut progress = Progress::new(progress_every, Instant::now());
        while let Some(ev) = rx.blocking_recv() {
            let now = Instant::now();
            match ev {
                SourceEvent::Records(records) => self.records(records, now)?,
                SourceEvent::Tick => {}
                SourceEvent::Revoked(parts) => self.revoked(&parts),
                SourceEvent::End => {
                    self.finish_all(now)?;
                    self.roll_all_and_commit(true)?;
                    return Ok(self.summary());
                }
                SourceEvent::Stop => {
                    self.roll_all_and_commit(true)?;
                    return Ok(self.summary());
                }
            }
            for (stream, p) in self.sink.due(now) {
                self.roll(&stream, p)?;
            }
            let keys = self.parts.values().map(|p| p.norm.key_count()).sum();
            let pending = self.parts.values().map(|p| p.norm.pending_len()).sum();
            progress.maybe_log(now, &self.counters, &self.latency, keys, pending);
        }
        // The source went away without a stop (it failed): publish what is complete.
        self.roll_all_and_commit(false)?;
        Ok(self.summary())
    }

    fn records(&mut self, records: Vec<RawRecord>, now: Instant) -> Result<(), PipelineError> {
        Counters::add(&self.counters.consumed, records.len() as u64);
        let received_ms = unix_ms();
        let mut out: OutRows = self.engine.emitted();
        let mut i = 0;
        // Records arrive grouped by partition in chunks; handle each run of one partition.
        while i < records.len() {
            let (topic, partition) = (records[i].topic.clone(), records[i].partition);
            let mut j = i;
            while j < records.len()
                && records[j].partition == partition
                && records[j].topic == topic
            {
                j += 1;
            }
            let key = (topic.clone(), partition);
            let part = self
                .parts
                .entry(key.clone())
                .or_insert_with(|| PartitionProgress {
                    norm: PartitionState::default(),
                    next: records[i].offset,
                    committed: records[i].offset,
                });
            for r in &records[i..j] {
                if r.offset < part.next {
                    // Already seen (a re-delivery after a seek): never process twice.
                    continue;
                }
                part.next = r.offset + 1;
                let reject = match self.decoder.decode(r.key.as_deref(), &r.value) {
                    Err(reason) => Some(reason),
                    Ok(d) => {
                        let ev = Event {
                            key: d.key,
                            ts_ms: d.ts_ms,
                            seq: r.offset,
                            features: d.features,
                            payload: RowMeta {
                                passthrough: d.passthrough,
                                received_ms,
                            },
                        };
                        part.norm
                            .push(&self.engine, ev, &mut out)
                            .map(|_| Reject::LateEvent)
                    }
                };
                if let Some(reason) = reject {
                    *self.dead_by_reason.entry(reason.as_str()).or_default() += 1;
                    Counters::add(&self.counters.dead_letters, 1);
                    if reason == Reject::LateEvent {
                        Counters::add(&self.counters.late, 1);
                    }
                    self.sink.dead_letter(
                        &topic,
                        partition,
                        DeadLetter {
                            offset: r.offset,
                            key: r.key.clone(),
                            value: r.value.clone(),
                            reason: reason.as_str(),
                            timestamp_ms: r.timestamp_ms,
                        },
                        now,
                    );
                }
            }
            self.write(&topic, partition, &mut out, now)?;
            i = j;
        }
        Ok(())
    }

    fn write(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        out: &mut OutRows,
        now: Instant,
    ) -> Result<(), PipelineError> {
        if out.is_empty() {
            return Ok(());
        }
        self.sink.append(topic, partition, out, now)?;
        self.received
            .entry((topic.clone(), partition))
            .or_default()
            .extend(out.events().iter().map(|e| e.payload.received_ms));
        out.clear();
        Ok(())
    }

    /// End of a bounded input: every buffered event is emitted.
    fn finish_all(&mut self, now: Instant) -> Result<(), PipelineError> {
        let keys: Vec<(Arc<str>, i32)> = self.parts.keys().cloned().collect();
        for (topic, p) in keys {
            let mut out = self.engine.emitted();
            if let Some(part) = self.parts.get_mut(&(topic.clone(), p)) {
                part.norm.finish(&self.engine, &mut out);
            }
            self.write(&topic, p, &mut out, now)?;
        }
        Ok(())
    }

    fn revoked(&mut self, parts: &[(Arc<str>, i32)]) {
        for key in parts {
            // Unpublished work of a revoked partition is abandoned: its offsets were not
            // committed, so the new owner reads it again.
            self.parts.remove(key);
            self.received.remove(key);
        }
        self.sink.abandon(parts);
    }

    fn roll(&mut self, topic: &Arc<str>, partition: i32) -> Result<(), PipelineError> {
        let report = self.sink.roll(topic, partition)?;
        let published = unix_ms();
        if let Some(times) = self.received.remove(&(topic.clone(), partition)) {
            for t in times {
                self.latency.record(Duration::from_millis(
                    published.saturating_sub(t).max(0) as u64
                ));
            }
        }
        Counters::add(&self.counters.rows_written, report.rows as u64);
        Counters::add(&self.counters.files, report.files.len() as u64);
        Counters::add(&self.counters.bytes, report.bytes);
        if !report.files.is_empty() {
            tracing::debug!(topic = %topic, partition, files = report.files.len(), rows = report.rows, "rolled");
        }
        if let Some(req) = self.commit_request(&[(topic.clone(), partition)]) {
            let _ = self.commits.send(req);
        }
        Ok(())
    }

    /// The commit for these partitions: up to the smallest offset not yet durable.
    fn commit_request(&mut self, keys: &[(Arc<str>, i32)]) -> Option<CommitRequest> {
        let mut offsets = Vec::new();
        for key in keys {
            let Some(part) = self.parts.get_mut(key) else {
                continue;
            };
            let frontier = [
                Some(part.next),
                part.norm.min_pending_seq(),
                self.sink.min_unpublished(&key.0, key.1),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(part.next);
            if frontier > part.committed {
                part.committed = frontier;
                offsets.push((key.0.clone(), key.1, frontier));
            }
        }
        if offsets.is_empty() {
            None
        } else {
            Counters::add(&self.counters.commits, 1);
            Some(CommitRequest {
                offsets,
                done: None,
            })
        }
    }

    /// Publish everything complete and commit it; `wait` confirms the commit synchronously.
    fn roll_all_and_commit(&mut self, wait: bool) -> Result<(), PipelineError> {
        for (topic, p) in self.sink.open_partitions() {
            self.roll(&topic, p)?;
        }
        if !wait {
            return Ok(());
        }
        let keys: Vec<(Arc<str>, i32)> = self.parts.keys().cloned().collect();
        // Recompute from scratch so the final commit carries every partition's position.
        for part in self.parts.values_mut() {
            part.committed = i64::MIN;
        }
        let Some(mut req) = self.commit_request(&keys) else {
            return Ok(());
        };
        let (done_tx, done_rx) = oneshot::channel();
        req.done = Some(done_tx);
        if self.commits.send(req).is_err() {
            return Err(PipelineError::FinalCommit("the source is gone".into()));
        }
        match done_rx.blocking_recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(PipelineError::FinalCommit(e)),
            Err(_) => Err(PipelineError::FinalCommit("the source is gone".into())),
        }
    }

    fn summary(&self) -> RunSummary {
        let c = &self.counters;
        RunSummary {
            consumed: Counters::get(&c.consumed),
            rows_written: Counters::get(&c.rows_written),
            dead_letters: self
                .dead_by_reason
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            files: Counters::get(&c.files),
            bytes: Counters::get(&c.bytes),
            latency: self.latency.percentiles(),
        }
    }
}

/// The table's columns for a configuration.
pub fn output_schema(cfg: &Config) -> OutputSchema {
    OutputSchema::new(
        cfg.plan.features.clone(),
        cfg.input.passthrough.clone(),
        cfg.lake.keep_raw,
        cfg.plan.slots(),
    )
}

/// A short, stable fingerprint of what shapes the output (recorded in every Parquet file).
pub fn config_hash(cfg: &Config) -> String {
    use sha2::Digest;
    let text = format!("{:?}|{:?}|{}", cfg.input, cfg.plan, cfg.lake.keep_raw);
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
