//! Typed decoding of one message into an event's fields, straight from the JSON bytes.
//!
//! The decoder walks the JSON object once with a `serde` visitor and looks each field name up
//! in a small table of the configured fields; nothing is collected into an untyped
//! `serde_json::Value`. Record-level failures are a `Reject` reason (the record goes to the
//! dead-letter destination untouched); a feature that is present but not a finite number is
//! `FeatureValue::Invalid` and the row is still written.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::normalize::FeatureValue;

/// Where the normalization key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// The Kafka message key, as UTF-8.
    KafkaKey,
    /// A top-level JSON field (a string, or an integer rendered in decimal).
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
    pub key: KeySource,
    pub time_field: String,
    pub time_format: TimeFormat,
    pub features: Vec<String>,
    pub passthrough: Vec<String>,
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
}

impl Reject {
    /// Every reason, for series that exist before their first letter.
    pub const ALL: [Reject; 9] = [
        Reject::MalformedJson,
        Reject::NotAnObject,
        Reject::MissingKey,
        Reject::MissingOrInvalidTime,
        Reject::LateEvent,
        Reject::EmptyMessage,
        Reject::NumberOutOfRange,
        Reject::TimeOutOfRange,
        Reject::InvalidPartitionValue,
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
    pub passthrough: Vec<Option<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Key,
    Time,
    Feature(usize),
    Pass(usize),
}

/// Decodes records according to one `InputSpec`.
#[derive(Debug, Clone)]
pub struct Decoder {
    spec: InputSpec,
    /// Field name → every role it plays (a field may be both the key and a pass-through).
    /// Looked up once per field of every record, so with a fast hash rather than SipHash (the
    /// map is fixed at start: hostile field names cannot grow it).
    roles: HashMap<String, Vec<Role>, foldhash::fast::RandomState>,
    /// The event time is the Kafka timestamp (`time_field = "@kafka_timestamp"`).
    kafka_time: bool,
}

impl Decoder {
    pub fn new(spec: InputSpec) -> Self {
        let mut roles = HashMap::<_, Vec<Role>, _>::default();
        if let KeySource::Field(f) = &spec.key {
            roles.entry(f.clone()).or_default().push(Role::Key);
        }
        if spec.time_field != KAFKA_TIMESTAMP {
            roles
                .entry(spec.time_field.clone())
                .or_default()
                .push(Role::Time);
        }
        for (i, f) in spec.features.iter().enumerate() {
            roles.entry(f.clone()).or_default().push(Role::Feature(i));
        }
        for (i, f) in spec.passthrough.iter().enumerate() {
            roles.entry(f.clone()).or_default().push(Role::Pass(i));
        }
        let kafka_time = spec.time_field == KAFKA_TIMESTAMP;
        Decoder {
            spec,
            roles,
            kafka_time,
        }
    }

    pub fn spec(&self) -> &InputSpec {
        &self.spec
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
        if value.iter().all(u8::is_ascii_whitespace) {
            return Err(Reject::EmptyMessage);
        }
        let mut de = serde_json::Deserializer::from_slice(value);
        let raw = RecordSeed { dec: self }
            .deserialize(&mut de)
            .map_err(|e| json_reject(&e))?;
        de.end().map_err(|e| json_reject(&e))?;
        let raw = raw.ok_or(Reject::NotAnObject)?;
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
            if let Some(Some(v)) = raw.passthrough.get(i)
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

/// A time in a strftime pattern: with an offset when the pattern has one, otherwise UTC.
fn parse_pattern(s: &str, pattern: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_str(s, pattern) {
        return Some(t.timestamp_millis());
    }
    chrono::NaiveDateTime::parse_from_str(s, pattern)
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// The reason for a serde_json failure. serde_json has no error kind for a number beyond f64,
/// only its message, which the tests below pin.
fn json_reject(e: &serde_json::Error) -> Reject {
    if e.to_string().starts_with("number out of range") {
        Reject::NumberOutOfRange
    } else {
        Reject::MalformedJson
    }
}

struct RawRecord {
    key: Option<Box<str>>,
    ts_ms: Option<i64>,
    features: Vec<FeatureValue>,
    passthrough: Vec<Option<String>>,
}

/// Visits the top level: `Some` for an object, `None` for any other (valid) JSON value.
struct RecordSeed<'a> {
    dec: &'a Decoder,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Option<RawRecord>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = Option<RawRecord>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let spec = &self.dec.spec;
        let mut rec = RawRecord {
            key: None,
            ts_ms: None,
            features: vec![FeatureValue::Missing; spec.features.len()],
            passthrough: vec![None; spec.passthrough.len()],
        };
        while let Some(roles) = map.next_key_seed(FieldSeed { dec: self.dec })? {
            let Some(roles) = roles else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let v = map.next_value_seed(ScalarSeed)?;
            for role in roles {
                match *role {
                    Role::Key => rec.key = v.as_key(),
                    Role::Time => rec.ts_ms = v.as_time(&spec.time_format),
                    Role::Feature(i) => {
                        if let Some(slot) = rec.features.get_mut(i) {
                            *slot = v.as_feature();
                        }
                    }
                    Role::Pass(i) => {
                        if let Some(slot) = rec.passthrough.get_mut(i) {
                            *slot = v.as_text();
                        }
                    }
                }
            }
        }
        Ok(Some(rec))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Maps a field name to its roles without allocating.
struct FieldSeed<'a> {
    dec: &'a Decoder,
}

impl<'de, 'a> DeserializeSeed<'de> for FieldSeed<'a> {
    type Value = Option<&'a [Role]>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'a> Visitor<'de> for FieldSeed<'a> {
    type Value = Option<&'a [Role]>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.dec.roles.get(v).map(Vec::as_slice))
    }
}

/// A configured field's value, reduced to what the roles can use. A string without escapes is
/// borrowed from the message: the key is then copied once, into the event.
enum Scalar<'de> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'de, str>),
    /// An object or array (consumed, not kept).
    Nested,
}

impl Scalar<'_> {
    fn as_key(&self) -> Option<Box<str>> {
        match self {
            Scalar::Str(s) if !s.is_empty() => Some(Box::from(&**s)),
            Scalar::Int(i) => Some(i.to_string().into()),
            Scalar::UInt(u) => Some(u.to_string().into()),
            _ => None,
        }
    }

    fn as_time(&self, fmt: &TimeFormat) -> Option<i64> {
        match (self, fmt) {
            (Scalar::Str(s), TimeFormat::Rfc3339) => chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.timestamp_millis()),
            (Scalar::Str(s), TimeFormat::Pattern(p)) => parse_pattern(s, p),
            (_, TimeFormat::Rfc3339 | TimeFormat::Pattern(_)) => None,
            (_, epoch) => self.as_epoch(epoch),
        }
    }

    /// A number of seconds, milliseconds, microseconds or nanoseconds since the epoch, in
    /// milliseconds (rounded down, also before 1970).
    fn as_epoch(&self, fmt: &TimeFormat) -> Option<i64> {
        // (multiply by, divide by) to get milliseconds.
        let (mul, div): (i64, i64) = match fmt {
            TimeFormat::EpochSeconds => (1000, 1),
            TimeFormat::EpochMicros => (1, 1000),
            TimeFormat::EpochNanos => (1, 1_000_000),
            _ => (1, 1),
        };
        match self {
            Scalar::Int(i) => i.checked_mul(mul).map(|v| v.div_euclid(div)),
            Scalar::UInt(u) => i64::try_from(*u)
                .ok()?
                .checked_mul(mul)
                .map(|v| v.div_euclid(div)),
            Scalar::Float(f) => {
                let ms = (f * mul as f64 / div as f64).floor();
                (ms.is_finite() && ms.abs() < 9.0e18).then_some(ms as i64)
            }
            _ => None,
        }
    }

    fn as_feature(&self) -> FeatureValue {
        match self {
            Scalar::Null => FeatureValue::Missing,
            Scalar::Int(i) => FeatureValue::Value(*i as f64),
            Scalar::UInt(u) => FeatureValue::Value(*u as f64),
            Scalar::Float(f) if f.is_finite() => FeatureValue::Value(*f),
            _ => FeatureValue::Invalid,
        }
    }

    fn as_text(&self) -> Option<String> {
        match self {
            Scalar::Str(s) => Some(s.to_string()),
            Scalar::Bool(b) => Some(b.to_string()),
            Scalar::Int(i) => Some(i.to_string()),
            Scalar::UInt(u) => Some(u.to_string()),
            Scalar::Float(f) => Some(f.to_string()),
            Scalar::Null | Scalar::Nested => None,
        }
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested)
    }
}

#[cfg(test)]
mod tests;
