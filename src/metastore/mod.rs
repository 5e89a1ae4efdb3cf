//! Registering the table and its partitions in a Hive Metastore, so Hive, Spark and Trino see
//! new data with no `MSCK REPAIR`.
//!
//! Registration runs on a thread of its own (the registrar), after the lake commit and off the
//! record path: the processor only sends it notices. The lake is the source of truth. At
//! start, and after every failure, the registrar compares the partition directories in the lake
//! with the metastore's partitions and adds what is missing, so a crash between a commit and its
//! registration, or a metastore that was down, leaves nothing unregistered. Adding is
//! idempotent (`if_not_exists`), so two instances registering the same partitions raise no
//! error. A metastore that is down is retried with back-off while the job goes on writing.
//!
//! Knows nothing of the configuration, the sink or the pipeline: `config` builds the options,
//! and the observer reports to whoever wants the figures.

mod client;
mod objects;
mod ops;
mod registrar;

use std::time::Duration;

pub use client::MetastoreError;
pub use objects::PartitionStats;
pub use registrar::Registrar;

/// When a partition is added to the metastore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddPartitions {
    /// When its first file is committed: queries see data within a roll interval.
    OnCommit,
    /// When it is complete (`_SUCCESS`): for batch consumers that must not see partial
    /// partitions.
    OnComplete,
}

/// How to reach the metastore and what to register.
#[derive(Debug, Clone)]
pub struct MetastoreOptions {
    /// `thrift://host:port`, tried in order.
    pub uris: Vec<String>,
    pub database: String,
    /// Bound on each call.
    pub timeout: Duration,
    /// Create the database and table when they are missing.
    pub create_table: bool,
    pub add_partitions: AddPartitions,
    /// Keep each partition's `numFiles`, `totalSize` and `numRows` up to date.
    pub statistics: bool,
}

/// Where the registrar reports what it does.
pub trait Observer: Send + 'static {
    /// Partitions added.
    fn registered(&self, partitions: u64);
    /// A failed attempt (it is retried).
    fn failed(&self, error: &MetastoreError);
    /// Partitions waiting to be added.
    fn backlog(&self, partitions: usize);
    /// Whether the metastore answered the last attempt.
    fn reachable(&self, ok: bool);
}
