//! Dead letters to a Kafka topic: the raw key and value of each rejected record, with headers
//! for the reason and the origin (`normlake.reason`, `normlake.source.topic`,
//! `normlake.source.partition`, `normlake.source.offset`, `normlake.source.timestamp`).
//!
//! Letters are held per input partition and produced when that partition rolls; the roll's
//! lake commit waits until the broker has acknowledged every one of them. A dead-letter topic
//! that is down is retried with a back-off for as long as it takes. Meanwhile the processor
//! does not read, so the source's bounded channel fills and consumption pauses: back-pressure,
//! not loss. Delivery is at least once: a crash after the letters were acknowledged but before
//! the lake commit produces them again on replay (the origin headers identify duplicates).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::{DeadLetter, DeadLetterSink, Held};
use crate::sink::{Sealed, SinkError};
use crate::source::{KafkaClient, SourceError};
use crate::telemetry::Metrics;

/// Collects the indexes of letters whose delivery failed.
#[derive(Default)]
pub struct Deliveries {
    failed: Mutex<Vec<usize>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<usize>) {
        if let Err((e, _)) = result {
            tracing::debug!(error = %e, "dead letter not delivered");
            self.failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(*index);
        }
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct KafkaDeadLetters {
    producer: BaseProducer<Deliveries>,
    topic: String,
    held: Held,
    metrics: Metrics,
}

impl KafkaDeadLetters {
    /// A producer for `topic` on the cluster `client` names (normlake's settings first, the
    /// user's properties applied over them).
    pub fn new(topic: &str, client: &KafkaClient, metrics: Metrics) -> Result<Self, SourceError> {
        let producer = client
            .config(&[
                ("acks", "all"),
                // A broker that does not answer fails a delivery after this long; the roll
                // then retries it itself, with a back-off and a log line, rather than
                // waiting silently.
                ("message.timeout.ms", "30000"),
                ("linger.ms", "5"),
            ])
            .create_with_context(Deliveries::default())
            .map_err(SourceError::Create)?;
        Ok(KafkaDeadLetters {
            producer,
            topic: topic.to_string(),
            held: Held::default(),
            metrics,
        })
    }

    fn enqueue(
        &self,
        stream: &str,
        partition: i32,
        index: usize,
        d: &DeadLetter,
    ) -> Result<(), KafkaError> {
        let partition_text = partition.to_string();
        let offset_text = d.offset.to_string();
        let ts_text = d.timestamp_ms.map(|t| t.to_string());
        let mut headers = OwnedHeaders::new_with_capacity(5)
            .insert(Header {
                key: "normlake.reason",
                value: Some(d.reason),
            })
            .insert(Header {
                key: "normlake.source.topic",
                value: Some(stream),
            })
            .insert(Header {
                key: "normlake.source.partition",
                value: Some(&partition_text),
            })
            .insert(Header {
                key: "normlake.source.offset",
                value: Some(&offset_text),
            });
        if let Some(ts) = &ts_text {
            headers = headers.insert(Header {
                key: "normlake.source.timestamp",
                value: Some(ts),
            });
        }
        let mut record: BaseRecord<'_, [u8], [u8], Box<usize>> =
            BaseRecord::with_opaque_to(&self.topic, Box::new(index))
                .payload(d.value.as_slice())
                .headers(headers);
        if let Some(k) = &d.key {
            record = record.key(k.as_slice());
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // librdkafka's queue is full: serve delivery reports, then try again.
                    record = r;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
}

impl DeadLetterSink for KafkaDeadLetters {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn held(&mut self) -> &mut Held {
        &mut self.held
    }

    fn seal(
        &mut self,
        stream: &Arc<str>,
        partition: i32,
        _lineage: u32,
    ) -> Result<Sealed, SinkError> {
        let letters = self.held.take(stream, partition);
        if letters.is_empty() {
            return Ok(Sealed::default());
        }
        let mut todo: Vec<usize> = (0..letters.len()).collect();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let mut failed = Vec::new();
            for &i in &todo {
                let Some(d) = letters.get(i) else { continue };
                if let Err(e) = self.enqueue(stream, partition, i, d) {
                    tracing::debug!(error = %e, "dead letter not enqueued");
                    failed.push(i);
                }
            }
            // Waits for every delivery report (each arrives within message.timeout.ms).
            while self.producer.in_flight_count() > 0 {
                let _ = self.producer.flush(Duration::from_secs(1));
            }
            failed.extend(std::mem::take(
                &mut *self
                    .producer
                    .context()
                    .failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            ));
            if failed.is_empty() {
                break;
            }
            self.metrics.dead_letter_retries.inc();
            tracing::warn!(
                topic = %self.topic,
                undelivered = failed.len(),
                retry_in_ms = backoff.as_millis() as u64,
                "the dead-letter topic did not take every letter; the partition waits and retries"
            );
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            failed.sort_unstable();
            failed.dedup();
            todo = failed;
        }
        Ok(Sealed {
            dead_letters: letters.len(),
            ..Sealed::default()
        })
    }

    fn held_bytes(&self) -> usize {
        self.held.bytes()
    }
}
