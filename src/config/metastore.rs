//! `[lake.metastore]`: registering the table and its partitions in a Hive Metastore.

use serde::Deserialize;

use super::{Collector, HumanDuration, LakeConfig};
use crate::metastore::{AddPartitions, MetastoreOptions};

/// One URI, a comma-separated list (as Hive's `hive.metastore.uris`), or an array.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Uris {
    One(String),
    Many(Vec<String>),
}

impl Uris {
    pub fn list(&self) -> Vec<String> {
        let all: Vec<&str> = match self {
            Uris::One(s) => s.split(',').collect(),
            Uris::Many(v) => v.iter().map(String::as_str).collect(),
        };
        all.into_iter()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetastoreSection {
    /// `thrift://host:port`, one or more, tried in order.
    pub uri: Uris,
    #[serde(default = "default_database")]
    pub database: String,
    /// Bound on each metastore call.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Create the database and the table when they are missing.
    #[serde(default = "super::defaults::yes")]
    pub create_table: bool,
    /// `on_commit` (when a partition's first file is committed) or `on_complete` (when it
    /// gets `_SUCCESS`).
    #[serde(default = "default_add_partitions")]
    pub add_partitions: AddPartitions,
    /// Keep `numFiles`, `totalSize` and `numRows` of each partition up to date.
    #[serde(default = "super::defaults::yes")]
    pub statistics: bool,
    /// The table's location as the engines reach it (for example `s3a://bucket/lake/t`);
    /// default: the lake's own.
    pub location: Option<String>,
    /// `/readyz` fails once the metastore has been unreachable this long.
    #[serde(default = "default_unready_after")]
    pub unready_after: HumanDuration,
}

fn default_database() -> String {
    "default".into()
}

fn default_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(10))
}

fn default_add_partitions() -> AddPartitions {
    AddPartitions::OnCommit
}

fn default_unready_after() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(300))
}

impl MetastoreSection {
    pub fn options(&self) -> MetastoreOptions {
        MetastoreOptions {
            uris: self.uri.list(),
            database: self.database.clone(),
            timeout: self.timeout.0,
            create_table: self.create_table,
            add_partitions: self.add_partitions,
            statistics: self.statistics,
        }
    }
}

/// Check `[lake.metastore]` against the rest of `[lake]`.
pub(super) fn validate_metastore(l: &LakeConfig, c: &mut Collector) {
    let Some(m) = &l.metastore else { return };
    let uris = m.uri.list();
    if uris.is_empty() {
        c.err(
            "lake.metastore.uri",
            "must name at least one thrift://host:port",
        );
    }
    for u in &uris {
        if let Err(why) = check_uri(u) {
            c.err("lake.metastore.uri", format!("`{u}`: {why}"));
        }
    }
    let db = &m.database;
    if db.is_empty() || !db.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
        c.err(
            "lake.metastore.database",
            "must be a non-empty name of letters, digits and underscores",
        );
    }
    if m.timeout.0.is_zero() {
        c.err("lake.metastore.timeout", "must be longer than zero");
    }
    if m.add_partitions == AddPartitions::OnComplete {
        if !l.success_marker.enabled {
            c.err(
                "lake.metastore.add_partitions",
                "on_complete needs lake.success_marker.enabled = true (completion is what _SUCCESS marks)",
            );
        }
        if l.partitioning.time.trim().is_empty() {
            c.err(
                "lake.metastore.add_partitions",
                "on_complete needs time partitions (lake.partitioning.time): only a time partition ever completes",
            );
        }
    }
}

fn check_uri(u: &str) -> Result<(), &'static str> {
    let rest = u
        .strip_prefix("thrift://")
        .ok_or("must start with thrift://")?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or("must name a port (thrift://host:9083)")?;
    if host.is_empty() {
        return Err("must name a host");
    }
    port.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .map(|_| ())
        .ok_or("the port must be a number from 1 to 65535")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_come_as_one_a_comma_list_or_an_array() {
        assert_eq!(Uris::One("thrift://a:1".into()).list(), ["thrift://a:1"]);
        assert_eq!(
            Uris::One("thrift://a:1, thrift://b:2".into()).list(),
            ["thrift://a:1", "thrift://b:2"]
        );
        assert_eq!(
            Uris::Many(vec!["thrift://a:1".into(), " ".into()]).list(),
            ["thrift://a:1"]
        );
    }

    #[test]
    fn a_uri_needs_the_scheme_a_host_and_a_port() {
        assert!(check_uri("thrift://hms:9083").is_ok());
        assert!(check_uri("hms:9083").is_err());
        assert!(check_uri("thrift://hms").is_err());
        assert!(check_uri("thrift://:9083").is_err());
        assert!(check_uri("thrift://hms:0").is_err());
        assert!(check_uri("thrift://hms:x").is_err());
    }
}
