//! The configured fields of a record as a tree of names, shared by the JSON and Avro decoders,
//! and the conversion of a field's value to what each of its roles needs.
//!
//! A field is a path of names separated by dots: `payload.temp` is the field `temp` of the
//! object (JSON) or record (Avro) in the field `payload`. Its column in the lake joins the
//! names with underscores (`payload_temp`).

use std::borrow::Cow;
use std::collections::HashMap;

use super::{PassType, PassValue, TimeFormat};
use crate::normalize::FeatureValue;

/// The column a field path is written to: its names joined by `_`.
pub fn column_name(path: &str) -> String {
    path.replace('.', "_")
}

/// What a configured field is used for. A field may play several roles (the key and a
/// pass-through column, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Key,
    Time,
    Feature(usize),
    Pass(usize),
}

/// One level of the configured paths: a name maps to the roles of the field it ends at and to
/// the names below it. The names are fixed at start (hostile field names cannot grow them) and
/// looked up once per field of every record. They are kept in the order they were configured,
/// with a fast hash (not SipHash) from name to place: a reader that passes the place after the
/// last name it found (`find`) checks that place first, which is one comparison instead of a
/// hash whenever records list their fields in the configured order.
#[derive(Debug, Clone, Default)]
pub(super) struct FieldTree {
    nodes: Vec<(Box<str>, Node)>,
    places: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Node {
    pub roles: Vec<Role>,
    pub below: FieldTree,
}

impl FieldTree {
    pub fn insert(&mut self, path: &str, role: Role) {
        let mut level = self;
        let mut names = path.split('.').peekable();
        while let Some(name) = names.next() {
            let at = level.place(name);
            let node = &mut level.nodes[at].1;
            if names.peek().is_none() {
                node.roles.push(role);
                return;
            }
            level = &mut node.below;
        }
    }

    /// Where `name` is, added at the end if it is new.
    fn place(&mut self, name: &str) -> usize {
        if let Some(&at) = self.places.get(name) {
            return at;
        }
        self.nodes.push((name.into(), Node::default()));
        self.places.insert(name.into(), self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    pub fn get(&self, name: &str) -> Option<&Node> {
        self.places.get(name).map(|&at| &self.nodes[at].1)
    }

    /// `get`, trying the name at `next` first; `next` moves past the name found.
    pub fn find(&self, name: &str, next: &mut usize) -> Option<&Node> {
        let at = match self.nodes.get(*next) {
            Some((n, _)) if **n == *name => *next,
            _ => *self.places.get(name)?,
        };
        *next = at + 1;
        Some(&self.nodes[at].1)
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// A configured field's value, reduced to what the roles can use. A string may be borrowed
/// from the message, so the key is copied once, into the event.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    /// A timestamp with its unit known from the writer's schema (an Avro logical type), in
    /// microseconds since the epoch.
    Micros(i64),
    /// An object, array, map or bytes (consumed, not kept).
    Nested,
}

/// Where the values of one record's configured fields are gathered.
#[derive(Debug)]
pub(super) struct RawRecord {
    pub key: Option<Box<str>>,
    pub ts_ms: Option<i64>,
    pub features: Vec<FeatureValue>,
    pub passthrough: Vec<PassValue>,
}

impl RawRecord {
    pub fn new(features: usize, passthrough: usize) -> Self {
        RawRecord {
            key: None,
            ts_ms: None,
            features: vec![FeatureValue::Missing; features],
            passthrough: vec![PassValue::Null; passthrough],
        }
    }

    /// Give a value to every role of its field.
    pub fn set(&mut self, roles: &[Role], v: &Scalar<'_>, fmt: &TimeFormat, kinds: &[PassType]) {
        for role in roles {
            match *role {
                Role::Key => self.key = v.as_key(),
                Role::Time => self.ts_ms = v.as_time_ms(fmt),
                Role::Feature(i) => {
                    if let Some(slot) = self.features.get_mut(i) {
                        *slot = v.as_feature();
                    }
                }
                Role::Pass(i) => {
                    if let (Some(slot), Some(kind)) = (self.passthrough.get_mut(i), kinds.get(i)) {
                        *slot = v.as_pass(*kind, fmt);
                    }
                }
            }
        }
    }
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

    fn as_time_ms(&self, fmt: &TimeFormat) -> Option<i64> {
        match (self, fmt) {
            (Scalar::Micros(us), _) => Some(us.div_euclid(1000)),
            (Scalar::Str(s), TimeFormat::Rfc3339 | TimeFormat::Pattern(_)) => {
                text_time(s, fmt).map(|t| t.timestamp_millis())
            }
            (_, TimeFormat::Rfc3339 | TimeFormat::Pattern(_)) => None,
            (_, epoch) => self.as_epoch(epoch, 1),
        }
    }

    /// The time in microseconds, for a timestamp pass-through column.
    fn as_time_us(&self, fmt: &TimeFormat) -> Option<i64> {
        match (self, fmt) {
            (Scalar::Micros(us), _) => Some(*us),
            (Scalar::Str(s), TimeFormat::Rfc3339 | TimeFormat::Pattern(_)) => {
                text_time(s, fmt).map(|t| t.timestamp_micros())
            }
            (_, TimeFormat::Rfc3339 | TimeFormat::Pattern(_)) => None,
            (_, epoch) => self.as_epoch(epoch, 1000),
        }
    }

    /// A number of seconds, milliseconds, microseconds or nanoseconds since the epoch, in
    /// milliseconds (`per_ms` = 1) or microseconds (1000), rounded down, also before 1970.
    fn as_epoch(&self, fmt: &TimeFormat, per_ms: i64) -> Option<i64> {
        // (multiply by, divide by) to get the unit.
        let (mul, div): (i64, i64) = match fmt {
            TimeFormat::EpochSeconds => (1000 * per_ms, 1),
            TimeFormat::EpochMicros => (per_ms, 1000),
            TimeFormat::EpochNanos => (per_ms, 1_000_000),
            _ => (per_ms, 1),
        };
        match self {
            Scalar::Int(i) => i.checked_mul(mul).map(|v| v.div_euclid(div)),
            Scalar::UInt(u) => i64::try_from(*u)
                .ok()?
                .checked_mul(mul)
                .map(|v| v.div_euclid(div)),
            Scalar::Float(f) => {
                let t = (f * mul as f64 / div as f64).floor();
                (t.is_finite() && t.abs() < 9.0e18).then_some(t as i64)
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

    /// The value of a pass-through column of type `kind`; a value of another type is
    /// `Invalid` (written as null, and counted). Not inlined: its text and time conversions
    /// would give `RawRecord::set`, which runs for every field of every record, a large frame.
    #[inline(never)]
    fn as_pass(&self, kind: PassType, fmt: &TimeFormat) -> PassValue {
        let v = match (kind, self) {
            (_, Scalar::Null) => Some(PassValue::Null),
            (PassType::String, Scalar::Nested) => Some(PassValue::Invalid),
            (PassType::String, s) => s.as_text().map(PassValue::Text),
            (PassType::Int64, Scalar::Int(i)) => Some(PassValue::Int(*i)),
            (PassType::Int64, Scalar::UInt(u)) => i64::try_from(*u).ok().map(PassValue::Int),
            (PassType::Int64, Scalar::Float(f)) => integral(*f).map(PassValue::Int),
            (PassType::Float64, Scalar::Int(i)) => Some(PassValue::Float(*i as f64)),
            (PassType::Float64, Scalar::UInt(u)) => Some(PassValue::Float(*u as f64)),
            (PassType::Float64, Scalar::Float(f)) if f.is_finite() => Some(PassValue::Float(*f)),
            (PassType::Bool, Scalar::Bool(b)) => Some(PassValue::Bool(*b)),
            (PassType::Timestamp, s) => s
                .as_time_us(fmt)
                .filter(|us| (super::MIN_TS_MS * 1000..=super::MAX_TS_MS * 1000).contains(us))
                .map(PassValue::Micros),
            _ => None,
        };
        v.unwrap_or(PassValue::Invalid)
    }

    fn as_text(&self) -> Option<String> {
        match self {
            Scalar::Str(s) => Some(s.to_string()),
            Scalar::Bool(b) => Some(b.to_string()),
            Scalar::Int(i) => Some(i.to_string()),
            Scalar::UInt(u) => Some(u.to_string()),
            Scalar::Float(f) => Some(f.to_string()),
            Scalar::Micros(us) => chrono::DateTime::from_timestamp_micros(*us)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            Scalar::Null | Scalar::Nested => None,
        }
    }
}

/// A float that is a whole number within `i64`.
fn integral(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

/// A time written as text in a text format (`None` for the epoch formats). Not inlined, for
/// the reason `as_pass` is not.
#[inline(never)]
fn text_time(s: &str, fmt: &TimeFormat) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    match fmt {
        TimeFormat::Rfc3339 => chrono::DateTime::parse_from_rfc3339(s).ok(),
        TimeFormat::Pattern(p) => parse_pattern(s, p),
        _ => None,
    }
}

/// A time in a strftime pattern: with an offset when the pattern has one, otherwise UTC.
fn parse_pattern(s: &str, pattern: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    if let Ok(t) = chrono::DateTime::parse_from_str(s, pattern) {
        return Some(t);
    }
    chrono::NaiveDateTime::parse_from_str(s, pattern)
        .ok()
        .map(|t| t.and_utc().fixed_offset())
}
