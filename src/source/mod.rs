//! The Kafka side: the only module that knows rdkafka (and, in `registry`, the Schema
//! Registry, where the writer schemas of Avro records come from).
//!
//! The consumer runs on a dedicated thread (`BaseConsumer::poll`), so every rdkafka call
//! that blocks (metadata, watermarks, commits) and the rebalance callback, which has to wait
//! for the processor, never blocks the async runtime. Messages are copied into `RawRecord`s
//! and handed to the processor over a bounded channel: a slow lake slows consumption, and
//! memory does not grow.
//!
//! Positions come from the lake, not from the consumer group. On every assignment the
//! rebalance callback asks the processor to recover the partitions from the lake's commit
//! record and assigns them at the offsets it answers. On a revoke it waits until the
//! processor has abandoned the partitions' in-flight work, so no file of a revoked partition is
//! committed after the revoke. The group's offsets are still committed after each lake commit,
//! on request, so lag tools work.
//!
//! There are two modes. In long-running mode the source subscribes as a member of the group.
//! In bounded mode (`--until-end`) it assigns itself every partition up to the high watermark
//! seen at start, then sends `SourceEvent::End`.

mod client;
pub mod registry;

pub use client::KafkaClient;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use crate::telemetry::Metrics;

/// Failures talking to Kafka, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot create the Kafka consumer: {0}")]
    Create(#[source] KafkaError),
    #[error("cannot {op} for topic {topic}: {source}")]
    Topic {
        op: &'static str,
        topic: String,
        source: KafkaError,
    },
    #[error("topic {0} does not exist or has no partitions")]
    NoSuchTopic(String),
    #[error("cannot {op}: {source}")]
    Consumer {
        op: &'static str,
        source: KafkaError,
    },
    #[error("the source thread failed: {0}")]
    Thread(String),
    #[error(
        "a message batch cannot be decoded ({0}): a codec this build lacks, or a corrupt batch; the bounded run stops instead of retrying it forever"
    )]
    Undecodable(KafkaError),
}

pub use crate::lake::PartitionId;

/// One message, copied out of librdkafka's buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub timestamp_ms: Option<i64>,
    /// The source's generation when the record was read. Every assignment and every seek
    /// starts a new generation, so the processor can tell records read before a seek (still
    /// in flight) from records read after it.
    pub generation: u64,
}

/// What the source hands the processor.
#[derive(Debug)]
pub enum SourceEvent {
    Records(Vec<RawRecord>),
    /// Time passes (drives rolling by age when no data comes).
    Tick,
    /// These partitions are now ours: recover them from the lake and answer, per partition,
    /// the offset to read from (`None`: from the beginning).
    Assigned {
        parts: Vec<PartitionId>,
        /// Each partition's (low, high) watermarks, where the broker answered.
        watermarks: HashMap<PartitionId, (i64, i64)>,
        reply: SyncSender<HashMap<PartitionId, Option<i64>>>,
        /// Records of these partitions from earlier generations are stale.
        generation: u64,
    },
    /// These partitions are being taken away: abandon their in-flight work, then acknowledge.
    Revoked {
        parts: Vec<PartitionId>,
        ack: SyncSender<()>,
    },
    /// Bounded mode: every assigned partition reached its end offset.
    End,
    /// Shutdown: publish what is complete, commit it, exit.
    Stop,
}

/// What the processor asks of the source: offsets (next to read) to commit for the consumer
/// group, and partitions to seek back to their lake position after a failed roll.
#[derive(Debug)]
pub struct CommitRequest {
    pub offsets: Vec<(Arc<str>, i32, i64)>,
    pub seek: Vec<(PartitionId, Option<i64>)>,
    /// Set on the final commit: the source confirms it synchronously.
    pub done: Option<SyncSender<Result<(), String>>>,
}

impl CommitRequest {
    pub fn seek(key: PartitionId, position: Option<i64>) -> Self {
        CommitRequest {
            offsets: Vec::new(),
            seek: vec![(key, position)],
            done: None,
        }
    }
}

/// How long a rebalance callback waits for the processor before going on without it.
const REBALANCE_WAIT: Duration = Duration::from_secs(120);

/// A seek the source carried out: records of the partition from `generation` on are read
/// from the new position (`ok` false: the seek failed and should be asked again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeked {
    pub part: PartitionId,
    pub generation: u64,
    pub ok: bool,
}

/// Runs inside `poll` on the source thread, so it may wait for the processor.
pub struct SourceContext {
    to_processor: SyncSender<SourceEvent>,
    metrics: Metrics,
    generation: Arc<AtomicU64>,
}

impl ClientContext for SourceContext {
    /// Consumer lag per partition from librdkafka's statistics: no blocking watermark calls.
    fn stats(&self, statistics: Statistics) {
        let lags = statistics.topics.into_iter().flat_map(|(topic, t)| {
            t.partitions.into_values().filter_map(move |p| {
                // Partition -1 is librdkafka's internal "unassigned" queue; a lag of -1 is
                // unknown (no high watermark yet, or a partition not fetched by us).
                (p.partition >= 0 && p.consumer_lag >= 0 && p.fetch_state == "active")
                    .then(|| (topic.clone(), p.partition, p.consumer_lag))
            })
        });
        self.metrics.set_lag(lags);
    }
}

fn parts_of(tpl: &TopicPartitionList) -> Vec<PartitionId> {
    tpl.elements()
        .iter()
        .map(|e| (Arc::from(e.topic()), e.partition()))
        .collect()
}

impl SourceContext {
    /// Ask the processor for the lake positions of `parts`, giving it their watermarks so it
    /// can tell a lake ahead of the topic or behind its log start.
    fn positions(
        &self,
        parts: Vec<PartitionId>,
        watermarks: HashMap<PartitionId, (i64, i64)>,
    ) -> HashMap<PartitionId, Option<i64>> {
        let (reply, answer) = sync_channel(1);
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        if self
            .to_processor
            .send(SourceEvent::Assigned {
                parts,
                watermarks,
                reply,
                generation,
            })
            .is_err()
        {
            return HashMap::new();
        }
        answer.recv_timeout(REBALANCE_WAIT).unwrap_or_default()
    }
}

/// The (low, high) watermarks of `parts`; a partition the broker does not answer for is left
/// out (and logged), and the processor then cannot check its lake position against them.
fn watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    parts: &[PartitionId],
) -> HashMap<PartitionId, (i64, i64)> {
    let mut out = HashMap::new();
    for key in parts {
        match consumer.fetch_watermarks(&key.0, key.1, TIMEOUT) {
            Ok(w) => {
                out.insert(key.clone(), w);
            }
            Err(e) => {
                tracing::warn!(topic = %key.0, partition = key.1, error = %e, "cannot fetch the watermarks; the lake position is not checked against them")
            }
        }
    }
    out
}

/// The consumer errors that mean a fetched batch cannot be decoded by this consumer (a codec
/// it lacks, a corrupt batch): librdkafka retries them forever, so they are reported.
pub fn undecodable(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e,
        KafkaError::MessageConsumption(code) | KafkaError::MessageConsumptionFatal(code)
            if matches!(
                code,
                C::NotImplemented
                    | C::BadCompression
                    | C::BadMessage
                    | C::InvalidMessage
                    | C::UnsupportedCompressionType
                    | C::InvalidRecord
            )
    )
}

/// Set each partition's offset in `tpl` to its lake position.
fn apply_positions(tpl: &mut TopicPartitionList, positions: &HashMap<PartitionId, Option<i64>>) {
    for (key, pos) in positions {
        let offset = pos.map_or(Offset::Beginning, Offset::Offset);
        if let Err(e) = tpl.set_partition_offset(&key.0, key.1, offset) {
            tracing::warn!(topic = %key.0, partition = key.1, error = %e, "cannot set the start offset");
        }
    }
}

impl ConsumerContext for SourceContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let parts = parts_of(tpl);
                let marks = watermarks(consumer, &parts);
                let positions = self.positions(parts.clone(), marks);
                apply_positions(tpl, &positions);
                tracing::info!(partitions = ?parts, "partitions assigned, resuming from the lake");
                let res = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = res {
                    tracing::error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let parts = parts_of(tpl);
                tracing::info!(partitions = ?parts, "partitions revoked");
                let (ack, acked) = sync_channel(1);
                if self
                    .to_processor
                    .send(SourceEvent::Revoked { parts, ack })
                    .is_ok()
                {
                    // The processor is gone when this fails; nothing is in flight then.
                    let _ = acked.recv_timeout(REBALANCE_WAIT);
                }
                let res = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = res {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error; dropping the assignment");
                let _ = consumer.unassign();
            }
        }
    }
}

/// What the consumer reads: the cluster, the group and the topics.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub client: KafkaClient,
    pub group_id: String,
    pub topics: Vec<String>,
}

/// The consumer configuration normlake uses, user properties applied last. `input_bytes` is
/// the memory budget's share for prefetched messages.
pub fn consumer_config(sub: &Subscription, input_bytes: u64) -> ClientConfig {
    // A quarter each for librdkafka's prefetch queue (bytes, and a message count at about 512
    // bytes a message with librdkafka's own overhead: it would otherwise keep 100,000 per
    // partition whatever their size), for a fetch response in flight, for the chunks on their
    // way to the processor, and for librdkafka's per-partition buffers.
    let queue_kb = (input_bytes / 4 / 1024).clamp(1024, 65536);
    let queue_messages = (input_bytes / 4 / 512).clamp(1000, 100_000);
    let fetch = (input_bytes / 4).clamp(1 << 20, 50 << 20);
    let (queue_kb, queue_messages, fetch) = (
        queue_kb.to_string(),
        queue_messages.to_string(),
        fetch.to_string(),
    );
    sub.client.config(&[
        ("group.id", &sub.group_id),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        // librdkafka ≥ 2.4 backs a partition off for 1 s whenever its fetch queue is full,
        // which stalls a fast consumer (librdkafka issue 3662).
        ("fetch.queue.backoff.ms", "10"),
        // A quiet topic answers a fetch only after this wait (librdkafka's default is 500 ms,
        // half a second of latency to the lake for nothing).
        ("fetch.wait.max.ms", "100"),
        ("queued.max.messages.kbytes", &queue_kb),
        ("fetch.max.bytes", &fetch),
        ("queued.min.messages", &queue_messages),
        // Feeds the consumer-lag metric (see `SourceContext::stats`).
        ("statistics.interval.ms", "5000"),
    ])
}

const CHUNK: usize = 2048;
const TICK: Duration = Duration::from_millis(200);
const POLL: Duration = Duration::from_millis(100);

type Kafka = BaseConsumer<SourceContext>;

/// The source's connections to the rest of the job.
pub struct Links {
    /// Records and events, bounded (back-pressure).
    pub to_processor: SyncSender<SourceEvent>,
    /// Group commits and seeks the processor asks for.
    pub commits: Receiver<CommitRequest>,
    /// Seeks carried out.
    pub seeked: Sender<Seeked>,
    /// Set on shutdown.
    pub stop: Arc<AtomicBool>,
}

/// Start the source thread.
pub fn spawn(
    sub: &Subscription,
    bounded: bool,
    links: Links,
    metrics: Metrics,
    input_bytes: u64,
) -> Result<JoinHandle<Result<(), SourceError>>, SourceError> {
    let Links {
        to_processor,
        commits,
        seeked,
        stop,
    } = links;
    let consumer: Kafka = consumer_config(sub, input_bytes)
        .create_with_context(SourceContext {
            to_processor: to_processor.clone(),
            metrics,
            generation: Arc::new(AtomicU64::new(0)),
        })
        .map_err(SourceError::Create)?;
    let topics = sub.topics.clone();
    std::thread::Builder::new()
        .name("normlake-source".into())
        .spawn(move || {
            let mut s = SourceLoop {
                consumer,
                to_processor,
                commits,
                stop,
                remaining: None,
                ends: FastMap::default(),
                names: FastMap::default(),
                seeked,
            };
            s.run(&topics, bounded)
        })
        .map_err(|e| SourceError::Thread(e.to_string()))
}

/// The maps every message looks up (its topic's shared name, its partition's end in a bounded
/// run): hashed with foldhash, as SipHash's DoS resistance buys nothing for broker-given names.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

struct SourceLoop {
    consumer: Kafka,
    to_processor: SyncSender<SourceEvent>,
    commits: Receiver<CommitRequest>,
    stop: Arc<AtomicBool>,
    /// Bounded mode: end offset (exclusive) of every partition not yet finished.
    remaining: Option<FastMap<PartitionId, i64>>,
    /// Bounded mode: the end of every partition, to read up to again after a seek back.
    ends: FastMap<PartitionId, i64>,
    names: FastMap<String, Arc<str>>,
    /// Where seeks are reported: a channel of its own, never full, so reporting cannot wait
    /// for a processor that waits for this thread.
    seeked: Sender<Seeked>,
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl SourceLoop {
    fn run(&mut self, topics: &[String], bounded: bool) -> Result<(), SourceError> {
        if bounded {
            self.assign_to_end(topics)?;
        } else {
            let t: Vec<&str> = topics.iter().map(String::as_str).collect();
            self.consumer
                .subscribe(&t)
                .map_err(|source| SourceError::Consumer {
                    op: "subscribe",
                    source,
                })?;
        }
        let mut reading = true;
        let mut last_tick = Instant::now();
        loop {
            if reading {
                if self.stop.load(Ordering::Relaxed) {
                    tracing::info!("shutdown requested: stop reading");
                    reading = false;
                    let _ = self.to_processor.send(SourceEvent::Stop);
                    continue;
                }
                if self.remaining.as_ref().is_some_and(HashMap::is_empty) {
                    reading = false;
                    let _ = self.to_processor.send(SourceEvent::End);
                    continue;
                }
                let records = self.poll_chunk(bounded)?;
                if !records.is_empty()
                    && self
                        .to_processor
                        .send(SourceEvent::Records(records))
                        .is_err()
                {
                    return Ok(());
                }
                if last_tick.elapsed() >= TICK {
                    last_tick = Instant::now();
                    if let Err(TrySendError::Disconnected(_)) =
                        self.to_processor.try_send(SourceEvent::Tick)
                    {
                        return Ok(());
                    }
                }
                while let Ok(req) = self.commits.try_recv() {
                    self.commit(req);
                }
            } else {
                // Serve commits until the processor is done (it drops its sender).
                match self.commits.recv_timeout(POLL) {
                    Ok(req) => {
                        self.commit(req);
                        // Bounded: a seek back (a partition that waited) reads up to the end
                        // again, and ends again.
                        if self.remaining.as_ref().is_some_and(|r| !r.is_empty())
                            && !self.stop.load(Ordering::Relaxed)
                        {
                            reading = true;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        // Keep the group session alive while the processor finishes.
                        let _ = self.consumer.poll(Duration::ZERO);
                    }
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
            }
        }
    }

    /// Bounded mode: assign every partition from its lake position up to the high
    /// watermark now.
    fn assign_to_end(&mut self, topics: &[String]) -> Result<(), SourceError> {
        let mut marks = HashMap::new();
        for topic in topics {
            let md = self
                .consumer
                .fetch_metadata(Some(topic), TIMEOUT)
                .map_err(|source| SourceError::Topic {
                    op: "fetch metadata",
                    topic: topic.clone(),
                    source,
                })?;
            let ids: Vec<i32> = md
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if ids.is_empty() {
                return Err(SourceError::NoSuchTopic(topic.clone()));
            }
            for p in ids {
                let w = self
                    .consumer
                    .fetch_watermarks(topic, p, TIMEOUT)
                    .map_err(|source| SourceError::Topic {
                        op: "fetch watermarks",
                        topic: topic.clone(),
                        source,
                    })?;
                marks.insert((Self::name(&mut self.names, topic), p), w);
            }
        }
        let mut ends: FastMap<PartitionId, i64> = marks
            .iter()
            .map(|(k, (_, high))| (k.clone(), *high))
            .collect();
        let parts: Vec<PartitionId> = ends.keys().cloned().collect();
        let positions = self.consumer.context().positions(parts.clone(), marks);
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &parts {
            tpl.add_partition(t, *p);
        }
        apply_positions(&mut tpl, &positions);
        for (key, pos) in &positions {
            if let (Some(next), Some(end)) = (pos, ends.get(key))
                && next >= end
            {
                ends.remove(key);
            }
        }
        self.consumer
            .assign(&tpl)
            .map_err(|source| SourceError::Consumer {
                op: "assign partitions",
                source,
            })?;
        tracing::info!(
            partitions = parts.len(),
            unfinished = ends.len(),
            "bounded run: reading to the end offsets seen at start"
        );
        self.ends = ends.clone();
        self.remaining = Some(ends);
        Ok(())
    }

    /// The shared name of `topic`, made once per topic (records carry it without a copy).
    fn name(names: &mut FastMap<String, Arc<str>>, topic: &str) -> Arc<str> {
        match names.get(topic) {
            Some(t) => t.clone(),
            None => {
                let t: Arc<str> = Arc::from(topic);
                names.insert(topic.to_string(), t.clone());
                t
            }
        }
    }

    /// Up to `CHUNK` messages: wait up to `POLL` for the first, then take what is ready. A
    /// batch that cannot be decoded fails a bounded run (librdkafka would retry it forever).
    fn poll_chunk(&mut self, bounded: bool) -> Result<Vec<RawRecord>, SourceError> {
        let mut records = Vec::new();
        let mut timeout = POLL;
        while records.len() < CHUNK {
            let copied = match self.consumer.poll(timeout) {
                None => break,
                Some(Err(e)) if undecodable(&e) => {
                    let metrics = &self.consumer.context().metrics;
                    metrics.input_undecodable.inc();
                    metrics
                        .health
                        .set_input_undecodable(crate::telemetry::unix_ms());
                    tracing::error!(error = %e, "a fetched message batch cannot be decoded (a compression codec this build lacks, or a corrupt batch); its partition makes no progress");
                    if bounded {
                        return Err(SourceError::Undecodable(e));
                    }
                    break;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error (librdkafka retries)");
                    break;
                }
                Some(Ok(m)) => (
                    Self::name(&mut self.names, m.topic()),
                    m.partition(),
                    m.offset(),
                    m.key().map(<[u8]>::to_vec),
                    m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    m.timestamp().to_millis(),
                ),
            };
            timeout = Duration::ZERO;
            let (topic, partition, offset, key, value, timestamp_ms) = copied;
            if let Some(rem) = &mut self.remaining {
                let id = (topic.clone(), partition);
                match rem.get(&id) {
                    Some(&end) if offset < end => {
                        if offset + 1 >= end {
                            rem.remove(&id);
                        }
                    }
                    // Past the end seen at start, or a partition already done.
                    _ => continue,
                }
            }
            let generation = self.consumer.context().generation.load(Ordering::SeqCst);
            records.push(RawRecord {
                topic,
                partition,
                offset,
                key,
                value,
                timestamp_ms,
                generation,
            });
        }
        Ok(records)
    }

    fn commit(&mut self, req: CommitRequest) {
        for ((t, p), pos) in &req.seek {
            let id = (t.clone(), *p);
            if let (Some(rem), Some(&end)) = (&mut self.remaining, self.ends.get(&id))
                && pos.is_none_or(|o| o < end)
            {
                rem.insert(id, end);
            }
            let offset = pos.map_or(Offset::Beginning, Offset::Offset);
            let ok = match self.consumer.seek(t, *p, offset, TIMEOUT) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(topic = %t, partition = p, error = %e, "seek back to the lake position failed");
                    false
                }
            };
            // Records polled from now on carry the new generation; the report goes out before
            // any of them, so the processor knows which records predate the seek.
            let generation = self
                .consumer
                .context()
                .generation
                .fetch_add(1, Ordering::SeqCst)
                + 1;
            let _ = self.seeked.send(Seeked {
                part: (t.clone(), *p),
                generation,
                ok,
            });
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in &req.offsets {
            if let Err(e) = tpl.add_partition_offset(t, *p, Offset::Offset(*o)) {
                tracing::warn!(error = %e, topic = %t, partition = p, "cannot build commit");
            }
        }
        let mode = if req.done.is_some() {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        let res = if tpl.count() == 0 {
            Ok(())
        } else {
            self.consumer.commit(&tpl, mode)
        };
        if let Err(e) = &res {
            // The lake holds the position; a failed group commit only delays lag figures.
            tracing::warn!(error = %e, "consumer group offset commit failed");
        }
        if let Some(done) = req.done {
            let _ = done.send(res.map_err(|e| e.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode as C;

    #[test]
    fn batches_the_consumer_cannot_decode_are_told_from_passing_errors() {
        for code in [C::NotImplemented, C::BadCompression, C::BadMessage] {
            assert!(
                undecodable(&KafkaError::MessageConsumption(code)),
                "{code:?}"
            );
        }
        assert!(undecodable(&KafkaError::MessageConsumptionFatal(
            C::InvalidMessage
        )));
        for code in [
            C::BrokerTransportFailure,
            C::AllBrokersDown,
            C::OffsetOutOfRange,
        ] {
            assert!(
                !undecodable(&KafkaError::MessageConsumption(code)),
                "{code:?}"
            );
        }
        assert!(!undecodable(&KafkaError::PartitionEOF(0)));
    }
}
