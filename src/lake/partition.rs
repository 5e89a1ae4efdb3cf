//! Hive partitions: which directory of the table a row belongs in.
//!
//! A partition path is the event time's segments (`dt=%Y-%m-%d/hr=%H` by default, in a
//! configured time zone) followed by one `name=value` segment per partition field. Values are
//! escaped exactly as Hive escapes path names (`FileUtils.escapePathName`), so every engine
//! that reads Hive tables reads them back; a null or empty value is Hive's
//! `__HIVE_DEFAULT_PARTITION__`. Because `/` and every control character are escaped and each
//! segment starts with `name=`, no value can name a directory outside the table.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Timelike};
use chrono_tz::Tz;

pub use crate::partition_value::{
    DEFAULT_PARTITION, MAX_VALUE_BYTES, escape, needs_escape, unescape,
};

/// The finest unit a time pattern distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    Minute,
    Hour,
    Day,
    Month,
    Year,
}

/// Why a partitioning cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionSpecError {
    #[error("segment `{0}` must look like name=%Y-%m-%d")]
    Segment(String),
    #[error("`{0}` is not a partition column name (letters, digits and underscores)")]
    Name(String),
    #[error(
        "segment `{0}` uses a specifier other than %Y %m %d %H %M (or has a literal `/` or `=`)"
    )]
    Specifier(String),
    #[error("`{0}` is not a time zone (use an IANA name such as UTC or Europe/Berlin)")]
    Zone(String),
    #[error("column `{0}` appears twice")]
    Duplicate(String),
}

/// How the table is partitioned.
#[derive(Debug, Clone, PartialEq)]
pub struct Partitioning {
    /// (column, strftime pattern) per time segment.
    time: Vec<(String, String)>,
    zone: Tz,
    unit: Unit,
    /// (column, index into the pass-through fields) per field segment.
    fields: Vec<(String, usize)>,
}

impl Default for Partitioning {
    fn default() -> Self {
        Partitioning::new("dt=%Y-%m-%d/hr=%H", "UTC", Vec::new())
            .unwrap_or_else(|_| unreachable!("the default partitioning is valid"))
    }
}

impl Partitioning {
    /// `pattern`: `/`-separated `name=strftime` segments (may be empty: no time partitions).
    pub fn new(
        pattern: &str,
        zone: &str,
        fields: Vec<(String, usize)>,
    ) -> Result<Partitioning, PartitionSpecError> {
        let zone: Tz = zone
            .parse()
            .map_err(|_| PartitionSpecError::Zone(zone.to_string()))?;
        let mut time = Vec::new();
        let mut unit = Unit::Year;
        for seg in pattern.split('/').filter(|s| !s.is_empty()) {
            let (name, fmt) = seg
                .split_once('=')
                .ok_or_else(|| PartitionSpecError::Segment(seg.to_string()))?;
            if !is_name(name) {
                return Err(PartitionSpecError::Name(name.to_string()));
            }
            let mut specs = 0;
            let mut chars = fmt.chars();
            while let Some(c) = chars.next() {
                match c {
                    '%' => {
                        let u = match chars.next() {
                            Some('Y') => Unit::Year,
                            Some('m') => Unit::Month,
                            Some('d') => Unit::Day,
                            Some('H') => Unit::Hour,
                            Some('M') => Unit::Minute,
                            _ => return Err(PartitionSpecError::Specifier(seg.to_string())),
                        };
                        unit = unit.min(u);
                        specs += 1;
                    }
                    '=' | '\\' => return Err(PartitionSpecError::Specifier(seg.to_string())),
                    c if needs_escape(c) => {
                        return Err(PartitionSpecError::Specifier(seg.to_string()));
                    }
                    _ => {}
                }
            }
            if specs == 0 {
                return Err(PartitionSpecError::Specifier(seg.to_string()));
            }
            time.push((name.to_string(), fmt.to_string()));
        }
        let p = Partitioning {
            time,
            zone,
            unit,
            fields,
        };
        let mut seen = std::collections::HashSet::new();
        for c in p.columns() {
            if !seen.insert(c.clone()) {
                return Err(PartitionSpecError::Duplicate(c));
            }
        }
        Ok(p)
    }

    /// Partition column names, in path order.
    pub fn columns(&self) -> Vec<String> {
        self.time
            .iter()
            .map(|(n, _)| n.clone())
            .chain(self.fields.iter().map(|(n, _)| n.clone()))
            .collect()
    }

    /// Pass-through indexes that are partition fields (not columns of the files).
    pub fn field_indexes(&self) -> impl Iterator<Item = usize> + '_ {
        self.fields.iter().map(|(_, i)| *i)
    }

    /// The time bucket holding `ts_ms`: `[start, end)` in Unix ms and its path segments.
    pub fn time_bucket(&self, ts_ms: i64) -> (i64, i64, String) {
        if self.time.is_empty() {
            return (i64::MIN, i64::MAX, String::new());
        }
        let Some(utc) = DateTime::from_timestamp_millis(ts_ms) else {
            let path = self
                .time
                .iter()
                .map(|(n, _)| format!("{n}={DEFAULT_PARTITION}"))
                .collect::<Vec<_>>()
                .join("/");
            return (ts_ms, ts_ms.saturating_add(1), path);
        };
        let local = utc.with_timezone(&self.zone).naive_local();
        let start = truncate(local, self.unit);
        let end = advance(start, self.unit);
        let to_utc = |n: NaiveDateTime| {
            self.zone
                .from_local_datetime(&n)
                .earliest()
                .map(|t| t.timestamp_millis())
        };
        // A start or end in a daylight-saving gap: the bucket shrinks to what exists.
        let start_ms = to_utc(start).unwrap_or(ts_ms).min(ts_ms);
        let end_ms = end
            .and_then(to_utc)
            .unwrap_or(ts_ms.saturating_add(1))
            .max(ts_ms.saturating_add(1));
        let local_t = self
            .zone
            .from_local_datetime(&start)
            .earliest()
            .unwrap_or_else(|| utc.with_timezone(&self.zone));
        let path = self
            .time
            .iter()
            .map(|(n, f)| format!("{n}={}", local_t.format(f)))
            .collect::<Vec<_>>()
            .join("/");
        (start_ms, end_ms, path)
    }

    /// The end (exclusive, Unix ms) of the time bucket a partition directory (relative to the
    /// table) covers, parsed back from its time segments; `None` without time segments.
    pub fn bucket_end_of(&self, rel_dir: &str) -> Option<i64> {
        if self.time.is_empty() {
            return None;
        }
        let mut parsed = chrono::format::Parsed::new();
        let mut segs = rel_dir.split('/');
        for (name, fmt) in &self.time {
            let v = segs
                .next()?
                .strip_prefix(name.as_str())?
                .strip_prefix('=')?;
            chrono::format::parse(&mut parsed, v, chrono::format::StrftimeItems::new(fmt)).ok()?;
        }
        let hour = parsed.hour_div_12().unwrap_or(0) * 12 + parsed.hour_mod_12().unwrap_or(0);
        let start = chrono::NaiveDate::from_ymd_opt(
            parsed.year()?,
            parsed.month().unwrap_or(1),
            parsed.day().unwrap_or(1),
        )?
        .and_hms_opt(hour, parsed.minute().unwrap_or(0), 0)?;
        let end = advance(start, self.unit)?;
        self.zone
            .from_local_datetime(&end)
            .earliest()
            .map(|t| t.timestamp_millis())
    }

    /// The field segments for these partition field values (in `fields` order).
    pub fn field_path_of(&self, values: &[Option<String>]) -> String {
        let mut out = String::new();
        for ((name, _), v) in self.fields.iter().zip(values) {
            if !out.is_empty() {
                out.push('/');
            }
            let _ = write!(out, "{name}={}", escape(v.as_deref()));
        }
        out
    }

    /// The field segments of a row with these pass-through values.
    pub fn field_path(&self, passthrough: &[Option<&str>]) -> String {
        let mut out = String::new();
        for (name, i) in &self.fields {
            if !out.is_empty() {
                out.push('/');
            }
            let v = passthrough.get(*i).copied().flatten();
            let _ = write!(out, "{name}={}", escape(v));
        }
        out
    }

    pub fn has_fields(&self) -> bool {
        !self.fields.is_empty()
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn truncate(t: NaiveDateTime, unit: Unit) -> NaiveDateTime {
    let d = t.date();
    let (date, h, m) = match unit {
        Unit::Minute => (d, t.hour(), t.minute()),
        Unit::Hour => (d, t.hour(), 0),
        Unit::Day => (d, 0, 0),
        Unit::Month => (d.with_day(1).unwrap_or(d), 0, 0),
        Unit::Year => (d.with_ordinal(1).unwrap_or(d), 0, 0),
    };
    date.and_hms_opt(h, m, 0).unwrap_or(t)
}

fn advance(t: NaiveDateTime, unit: Unit) -> Option<NaiveDateTime> {
    match unit {
        Unit::Minute => t.checked_add_signed(chrono::TimeDelta::minutes(1)),
        Unit::Hour => t.checked_add_signed(chrono::TimeDelta::hours(1)),
        Unit::Day => t.checked_add_signed(chrono::TimeDelta::days(1)),
        Unit::Month => t.checked_add_months(chrono::Months::new(1)),
        Unit::Year => t.checked_add_months(chrono::Months::new(12)),
    }
}

#[cfg(test)]
mod tests;
