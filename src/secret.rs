//! Secrets: a value that must never reach a log line, and the Kafka property names that hold
//! one. A leaf, so every module that carries a secret (configuration, the lake's S3 options,
//! Kafka clients) can use it without knowing the others.

use std::fmt;

use serde::Deserialize;

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
pub fn is_secret_property(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("password")
        || n.contains("secret")
        || n.ends_with(".key.pem")
        || n.contains("sasl.oauthbearer.config")
}

/// A property's value as it may be printed: `<redacted>` for a secret.
pub fn printable(name: &str, value: &Sensitive<String>) -> String {
    if is_secret_property(name) {
        "<redacted>".to_string()
    } else {
        value.expose().clone()
    }
}
