//! normlake: Kafka → per-key windowed normalization → Hive-partitioned Parquet.
//!
//! # Layout
//! Modules follow the data, and each owns one concern:
//! - [`config`]: the TOML file, `${VAR}` interpolation and secret files, environment
//!   overrides, validation that reports every error.
//! - [`source`]: the Kafka consumer (with each assigned partition's watermarks), and the Kafka
//!   dead-letter destination; the only stage of the job that knows rdkafka.
//! - [`decode`]: message bytes → typed fields, or a dead-letter reason.
//! - [`normalize`]: the statistics (pure, synchronous, no I/O); knows nothing of Kafka or files.
//! - [`sink`]: rows → Arrow → Parquet files, partitioned and rolled; the dead-letter trait and
//!   its lake destination; knows nothing of Kafka.
//! - [`partition_value`]: Hive's escaping of partition values (a leaf: `lake` and `decode`
//!   both use it).
//! - [`lake`]: the table's layout on disk: Hive partitioning and escaping, atomic placement,
//!   the commit log, checkpoints, `_SUCCESS` markers.
//! - [`secret`]: `Sensitive`, a value never printed, and which property names are secrets (a
//!   leaf).
//! - [`telemetry`]: logging, Prometheus metrics, hdrhistogram latency, the HTTP endpoints.
//! - [`pipeline`]: the wiring; the one place that knows every stage.
//! - [`compact`]: `normlake compact`, merging the small files of complete partitions.
//! - [`generate`], [`demo`]: the synthetic producer and the embedded demo (both produce with
//!   rdkafka; the demo runs librdkafka's mock cluster and owns its lake directory).
//! - [`cli`]: the commands of the `normlake` binary (`run`, `validate-config`, `ddl`,
//!   `generate`, `demo`).

pub mod cli;
pub mod compact;
pub mod config;
pub mod dead_letter;
pub mod decode;
pub mod demo;
pub mod generate;
pub mod lake;
pub mod normalize;
pub mod partition_value;
pub mod pipeline;
pub mod secret;
pub mod sink;
pub mod source;
pub mod telemetry;
