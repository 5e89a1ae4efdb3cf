//! The job's configuration: one TOML file, environment overrides, validation.
//!
//! Layers, lowest first: the defaults written on the fields below (one place), the TOML file,
//! then environment variables `NORMLAKE__SECTION__FIELD` (for example
//! `NORMLAKE__KAFKA__BROKERS`, or `NORMLAKE__KAFKA__PROPERTIES__SASL.PASSWORD` for a secret).
//! Each section is deserialized on its own and then cross-checked, so a file with several
//! mistakes reports all of them, each with its field path. Secrets are `Sensitive` and never
//! printed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::decode::{InputSpec, KeySource, TimeFormat};
use crate::normalize::{
    Degenerate, LatePolicy, LayerSpec, Method, NormSpec, Plan, TimeMode, Window,
};

/// A human-readable duration (`"250ms"`, `"5s"`, `"2m"`, `"1h 30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn millis(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a duration ({e}); write e.g. \"5s\" or \"2m\""
                ))
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// A byte size (`"128MiB"`, `"64 MB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<bytesize::ByteSize>()
            .map(|b| ByteSize(b.as_u64()))
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a byte size ({e}); write e.g. \"128MiB\""
                ))
            })
    }
}

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(transparent)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    pub fn new(v: T) -> Self {
        Sensitive(v)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl<T> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// librdkafka property names whose values are secrets.
fn is_secret_property(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("password")
        || n.contains("secret")
        || n.ends_with(".key.pem")
        || n.contains("sasl.oauthbearer.config")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated bootstrap servers.
    pub brokers: String,
    pub topics: Vec<String>,
    #[serde(default = "defaults::group_id")]
    pub group_id: String,
    /// Passed to librdkafka as is (security settings, timeouts, …). Secrets are redacted.
    #[serde(default)]
    pub properties: BTreeMap<String, Sensitive<String>>,
}

impl KafkaConfig {
    /// Properties with secrets redacted, for printing.
    pub fn printable_properties(&self) -> BTreeMap<&str, String> {
        self.properties
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_property(k) {
                    "<redacted>".to_string()
                } else {
                    v.expose().clone()
                };
                (k.as_str(), shown)
            })
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSection {
    /// JSON field holding the key; omit to use the Kafka message key.
    key_field: Option<String>,
    #[serde(default = "defaults::time_field")]
    time_field: String,
    #[serde(default)]
    time_format: TimeFormat,
    features: Vec<String>,
    #[serde(default)]
    passthrough: Vec<String>,
}

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
}

impl Default for TimeSection {
    fn default() -> Self {
        TimeSection {
            mode: TimeMode::default(),
            out_of_orderness: defaults::out_of_orderness(),
            late: LatePolicy::default(),
            max_disorder: None,
            idle_ttl: None,
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
}

/// Parquet compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Zstd(i32),
    Snappy,
    Lz4,
    Uncompressed,
}

impl<'de> Deserialize<'de> for Codec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let lower = s.to_ascii_lowercase();
        let bad = || {
            serde::de::Error::custom(format!(
                "`{s}` is not a codec: use zstd, zstd(1..22), snappy, lz4 or none"
            ))
        };
        match lower.as_str() {
            "zstd" => Ok(Codec::Zstd(3)),
            "snappy" => Ok(Codec::Snappy),
            "lz4" => Ok(Codec::Lz4),
            "none" | "uncompressed" => Ok(Codec::Uncompressed),
            _ => {
                let level = lower
                    .strip_prefix("zstd(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|l| l.trim().parse::<i32>().ok())
                    .filter(|l| (1..=22).contains(l))
                    .ok_or_else(bad)?;
                Ok(Codec::Zstd(level))
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollingConfig {
    /// Close a Kafka partition's open files after this many rows.
    #[serde(default = "defaults::max_rows")]
    pub max_rows: usize,
    /// … or once the oldest buffered row is this old (wall clock).
    #[serde(default = "defaults::max_age")]
    pub max_age: HumanDuration,
}

impl Default for RollingConfig {
    fn default() -> Self {
        RollingConfig {
            max_rows: defaults::max_rows(),
            max_age: defaults::max_age(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// Directory (or `file://` URI) holding the tables.
    pub root: String,
    pub table: String,
    /// Keep the raw feature values as columns next to the normalized ones.
    #[serde(default = "defaults::yes")]
    pub keep_raw: bool,
    #[serde(default = "defaults::codec")]
    pub compression: Codec,
    #[serde(default)]
    pub rolling: RollingConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterDestination {
    /// Parquet files under `<root>/<table>/_dead_letter/`.
    #[default]
    Lake,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    #[serde(default)]
    pub destination: DeadLetterDestination,
}

/// A complete, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub input: InputSpec,
    pub plan: Plan,
    pub lake: LakeConfig,
    pub dead_letter: DeadLetterConfig,
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
    pub fn max_rows() -> usize {
        500_000
    }
    pub fn max_age() -> HumanDuration {
        HumanDuration(Duration::from_secs(60))
    }
    pub fn codec() -> Codec {
        Codec::Zstd(3)
    }
    pub fn yes() -> bool {
        true
    }
    /// `min_count` when the file gives none.
    pub fn min_count(ddof: u32) -> u64 {
        2.max(ddof as u64 + 1)
    }
}

const SECTIONS: [&str; 7] = [
    "kafka",
    "input",
    "time",
    "normalize",
    "layer_norm",
    "lake",
    "dead_letter",
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
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigErrors(vec![FieldError {
                field: "(file)".into(),
                message: format!("not valid TOML: {}", e.message()),
            }])
        })?;
        let mut c = Collector(Vec::new());
        apply_env(&mut table, env, &mut c);
        for k in table.keys() {
            if !SECTIONS.contains(&k.as_str()) {
                c.err(
                    k.clone(),
                    format!("unknown section; expected one of {}", SECTIONS.join(", ")),
                );
            }
        }
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
        let input = input.map(|i| build_input(i, &mut c));
        let plan = match (&input, time, norms, layer) {
            (Some(i), Some(t), Some(n), Some(l)) => build_plan(i, t, n, l, &mut c),
            _ => None,
        };
        match (kafka, input, plan, lake, dead_letter) {
            (Some(kafka), Some(input), Some(plan), Some(lake), Some(dead_letter))
                if c.0.is_empty() =>
            {
                Ok(Config {
                    kafka,
                    input,
                    plan,
                    lake,
                    dead_letter,
                })
            }
            _ => Err(ConfigErrors(c.0)),
        }
    }
}

/// `NORMLAKE__A__B=v` sets `a.b = v` (parsed as a TOML value when it is one, else a string).
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    c: &mut Collector,
) {
    for (name, value) in env {
        let Some(path) = name.strip_prefix("NORMLAKE__") else {
            continue;
        };
        let parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
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

fn validate_kafka(k: &KafkaConfig, c: &mut Collector) {
    if k.brokers.trim().is_empty() {
        c.err("kafka.brokers", "must name at least one broker (host:port)");
    }
    if k.topics.is_empty() {
        c.err("kafka.topics", "must name at least one topic");
    }
    if k.group_id.trim().is_empty() {
        c.err("kafka.group_id", "must not be empty");
    }
    for reserved in [
        "group.id",
        "bootstrap.servers",
        "enable.auto.commit",
        "enable.auto.offset.store",
    ] {
        if k.properties.contains_key(reserved) {
            c.err(
                format!("kafka.properties.{reserved}"),
                "is set by normlake itself (use kafka.brokers / kafka.group_id; commits follow the lake)",
            );
        }
    }
}

fn validate_lake(l: &LakeConfig, c: &mut Collector) {
    if l.root.trim().is_empty() {
        c.err("lake.root", "must not be empty");
    }
    let t = &l.table;
    if t.is_empty() || !t.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
        c.err(
            "lake.table",
            "must be a non-empty name of letters, digits and underscores",
        );
    }
    if l.rolling.max_rows == 0 {
        c.err("lake.rolling.max_rows", "must be at least 1");
    }
    if l.rolling.max_age.0.is_zero() {
        c.err("lake.rolling.max_age", "must be longer than zero");
    }
}

fn build_input(i: InputSection, c: &mut Collector) -> InputSpec {
    if i.features.is_empty() {
        c.err("input.features", "must name at least one feature");
    }
    let mut seen = std::collections::HashSet::new();
    for f in &i.features {
        if !seen.insert(f) {
            c.err("input.features", format!("`{f}` is listed twice"));
        }
        if !is_column_name(f) {
            c.err(
                "input.features",
                format!("`{f}` is not usable as a column name (letters, digits, _)"),
            );
        }
    }
    for p in &i.passthrough {
        if !is_column_name(p) {
            c.err(
                "input.passthrough",
                format!("`{p}` is not usable as a column name (letters, digits, _)"),
            );
        }
        if i.features.contains(p) {
            c.err("input.passthrough", format!("`{p}` is also a feature"));
        }
        if RESERVED_COLUMNS.contains(&p.as_str()) {
            c.err(
                "input.passthrough",
                format!("`{p}` collides with a column normlake writes"),
            );
        }
    }
    if i.key_field.as_deref() == Some("") {
        c.err(
            "input.key_field",
            "must not be empty (omit it to use the Kafka message key)",
        );
    }
    InputSpec {
        key: i.key_field.map_or(KeySource::KafkaKey, KeySource::Field),
        time_field: i.time_field,
        time_format: i.time_format,
        features: i.features,
        passthrough: i.passthrough,
    }
}

/// Columns every output row has (spec §5), which input names must not shadow.
pub const RESERVED_COLUMNS: [&str; 6] = [
    "key",
    "event_time",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "dt",
];

fn is_column_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn feature_indexes(
    all: &[String],
    chosen: &Option<Vec<String>>,
    field: &str,
    c: &mut Collector,
) -> Vec<usize> {
    match chosen {
        None => (0..all.len()).collect(),
        Some(list) => {
            if list.is_empty() {
                c.err(field, "must name at least one feature (omit it for all)");
            }
            list.iter()
                .filter_map(|f| {
                    let ix = all.iter().position(|a| a == f);
                    if ix.is_none() {
                        c.err(field, format!("`{f}` is not one of input.features"));
                    }
                    ix
                })
                .collect()
        }
    }
}

fn build_plan(
    input: &InputSpec,
    t: TimeSection,
    norms: Vec<NormalizeSection>,
    layer: Option<LayerSection>,
    c: &mut Collector,
) -> Option<Plan> {
    if norms.is_empty() && layer.is_none() {
        c.err(
            "normalize",
            "configure at least one [[normalize]] entry or [layer_norm]",
        );
    }
    let mut names = std::collections::HashSet::new();
    let mut specs = Vec::new();
    for (i, n) in norms.iter().enumerate() {
        let at = |f: &str| format!("normalize[{i}].{f}");
        if !is_column_name(&n.name) {
            c.err(
                at("name"),
                "must be a non-empty name of letters, digits and underscores",
            );
        }
        if !names.insert(n.name.clone()) {
            c.err(at("name"), format!("`{}` is used twice", n.name));
        }
        if let Some(s) = build_norm(n, input, &at, c) {
            specs.push(s);
        }
    }
    let layer = layer.map(|l| {
        if !names.insert(l.name.clone()) {
            c.err(
                "layer_norm.name",
                format!("`{}` is also a [[normalize]] name", l.name),
            );
        }
        if !is_column_name(&l.name) {
            c.err(
                "layer_norm.name",
                "must be a non-empty name of letters, digits and underscores",
            );
        }
        if !(l.eps >= 0.0 && l.eps.is_finite()) {
            c.err("layer_norm.eps", "must be a finite number ≥ 0");
        }
        if l.min_count == 0 {
            c.err("layer_norm.min_count", "must be at least 1");
        }
        LayerSpec {
            features: feature_indexes(&input.features, &l.features, "layer_norm.features", c),
            name: l.name,
            eps: l.eps,
            min_count: l.min_count,
        }
    });
    if t.out_of_orderness.0 > Duration::from_secs(7 * 24 * 3600) {
        c.err(
            "time.out_of_orderness",
            "is longer than a week; events would wait that long",
        );
    }
    let largest_window = specs
        .iter()
        .filter_map(|s| match s.window {
            Window::SlidingTime { size_ms }
            | Window::Tumbling { size_ms }
            | Window::TumblingPrevious { size_ms } => Some(size_ms),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let plan = Plan {
        features: input.features.clone(),
        norms: specs,
        layer,
        time_mode: t.mode,
        out_of_orderness_ms: t.out_of_orderness.millis(),
        late: t.late,
        max_disorder_ms: t.max_disorder.map_or(largest_window, HumanDuration::millis),
        idle_ttl_ms: t.idle_ttl.map(HumanDuration::millis),
    };
    c.0.is_empty().then_some(plan)
}

fn build_norm(
    n: &NormalizeSection,
    input: &InputSpec,
    at: &dyn Fn(&str) -> String,
    c: &mut Collector,
) -> Option<NormSpec> {
    let features = feature_indexes(&input.features, &n.features, &at("features"), c);
    let size = |c: &mut Collector| match n.size {
        Some(d) if d.millis() > 0 => Some(d.millis()),
        Some(_) => {
            c.err(at("size"), "must be longer than zero");
            None
        }
        None => {
            c.err(at("size"), format!("is required for window {:?}", n.window));
            None
        }
    };
    let window = match n.window {
        WindowName::Expanding => Some(Window::Expanding),
        WindowName::SlidingTime => size(c).map(|size_ms| Window::SlidingTime { size_ms }),
        WindowName::Tumbling => size(c).map(|size_ms| Window::Tumbling { size_ms }),
        WindowName::TumblingPrevious => size(c).map(|size_ms| Window::TumblingPrevious { size_ms }),
        WindowName::SlidingCount => match n.count {
            Some(count) if count > 0 => Some(Window::SlidingCount { count }),
            Some(_) => {
                c.err(at("count"), "must be at least 1");
                None
            }
            None => {
                c.err(at("count"), "is required for window sliding_count");
                None
            }
        },
        WindowName::Ewm => match n.alpha {
            Some(alpha) if alpha > 0.0 && alpha <= 1.0 => Some(Window::Ewm { alpha }),
            Some(_) => {
                c.err(at("alpha"), "must be in (0, 1]");
                None
            }
            None => {
                c.err(at("alpha"), "is required for window ewm");
                None
            }
        },
        WindowName::EwmTime => match n.halflife {
            Some(h) if h.millis() > 0 => Some(Window::EwmTime {
                halflife_ms: h.millis(),
            }),
            Some(_) => {
                c.err(at("halflife"), "must be longer than zero");
                None
            }
            None => {
                c.err(at("halflife"), "is required for window ewm_time");
                None
            }
        },
    };
    let method = match n.method {
        MethodName::Zscore => {
            if !(n.eps >= 0.0 && n.eps.is_finite()) {
                c.err(at("eps"), "must be a finite number ≥ 0");
            }
            if n.ddof > 1 {
                c.err(at("ddof"), "must be 0 or 1");
            }
            Method::Zscore {
                ddof: n.ddof,
                eps: n.eps,
            }
        }
        MethodName::Minmax => {
            let [a, b] = n.range;
            if !(a.is_finite() && b.is_finite() && a < b) {
                c.err(at("range"), "must be [a, b] with finite a < b");
            }
            Method::Minmax { a, b, clip: n.clip }
        }
        MethodName::Maxabs => Method::Maxabs,
        MethodName::Robust => {
            let [lo, hi] = n.quantiles;
            if !(0.0 <= lo && lo < hi && hi <= 1.0) {
                c.err(at("quantiles"), "must be [lo, hi] with 0 ≤ lo < hi ≤ 1");
            }
            Method::Robust { q_lo: lo, q_hi: hi }
        }
    };
    if n.method != MethodName::Zscore && (n.ddof != 0 || n.eps != 0.0) {
        c.err(at("method"), "ddof and eps apply to zscore only");
    }
    let min_count = n.min_count.unwrap_or_else(|| defaults::min_count(n.ddof));
    if min_count < n.ddof as u64 + 1 || min_count == 0 {
        c.err(
            at("min_count"),
            format!("must be at least ddof + 1 = {}", n.ddof + 1),
        );
    }
    let window = window?;
    if matches!(method, Method::Robust { .. }) && !window.is_bounded() {
        c.err(at("window"), "robust needs a bounded window (sliding_time, sliding_count, tumbling, tumbling_previous): quantiles over an unbounded stream cannot be exact");
    }
    if matches!(window, Window::Ewm { .. } | Window::EwmTime { .. })
        && !matches!(method, Method::Zscore { .. })
    {
        c.err(at("method"), "exponentially weighted windows have a mean and variance but no min, max or quantiles: use zscore");
    }
    if matches!(window, Window::Ewm { .. } | Window::EwmTime { .. }) && n.ddof != 0 {
        c.err(
            at("ddof"),
            "exponentially weighted windows use the weighted population variance (ddof 0)",
        );
    }
    if matches!(window, Window::TumblingPrevious { .. }) && n.include_current {
        c.err(
            at("include_current"),
            "does not apply to tumbling_previous (it sees the previous bucket only)",
        );
    }
    Some(NormSpec {
        name: n.name.clone(),
        method,
        window,
        include_current: n.include_current,
        min_count,
        degenerate: n.degenerate,
        features,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"
topics = ["sensors"]
[kafka.properties]
"sasl.password" = "hunter2"
"fetch.queue.backoff.ms" = "20"

[input]
key_field = "sensor_id"
features = ["temp", "hum"]
passthrough = ["site"]

[[normalize]]
name = "z"
method = "zscore"
window = "sliding_time"
size = "60s"

[lake]
root = "./lake"
table = "sensors"
"#;

    fn no_env() -> Vec<(String, String)> {
        vec![]
    }

    #[test]
    fn a_good_file_loads_with_defaults() {
        let c = Config::from_toml(GOOD, no_env()).unwrap();
        assert_eq!(c.kafka.group_id, "normlake");
        assert_eq!(c.plan.out_of_orderness_ms, 5000);
        assert_eq!(
            c.plan.norms[0].window,
            Window::SlidingTime { size_ms: 60_000 }
        );
        assert_eq!(c.plan.norms[0].min_count, 2);
        assert_eq!(c.plan.norms[0].features, vec![0, 1]);
        assert_eq!(c.lake.compression, Codec::Zstd(3));
        assert_eq!(c.input.key, KeySource::Field("sensor_id".into()));
    }

    #[test]
    fn every_error_is_reported_at_once_with_its_field() {
        let bad = r#"
[kafka]
brokers = ""
topics = []
colour = "blue"

[input]
features = ["temp", "temp"]

[[normalize]]
name = "r"
method = "robust"
window = "expanding"

[[normalize]]
name = "m"
method = "minmax"
window = "ewm"
alpha = 0.5

[[normalize]]
name = "z"
method = "zscore"
window = "sliding_time"
size = "0s"
ddof = 1
min_count = 1

[lake]
root = "./lake"
table = "bad/name"
compression = "gzip"

[extra]
"#;
        let errs = Config::from_toml(bad, no_env()).unwrap_err();
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        for want in [
            "extra",
            "kafka.colour",
            "input.features",
            "normalize[0].window",
            "normalize[1].method",
            "normalize[2].size",
            "normalize[2].min_count",
            "lake.compression",
        ] {
            assert!(fields.contains(&want), "missing {want} in {fields:?}");
        }
        let text = errs.to_string();
        assert!(text.contains("robust needs a bounded window"), "{text}");
    }

    #[test]
    fn semantic_errors_across_sections_are_collected_together() {
        let bad = GOOD
            .replace("brokers = \"127.0.0.1:9092\"", "brokers = \" \"")
            .replace("table = \"sensors\"", "table = \"\"");
        let errs = Config::from_toml(&bad, no_env()).unwrap_err();
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["kafka.brokers", "lake.table"]);
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = vec![
            (
                "NORMLAKE__KAFKA__BROKERS".to_string(),
                "b1:9092,b2:9092".to_string(),
            ),
            (
                "NORMLAKE__LAKE__ROLLING__MAX_ROWS".to_string(),
                "7".to_string(),
            ),
            (
                "NORMLAKE__KAFKA__PROPERTIES__SASL.USERNAME".to_string(),
                "u".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let c = Config::from_toml(GOOD, env).unwrap();
        assert_eq!(c.kafka.brokers, "b1:9092,b2:9092");
        assert_eq!(c.lake.rolling.max_rows, 7);
        assert_eq!(c.kafka.properties["sasl.username"].expose(), "u");
    }

    #[test]
    fn secrets_never_print() {
        let c = Config::from_toml(GOOD, no_env()).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        let shown = c.kafka.printable_properties();
        assert_eq!(shown["sasl.password"], "<redacted>");
        assert_eq!(shown["fetch.queue.backoff.ms"], "20");
    }
}
