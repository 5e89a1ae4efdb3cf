//! `[kafka]` and `[dead_letter]`: the cluster the job reads, what it does when the lake and a
//! partition disagree, and where dead letters go.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Collector, Config, Sensitive, defaults};
use crate::source::{KafkaClient, Subscription};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated bootstrap servers.
    pub brokers: String,
    pub topics: Vec<String>,
    #[serde(default = "defaults::group_id")]
    pub group_id: String,
    /// Passed to librdkafka as is (security settings, timeouts, …). Secrets are redacted.
    #[serde(default)]
    pub properties: BTreeMap<String, Sensitive<String>>,
    /// What to do when the lake is ahead of a partition's end (the topic was recreated, or
    /// the job points at another cluster).
    #[serde(default)]
    pub on_offset_reset: OffsetReset,
    /// What to do when the lake is behind a partition's log start (retention deleted records
    /// the lake never read).
    #[serde(default)]
    pub on_data_loss: DataLoss,
}

/// `kafka.on_offset_reset`: a lake position beyond the partition's high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OffsetReset {
    /// Stop with an error naming the topic, the partition and both offsets.
    #[default]
    Fail,
    /// Start a new lineage of the partition from its earliest offset, with fresh state; the
    /// old lineage's files stay, and new file names cannot collide with them.
    RestartFromEarliest,
}

/// `kafka.on_data_loss`: a lake position below the partition's log start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DataLoss {
    /// Stop with an error (after counting the lost offsets).
    #[default]
    Fail,
    /// Count the lost offsets, log them, and go on from the log start.
    Continue,
}

impl KafkaConfig {
    /// The cluster, as every Kafka client of the job reaches it.
    pub fn client(&self) -> KafkaClient {
        KafkaClient {
            brokers: self.brokers.clone(),
            properties: self.properties.clone(),
        }
    }

    /// What the consumer reads.
    pub fn subscription(&self) -> Subscription {
        Subscription {
            client: self.client(),
            group_id: self.group_id.clone(),
            topics: self.topics.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterDestination {
    /// Parquet files under `<root>/_dead_letter/<table>/`, published with each commit.
    #[default]
    Lake,
    /// A Kafka topic: the raw key and value, with headers for the reason and the origin.
    Kafka,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    #[serde(default)]
    pub destination: DeadLetterDestination,
    /// The dead-letter topic (`destination = "kafka"`).
    pub topic: Option<String>,
    /// Brokers of the dead-letter topic; default: `kafka.brokers`.
    pub brokers: Option<String>,
    /// Producer properties for librdkafka; default: `kafka.properties` (so security settings
    /// carry over). Secrets are redacted.
    pub properties: Option<BTreeMap<String, Sensitive<String>>>,
}

impl Config {
    /// The cluster of the dead-letter topic: `dead_letter.brokers` or the input's, with
    /// `dead_letter.properties` or else the input's properties fit for a producer.
    pub fn dead_letter_client(&self) -> KafkaClient {
        let d = &self.dead_letter;
        let inherited = self.kafka.client().for_producer();
        KafkaClient {
            brokers: d.brokers.clone().unwrap_or(inherited.brokers),
            properties: d.properties.clone().unwrap_or(inherited.properties),
        }
    }
}

pub(super) fn validate_kafka(k: &KafkaConfig, c: &mut Collector) {
    if k.brokers.trim().is_empty() {
        c.err("kafka.brokers", "must name at least one broker (host:port)");
    }
    if k.topics.is_empty() {
        c.err("kafka.topics", "must name at least one topic");
    }
    if k.group_id.trim().is_empty() {
        c.err("kafka.group_id", "must not be empty");
    }
    for reserved in [
        "group.id",
        "bootstrap.servers",
        "enable.auto.commit",
        "enable.auto.offset.store",
    ] {
        if k.properties.contains_key(reserved) {
            c.err(
                format!("kafka.properties.{reserved}"),
                "is set by normlake itself (use kafka.brokers / kafka.group_id; commits follow the lake)",
            );
        }
    }
}

pub(super) fn validate_dead_letter(d: &DeadLetterConfig, k: &KafkaConfig, c: &mut Collector) {
    match d.destination {
        DeadLetterDestination::Lake => {
            for (field, set) in [
                ("topic", d.topic.is_some()),
                ("brokers", d.brokers.is_some()),
                ("properties", d.properties.is_some()),
            ] {
                if set {
                    c.err(
                        format!("dead_letter.{field}"),
                        "applies only with destination = \"kafka\"",
                    );
                }
            }
        }
        DeadLetterDestination::Kafka => match d.topic.as_deref().map(str::trim) {
            None | Some("") => c.err(
                "dead_letter.topic",
                "is required with destination = \"kafka\"",
            ),
            Some(t) if k.topics.iter().any(|i| i == t) => c.err(
                "dead_letter.topic",
                format!("`{t}` is an input topic: dead letters would be read again"),
            ),
            Some(_) => {}
        },
    }
}
