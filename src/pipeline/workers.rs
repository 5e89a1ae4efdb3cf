//! Workers: the assigned Kafka partitions shared out among processor threads.
//!
//! ```text
//!  source ──SourceEvent──▶ router (the crew's thread) ──▶ worker 0: Processor (its partitions)
//!    ▲                       │ seeks reported, then       ──▶ worker 1: Processor …
//!    └── CommitRequest ◀─────┴─ the records after them ◀── every worker asks the source itself
//! ```
//! Each worker is a whole `Processor` for the partitions it was given: their progress,
//! normalization state, open files, dead letters and commits, which the per-partition commit
//! protocol already keeps apart. What the workers share is read-only (the engine) or made for
//! sharing: the metastore registrar, the Schema Registry client with its cache, the `_SUCCESS`
//! markers, the metrics (gauges through `GaugeShare`). The memory budget's rows and state
//! shares are split evenly.
//!
//! The router gives a newly assigned partition to the worker with the fewest, splits each
//! chunk of records by owner, and forwards every seek report, to every worker, before the
//! records that follow it (the source sends the report first, and the router drains the
//! reports before it routes a chunk). A rebalance is answered once every worker has: the
//! source's rebalance callback still waits for all of them. `End` and `Stop` go to every
//! worker; a worker that fails stops the run.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::markers::Markers;
use super::{PipelineError, Processor, TICK, registration, run_summary, schemas};
use crate::config::Config;
use crate::decode::Reject;
use crate::metastore::Registrar;
use crate::normalize::Engine;
use crate::source::{CommitRequest, PartitionId, RawRecord, Seeked, SourceEvent};
use crate::telemetry::{Metrics, Progress, RunSummary, StateFigures};

/// Chunks waiting for each worker: the source's channel holds the rest.
const WORKER_CHUNKS: usize = 2;

/// What every worker uses.
pub(super) struct Shared {
    pub metrics: Metrics,
    pub engine: Arc<Engine>,
    pub registrar: Option<Arc<Registrar>>,
    pub registry: Option<Arc<Mutex<schemas::SharedRegistry>>>,
    pub markers: Option<Arc<Mutex<Markers>>>,
}

struct Worker {
    events: SyncSender<SourceEvent>,
    seeks: Sender<Seeked>,
    thread: JoinHandle<Result<RunSummary, PipelineError>>,
    /// Its channel is closed: it returned.
    gone: bool,
}

/// Which worker owns each assigned partition.
#[derive(Debug, Default)]
struct Owners {
    of: HashMap<PartitionId, usize>,
}

impl Owners {
    /// New partitions, each to the worker with the fewest (the lowest index on a tie); a
    /// partition assigned again stays where it is. Grouped by worker.
    fn assign(
        &mut self,
        parts: Vec<PartitionId>,
        workers: usize,
    ) -> BTreeMap<usize, Vec<PartitionId>> {
        let mut load = vec![0usize; workers];
        for &w in self.of.values() {
            load[w] += 1;
        }
        let mut out: BTreeMap<usize, Vec<PartitionId>> = BTreeMap::new();
        for key in parts {
            let w = match self.of.get(&key) {
                Some(&w) => w,
                None => {
                    let w = (0..workers).min_by_key(|&w| (load[w], w)).unwrap_or(0);
                    load[w] += 1;
                    w
                }
            };
            self.of.insert(key.clone(), w);
            out.entry(w).or_default().push(key);
        }
        out
    }

    /// Revoked partitions grouped by the worker that owned them, forgotten here.
    fn revoke(&mut self, parts: Vec<PartitionId>) -> BTreeMap<usize, Vec<PartitionId>> {
        let mut out: BTreeMap<usize, Vec<PartitionId>> = BTreeMap::new();
        for key in parts {
            if let Some(w) = self.of.remove(&key) {
                out.entry(w).or_default().push(key);
            }
        }
        out
    }
}

/// The workers and the router that feeds them.
pub(super) struct Crew {
    workers: Vec<Worker>,
    owners: Owners,
    metrics: Metrics,
    registrar: Option<Arc<Registrar>>,
    /// `End` or `Stop` was sent: workers returning is expected.
    ending: bool,
}

impl Crew {
    /// Build the shared parts and `cfg.runtime.workers()` processors, each on its thread.
    pub(super) fn start(
        cfg: &Config,
        to_source: Sender<CommitRequest>,
        metrics: Metrics,
        progress_every: Duration,
    ) -> Result<Crew, PipelineError> {
        let shared = shared(cfg, &metrics)?;
        let count = cfg.runtime.workers();
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let (events, rx) = sync_channel(WORKER_CHUNKS);
            let (seeks, seeked) = std::sync::mpsc::channel();
            let p = Processor::new(cfg, &shared, (index, count), to_source.clone(), seeked)?;
            let thread = std::thread::Builder::new()
                .name(format!("normlake-worker-{index}"))
                .spawn(move || p.run(rx, progress_every))
                .map_err(|e| PipelineError::Processor(e.to_string()))?;
            workers.push(Worker {
                events,
                seeks,
                thread,
                gone: false,
            });
        }
        tracing::info!(workers = count, "processor threads started");
        Ok(Crew {
            workers,
            owners: Owners::default(),
            metrics,
            registrar: shared.registrar,
            ending: false,
        })
    }

    /// Route the source's events until every worker has returned (or the source went away),
    /// then join them. `stop` asks the source to stop when a worker fails.
    pub(super) fn run(
        mut self,
        rx: Receiver<SourceEvent>,
        seeked: Receiver<Seeked>,
        progress_every: Duration,
        stop: Option<Arc<AtomicBool>>,
    ) -> Result<RunSummary, PipelineError> {
        let mut progress = Progress::new(progress_every, Instant::now());
        loop {
            for w in &mut self.workers {
                w.gone |= w.thread.is_finished();
            }
            if self.workers.iter().all(|w| w.gone) {
                break;
            }
            let ev = match rx.recv_timeout(TICK) {
                Ok(ev) => Some(ev),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.forward_seeks(&seeked);
            if let Some(ev) = ev {
                self.route(ev);
            }
            if !self.ending && self.workers.iter().any(|w| w.gone) {
                // A worker failed: the others commit what they have and the run stops.
                if let Some(stop) = &stop {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            let now = Instant::now();
            if progress.due(now) {
                progress.log(now, &self.metrics, self.state_figures());
            }
        }
        self.join()
    }

    /// Every seek the source reported, to every worker (each keeps the ones it owns).
    fn forward_seeks(&mut self, seeked: &Receiver<Seeked>) {
        while let Ok(s) = seeked.try_recv() {
            for w in &self.workers {
                let _ = w.seeks.send(s.clone());
            }
        }
    }

    fn route(&mut self, ev: SourceEvent) {
        match ev {
            SourceEvent::Records(records) => self.records(records),
            SourceEvent::Tick => {}
            SourceEvent::Assigned {
                parts,
                watermarks,
                reply,
                generation,
            } => {
                let mut merged = HashMap::new();
                for (w, parts) in self.owners.assign(parts, self.workers.len()) {
                    let (tx, answer) = sync_channel(1);
                    let ev = SourceEvent::Assigned {
                        parts,
                        watermarks: watermarks.clone(),
                        reply: tx,
                        generation,
                    };
                    if self.send(w, ev) {
                        merged.extend(answer.recv().unwrap_or_default());
                    }
                }
                let _ = reply.send(merged);
                self.ownership_changed();
            }
            SourceEvent::Revoked { parts, ack } => {
                for (w, parts) in self.owners.revoke(parts) {
                    let (tx, done) = sync_channel(1);
                    if self.send(w, SourceEvent::Revoked { parts, ack: tx }) {
                        let _ = done.recv();
                    }
                }
                let _ = ack.send(());
                self.ownership_changed();
            }
            SourceEvent::End => self.broadcast(|| SourceEvent::End),
            SourceEvent::Stop => self.broadcast(|| SourceEvent::Stop),
        }
    }

    /// Each record to the worker that owns its partition; records of partitions no worker
    /// owns (revoked) are dropped, as a worker would.
    fn records(&mut self, records: Vec<RawRecord>) {
        if self.workers.len() == 1 {
            self.send(0, SourceEvent::Records(records));
            return;
        }
        let mut split: Vec<Vec<RawRecord>> = vec![Vec::new(); self.workers.len()];
        // Records come in runs of one partition: look the owner up once a run.
        let mut run: Option<(PartitionId, Option<usize>)> = None;
        for r in records {
            let owner = match &run {
                Some(((topic, p), w)) if *p == r.partition && *topic == r.topic => *w,
                _ => {
                    let key = (r.topic.clone(), r.partition);
                    let w = self.owners.of.get(&key).copied();
                    run = Some((key, w));
                    w
                }
            };
            if let Some(w) = owner {
                split[w].push(r);
            }
        }
        for (w, records) in split.into_iter().enumerate() {
            if !records.is_empty() {
                self.send(w, SourceEvent::Records(records));
            }
        }
    }

    fn broadcast(&mut self, ev: impl Fn() -> SourceEvent) {
        self.ending = true;
        for w in 0..self.workers.len() {
            self.send(w, ev());
        }
    }

    /// Send to a worker; `false` if it has returned.
    fn send(&mut self, w: usize, ev: SourceEvent) -> bool {
        let worker = &mut self.workers[w];
        if worker.gone {
            return false;
        }
        worker.gone = worker.events.send(ev).is_err();
        !worker.gone
    }

    fn ownership_changed(&self) {
        let n = self.owners.of.len();
        self.metrics.assigned_partitions.set(n as i64);
        self.metrics.health.set_assigned(n);
        self.metrics
            .set_owned(self.owners.of.keys().map(|(t, p)| (t.to_string(), *p)));
    }

    /// The figures of the progress line, from the gauges every worker adds to.
    fn state_figures(&self) -> StateFigures {
        let m = &self.metrics;
        StateFigures {
            dead_letters: Reject::ALL
                .iter()
                .map(|r| m.dead_letters_by_reason(r.as_str()))
                .sum(),
            keys: m.state_keys.get().max(0) as usize,
            buffered: m.buffered_events.get().max(0) as usize,
            bytes: m.state_bytes.get().max(0) as usize,
            evicted: m.evicted_keys.get(),
        }
    }

    /// Close the workers' channels, wait for them, give the metastore its last chance, and
    /// sum up: the run's figures are read once every worker is done (the first failure wins).
    fn join(self) -> Result<RunSummary, PipelineError> {
        let mut dead_letters: BTreeMap<String, u64> = BTreeMap::new();
        let mut budget_evicted = 0;
        let mut failure = None;
        for w in self.workers {
            drop(w.events);
            let result = w
                .thread
                .join()
                .unwrap_or_else(|_| Err(PipelineError::Processor("a worker panicked".into())));
            match result {
                Ok(s) => {
                    for (reason, n) in s.dead_letters {
                        *dead_letters.entry(reason).or_default() += n;
                    }
                    budget_evicted += s.budget_evicted_keys;
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(r) = self.registrar.and_then(Arc::into_inner) {
            r.finish(registration::FINISH_WITHIN);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(run_summary(&self.metrics, dead_letters, budget_evicted)),
        }
    }
}

/// The parts every worker shares, built once.
pub(super) fn shared(cfg: &Config, metrics: &Metrics) -> Result<Shared, PipelineError> {
    let table = cfg.table();
    let layout = cfg.lake.layout()?;
    let markers = cfg.lake.success_marker.enabled.then(|| {
        let mut m = Markers::new(
            cfg.partitioning.clone(),
            cfg.lake.success_marker.delay.millis(),
        );
        m.find_incomplete(&layout);
        Arc::new(Mutex::new(m))
    });
    metrics.declare_dead_letter_reasons(Reject::ALL.iter().map(|r| r.as_str()));
    Ok(Shared {
        metrics: metrics.clone(),
        engine: Engine::new(cfg.plan.clone()),
        registrar: registration::start(cfg, &table, &layout, metrics)?.map(Arc::new),
        registry: schemas::registry(cfg, metrics)?.map(|r| Arc::new(Mutex::new(r))),
        markers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(ps: &[i32]) -> Vec<PartitionId> {
        ps.iter().map(|p| ("t".into(), *p)).collect()
    }

    #[test]
    fn partitions_go_to_the_least_loaded_worker_and_stay_there() {
        let mut o = Owners::default();
        let first = o.assign(parts(&[0, 1, 2, 3, 4]), 2);
        assert_eq!(first[&0], parts(&[0, 2, 4]));
        assert_eq!(first[&1], parts(&[1, 3]));
        // A rebalance takes two from worker 0 and gives two new ones: they fill worker 0 up.
        let revoked = o.revoke(parts(&[0, 2, 9]));
        assert_eq!(revoked.len(), 1, "an unknown partition is nobody's");
        assert_eq!(revoked[&0], parts(&[0, 2]));
        let second = o.assign(parts(&[5, 6, 1]), 2);
        assert_eq!(second[&0], parts(&[5, 6]));
        assert_eq!(
            second[&1],
            parts(&[1]),
            "an owned partition stays with its worker"
        );
        let mut load = [0; 2];
        for w in o.of.values() {
            load[*w] += 1;
        }
        assert_eq!(load, [3, 2]);
    }

    #[test]
    fn one_worker_owns_everything() {
        let mut o = Owners::default();
        let all = o.assign(parts(&[3, 1, 2]), 1);
        assert_eq!(all.len(), 1);
        assert_eq!(all[&0], parts(&[3, 1, 2]));
    }
}
