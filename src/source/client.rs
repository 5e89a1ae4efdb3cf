//! How to reach a Kafka cluster: its brokers and the user's librdkafka properties. Every
//! client normlake makes (the consumer, the dead-letter producer, the generator) starts from a
//! `KafkaClient`, so security settings apply to all of them and secrets stay `Sensitive`.

use std::collections::BTreeMap;

use rdkafka::config::ClientConfig;

use crate::secret::{Sensitive, printable};

#[derive(Debug, Clone, Default)]
pub struct KafkaClient {
    /// Comma-separated bootstrap servers.
    pub brokers: String,
    /// Passed to librdkafka as they are, after normlake's own settings.
    pub properties: BTreeMap<String, Sensitive<String>>,
}

impl KafkaClient {
    /// A client of `brokers` with no properties of the user's.
    pub fn of(brokers: &str) -> KafkaClient {
        KafkaClient {
            brokers: brokers.to_string(),
            properties: BTreeMap::new(),
        }
    }

    /// librdkafka's configuration: the brokers and normlake's `settings` for this client,
    /// then the user's properties over them.
    pub fn config(&self, settings: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in settings {
            c.set(*k, *v);
        }
        for (k, v) in &self.properties {
            c.set(k, v.expose());
        }
        c
    }

    /// The properties for printing, secrets redacted.
    pub fn printable_properties(&self) -> BTreeMap<&str, String> {
        self.properties
            .iter()
            .map(|(k, v)| (k.as_str(), printable(k, v)))
            .collect()
    }

    /// The same cluster for a producer: the properties without the consumer's and the
    /// group's settings, which a producer rejects or ignores.
    pub fn for_producer(&self) -> KafkaClient {
        let consumer_only = [
            "session.",
            "heartbeat.",
            "fetch.",
            "group.",
            "max.poll.",
            "auto.",
            "partition.assignment",
            "queued.",
            "isolation.",
        ];
        KafkaClient {
            brokers: self.brokers.clone(),
            properties: self
                .properties
                .iter()
                .filter(|(name, _)| !consumer_only.iter().any(|p| name.starts_with(p)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> KafkaClient {
        let mut c = KafkaClient::of("b:9092");
        for (k, v) in [
            ("sasl.password", "hunter2"),
            ("session.timeout.ms", "10000"),
            ("security.protocol", "SASL_SSL"),
        ] {
            c.properties.insert(k.into(), Sensitive::new(v.into()));
        }
        c
    }

    #[test]
    fn the_users_properties_apply_over_normlakes_and_secrets_never_print() {
        let c = client().config(&[("security.protocol", "PLAINTEXT"), ("acks", "all")]);
        assert_eq!(c.get("bootstrap.servers"), Some("b:9092"));
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("acks"), Some("all"));
        let c = client();
        let shown = c.printable_properties();
        assert_eq!(shown["sasl.password"], "<redacted>");
        assert_eq!(shown["security.protocol"], "SASL_SSL");
        assert!(!format!("{:?}", client()).contains("hunter2"));
    }

    #[test]
    fn a_producer_keeps_the_cluster_settings_but_not_the_consumers() {
        let p = client().for_producer();
        assert!(p.properties.contains_key("sasl.password"));
        assert!(p.properties.contains_key("security.protocol"));
        assert!(!p.properties.contains_key("session.timeout.ms"));
    }
}
