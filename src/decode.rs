//! Typed decoding of one message into an event's fields, straight from the JSON bytes.
//!
//! The decoder walks the JSON object once with a `serde` visitor and looks each field name up
//! in a small table of the configured fields; nothing is collected into an untyped
//! `serde_json::Value`. Record-level failures are a `Reject` reason (the record goes to the
//! dead-letter destination untouched); a feature that is present but not a finite number is
//! `FeatureValue::Invalid` and the row is still written.

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    #[default]
    EpochMillis,
    EpochSeconds,
    Rfc3339,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub key: KeySource,
    pub time_field: String,
    pub time_format: TimeFormat,
    pub features: Vec<String>,
    pub passthrough: Vec<String>,
}

/// Why a record cannot become a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    MalformedJson,
    NotAnObject,
    MissingKey,
    MissingOrInvalidTime,
    LateEvent,
}

impl Reject {
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::MalformedJson => "malformed_json",
            Reject::NotAnObject => "not_an_object",
            Reject::MissingKey => "missing_key",
            Reject::MissingOrInvalidTime => "missing_or_invalid_time",
            Reject::LateEvent => "late_event",
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
    roles: HashMap<String, Vec<Role>>,
}

impl Decoder {
    pub fn new(spec: InputSpec) -> Self {
        let mut roles: HashMap<String, Vec<Role>> = HashMap::new();
        if let KeySource::Field(f) = &spec.key {
            roles.entry(f.clone()).or_default().push(Role::Key);
        }
        roles
            .entry(spec.time_field.clone())
            .or_default()
            .push(Role::Time);
        for (i, f) in spec.features.iter().enumerate() {
            roles.entry(f.clone()).or_default().push(Role::Feature(i));
        }
        for (i, f) in spec.passthrough.iter().enumerate() {
            roles.entry(f.clone()).or_default().push(Role::Pass(i));
        }
        Decoder { spec, roles }
    }

    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// Decode one message value; `kafka_key` is used when the key comes from Kafka.
    pub fn decode(&self, kafka_key: Option<&[u8]>, value: &[u8]) -> Result<Decoded, Reject> {
        let mut de = serde_json::Deserializer::from_slice(value);
        let raw = RecordSeed { dec: self }
            .deserialize(&mut de)
            .map_err(|_| Reject::MalformedJson)?;
        de.end().map_err(|_| Reject::MalformedJson)?;
        let raw = raw.ok_or(Reject::NotAnObject)?;
        let key = match &self.spec.key {
            KeySource::KafkaKey => kafka_key
                .and_then(|k| std::str::from_utf8(k).ok())
                .filter(|k| !k.is_empty())
                .map(Box::from),
            KeySource::Field(_) => raw.key,
        }
        .ok_or(Reject::MissingKey)?;
        let ts_ms = raw.ts_ms.ok_or(Reject::MissingOrInvalidTime)?;
        Ok(Decoded {
            key,
            ts_ms,
            features: raw.features,
            passthrough: raw.passthrough,
        })
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
                    Role::Time => rec.ts_ms = v.as_time(spec.time_format),
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

/// A configured field's value, reduced to what the roles can use.
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    /// An object or array (consumed, not kept).
    Nested,
}

impl Scalar {
    fn as_key(&self) -> Option<Box<str>> {
        match self {
            Scalar::Str(s) if !s.is_empty() => Some(s.as_str().into()),
            Scalar::Int(i) => Some(i.to_string().into()),
            Scalar::UInt(u) => Some(u.to_string().into()),
            _ => None,
        }
    }

    fn as_time(&self, fmt: TimeFormat) -> Option<i64> {
        let per_unit: i64 = match fmt {
            TimeFormat::EpochSeconds => 1000,
            _ => 1,
        };
        match (self, fmt) {
            (Scalar::Str(s), TimeFormat::Rfc3339) => chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.timestamp_millis()),
            (Scalar::Int(i), TimeFormat::EpochMillis | TimeFormat::EpochSeconds) => {
                i.checked_mul(per_unit)
            }
            (Scalar::UInt(u), TimeFormat::EpochMillis | TimeFormat::EpochSeconds) => {
                i64::try_from(*u).ok()?.checked_mul(per_unit)
            }
            (Scalar::Float(f), TimeFormat::EpochMillis | TimeFormat::EpochSeconds) => {
                let ms = (f * per_unit as f64).floor();
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
            Scalar::Str(s) => Some(s.clone()),
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
    type Value = Scalar;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> Decoder {
        Decoder::new(InputSpec {
            key: KeySource::Field("sensor_id".into()),
            time_field: "ts".into(),
            time_format: TimeFormat::EpochMillis,
            features: vec!["temp".into(), "hum".into(), "pres".into()],
            passthrough: vec!["site".into()],
        })
    }

    #[test]
    fn decodes_typed_fields_and_feature_states() {
        let d = decoder()
            .decode(
                None,
                br#"{"sensor_id":"s1","ts":1700000000123,"site":"eu","temp":1.5,"hum":null,"pres":"x","extra":{"a":[1]}}"#,
            )
            .unwrap();
        assert_eq!(&*d.key, "s1");
        assert_eq!(d.ts_ms, 1_700_000_000_123);
        assert_eq!(
            d.features,
            vec![
                FeatureValue::Value(1.5),
                FeatureValue::Missing,
                FeatureValue::Invalid
            ]
        );
        assert_eq!(d.passthrough, vec![Some("eu".to_string())]);
    }

    #[test]
    fn absent_feature_is_missing_and_objects_or_bools_are_invalid() {
        let d = decoder()
            .decode(
                None,
                br#"{"sensor_id":"s1","ts":1,"temp":true,"hum":{"v":1}}"#,
            )
            .unwrap();
        assert_eq!(
            d.features,
            vec![
                FeatureValue::Invalid,
                FeatureValue::Invalid,
                FeatureValue::Missing
            ]
        );
    }

    #[test]
    fn record_level_rejections_follow_the_spec() {
        let dec = decoder();
        let cases: [(&[u8], Reject); 8] = [
            (br#"{"sensor_id":"s001","ts":"#, Reject::MalformedJson),
            (b"not json at all", Reject::MalformedJson),
            (b"[1,2,3]", Reject::NotAnObject),
            (br#""just a string""#, Reject::NotAnObject),
            (br#"{"ts":1795737600000,"temp":1.0}"#, Reject::MissingKey),
            (
                br#"{"sensor_id":"","ts":1795737600000}"#,
                Reject::MissingKey,
            ),
            (
                br#"{"sensor_id":"s002","ts":"yesterday","temp":1.0}"#,
                Reject::MissingOrInvalidTime,
            ),
            (
                br#"{"sensor_id":"s001","ts":null,"temp":2.0}"#,
                Reject::MissingOrInvalidTime,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                dec.decode(None, input),
                Err(want),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            dec.decode(None, br#"{"sensor_id":"a","ts":1} x"#),
            Err(Reject::MalformedJson)
        );
    }

    #[test]
    fn kafka_key_and_rfc3339_time() {
        let dec = Decoder::new(InputSpec {
            key: KeySource::KafkaKey,
            time_field: "at".into(),
            time_format: TimeFormat::Rfc3339,
            features: vec!["v".into()],
            passthrough: vec![],
        });
        let d = dec
            .decode(Some(b"k9"), br#"{"at":"2026-11-26T02:00:00.5Z","v":3}"#)
            .unwrap();
        assert_eq!(&*d.key, "k9");
        assert_eq!(d.ts_ms, 1_795_658_400_500);
        assert_eq!(d.features, vec![FeatureValue::Value(3.0)]);
        assert_eq!(
            dec.decode(None, br#"{"at":"2026-11-26T02:00:00Z"}"#),
            Err(Reject::MissingKey)
        );
    }

    #[test]
    fn integer_keys_are_rendered_in_decimal() {
        let d = decoder()
            .decode(None, br#"{"sensor_id":42,"ts":5}"#)
            .unwrap();
        assert_eq!(&*d.key, "42");
    }
}
