//! The wiring: the one place that knows every stage.
//!
//! ```text
//!  source thread (rdkafka) ──SourceEvent──▶ router ──▶ worker threads (processors)
//!        ▲            bounded channel                  decode → normalize → sink → lake commit
//!        └────── ToSource (group commits, seeks) ◀──────┘
//! ```
//! The runtime only waits for the shutdown signal; the source, the router and each worker run
//! on their own threads (`workers`). Each worker's processor owns one `PartitionProgress` per
//! assigned input partition: the normalization state, the next offset to read and the commit
//! sequence. A *roll* seals the partition's files and commits them with a checkpoint of that
//! state through `lake::commit` (see there for the protocol), and only then asks the source to
//! commit the group offset. On assignment a partition is recovered from the lake; on revoke its
//! in-flight work is abandoned; after a failed roll it is recovered from the lake again after
//! a back-off, and reading resumes from the lake's position.

mod budget;
mod checkpoint;
mod markers;
mod ownership;
mod progress;
mod registration;
mod roll;
mod schemas;
#[cfg(test)]
mod tests;
mod workers;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Config, DataLoss, MemoryShare, OffsetReset};
use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::decode::{Decoded, Decoder, PassValue, Reject, column_name};
use crate::lake::Layout;
use crate::lake::commit::CommitError;
use crate::normalize::{Engine, Event, FeatureValue};
use crate::sink::{OutRows, RowMeta, Sink, SinkError};
use crate::source::{
    self, CommitRequest, PartitionId, RawRecord, Seeked, SourceError, SourceEvent,
};
use crate::telemetry::{
    GaugeShare, LatencySource, Metrics, RowTimes, RunSummary, StateFigures, unix_ms,
};
use checkpoint::Shape;
use markers::Markers;
use progress::{Admit, PartitionProgress};

/// Failures of a run, by stage.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("writing to the lake failed: {0}")]
    Sink(#[from] SinkError),
    #[error("the lake's commit log failed: {0}")]
    Commit(#[from] CommitError),
    #[error("the lake cannot be opened: {0}")]
    Lake(#[from] crate::lake::LakeError),
    #[error("the Schema Registry client: {0}")]
    Registry(String),
    #[error("checkpoint of {stream}/{partition} cannot be {op}: {message}")]
    Checkpoint {
        stream: String,
        partition: i32,
        op: &'static str,
        message: String,
    },
    #[error("the final offset commit failed: {0}")]
    FinalCommit(String),
    #[error(
        "the input ended while {0} partition(s) could not be written to the lake; what was committed is safe, run again to continue"
    )]
    Incomplete(usize),
    #[error("the processor thread failed: {0}")]
    Processor(String),
    #[error("the metastore registrar cannot start: {0}")]
    Registrar(String),
    #[error(
        "shutdown did not finish within the grace period of {0:?}; committed data is safe, the rest is read again on restart"
    )]
    ShutdownTimeout(Duration),
    #[error(
        "the lake is ahead of {topic}/{partition}: it has read up to offset {lake_next}, but the partition ends at {high} (was the topic deleted and recreated, or is this another cluster?). Nothing was read. To start a new lineage of the partition from its earliest offset, keeping the files already in the lake, set kafka.on_offset_reset = \"restart_from_earliest\""
    )]
    LakeAhead {
        topic: String,
        partition: i32,
        lake_next: i64,
        high: i64,
    },
    #[error(
        "records of {topic}/{partition} were deleted before the lake read them: the lake's next offset is {lake_next}, but the partition now starts at {low} ({lost} offsets lost, probably to retention). To go on from the log start, set kafka.on_data_loss = \"continue\""
    )]
    DataLost {
        topic: String,
        partition: i32,
        lake_next: i64,
        low: i64,
        lost: i64,
    },
}

/// Runtime knobs of a run (the configuration file holds the semantics).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Read to the end offsets seen at start, emit every buffered event, commit and return.
    pub until_end: bool,
    pub progress_every: Duration,
    /// How long committing and closing may take after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Where the run's figures go (the caller may serve them).
    pub metrics: Metrics,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            until_end: false,
            progress_every: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            metrics: Metrics::new(),
        }
    }
}

/// Run the job until `shutdown` resolves (or, bounded, until the end of the input).
pub async fn run(
    cfg: Config,
    opts: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, PipelineError> {
    let (tx, rx) = sync_channel::<SourceEvent>(CHANNEL_CHUNKS);
    let (commit_tx, commit_rx) = std::sync::mpsc::channel::<CommitRequest>();
    let (seeked_tx, seeked_rx) = std::sync::mpsc::channel::<Seeked>();
    let stop = Arc::new(AtomicBool::new(false));
    let source = source::spawn(
        &cfg.kafka.subscription(),
        opts.until_end,
        source::Links {
            to_processor: tx,
            commits: commit_rx,
            seeked: seeked_tx,
            stop: stop.clone(),
        },
        opts.metrics.clone(),
        cfg.memory.input_bytes(),
    )?;
    let progress_every = opts.progress_every;
    let crew = workers::Crew::start(&cfg, commit_tx, opts.metrics.clone(), progress_every)?;
    let crew_stop = stop.clone();
    let mut worker = tokio::task::spawn_blocking(move || {
        crew.run(rx, seeked_rx, progress_every, Some(crew_stop))
    });
    tokio::pin!(shutdown);
    let processed = tokio::select! {
        r = &mut worker => r,
        _ = &mut shutdown => {
            stop.store(true, Ordering::Relaxed);
            match tokio::time::timeout(opts.shutdown_grace, worker).await {
                Ok(r) => r,
                Err(_) => return Err(PipelineError::ShutdownTimeout(opts.shutdown_grace)),
            }
        }
    };
    let processed = processed.map_err(|e| PipelineError::Processor(e.to_string()))?;
    let source_result = tokio::task::spawn_blocking(move || source.join())
        .await
        .map_err(|e| PipelineError::Processor(e.to_string()))?
        .map_err(|_| {
            PipelineError::Source(SourceError::Thread("the source thread panicked".into()))
        })?;
    // A processor failure explains a source that saw it go away.
    let summary = processed?;
    source_result?;
    Ok(summary)
}

/// The whole record path without Kafka: decode, normalize, write and commit `batches` of the
/// given input partitions into the configured lake, as a bounded run would (every buffered
/// event is emitted at the end). For tests, fuzzing and the core-pipeline benchmark.
pub fn process_offline(
    cfg: &Config,
    partitions: Vec<PartitionId>,
    batches: impl IntoIterator<Item = Vec<RawRecord>> + Send + 'static,
    metrics: Metrics,
) -> Result<RunSummary, PipelineError> {
    let (commit_tx, commit_rx) = std::sync::mpsc::channel::<CommitRequest>();
    // Nothing seeks here: the sender is dropped at once.
    let (_, seeked_rx) = std::sync::mpsc::channel::<Seeked>();
    let every = Duration::from_secs(3600);
    let crew = workers::Crew::start(cfg, commit_tx, metrics, every)?;
    let (tx, rx) = sync_channel::<SourceEvent>(16);
    // Stands in for the source: hands over the records, answers the final commit.
    let feeder = std::thread::spawn(move || {
        let (reply, _positions) = sync_channel(1);
        let _ = tx.send(SourceEvent::Assigned {
            parts: partitions,
            watermarks: HashMap::new(),
            reply,
            generation: 0,
        });
        for batch in batches {
            if tx.send(SourceEvent::Records(batch)).is_err() {
                return;
            }
        }
        let _ = tx.send(SourceEvent::End);
        for req in commit_rx {
            if let Some(done) = req.done {
                let _ = done.send(Ok(()));
            }
        }
    });
    let result = crew.run(rx, seeked_rx, every, None);
    let _ = feeder.join();
    result
}

/// The run's figures from its metrics, with the dead letters by reason and the keys the
/// budget evicted, which the workers count each for themselves.
fn run_summary(
    m: &Metrics,
    dead_letters: BTreeMap<String, u64>,
    budget_evicted_keys: u64,
) -> RunSummary {
    RunSummary {
        consumed: m.consumed.get(),
        rows_written: m.rows_written.get(),
        dead_letters,
        files: m.files.get(),
        bytes: m.bytes.get(),
        write_failures: m.write_failures.get(),
        evicted_keys: m.evicted_keys.get(),
        budget_evicted_keys,
        latency: m.percentiles(LatencySource::Received),
    }
}

/// Decode, normalize and write, on one thread.
pub struct Processor {
    decoder: Decoder,
    engine: Arc<Engine>,
    sink: Sink,
    dead: Box<dyn DeadLetterSink>,
    layout: Layout,
    max_age: Duration,
    parts: HashMap<PartitionId, PartitionProgress>,
    to_source: Sender<CommitRequest>,
    seeked: Receiver<Seeked>,
    metrics: Metrics,
    dead_by_reason: BTreeMap<&'static str, u64>,
    on_offset_reset: OffsetReset,
    on_data_loss: DataLoss,
    memory: MemoryShare,
    budget: budget::Checks,
    shape: Shape,
    /// `_SUCCESS` markers: partition directories not yet complete, with their bucket's end
    /// (shared by the workers).
    markers: Option<Arc<Mutex<Markers>>>,
    budget_evicted: u64,
    /// Times of rows not yet committed, per input partition, for the latency figures:
    /// (event time, Kafka time, received), Unix ms.
    received: HashMap<PartitionId, RowTimes>,
    /// Registration in the Hive Metastore, when configured (shared by the workers).
    registrar: Option<Arc<crate::metastore::Registrar>>,
    /// `[time] idle_timeout`.
    idle_timeout: Option<Duration>,
    /// The Schema Registry, for Avro input (shared by the workers).
    registry: Option<Arc<Mutex<schemas::SharedRegistry>>>,
    /// This worker's parts of the gauges every worker adds to.
    gauges: Gauges,
}

/// One worker's parts of the gauges that sum over workers.
#[derive(Debug, Default)]
struct Gauges {
    open_files: GaugeShare,
    memory_bytes: GaugeShare,
    waiting: GaugeShare,
    keys: GaugeShare,
    state_bytes: GaugeShare,
    buffered: GaugeShare,
}

/// Decode an admitted record and hand its event to the partition's normalization; emitted
/// rows go to `out`. A late event comes back as a reject.
fn ingest(
    decoder: &Decoder,
    metrics: &Metrics,
    engine: &Engine,
    part: &mut PartitionProgress,
    r: &RawRecord,
    received_ms: i64,
    out: &mut OutRows,
) -> Result<(), Reject> {
    let d = decoder.decode_at(r.key.as_deref(), &r.value, r.timestamp_ms)?;
    count_invalid(decoder, &d, metrics);
    let ev = Event {
        key: d.key,
        ts_ms: d.ts_ms,
        seq: r.offset,
        features: d.features,
        payload: RowMeta {
            passthrough: d.passthrough,
            received_ms,
            kafka_ms: r.timestamp_ms,
        },
    };
    match part.norm.push(engine, ev, out) {
        Some(_) => Err(Reject::LateEvent),
        None => Ok(()),
    }
}

/// Count the values of another type than their column's: features that are not numbers and
/// typed pass-through values that do not fit.
fn count_invalid(decoder: &Decoder, d: &Decoded, metrics: &Metrics) {
    let spec = decoder.spec();
    for (f, v) in spec.features.iter().zip(&d.features) {
        if *v == FeatureValue::Invalid {
            metrics.invalid_value(&column_name(f));
        }
    }
    for (p, v) in spec.passthrough.iter().zip(&d.passthrough) {
        if *v == PassValue::Invalid {
            metrics.invalid_value(&p.column());
        }
    }
}

/// How long the processor waits for an event before it does its periodic work anyway (rolls,
/// retries, resuming partitions that waited for the registry).
const TICK: Duration = Duration::from_millis(500);

/// Chunks (of up to 2,048 records) between the source and the processor: enough to keep both
/// busy, few enough to count little against the memory budget.
const CHANNEL_CHUNKS: usize = 4;

impl Processor {
    /// One worker: `seat` is its index and the number of workers, among which the memory
    /// budget is shared.
    fn new(
        cfg: &Config,
        shared: &workers::Shared,
        seat: (usize, usize),
        to_source: Sender<CommitRequest>,
        seeked: Receiver<Seeked>,
    ) -> Result<Processor, PipelineError> {
        let metrics = shared.metrics.clone();
        let engine = shared.engine.clone();
        let shape = Shape::of(cfg, &engine);
        let table = cfg.table();
        let layout = cfg.lake.layout()?;
        let dead = crate::dead_letter::open(cfg, &layout, &table.props, &metrics)?;
        let sink = Sink::new(layout.clone(), &table);
        Ok(Processor {
            decoder: Decoder::new(cfg.input.clone()),
            dead,
            engine,
            sink,
            layout,
            max_age: cfg.lake.rolling.max_age.0,
            parts: HashMap::new(),
            to_source,
            seeked,
            metrics,
            memory: cfg.memory.share(seat.1),
            shape,
            markers: shared.markers.clone(),
            budget: budget::Checks::new(Instant::now()),
            budget_evicted: 0,
            dead_by_reason: BTreeMap::new(),
            on_offset_reset: cfg.kafka.on_offset_reset,
            on_data_loss: cfg.kafka.on_data_loss,
            received: HashMap::new(),
            registrar: shared.registrar.clone(),
            idle_timeout: cfg.idle_timeout,
            registry: shared.registry.clone(),
            gauges: Gauges::default(),
        })
    }

    /// The worker's loop: until the end of the input, a stop, or the router going away.
    fn run(
        mut self,
        rx: Receiver<SourceEvent>,
        progress_every: Duration,
    ) -> Result<RunSummary, PipelineError> {
        let mut figures_at = Instant::now();
        match self.layout.probe_writable() {
            Ok(()) => self.metrics.health.set_lake_writable(true),
            Err(e) => tracing::warn!(error = %e, "the lake is not writable yet"),
        }
        loop {
            let ev = match rx.recv_timeout(TICK) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) => SourceEvent::Tick,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let now = Instant::now();
            if let Some(summary) = self.event(ev, now)? {
                return Ok(summary);
            }
            self.periodic(now);
            if now.saturating_duration_since(figures_at) >= progress_every {
                figures_at = now;
                self.report_state();
            }
        }
        // The source went away without End or Stop (it failed): commit what is complete.
        for key in self.parts.keys().cloned().collect::<Vec<_>>() {
            self.roll(&key)?;
        }
        Ok(self.summary())
    }

    /// Handle one event; `Some` when the run is over.
    fn event(
        &mut self,
        ev: SourceEvent,
        now: Instant,
    ) -> Result<Option<RunSummary>, PipelineError> {
        match ev {
            SourceEvent::Records(records) => {
                self.seeks_done();
                self.records(records, now)?
            }
            SourceEvent::Tick => self.seeks_done(),
            SourceEvent::Assigned {
                parts,
                watermarks,
                reply,
                generation,
            } => {
                let (positions, result) = self.assigned(&parts, &watermarks);
                for key in &parts {
                    if let Some(p) = self.parts.get_mut(key) {
                        p.starts_generation(generation);
                    }
                }
                let _ = reply.send(positions);
                result?;
            }
            SourceEvent::Revoked { parts, ack } => {
                self.revoked(&parts);
                let _ = ack.send(());
            }
            SourceEvent::End if self.parts.values().any(PartitionProgress::is_behind) => {
                // A partition waits for the registry or for a seek: the source reads it
                // again once asked to seek, and ends again.
                tracing::info!(
                    "the end of the input is reached, but a partition is still behind: waiting for it"
                );
            }
            SourceEvent::End => {
                self.finish_all(now)?;
                self.commit_all_and_confirm()?;
                self.mark_complete_partitions(None);
                let failed = self.parts.values().filter(|p| p.is_failed()).count();
                if failed > 0 {
                    return Err(PipelineError::Incomplete(failed));
                }
                return Ok(Some(self.summary()));
            }
            SourceEvent::Stop => {
                self.commit_all_and_confirm()?;
                self.mark_complete_partitions(None);
                return Ok(Some(self.summary()));
            }
        }
        Ok(None)
    }

    /// The work due after every event: rolls, idleness, retries, the budget, markers.
    fn periodic(&mut self, now: Instant) {
        self.roll_due(now);
        self.idle_partitions(now);
        self.retry_failed(now);
        self.resume_waiting(now);
        self.enforce_budget(now);
        self.mark_complete_partitions(Some(now));
        let open = self.sink.open_files() as i64;
        self.gauges.open_files.set(&self.metrics.open_files, open);
    }

    /// This worker's part of the state gauges (a walk over every key: not after every event).
    fn report_state(&mut self) {
        let state = self.state_figures();
        let (m, g) = (&self.metrics, &mut self.gauges);
        g.keys.set(&m.state_keys, state.keys as i64);
        g.state_bytes.set(&m.state_bytes, state.bytes as i64);
        g.buffered.set(&m.buffered_events, state.buffered as i64);
    }

    /// Each record of a chunk: admission (exactly once, in offset order), decode, normalize,
    /// then the rows go to the sink and the rejects to the dead letters.
    fn records(&mut self, records: Vec<RawRecord>, now: Instant) -> Result<(), PipelineError> {
        self.metrics.consumed.inc_by(records.len() as u64);
        let received_ms = unix_ms();
        let mut out: OutRows = self.engine.emitted();
        // Records arrive grouped by partition in chunks; handle each run of one partition.
        for run in records.chunk_by(|a, b| a.partition == b.partition && a.topic == b.topic) {
            let Some(first) = run.first() else { continue };
            let key = (first.topic.clone(), first.partition);
            // Not ours (any more): a revoked partition's last records.
            let Some(part) = self.parts.get_mut(&key) else {
                continue;
            };
            let evicted_before = part.norm.counters.evicted_keys;
            let mut rejected = Vec::new();
            for r in run {
                match part.admit(r.offset, r.generation, now) {
                    Admit::Take => {}
                    Admit::Skip => continue,
                    Admit::SeekBack(offset) => {
                        let _ = self
                            .to_source
                            .send(CommitRequest::seek(key.clone(), Some(offset)));
                        // The rest of this run is from before the seek too.
                        break;
                    }
                }
                let (decoder, registry) = (&mut self.decoder, self.registry.as_deref());
                if let Err(until) = schemas::ensure(decoder, registry, &self.metrics, &r.value, now)
                {
                    part.wait_for_schema(r.offset, until);
                    break;
                }
                let ingested = ingest(
                    &self.decoder,
                    &self.metrics,
                    &self.engine,
                    part,
                    r,
                    received_ms,
                    &mut out,
                );
                if let Err(reason) = ingested {
                    rejected.push((r, reason));
                }
            }
            let evicted = part.norm.counters.evicted_keys;
            self.metrics
                .evicted_keys
                .inc_by(evicted.saturating_sub(evicted_before));
            for (r, reason) in rejected {
                self.reject(r, reason);
            }
            self.write(&key, &mut out, now)?;
        }
        Ok(())
    }

    /// Send a record to the dead letters, counted by reason.
    fn reject(&mut self, r: &RawRecord, reason: Reject) {
        *self.dead_by_reason.entry(reason.as_str()).or_default() += 1;
        self.metrics.dead_letter(reason.as_str());
        if reason == Reject::LateEvent {
            self.metrics.late.inc();
        }
        self.dead.push(
            &r.topic,
            r.partition,
            DeadLetter {
                offset: r.offset,
                key: r.key.clone(),
                value: r.value.clone(),
                reason: reason.as_str(),
                timestamp_ms: r.timestamp_ms,
            },
        );
    }

    fn write(
        &mut self,
        key: &PartitionId,
        out: &mut OutRows,
        now: Instant,
    ) -> Result<(), PipelineError> {
        if out.is_empty() {
            return Ok(());
        }
        let written = self.sink.append(&key.0, key.1, out, now);
        if written.is_ok() {
            let times = self.received.entry(key.clone()).or_default();
            for e in out.events() {
                let m = &e.payload;
                times.push([e.ts_ms, m.kafka_ms.unwrap_or(i64::MIN), m.received_ms]);
            }
        }
        out.clear();
        if let Err(e) = written {
            self.failed(key, &e.to_string(), now);
        }
        Ok(())
    }

    /// End of a bounded input: every buffered event is emitted.
    fn finish_all(&mut self, now: Instant) -> Result<(), PipelineError> {
        for key in self.parts.keys().cloned().collect::<Vec<_>>() {
            let mut out = self.engine.emitted();
            if let Some(part) = self.parts.get_mut(&key) {
                if part.is_failed() {
                    continue;
                }
                part.norm.finish(&self.engine, &mut out);
                if !out.is_empty() {
                    part.dirty_since.get_or_insert(now);
                }
            }
            self.write(&key, &mut out, now)?;
        }
        Ok(())
    }

    fn state_figures(&self) -> StateFigures {
        self.parts
            .values()
            .fold(StateFigures::default(), |f, p| StateFigures {
                dead_letters: self.dead_by_reason.values().sum(),
                keys: f.keys + p.norm.key_count(),
                buffered: f.buffered + p.norm.pending_len(),
                bytes: f.bytes + p.norm.state_footprint().0,
                evicted: f.evicted + p.norm.counters.evicted_keys,
            })
    }

    /// This worker's summary: the run's figures so far, its own dead letters and evictions.
    fn summary(&self) -> RunSummary {
        let dead = self.dead_by_reason.iter().map(|(k, v)| (k.to_string(), *v));
        run_summary(&self.metrics, dead.collect(), self.budget_evicted)
    }
}
