//! What operators put in a configuration file besides plain values: `${VAR}` references to
//! the environment inside strings, and secrets read from files (`<secret>_file`), as
//! Kubernetes and Docker mount them.
//!
//! Interpolation works on the parsed TOML's string values, not on the raw text, so a value
//! can never change the file's structure. Error messages name the variable or the file,
//! never the value, because the value may be a secret.

use std::collections::HashMap;

use super::Collector;
use crate::secret::is_secret_property;

/// Replace `${VAR}`, `${VAR:-default}` (default when unset or empty) and `${VAR-default}`
/// (default when unset) in every string of `table`; `$$` is a literal `$`. A variable that is
/// unset and has no default is an error at the field's path.
pub(super) fn interpolate_table(
    table: &mut toml::Table,
    env: &HashMap<String, String>,
    c: &mut Collector,
) {
    for (k, v) in table.iter_mut() {
        interpolate_value(v, k, env, c);
    }
}

fn interpolate_value(
    v: &mut toml::Value,
    path: &str,
    env: &HashMap<String, String>,
    c: &mut Collector,
) {
    match v {
        toml::Value::String(s) if s.contains('$') => match interpolate(s, env) {
            Ok(new) => *s = new,
            Err(message) => c.err(path, message),
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{path}[{i}]"), env, c);
            }
        }
        toml::Value::Table(t) => {
            for (k, item) in t.iter_mut() {
                interpolate_value(item, &format!("{path}.{k}"), env, c);
            }
        }
        _ => {}
    }
}

/// One string with its references replaced.
pub fn interpolate(s: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r
                .find('}')
                .ok_or_else(|| "has `${` without a closing `}`".to_string())?;
            out.push_str(&reference(&r[..end], env)?);
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one `${…}` body: `NAME`, `NAME:-default` or `NAME-default`.
fn reference(body: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let (name, default, empty_is_unset) = match body.split_once(":-") {
        Some((n, d)) => (n, Some(d), true),
        None => match body.split_once('-') {
            Some((n, d)) => (n, Some(d), false),
            None => (body, None, false),
        },
    };
    let valid = !name.is_empty()
        && !name.starts_with(|ch: char| ch.is_ascii_digit())
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if !valid {
        return Err(format!(
            "`${{{body}}}` does not name an environment variable"
        ));
    }
    match (env.get(name), default) {
        (Some(v), Some(d)) if v.is_empty() && empty_is_unset => Ok(d.to_string()),
        (Some(v), _) => Ok(v.clone()),
        (None, Some(d)) => Ok(d.to_string()),
        (None, None) => Err(format!(
            "refers to the environment variable {name}, which is not set (write ${{{name}:-default}} for a default)"
        )),
    }
}

/// Replace every `<name>_file = "PATH"` whose `<name>` is a secret (a password, a secret key)
/// with `<name> = "<the file's contents>"`, without a trailing newline.
pub(super) fn read_secret_files(table: &mut toml::Table, path: &str, c: &mut Collector) {
    let files: Vec<(String, String)> = table
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_suffix("_file")?;
            (is_secret_property(name) && v.is_str()).then(|| (k.clone(), name.to_string()))
        })
        .collect();
    for (key, name) in files {
        let field = join(path, &name);
        let Some(toml::Value::String(file)) = table.remove(&key) else {
            continue;
        };
        if table.contains_key(&name) {
            c.err(
                join(path, &key),
                format!("give either `{name}` or `{key}`, not both"),
            );
            continue;
        }
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let secret = text.strip_suffix('\n').unwrap_or(&text);
                let secret = secret.strip_suffix('\r').unwrap_or(secret);
                table.insert(name, toml::Value::String(secret.to_string()));
            }
            Err(e) => c.err(
                join(path, &key),
                format!("cannot read the secret file {file} for `{field}`: {e}"),
            ),
        }
    }
    for (k, v) in table.iter_mut() {
        if let toml::Value::Table(t) = v {
            read_secret_files(t, &join(path, k), c);
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The Kafka property an environment variable's last segment names: bash variable names
/// cannot hold dots, so `SASL_PASSWORD` is `sasl.password` (librdkafka's property names have
/// no underscores) and `SASL_PASSWORD_FILE` is `sasl.password_file`.
pub(super) fn property_from_env(segment: &str) -> String {
    let lower = segment.to_ascii_lowercase();
    match lower.strip_suffix("_file") {
        Some(base) => format!("{}_file", base.replace('_', ".")),
        None => lower.replace('_', "."),
    }
}
