//! Which partition directory of the table each row of a batch goes to: the event time's
//! segments, then the partition fields' values, escaped as Hive escapes them.

use std::collections::HashMap;

use super::RowMeta;
use crate::decode::PassValue;
use crate::lake::partition::Partitioning;
use crate::normalize::Event;

/// Routes rows to directories (relative to the table) by a table's partitioning.
pub struct Partitioner<'a>(pub &'a Partitioning);

impl Partitioner<'_> {
    /// The directories of `rows`, each with the indexes of its rows in order, sorted by
    /// directory. Rows mostly arrive in time order, so the time bucket is computed once per
    /// bucket change, not per row; field values are borrowed, and each directory name is built
    /// once per group.
    pub fn route(&self, rows: &[Event<RowMeta>]) -> Vec<(String, Vec<u32>)> {
        let p = self.0;
        let mut time_paths: Vec<String> = Vec::new();
        let mut current: Option<(i64, i64, usize)> = None;
        let mut groups: HashMap<(usize, Vec<Option<&str>>), Vec<u32>> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            let t = match current {
                Some((start, end, t)) if (start..end).contains(&r.ts_ms) => t,
                _ => {
                    let (start, end, path) = p.time_bucket(r.ts_ms);
                    let t = match time_paths.iter().position(|p| *p == path) {
                        Some(t) => t,
                        None => {
                            time_paths.push(path);
                            time_paths.len() - 1
                        }
                    };
                    current = Some((start, end, t));
                    t
                }
            };
            let fields: Vec<Option<&str>> = p
                .field_indexes()
                .map(|fi| r.payload.passthrough.get(fi).and_then(PassValue::as_str))
                .collect();
            groups.entry((t, fields)).or_default().push(i as u32);
        }
        let mut routed: Vec<(String, Vec<u32>)> = groups
            .into_iter()
            .map(|((t, fields), idx)| {
                let time = time_paths.get(t).map_or("", String::as_str);
                (self.directory(time, &fields), idx)
            })
            .collect();
        routed.sort_unstable();
        routed
    }

    fn directory(&self, time: &str, fields: &[Option<&str>]) -> String {
        let p = self.0;
        if !p.has_fields() {
            return time.to_string();
        }
        let owned: Vec<Option<String>> = fields.iter().map(|v| v.map(str::to_string)).collect();
        match time {
            "" => p.field_path_of(&owned),
            time => format!("{time}/{}", p.field_path_of(&owned)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ts_ms: i64, site: Option<&str>) -> Event<RowMeta> {
        Event {
            key: "k".into(),
            ts_ms,
            seq: 0,
            features: Vec::new(),
            payload: RowMeta {
                passthrough: vec![site.map_or(PassValue::Null, |s| PassValue::Text(s.into()))],
                received_ms: 0,
                kafka_ms: None,
            },
        }
    }

    const HOUR: i64 = 3_600_000;
    /// 2026-11-26T02:00:00Z
    const T0: i64 = 1_795_658_400_000;

    #[test]
    fn rows_go_to_their_hour_in_order_and_directories_sort() {
        let p = Partitioning::default();
        let rows = [
            row(T0 + HOUR, None),
            row(T0, None),
            row(T0 + HOUR + 5, None),
        ];
        let routed = Partitioner(&p).route(&rows);
        assert_eq!(
            routed,
            vec![
                ("dt=2026-11-26/hr=02".to_string(), vec![1]),
                ("dt=2026-11-26/hr=03".to_string(), vec![0, 2]),
            ]
        );
    }

    #[test]
    fn field_values_are_escaped_and_null_is_the_default_partition() {
        let p = Partitioning::new("dt=%Y-%m-%d", "UTC", vec![("site".into(), 0)]).unwrap();
        let rows = [
            row(T0, Some("a/b=c% d")),
            row(T0, None),
            row(T0, Some("a/b=c% d")),
        ];
        let routed = Partitioner(&p).route(&rows);
        assert_eq!(
            routed,
            vec![
                (
                    "dt=2026-11-26/site=__HIVE_DEFAULT_PARTITION__".to_string(),
                    vec![1]
                ),
                ("dt=2026-11-26/site=a%2Fb%3Dc%25 d".to_string(), vec![0, 2]),
            ]
        );
    }
}
