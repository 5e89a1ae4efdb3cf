//! The job's configuration: one TOML file, environment overrides, validation.
//!
//! Layers, lowest first: the defaults written on the fields below (one place), the TOML file
//! (whose strings may refer to the environment as `${VAR}` or `${VAR:-default}`), then
//! environment variables `NORMLAKE__SECTION__FIELD` (for example `NORMLAKE__KAFKA__BROKERS`,
//! or `NORMLAKE__KAFKA__PROPERTIES__SASL_PASSWORD` for the Kafka property `sasl.password`).
//! A secret may also be read from a file: `<secret>_file = "/run/secrets/…"`.
//! Each section is deserialized on its own and then cross-checked, so a file with several
//! mistakes reports all of them, each with its field path. Secrets are `Sensitive` and never
//! printed.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::decode::InputSpec;
use crate::lake::partition::Partitioning;
use crate::normalize::{Degenerate, LatePolicy, Plan, TimeMode};
use crate::sink::Output;

mod input;
mod interpolate;
mod kafka;
mod lake;
mod metastore;
mod plan;
mod table;
mod values;

pub use crate::lake::store::S3Options;
pub use crate::secret::{Sensitive, is_secret_property};
pub use input::RegistrySection;
use input::{InputSection, build_input};
pub use interpolate::interpolate;
pub use kafka::{DataLoss, DeadLetterConfig, DeadLetterDestination, KafkaConfig, OffsetReset};
use kafka::{validate_dead_letter, validate_kafka};
pub use lake::{
    Codec, CompactionSection, LakeConfig, ParquetSection, PartitioningSection, RollingConfig,
    StatisticsLevel, SuccessMarkerSection,
};
use lake::{build_partitioning, validate_lake};
pub use metastore::{MetastoreSection, Uris};
pub use plan::SlotOutputs;
use plan::build_plan;
pub use values::{ByteSize, HumanDuration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeSection {
    #[serde(default)]
    mode: TimeMode,
    #[serde(default = "defaults::out_of_orderness")]
    out_of_orderness: HumanDuration,
    #[serde(default)]
    late: LatePolicy,
    /// Processing-time mode: how far behind a key's newest event time values are kept for
    /// events arriving with older timestamps (default: the largest window).
    max_disorder: Option<HumanDuration>,
    /// Drop keys idle this long; default: the window (never for expanding and EW windows).
    idle_ttl: Option<HumanDuration>,
    /// Reject an event whose time is further ahead of its Kafka timestamp than this, so one
    /// bad clock cannot move the watermark years ahead and make every later event late.
    #[serde(default = "defaults::max_ahead")]
    max_ahead: HumanDuration,
    /// An input partition with no record for this long stops holding back the table's
    /// completion (`_SUCCESS`, `on_complete` registration); it rejoins with its next record.
    idle_timeout: Option<HumanDuration>,
}

impl Default for TimeSection {
    fn default() -> Self {
        TimeSection {
            mode: TimeMode::default(),
            out_of_orderness: defaults::out_of_orderness(),
            late: LatePolicy::default(),
            max_disorder: None,
            idle_ttl: None,
            max_ahead: defaults::max_ahead(),
            idle_timeout: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MethodName {
    Zscore,
    Minmax,
    Maxabs,
    Robust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WindowName {
    Expanding,
    SlidingTime,
    SlidingCount,
    Tumbling,
    TumblingPrevious,
    Ewm,
    EwmTime,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct NormalizeSection {
    name: String,
    /// Features this normalization applies to; default: every feature.
    features: Option<Vec<String>>,
    method: MethodName,
    window: WindowName,
    size: Option<HumanDuration>,
    count: Option<usize>,
    alpha: Option<f64>,
    halflife: Option<HumanDuration>,
    #[serde(default)]
    include_current: bool,
    min_count: Option<u64>,
    #[serde(default)]
    ddof: u32,
    #[serde(default)]
    eps: f64,
    #[serde(default = "defaults::range")]
    range: [f64; 2],
    #[serde(default)]
    clip: bool,
    #[serde(default = "defaults::quantiles")]
    quantiles: [f64; 2],
    #[serde(default)]
    degenerate: Degenerate,
    /// The columns this normalization writes per feature; default: all five.
    outputs: Option<Vec<Output>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerSection {
    #[serde(default = "defaults::layer_name")]
    name: String,
    #[serde(default = "defaults::layer_eps")]
    eps: f64,
    #[serde(default = "defaults::layer_min_count")]
    min_count: u64,
    features: Option<Vec<String>>,
    outputs: Option<Vec<Output>>,
}

/// How much memory the job may use. Input buffers (librdkafka's queue) get a fifth of it, but
/// at most 32 MiB: beyond that a larger prefetch buys no speed, only resident memory (the broker
/// benchmark reads as fast with 32 MiB as with 64, at 291 MiB of peak RSS instead of 379).
/// Rows waiting in open files and dead letters get a fifth too, but at most 24 MiB (the broker
/// benchmark, two alternating rounds against 32 MiB: 243–244 MiB of peak RSS with one worker
/// against 247–255, 244–255 with two against 255–259, at the same speed; with 16 MiB the
/// pipeline benchmark's row groups were small enough to cost it about 4%). A fifth is left for
/// the code, the runtime, the allocator and transient batches; normalization state gets the
/// rest (two fifths of a small budget, 763 MiB of the default 1 GiB).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    #[serde(default = "defaults::memory_budget")]
    pub budget: ByteSize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            budget: defaults::memory_budget(),
        }
    }
}

/// The most the input buffers are given of any budget.
const INPUT_CAP: u64 = 32 << 20;
/// The most the rows in open files (and dead letters) are given of any budget.
const SINK_CAP: u64 = 24 << 20;

/// One worker's shares of the memory budget.
#[derive(Debug, Clone, Copy)]
pub struct MemoryShare {
    pub sink_bytes: u64,
    pub state_bytes: u64,
}

impl MemoryConfig {
    /// The rows and state shares of one of `workers` processor threads.
    pub fn share(&self, workers: usize) -> MemoryShare {
        let n = workers.max(1) as u64;
        MemoryShare {
            sink_bytes: self.sink_bytes() / n,
            state_bytes: self.state_bytes() / n,
        }
    }
    pub fn input_bytes(&self) -> u64 {
        (self.budget.0 / 5).min(INPUT_CAP)
    }
    pub fn sink_bytes(&self) -> u64 {
        (self.budget.0 / 5).min(SINK_CAP)
    }
    pub fn state_bytes(&self) -> u64 {
        self.budget.0 - self.budget.0 / 5 - self.input_bytes() - self.sink_bytes()
    }
}

/// A complete, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub input: InputSpec,
    /// `[input.schema_registry]`, for Avro input.
    pub registry: Option<RegistrySection>,
    pub plan: Plan,
    /// The columns each normalization writes (`outputs`).
    pub outputs: SlotOutputs,
    pub lake: LakeConfig,
    pub dead_letter: DeadLetterConfig,
    pub memory: MemoryConfig,
    pub partitioning: Partitioning,
    /// `[time] idle_timeout`: see `TimeSection`.
    pub idle_timeout: Option<std::time::Duration>,
    pub runtime: RuntimeSection,
}

/// `[runtime]`: how the job uses the machine.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    /// Processor threads; the assigned Kafka partitions are shared out among them. Default:
    /// one per core but one (left to librdkafka, the broker's network and the encoders), at
    /// least one.
    pub workers: Option<usize>,
}

/// The most workers a configuration may ask for.
pub const MAX_WORKERS: usize = 256;

impl RuntimeSection {
    /// The number of processor threads.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            cores.saturating_sub(1).max(1)
        })
    }
}

/// One problem in the configuration, at a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every problem found, in file order where possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<FieldError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

mod defaults {
    use super::{Codec, HumanDuration};
    use std::time::Duration;

    pub fn group_id() -> String {
        "normlake".into()
    }
    pub fn time_field() -> String {
        "ts".into()
    }
    pub fn out_of_orderness() -> HumanDuration {
        HumanDuration(Duration::from_secs(5))
    }
    pub fn range() -> [f64; 2] {
        [0.0, 1.0]
    }
    pub fn quantiles() -> [f64; 2] {
        [0.25, 0.75]
    }
    pub fn layer_name() -> String {
        "ln".into()
    }
    pub fn layer_eps() -> f64 {
        1e-5
    }
    pub fn layer_min_count() -> u64 {
        2
    }
    pub fn time_partitions() -> String {
        "dt=%Y-%m-%d/hr=%H".into()
    }
    pub fn time_zone() -> String {
        "UTC".into()
    }
    pub fn memory_budget() -> super::ByteSize {
        super::ByteSize(1 << 30)
    }
    pub fn max_ahead() -> HumanDuration {
        HumanDuration(Duration::from_secs(7 * 24 * 3600))
    }
    pub fn max_rows() -> usize {
        500_000
    }
    pub fn no_delay() -> HumanDuration {
        HumanDuration(Duration::ZERO)
    }
    pub fn max_bytes() -> super::ByteSize {
        super::ByteSize(128 << 20)
    }
    pub fn inactivity() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub fn max_open_files() -> usize {
        100
    }
    pub fn max_age() -> HumanDuration {
        HumanDuration(Duration::from_secs(60))
    }
    /// Level 1: on the core benchmark's rows (mostly float mantissas, which no level
    /// compresses) level 3 writes 4% smaller files at 17% less throughput.
    pub const ZSTD_LEVEL: i32 = 1;
    pub fn normalized_codec() -> Codec {
        Codec::Uncompressed
    }
    pub fn codec() -> Codec {
        Codec::Zstd(ZSTD_LEVEL)
    }
    pub fn yes() -> bool {
        true
    }
    /// `min_count` when the file gives none.
    pub fn min_count(ddof: u32) -> u64 {
        2.max(ddof as u64 + 1)
    }
}

const SECTIONS: [&str; 9] = [
    "kafka",
    "input",
    "time",
    "normalize",
    "layer_norm",
    "lake",
    "dead_letter",
    "memory",
    "runtime",
];

/// Collects errors while sections are read.
struct Collector(Vec<FieldError>);

impl Collector {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn section<T: DeserializeOwned>(
        &mut self,
        table: &toml::Table,
        name: &str,
    ) -> Option<Option<T>> {
        let Some(v) = table.get(name) else {
            return Some(None);
        };
        match serde_path_to_error::deserialize::<_, T>(v.clone()) {
            Ok(t) => Some(Some(t)),
            Err(e) => {
                let path = e.path().to_string();
                let field = if path == "." {
                    name.to_string()
                } else {
                    format!("{name}.{path}")
                };
                let msg = e.into_inner().message().to_string();
                self.err(field, msg);
                None
            }
        }
    }

    fn required<T: DeserializeOwned>(&mut self, table: &toml::Table, name: &str) -> Option<T> {
        match self.section(table, name) {
            Some(Some(t)) => Some(t),
            Some(None) => {
                self.err(name, "missing section");
                None
            }
            None => None,
        }
    }
}

impl Config {
    /// Read, override from the environment and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![FieldError {
                field: path.display().to_string(),
                message: format!("cannot read the configuration file: {e}"),
            }])
        })?;
        Config::from_toml(&text, std::env::vars())
    }

    /// Parse TOML text with the given environment (injected so tests need not mutate theirs).
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let (table, mut c) = layered(text, env)?;
        let kafka: Option<KafkaConfig> = c.required(&table, "kafka");
        let input: Option<InputSection> = c.required(&table, "input");
        let time: Option<TimeSection> = c.section(&table, "time").map(Option::unwrap_or_default);
        let norms: Option<Vec<NormalizeSection>> = c
            .section(&table, "normalize")
            .map(Option::unwrap_or_default);
        let layer: Option<Option<LayerSection>> = c.section(&table, "layer_norm");
        let lake: Option<LakeConfig> = c.required(&table, "lake");
        let dead_letter: Option<DeadLetterConfig> = c
            .section(&table, "dead_letter")
            .map(Option::unwrap_or_default);

        if let Some(k) = &kafka {
            validate_kafka(k, &mut c);
        }
        if let Some(l) = &lake {
            validate_lake(l, &mut c);
        }
        let memory: Option<MemoryConfig> =
            c.section(&table, "memory").map(Option::unwrap_or_default);
        let runtime: Option<RuntimeSection> =
            c.section(&table, "runtime").map(Option::unwrap_or_default);
        if let Some(w) = runtime.as_ref().and_then(|r| r.workers)
            && !(1..=MAX_WORKERS).contains(&w)
        {
            c.err(
                "runtime.workers",
                format!("must be between 1 and {MAX_WORKERS}"),
            );
        }
        if let Some(m) = &memory {
            validate_memory(m, &mut c);
        }
        if let (Some(d), Some(k)) = (&dead_letter, &kafka) {
            validate_dead_letter(d, k, &mut c);
        }
        let mut registry = None;
        let mut input = input.map(|i| {
            let (mut spec, r) = build_input(i, &mut c);
            registry = r;
            spec.max_ahead_ms = time.as_ref().map(|t| t.max_ahead.millis());
            spec
        });
        let partitioning = match (&lake, &mut input) {
            (Some(l), Some(i)) => build_partitioning(&l.partitioning, i, &mut c),
            _ => None,
        };
        let idle_timeout = time.as_ref().and_then(|t| t.idle_timeout).map(|d| d.0);
        if idle_timeout.is_some_and(|d| d.is_zero()) {
            c.err("time.idle_timeout", "must be longer than zero");
        }
        let plan = match (&input, time, norms, layer) {
            (Some(i), Some(t), Some(n), Some(l)) => build_plan(i, t, n, l, &mut c),
            _ => None,
        };
        let (plan, outputs) = plan.unzip();
        match (
            kafka,
            input,
            plan,
            outputs,
            lake,
            dead_letter,
            memory,
            partitioning,
            runtime,
        ) {
            (
                Some(kafka),
                Some(input),
                Some(plan),
                Some(outputs),
                Some(lake),
                Some(dead_letter),
                Some(memory),
                Some(partitioning),
                Some(runtime),
            ) if c.0.is_empty() => {
                let cfg = Config {
                    kafka,
                    registry,
                    input,
                    plan,
                    outputs,
                    lake,
                    dead_letter,
                    memory,
                    partitioning,
                    idle_timeout,
                    runtime,
                };
                table::check_parquet_columns(&cfg, &mut c);
                if c.0.is_empty() {
                    Ok(cfg)
                } else {
                    Err(ConfigErrors(c.0))
                }
            }
            _ => Err(ConfigErrors(c.0)),
        }
    }
}

/// The file's table with the environment applied (interpolation, then `NORMLAKE__…`
/// overrides, then secret files), and the errors found so far (unknown sections among them).
fn layered(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(toml::Table, Collector), ConfigErrors> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigErrors(vec![FieldError {
            field: "(file)".into(),
            message: format!("not valid TOML: {}", e.message()),
        }])
    })?;
    let env: HashMap<String, String> = env.into_iter().collect();
    let mut c = Collector(Vec::new());
    interpolate::interpolate_table(&mut table, &env, &mut c);
    apply_env(&mut table, &env, &mut c);
    interpolate::read_secret_files(&mut table, "", &mut c);
    for k in table.keys() {
        if !SECTIONS.contains(&k.as_str()) {
            c.err(
                k.clone(),
                format!("unknown section; expected one of {}", SECTIONS.join(", ")),
            );
        }
    }
    Ok((table, c))
}

fn validate_memory(m: &MemoryConfig, c: &mut Collector) {
    if m.budget.0 < MIN_BUDGET {
        c.err(
            "memory.budget",
            format!(
                "must be at least {} (buffers and state need room)",
                bytesize::ByteSize(MIN_BUDGET).display().iec()
            ),
        );
    }
}

/// `NORMLAKE__A__B=v` sets `a.b = v` (parsed as a TOML value when it is one, else a string).
/// Under `properties`, the last segment names a Kafka property (see
/// [`interpolate::property_from_env`]).
fn apply_env(table: &mut toml::Table, env: &HashMap<String, String>, c: &mut Collector) {
    let mut names: Vec<&String> = env.keys().filter(|n| n.starts_with("NORMLAKE__")).collect();
    names.sort();
    for name in names {
        let (Some(path), Some(value)) = (name.strip_prefix("NORMLAKE__"), env.get(name)) else {
            continue;
        };
        let value = value.clone();
        let mut parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
        if parts.len() >= 2 && parts[parts.len() - 2] == "properties" {
            let last = parts.len() - 1;
            parts[last] = interpolate::property_from_env(&parts[last]);
        }
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let Some((last, parents)) = parts.split_last() else {
            continue;
        };
        // Kafka properties are always strings.
        let v = if parents.last().is_some_and(|p| p == "properties") {
            toml::Value::String(value)
        } else {
            parsed
        };
        if let Err(p) = set_path(table, parents, last, v) {
            c.err(
                name.clone(),
                format!("`{p}` is not a table, cannot override below it"),
            );
        }
    }
}

fn set_path(
    table: &mut toml::Table,
    parents: &[String],
    last: &str,
    v: toml::Value,
) -> Result<(), String> {
    match parents.split_first() {
        None => {
            table.insert(last.to_string(), v);
            Ok(())
        }
        Some((p, rest)) => {
            let entry = table
                .entry(p.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, last, v),
                _ => Err(p.clone()),
            }
        }
    }
}

const MIN_BUDGET: u64 = 32 << 20;

/// Columns every output row has (spec §5), which input names must not shadow.
pub const RESERVED_COLUMNS: [&str; 5] = [
    "key",
    "event_time",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
];

fn is_column_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

#[cfg(test)]
mod tests;
