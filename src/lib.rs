//! normlake: Kafka → per-key windowed normalization → Hive-partitioned Parquet.
//!
//! # Layout
//! Modules follow the data, and each owns one concern. Lower layers never import upper ones:
//! `lake`, `metastore`, `decode`, `normalize` and `source` know nothing of `config`, `sink` or
//! `pipeline`; `config` builds the options they take.
//! - [`config`]: the TOML file, `${VAR}` interpolation and secret files, environment
//!   overrides, validation that reports every error.
//! - [`source`]: the Kafka consumer (with each assigned partition's watermarks),
//!   `KafkaClient`, how every Kafka client of the job reaches its cluster, and the Schema
//!   Registry client (`source::registry`).
//! - [`decode`]: message bytes (JSON, or Avro in Confluent's wire format) → typed fields, or a
//!   dead-letter reason; field paths (`decode::fields`), no I/O (writer schemas are handed in).
//! - [`normalize`]: the statistics (pure, synchronous, no I/O), and what changed in them since
//!   the last checkpoint (`journal`, `delta`); knows nothing of Kafka or files.
//! - [`sink`]: the output `Table` (columns, Parquet settings, partitioning, rolling), rows →
//!   Arrow → Parquet files routed by the `Partitioner` and rolled; knows nothing of Kafka.
//! - [`dead_letter`]: records that cannot become rows: the `DeadLetterSink` trait, its lake
//!   and Kafka destinations, and `open`, which picks one from the configuration.
//! - [`partition_value`]: Hive's escaping of partition values (a leaf: `lake` and `decode`
//!   both use it).
//! - [`lake`]: the table's layout on storage: Hive partitioning, atomic placement, the commit
//!   log and checkpoint chains (`lake::commit`: a whole checkpoint and its deltas), `_SUCCESS` markers (`lake::marker`), the store, and
//!   the table as Hive sees it (`lake::hive`: one description for the DDL and the metastore).
//! - [`metastore`]: registering the table and its partitions in a Hive Metastore, on a
//!   registrar thread of its own after each lake commit (knows nothing of `config`, `sink` or
//!   `pipeline`).
//! - [`secret`]: `Sensitive`, a value never printed, and which property names are secrets (a
//!   leaf).
//! - [`varint`]: zigzag LEB128, the compact form of small signed differences in checkpoints,
//!   journals and the latency bookkeeping (a leaf).
//! - [`telemetry`]: logging, Prometheus metrics (latency histograms, watermarks, the process
//!   series), the times of rows not committed yet (`telemetry::row_times`), hdrhistogram
//!   percentiles of the last minute, readiness (`telemetry::health`),
//!   the HTTP endpoints.
//! - [`pipeline`]: the wiring; the one place that knows every stage. Each input partition's
//!   progress, admission rules, idleness and waits are `pipeline::progress`; what the
//!   registrar is told is `pipeline::registration`; fetching writer schemas, and waiting for
//!   the registry, is `pipeline::schemas`; the router that shares the partitions out among
//!   the worker threads (`[runtime] workers`) is `pipeline::workers`.
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
pub mod metastore;
pub mod normalize;
pub mod partition_value;
pub mod pipeline;
pub mod secret;
pub mod sink;
pub mod source;
pub mod telemetry;
pub mod varint;
