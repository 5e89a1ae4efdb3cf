//! The Kafka side: the only module that knows rdkafka.
//!
//! A source task reads messages in chunks, copies them into `RawRecord`s and hands them to the
//! processor over a bounded channel (back-pressure: a slow lake slows consumption, memory does
//! not grow). Offsets are committed only when the processor asks, after the data they cover is
//! durable. Calls that block (metadata, watermarks, committed offsets, the final synchronous
//! commit) run on blocking threads, never on the runtime.
//!
//! Two modes: long-running (`subscribe`, a member of the consumer group) and bounded
//! (`--until-end`: all partitions assigned to this process, read from the committed offset up
//! to the high watermark seen at start, then `SourceEvent::End`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};

use crate::config::KafkaConfig;

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
    #[error("the processor stopped")]
    ProcessorGone,
}

/// One message, copied out of librdkafka's buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub timestamp_ms: Option<i64>,
}

/// What the source hands the processor.
#[derive(Debug)]
pub enum SourceEvent {
    Records(Vec<RawRecord>),
    /// Time passes (drives rolling by age when no data comes).
    Tick,
    /// Bounded mode: every assigned partition reached its end offset.
    End,
    /// Shutdown: publish what is complete, commit it, exit.
    Stop,
    /// The group took these partitions away; their in-flight work must not be committed.
    Revoked(Vec<(Arc<str>, i32)>),
}

/// Offsets (next to read) to commit for the consumer group.
#[derive(Debug)]
pub struct CommitRequest {
    pub offsets: Vec<(Arc<str>, i32, i64)>,
    /// Set on the final commit: the source confirms it synchronously.
    pub done: Option<oneshot::Sender<Result<(), String>>>,
}

/// Forwards rebalance events without blocking librdkafka's thread.
pub struct SourceContext {
    revoked: mpsc::UnboundedSender<Vec<(Arc<str>, i32)>>,
}

impl ClientContext for SourceContext {}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _c: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts: Vec<(Arc<str>, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (Arc::from(e.topic()), e.partition()))
                    .collect();
                tracing::info!(partitions = ?parts, "partitions revoked");
                // The receiver may be gone during shutdown; nothing to do then.
                let _ = self.revoked.send(parts);
            }
            Rebalance::Assign(tpl) => {
                let parts: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}/{}", e.topic(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?parts, "partitions assigned");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

type Kafka = StreamConsumer<SourceContext>;

pub struct KafkaSource {
    consumer: Arc<Kafka>,
    topics: Vec<String>,
    bounded: bool,
    revoked: mpsc::UnboundedReceiver<Vec<(Arc<str>, i32)>>,
    timeout: Duration,
}

/// The client configuration normlake uses, user properties applied last.
pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // librdkafka ≥ 2.4 backs a partition off for 1 s whenever its fetch queue is full,
        // which stalls a fast consumer (librdkafka issue 3662).
        .set("fetch.queue.backoff.ms", "10")
        .set("queued.max.messages.kbytes", "65536");
    for (k, v) in &cfg.properties {
        c.set(k, v.expose());
    }
    c
}

const CHUNK: usize = 2048;
const TICK: Duration = Duration::from_millis(200);

impl KafkaSource {
    pub fn connect(cfg: &KafkaConfig, bounded: bool) -> Result<KafkaSource, SourceError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let consumer: Kafka = client_config(cfg)
            .create_with_context(SourceContext { revoked: tx })
            .map_err(SourceError::Create)?;
        Ok(KafkaSource {
            consumer: Arc::new(consumer),
            topics: cfg.topics.clone(),
            bounded,
            revoked: rx,
            timeout: Duration::from_secs(30),
        })
    }

    /// Bounded mode: assign every partition from its committed offset; return the end
    /// offsets (high watermarks now) of the partitions that have something to read.
    async fn assign_to_end(&self) -> Result<HashMap<(Arc<str>, i32), i64>, SourceError> {
        let consumer = self.consumer.clone();
        let topics = self.topics.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            let mut ends = HashMap::new();
            for topic in &topics {
                let md = consumer
                    .fetch_metadata(Some(topic), timeout)
                    .map_err(|source| SourceError::Topic {
                        op: "fetch metadata",
                        topic: topic.clone(),
                        source,
                    })?;
                let parts: Vec<i32> = md
                    .topics()
                    .iter()
                    .filter(|t| t.name() == topic && t.error().is_none())
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect();
                if parts.is_empty() {
                    return Err(SourceError::NoSuchTopic(topic.clone()));
                }
                for p in parts {
                    let (_low, high) =
                        consumer
                            .fetch_watermarks(topic, p, timeout)
                            .map_err(|source| SourceError::Topic {
                                op: "fetch watermarks",
                                topic: topic.clone(),
                                source,
                            })?;
                    tpl.add_partition(topic, p);
                    ends.insert((Arc::<str>::from(topic.as_str()), p), high);
                }
            }
            let committed = consumer.committed_offsets(tpl, timeout).map_err(|source| {
                SourceError::Consumer {
                    op: "read committed offsets",
                    source,
                }
            })?;
            let mut start = TopicPartitionList::new();
            for e in committed.elements() {
                let from = match e.offset() {
                    Offset::Offset(o) => Offset::Offset(o),
                    _ => Offset::Beginning,
                };
                let key = (Arc::<str>::from(e.topic()), e.partition());
                if let (Offset::Offset(o), Some(&end)) = (from, ends.get(&key))
                    && o >= end
                {
                    ends.remove(&key);
                }
                start
                    .add_partition_offset(e.topic(), e.partition(), from)
                    .map_err(|source| SourceError::Consumer {
                        op: "build the assignment",
                        source,
                    })?;
            }
            consumer
                .assign(&start)
                .map_err(|source| SourceError::Consumer {
                    op: "assign partitions",
                    source,
                })?;
            Ok(ends)
        })
        .await
        .map_err(|_| SourceError::ProcessorGone)?
    }

    /// Read until `shutdown` (or, bounded, until the end), serving commit requests throughout.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<SourceEvent>,
        mut commits: mpsc::UnboundedReceiver<CommitRequest>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), SourceError> {
        let mut remaining = if self.bounded {
            let ends = self.assign_to_end().await?;
            tracing::info!(
                partitions = ends.len(),
                "bounded run: reading to the end offsets seen at start"
            );
            Some(ends)
        } else {
            let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
            self.consumer
                .subscribe(&topics)
                .map_err(|source| SourceError::Consumer {
                    op: "subscribe",
                    source,
                })?;
            None
        };
        let consumer = self.consumer.clone();
        let mut stream = consumer.stream().ready_chunks(CHUNK);
        let mut tick = tokio::time::interval(TICK);
        tokio::pin!(shutdown);
        let mut reading = true;
        let mut topic_names: HashMap<String, Arc<str>> = HashMap::new();
        if remaining.as_ref().is_some_and(HashMap::is_empty) {
            reading = false;
            tx.send(SourceEvent::End)
                .await
                .map_err(|_| SourceError::ProcessorGone)?;
        }
        loop {
            tokio::select! {
                biased;
                req = commits.recv() => match req {
                    Some(req) => self.commit(req).await,
                    // The processor is done: nothing more to commit.
                    None => return Ok(()),
                },
                _ = &mut shutdown, if reading => {
                    tracing::info!("shutdown requested: stop reading");
                    tx.send(SourceEvent::Stop).await.map_err(|_| SourceError::ProcessorGone)?;
                    return self.drain_commits(commits).await;
                }
                Some(parts) = self.revoked.recv() => {
                    tx.send(SourceEvent::Revoked(parts)).await.map_err(|_| SourceError::ProcessorGone)?;
                }
                chunk = stream.next(), if reading => {
                    let Some(chunk) = chunk else { continue };
                    let mut records = Vec::with_capacity(chunk.len());
                    for m in chunk {
                        let m = match m {
                            Ok(m) => m,
                            Err(e) => {
                                tracing::warn!(error = %e, "consumer error (librdkafka retries)");
                                continue;
                            }
                        };
                        let topic = match topic_names.get(m.topic()) {
                            Some(t) => t.clone(),
                            None => {
                                let t: Arc<str> = Arc::from(m.topic());
                                topic_names.insert(m.topic().to_string(), t.clone());
                                t
                            }
                        };
                        if let Some(rem) = &mut remaining {
                            match rem.get(&(topic.clone(), m.partition())) {
                                Some(&end) if m.offset() < end => {
                                    if m.offset() + 1 >= end {
                                        rem.remove(&(topic.clone(), m.partition()));
                                    }
                                }
                                // Past the end seen at start, or a partition already done.
                                _ => continue,
                            }
                        }
                        records.push(RawRecord {
                            topic,
                            partition: m.partition(),
                            offset: m.offset(),
                            key: m.key().map(<[u8]>::to_vec),
                            value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                            timestamp_ms: m.timestamp().to_millis(),
                        });
                    }
                    if !records.is_empty() {
                        tx.send(SourceEvent::Records(records)).await.map_err(|_| SourceError::ProcessorGone)?;
                    }
                    if remaining.as_ref().is_some_and(HashMap::is_empty) {
                        reading = false;
                        tx.send(SourceEvent::End).await.map_err(|_| SourceError::ProcessorGone)?;
                    }
                }
                _ = tick.tick() => {
                    if tx.try_send(SourceEvent::Tick).is_err() {
                        // Full: the processor is busy anyway; a tick would add nothing.
                    }
                }
            }
        }
    }

    async fn drain_commits(
        self,
        mut commits: mpsc::UnboundedReceiver<CommitRequest>,
    ) -> Result<(), SourceError> {
        while let Some(req) = commits.recv().await {
            self.commit(req).await;
        }
        Ok(())
    }

    async fn commit(&self, req: CommitRequest) {
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in &req.offsets {
            if let Err(e) = tpl.add_partition_offset(t, *p, Offset::Offset(*o)) {
                tracing::warn!(error = %e, topic = %t, partition = p, "cannot build commit");
            }
        }
        if tpl.count() == 0 {
            if let Some(done) = req.done {
                let _ = done.send(Ok(()));
            }
            return;
        }
        match req.done {
            None => {
                if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                    tracing::warn!(error = %e, "offset commit failed; the next commit covers it");
                }
            }
            Some(done) => {
                let consumer = self.consumer.clone();
                let res =
                    tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()));
                let _ = done.send(res);
            }
        }
    }
}
