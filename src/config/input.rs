//! `[input]`: the format of the messages, the fields that make an event (paths into the
//! record), the pass-through columns and their types, and `[input.schema_registry]`.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{Collector, HumanDuration, RESERVED_COLUMNS, Sensitive, defaults, is_column_name};
use crate::decode::{
    InputFormat, InputSpec, KAFKA_TIMESTAMP, KeySource, PassField, PassType, TimeFormat,
    column_name,
};
use crate::source::registry::RegistryOptions;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InputSection {
    #[serde(default)]
    format: InputFormat,
    /// Field holding the key; omit to use the Kafka message key.
    key_field: Option<String>,
    #[serde(default = "defaults::time_field")]
    time_field: String,
    #[serde(default)]
    time_format: TimeFormat,
    features: Vec<String>,
    #[serde(default)]
    passthrough: Vec<PassEntry>,
    schema_registry: Option<RegistrySection>,
}

/// A pass-through field: a path (a string column), or a path with a type (checked apart,
/// so that a misspelt type is reported by name with the other mistakes).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum PassEntry {
    Name(String),
    Typed {
        field: String,
        #[serde(rename = "type")]
        kind: String,
    },
}

fn pass_type(name: &str) -> Option<PassType> {
    Some(match name {
        "string" => PassType::String,
        "int64" => PassType::Int64,
        "float64" => PassType::Float64,
        "bool" => PassType::Bool,
        "timestamp" => PassType::Timestamp,
        _ => return None,
    })
}

/// `[input.schema_registry]`: where Avro writer schemas are fetched.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// One URL, or several tried in order (`http://registry:8081`).
    pub url: super::Uris,
    pub username: Option<String>,
    pub password: Option<Sensitive<String>>,
    /// A PEM file of the CA that signed the registry's certificate.
    pub ca_certificate: Option<PathBuf>,
    /// Bound on each request.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

impl RegistrySection {
    /// The client's options; reads the CA file.
    pub fn options(&self) -> std::io::Result<RegistryOptions> {
        let ca_pem = match &self.ca_certificate {
            Some(path) => Some(std::fs::read(path)?),
            None => None,
        };
        Ok(RegistryOptions {
            urls: self.url.list(),
            credentials: self.username.clone().zip(self.password.clone()),
            ca_pem,
            timeout: self.timeout.0,
        })
    }
}

fn default_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(10))
}

/// The decoder's specification and the registry section, with every mistake reported.
pub(super) fn build_input(
    i: InputSection,
    c: &mut Collector,
) -> (InputSpec, Option<RegistrySection>) {
    check_paths(&i, c);
    check_columns(&i, c);
    check_registry(&i, c);
    let passthrough = i
        .passthrough
        .iter()
        .map(|p| match p {
            PassEntry::Name(n) => PassField::string(n),
            PassEntry::Typed { field, kind } => PassField {
                path: field.clone(),
                kind: pass_type(kind).unwrap_or_default(),
            },
        })
        .collect();
    let spec = InputSpec {
        format: i.format,
        key: i.key_field.map_or(KeySource::KafkaKey, KeySource::Field),
        time_field: i.time_field,
        time_format: i.time_format,
        features: i.features,
        passthrough,
        max_ahead_ms: None,
        partition_fields: Vec::new(),
    };
    (spec, i.schema_registry)
}

impl PassEntry {
    fn path(&self) -> &str {
        match self {
            PassEntry::Name(n) => n,
            PassEntry::Typed { field, .. } => field,
        }
    }
}

/// A field path: names of letters, digits and `_`, separated by dots.
fn is_path(p: &str) -> bool {
    p.split('.').all(is_column_name)
}

const PATH_RULE: &str = "is not a field path (names of letters, digits and _, joined by dots)";

fn check_paths(i: &InputSection, c: &mut Collector) {
    if i.features.is_empty() {
        c.err("input.features", "must name at least one feature");
    }
    for f in &i.features {
        if !is_path(f) {
            c.err("input.features", format!("`{f}` {PATH_RULE}"));
        }
    }
    for p in &i.passthrough {
        if !is_path(p.path()) {
            c.err("input.passthrough", format!("`{}` {PATH_RULE}", p.path()));
        }
        if let PassEntry::Typed { kind, .. } = p
            && pass_type(kind).is_none()
        {
            c.err(
                "input.passthrough",
                format!(
                    "`{kind}` is not a type of `{}`: use string, int64, float64, bool or timestamp",
                    p.path()
                ),
            );
        }
        if i.features.iter().any(|f| f == p.path()) {
            c.err(
                "input.passthrough",
                format!("`{}` is also a feature", p.path()),
            );
        }
    }
    match i.key_field.as_deref() {
        Some("") => c.err(
            "input.key_field",
            "must not be empty (omit it to use the Kafka message key)",
        ),
        Some(k) if !is_path(k) => c.err("input.key_field", format!("`{k}` {PATH_RULE}")),
        _ => {}
    }
    if i.time_field != KAFKA_TIMESTAMP && !is_path(&i.time_field) {
        c.err(
            "input.time_field",
            format!("`{}` {PATH_RULE}, or `{KAFKA_TIMESTAMP}`", i.time_field),
        );
    }
}

/// Every feature and pass-through field gets its own column: two paths that map to one
/// column name (`a.b` and `a_b`), or a path that maps to a column normlake writes, are errors.
fn check_columns(i: &InputSection, c: &mut Collector) {
    let mut owner: HashMap<String, &str> = RESERVED_COLUMNS
        .iter()
        .map(|r| (r.to_string(), "a column normlake writes"))
        .collect();
    let fields = i
        .features
        .iter()
        .map(|f| ("input.features", f.as_str()))
        .chain(
            i.passthrough
                .iter()
                .map(|p| ("input.passthrough", p.path())),
        );
    for (at, path) in fields {
        let column = column_name(path);
        match owner.get(column.as_str()) {
            Some(other) if *other == path => c.err(at, format!("`{path}` is listed twice")),
            Some(other) => c.err(
                at,
                format!(
                    "`{path}` is written to column `{column}`, as is {}",
                    quoted(other)
                ),
            ),
            None => {
                owner.insert(column, path);
            }
        }
    }
}

fn quoted(owner: &str) -> String {
    if owner.contains(' ') {
        owner.to_string()
    } else {
        format!("`{owner}`")
    }
}

fn check_registry(i: &InputSection, c: &mut Collector) {
    match (&i.format, &i.schema_registry) {
        (InputFormat::AvroConfluent, None) => c.err(
            "input.schema_registry",
            "is required with format = \"avro_confluent\" (url = \"http://registry:8081\")",
        ),
        (InputFormat::Json, Some(_)) => c.err(
            "input.schema_registry",
            "is only used with format = \"avro_confluent\"",
        ),
        (_, Some(r)) => check_registry_section(r, c),
        _ => {}
    }
}

fn check_registry_section(r: &RegistrySection, c: &mut Collector) {
    let urls = r.url.list();
    if urls.is_empty() {
        c.err("input.schema_registry.url", "must name at least one URL");
    }
    for u in &urls {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            c.err(
                "input.schema_registry.url",
                format!("`{u}` must start with http:// or https://"),
            );
        }
    }
    if r.password.is_some() != r.username.is_some() {
        c.err(
            "input.schema_registry",
            "username and password go together (basic authentication)",
        );
    }
    if let Some(ca) = &r.ca_certificate
        && !ca.is_file()
    {
        c.err(
            "input.schema_registry.ca_certificate",
            format!("{} is not a readable file", ca.display()),
        );
    }
    if r.timeout.0.is_zero() {
        c.err("input.schema_registry.timeout", "must be longer than zero");
    }
}
