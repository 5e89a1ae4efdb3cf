//! Typed decoding of one message into an event's fields, straight from its bytes: JSON
//! (`json`) or Avro in Confluent's wire format (`avro`).
//!
//! Both walk the record once against a tree of the configured field paths (`fields`);
//! nothing is collected into a generic value tree. Record-level failures are a `Reject`
//! reason (the record goes to the dead-letter destination untouched); a feature that is
//! present but not a finite number is `FeatureValue::Invalid`, and a pass-through value of
//! the wrong type `PassValue::Invalid`, and the row is still written. Decoding does no I/O:
//! the writer schemas of Avro records are handed to the decoder by its caller
//! ([`Decoder::missing_schema`], [`Decoder::add_schema`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::normalize::FeatureValue;

mod avro;
mod fields;
mod json;

pub use avro::{SchemaLookup, schema_id};
pub use fields::column_name;
use fields::{FieldTree, RawRecord, Role};

/// How message values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    #[default]
    Json,
    /// Avro in Confluent's wire format: a zero byte, the writer schema's id in a Schema
    /// Registry (4 bytes, big-endian), then the Avro binary datum.
    AvroConfluent,
}

/// The type of a pass-through column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PassType {
    /// Text; numbers and booleans are written as they read.
    #[default]
    String,
    Int64,
    Float64,
    Bool,
    /// A time, read like the event time (`time_format`), or an Avro timestamp.
    Timestamp,
}

impl PassType {
    pub fn as_str(self) -> &'static str {
        match self {
            PassType::String => "string",
            PassType::Int64 => "int64",
            PassType::Float64 => "float64",
            PassType::Bool => "bool",
            PassType::Timestamp => "timestamp",
        }
    }
}

/// A pass-through field: a path into the record, and the type of its column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassField {
    pub path: String,
    pub kind: PassType,
}

impl From<&str> for PassField {
    fn from(path: &str) -> Self {
        PassField::string(path)
    }
}

impl PassField {
    pub fn string(path: &str) -> Self {
        PassField {
            path: path.into(),
            kind: PassType::String,
        }
    }

    /// The column this field is written to.
    pub fn column(&self) -> String {
        column_name(&self.path)
    }
}

/// One pass-through value of a row.
///
/// The first two variants are encoded (postcard, in checkpoints) exactly as `Option<String>`
/// was, so checkpoints written before typed columns still read: keep their order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum PassValue {
    #[default]
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A timestamp, in microseconds since the epoch.
    Micros(i64),
    /// A value of another type than the column's: written as null, and counted.
    Invalid,
}

impl PassValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PassValue::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// Where the normalization key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// The Kafka message key, as UTF-8.
    KafkaKey,
    /// A field of the record (a string, or an integer rendered in decimal).
    Field(String),
}

/// How the event-time field is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(try_from = "String", into = "String")]
pub enum TimeFormat {
    #[default]
    EpochMillis,
    EpochSeconds,
    EpochMicros,
    EpochNanos,
    Rfc3339,
    /// A strftime pattern (`%Y-%m-%d %H:%M:%S%.f`); without an offset (`%z`) the time is UTC.
    Pattern(String),
}

impl TryFrom<String> for TimeFormat {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "epoch_millis" => TimeFormat::EpochMillis,
            "epoch_seconds" => TimeFormat::EpochSeconds,
            "epoch_micros" => TimeFormat::EpochMicros,
            "epoch_nanos" => TimeFormat::EpochNanos,
            "rfc3339" => TimeFormat::Rfc3339,
            p if p.contains('%') => {
                use chrono::format::{Item, StrftimeItems};
                if StrftimeItems::new(p).any(|i| matches!(i, Item::Error)) {
                    return Err(format!("`{p}` is not a valid strftime pattern"));
                }
                TimeFormat::Pattern(p.to_string())
            }
            other => {
                return Err(format!(
                    "`{other}` is not a time format: use epoch_millis, epoch_seconds, epoch_micros, epoch_nanos, rfc3339 or a strftime pattern such as \"%Y-%m-%d %H:%M:%S\""
                ));
            }
        })
    }
}

impl From<TimeFormat> for String {
    fn from(f: TimeFormat) -> String {
        match f {
            TimeFormat::EpochMillis => "epoch_millis".into(),
            TimeFormat::EpochSeconds => "epoch_seconds".into(),
            TimeFormat::EpochMicros => "epoch_micros".into(),
            TimeFormat::EpochNanos => "epoch_nanos".into(),
            TimeFormat::Rfc3339 => "rfc3339".into(),
            TimeFormat::Pattern(p) => p,
        }
    }
}

/// The `time_field` that takes each record's Kafka timestamp as its event time.
pub const KAFKA_TIMESTAMP: &str = "@kafka_timestamp";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub format: InputFormat,
    pub key: KeySource,
    pub time_field: String,
    pub time_format: TimeFormat,
    /// Field paths of the features, in column order.
    pub features: Vec<String>,
    pub passthrough: Vec<PassField>,
    /// Reject events whose time is further than this ahead of their Kafka timestamp (ms).
    pub max_ahead_ms: Option<i64>,
    /// Pass-through fields that partition the table: their values must fit a path segment.
    pub partition_fields: Vec<usize>,
}

/// The event times the lake accepts: years 0001 to 9999, which every Hive `dt` value and
/// every reader's timestamp type can hold.
pub const MIN_TS_MS: i64 = -62_135_596_800_000;
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Why a record cannot become a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    MalformedJson,
    NotAnObject,
    MissingKey,
    MissingOrInvalidTime,
    LateEvent,
    /// The message has no value (a Kafka tombstone) or an empty one.
    EmptyMessage,
    /// A JSON number beyond the range of a 64-bit float (such as `1e400`).
    NumberOutOfRange,
    /// An event time outside years 0001–9999, or too far ahead of its Kafka timestamp.
    TimeOutOfRange,
    /// A partition field's value too long for a path segment once escaped.
    InvalidPartitionValue,
    /// An Avro input message without Confluent's header (a zero byte and a schema id).
    NotAvro,
    /// A schema id the Schema Registry does not know (or whose schema cannot be read).
    UnknownSchema,
    /// Bytes that do not decode with their writer schema.
    MalformedAvro,
}

impl Reject {
    /// Every reason, for series that exist before their first letter.
    pub const ALL: [Reject; 12] = [
        Reject::MalformedJson,
        Reject::NotAnObject,
        Reject::MissingKey,
        Reject::MissingOrInvalidTime,
        Reject::LateEvent,
        Reject::EmptyMessage,
        Reject::NumberOutOfRange,
        Reject::TimeOutOfRange,
        Reject::InvalidPartitionValue,
        Reject::NotAvro,
        Reject::UnknownSchema,
        Reject::MalformedAvro,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reject::MalformedJson => "malformed_json",
            Reject::NotAnObject => "not_an_object",
            Reject::MissingKey => "missing_key",
            Reject::MissingOrInvalidTime => "missing_or_invalid_time",
            Reject::LateEvent => "late_event",
            Reject::EmptyMessage => "empty_message",
            Reject::NumberOutOfRange => "number_out_of_range",
            Reject::TimeOutOfRange => "time_out_of_range",
            Reject::InvalidPartitionValue => "invalid_partition_value",
            Reject::NotAvro => "not_avro",
            Reject::UnknownSchema => "unknown_schema",
            Reject::MalformedAvro => "malformed_avro",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The configured fields of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub key: Box<str>,
    pub ts_ms: i64,
    pub features: Vec<FeatureValue>,
    pub passthrough: Vec<PassValue>,
}

/// Decodes records according to one `InputSpec`.
#[derive(Debug, Clone)]
pub struct Decoder {
    spec: InputSpec,
    /// The configured field paths and the roles of the fields they end at.
    fields: FieldTree,
    pass_types: Vec<PassType>,
    /// The event time is the Kafka timestamp (`time_field = "@kafka_timestamp"`).
    kafka_time: bool,
    /// Avro writer schemas by id, compiled against `fields`; `None` for an id the registry
    /// does not know.
    schemas: HashMap<u32, Option<Arc<avro::Program>>>,
}

impl Decoder {
    pub fn new(spec: InputSpec) -> Self {
        let mut fields = FieldTree::default();
        if let KeySource::Field(f) = &spec.key {
            fields.insert(f, Role::Key);
        }
        let kafka_time = spec.time_field == KAFKA_TIMESTAMP;
        if !kafka_time {
            fields.insert(&spec.time_field, Role::Time);
        }
        for (i, f) in spec.features.iter().enumerate() {
            fields.insert(f, Role::Feature(i));
        }
        for (i, p) in spec.passthrough.iter().enumerate() {
            fields.insert(&p.path, Role::Pass(i));
        }
        Decoder {
            pass_types: spec.passthrough.iter().map(|p| p.kind).collect(),
            spec,
            fields,
            kafka_time,
            schemas: HashMap::new(),
        }
    }

    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// The schema id of an Avro message whose writer schema the decoder does not have yet.
    pub fn missing_schema(&self, value: &[u8]) -> Option<u32> {
        if self.spec.format != InputFormat::AvroConfluent {
            return None;
        }
        schema_id(value).filter(|id| !self.schemas.contains_key(id))
    }

    /// Give the decoder the writer schema of `id`, as the registry answered. A schema that
    /// does not parse is remembered as unknown: its records are rejected as `unknown_schema`.
    pub fn add_schema(&mut self, id: u32, found: SchemaLookup) -> Result<(), String> {
        let (program, result) = match found {
            SchemaLookup::Found(text) => match avro::Program::compile(&text, self) {
                Ok(p) => (Some(Arc::new(p)), Ok(())),
                Err(e) => (None, Err(format!("schema {id}: {e}"))),
            },
            SchemaLookup::NotFound => (None, Ok(())),
        };
        self.schemas.insert(id, program);
        result
    }

    /// Decode one message value; `kafka_key` is used when the key comes from Kafka.
    pub fn decode(&self, kafka_key: Option<&[u8]>, value: &[u8]) -> Result<Decoded, Reject> {
        self.decode_at(kafka_key, value, None)
    }

    /// Decode one message with its Kafka timestamp (Unix ms), which bounds how far ahead the
    /// event time may be. A deterministic function of the record, so a replay decides alike.
    pub fn decode_at(
        &self,
        kafka_key: Option<&[u8]>,
        value: &[u8],
        kafka_ts: Option<i64>,
    ) -> Result<Decoded, Reject> {
        let raw = match self.spec.format {
            InputFormat::Json => {
                if value.iter().all(u8::is_ascii_whitespace) {
                    return Err(Reject::EmptyMessage);
                }
                json::read(self, value)?.ok_or(Reject::NotAnObject)?
            }
            InputFormat::AvroConfluent => {
                if value.is_empty() {
                    return Err(Reject::EmptyMessage);
                }
                avro::read(self, value)?
            }
        };
        self.finish(raw, kafka_key, kafka_ts)
    }

    /// The record-level checks shared by every format.
    fn finish(
        &self,
        raw: RawRecord,
        kafka_key: Option<&[u8]>,
        kafka_ts: Option<i64>,
    ) -> Result<Decoded, Reject> {
        let key = match &self.spec.key {
            KeySource::KafkaKey => kafka_key
                .and_then(|k| std::str::from_utf8(k).ok())
                .filter(|k| !k.is_empty())
                .map(Box::from),
            KeySource::Field(_) => raw.key,
        }
        .ok_or(Reject::MissingKey)?;
        let ts_ms = if self.kafka_time {
            kafka_ts.filter(|t| *t >= 0)
        } else {
            raw.ts_ms
        }
        .ok_or(Reject::MissingOrInvalidTime)?;
        if !(MIN_TS_MS..=MAX_TS_MS).contains(&ts_ms) {
            return Err(Reject::TimeOutOfRange);
        }
        if let (Some(ahead), Some(k)) = (self.spec.max_ahead_ms, kafka_ts)
            && k >= 0
            && ts_ms > k.saturating_add(ahead)
        {
            return Err(Reject::TimeOutOfRange);
        }
        for &i in &self.spec.partition_fields {
            if let Some(v) = raw.passthrough.get(i).and_then(PassValue::as_str)
                && !crate::partition_value::fits(v)
            {
                return Err(Reject::InvalidPartitionValue);
            }
        }
        Ok(Decoded {
            key,
            ts_ms,
            features: raw.features,
            passthrough: raw.passthrough,
        })
    }
}

#[cfg(test)]
mod tests;
