//! A synthetic sensor-event producer: `normlake generate` and the demo's load.
//!
//! Each key is a sensor with a slow random walk per feature; a configurable share of events
//! is malformed or arrives late (its event time behind the others by more than the usual
//! out-of-orderness). Messages are keyed by sensor id, so a key lives in one partition.
//! They are JSON, or Avro in Confluent's wire format (`--format avro`): the generator then
//! registers its schema (`<topic>-value`) in the Schema Registry first, and its malformed
//! messages are truncated Avro.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::telemetry::unix_ms;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::source::KafkaClient;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot create the Kafka producer: {0}")]
    Create(#[source] KafkaError),
    #[error("cannot deliver to topic {topic}: {source}")]
    Send { topic: String, source: KafkaError },
    #[error("cannot register the Avro schema at {url}: {reason}")]
    Register { url: String, reason: String },
    #[error("the producer thread failed: {0}")]
    Thread(String),
    #[error(
        "{failed} of {sent} events were not delivered to topic {topic} (does it exist?): {last}"
    )]
    Undelivered {
        topic: String,
        sent: u64,
        failed: u64,
        last: String,
    },
}

/// Counts delivery failures (a `send` only queues a message).
#[derive(Default)]
struct Deliveries {
    failed: std::sync::atomic::AtomicU64,
    last: std::sync::Mutex<Option<String>>,
}

impl rdkafka::ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        }
    }
}

/// What to produce.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateOptions {
    /// Bootstrap servers (the same variable as `kafka.brokers` of `run`).
    #[arg(
        long,
        env = "NORMLAKE__KAFKA__BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,
    #[arg(long, default_value = "sensors")]
    pub topic: String,
    /// Events per second (0: as fast as possible).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Number of distinct keys (sensors).
    #[arg(long, default_value_t = 100)]
    pub keys: usize,
    /// Feature names.
    #[arg(long, value_delimiter = ',', default_value = "temp,hum,pres")]
    pub features: Vec<String>,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this long (e.g. "30s").
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Share of malformed messages (0..1).
    #[arg(long, default_value_t = 0.001)]
    pub malformed: f64,
    /// Share of late events (0..1).
    #[arg(long, default_value_t = 0.001)]
    pub late: f64,
    /// Random seed (same seed, same events apart from their timestamps).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// How messages are written.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// The Schema Registry, for `--format avro` (the same variable as `run`'s).
    #[arg(
        long,
        env = "NORMLAKE__INPUT__SCHEMA_REGISTRY__URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub schema_registry: String,
}

/// The message format of `normlake generate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    /// Avro in Confluent's wire format, with the schema registered in a Schema Registry.
    Avro,
}

/// The Avro schema of the generated events: the key, the time (`timestamp-millis`), the site
/// and the features (nullable doubles).
pub fn avro_schema(features: &[String]) -> String {
    let features: Vec<String> = features
        .iter()
        .map(|f| format!(r#"{{"name":"{f}","type":["null","double"],"default":null}}"#))
        .collect();
    format!(
        r#"{{"type":"record","name":"Reading","namespace":"normlake.generate","fields":[{{"name":"sensor_id","type":"string"}},{{"name":"ts","type":{{"type":"long","logicalType":"timestamp-millis"}}}},{{"name":"site","type":"string"}},{}]}}"#,
        features.join(",")
    )
}

/// Register `schema` under `subject`; its id.
pub async fn register_schema(url: &str, subject: &str, schema: &str) -> Result<u32, GenerateError> {
    let fail = |reason: String| GenerateError::Register {
        url: url.to_string(),
        reason,
    };
    let body = serde_json::json!({ "schema": schema });
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/subjects/{subject}/versions",
            url.trim_end_matches('/')
        ))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| fail(e.to_string()))?;
    if !status.is_success() {
        return Err(fail(format!("HTTP {status}: {text}")));
    }
    #[derive(serde::Deserialize)]
    struct Registered {
        id: u32,
    }
    serde_json::from_str::<Registered>(&text)
        .map(|r| r.id)
        .map_err(|e| fail(format!("{e}: {text}")))
}

/// Writes a reading in the chosen format.
enum Encoder {
    Json,
    Avro {
        schema: apache_avro::Schema,
        id: u32,
    },
}

impl Encoder {
    fn encode(&self, r: &Reading<'_>, features: &[String]) -> Vec<u8> {
        match self {
            Encoder::Json => {
                let mut v = format!(
                    "{{\"sensor_id\":\"{}\",\"ts\":{},\"site\":\"{}\"",
                    r.key, r.ts, r.site
                );
                for (name, x) in features.iter().zip(&r.values) {
                    v.push_str(&format!(",\"{name}\":{x:.4}"));
                }
                v.push('}');
                v.into_bytes()
            }
            Encoder::Avro { schema, id } => {
                use apache_avro::types::Value;
                let mut fields = vec![
                    ("sensor_id".to_string(), Value::String(r.key.to_string())),
                    ("ts".to_string(), Value::TimestampMillis(r.ts)),
                    ("site".to_string(), Value::String(r.site.to_string())),
                ];
                for (name, x) in features.iter().zip(&r.values) {
                    let rounded = (x * 1e4).round() / 1e4;
                    fields.push((
                        name.clone(),
                        Value::Union(1, Box::new(Value::Double(rounded))),
                    ));
                }
                let mut out = vec![0];
                out.extend_from_slice(&id.to_be_bytes());
                let body = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
                    .build()
                    .and_then(|w| w.write_value_to_vec(Value::Record(fields)))
                    .unwrap_or_default();
                out.extend(body);
                out
            }
        }
    }

    /// A message that does not decode: cut JSON, or Avro cut short.
    fn malformed(&self, key: &str) -> Vec<u8> {
        match self {
            Encoder::Json => format!("{{\"sensor_id\":\"{key}\",\"ts\":").into_bytes(),
            Encoder::Avro { id, .. } => {
                let mut out = vec![0];
                out.extend_from_slice(&id.to_be_bytes());
                // A string length of 20 and then nothing.
                out.push(40);
                out
            }
        }
    }
}

/// One generated event before it is written.
struct Reading<'a> {
    key: &'a str,
    ts: i64,
    site: &'a str,
    values: Vec<f64>,
}

/// What was produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenerateSummary {
    pub sent: u64,
    pub malformed: u64,
    pub late: u64,
}

const SITES: [&str; 4] = ["eu-west-1a", "eu-west-1b", "us-east-2a", "us-east-2b"];

/// Produces the events of one sensor fleet.
pub struct Fleet {
    rng: SmallRng,
    walks: Vec<Vec<f64>>,
    features: Vec<String>,
    malformed: f64,
    late: f64,
    encoder: Encoder,
}

/// One generated message.
pub struct Message {
    pub key: String,
    pub value: Vec<u8>,
    pub malformed: bool,
    pub late: bool,
}

impl Fleet {
    pub fn new(opts: &GenerateOptions) -> Fleet {
        let mut rng = SmallRng::seed_from_u64(opts.seed);
        let keys = opts.keys.max(1);
        let walks = (0..keys)
            .map(|_| {
                (0..opts.features.len())
                    .map(|f| 10.0 * (f + 1) as f64 + rng.random_range(-5.0..5.0))
                    .collect()
            })
            .collect();
        Fleet {
            rng,
            walks,
            features: opts.features.clone(),
            malformed: opts.malformed,
            late: opts.late,
            encoder: Encoder::Json,
        }
    }

    /// Write Avro with the writer schema registered as `id` (see [`avro_schema`]).
    pub fn avro(mut self, id: u32) -> Result<Fleet, String> {
        let schema = apache_avro::Schema::parse_str(&avro_schema(&self.features))
            .map_err(|e| e.to_string())?;
        self.encoder = Encoder::Avro { schema, id };
        Ok(self)
    }

    /// The next message at event time `now_ms`.
    pub fn next(&mut self, now_ms: i64) -> Message {
        let k = self.rng.random_range(0..self.walks.len());
        let key = format!("s{k:05}");
        if self.rng.random_bool(self.malformed.clamp(0.0, 1.0)) {
            return Message {
                value: self.encoder.malformed(&key),
                key,
                malformed: true,
                late: false,
            };
        }
        let late = self.rng.random_bool(self.late.clamp(0.0, 1.0));
        let ts = if late {
            now_ms - self.rng.random_range(30_000..120_000)
        } else {
            now_ms
        };
        let site = SITES[k % SITES.len()];
        let walk = &mut self.walks[k];
        for w in walk.iter_mut() {
            *w += self.rng.random_range(-0.5..0.5);
        }
        let reading = Reading {
            key: &key,
            ts,
            site,
            values: walk.clone(),
        };
        let value = self.encoder.encode(&reading, &self.features);
        Message {
            key,
            value,
            malformed: false,
            late,
        }
    }
}

/// Produce until the count or duration is reached or `shutdown` resolves.
pub async fn generate(
    opts: GenerateOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<GenerateSummary, GenerateError> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop2.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let mut fleet = Fleet::new(&opts);
    if opts.format == Format::Avro {
        let subject = format!("{}-value", opts.topic);
        let schema = avro_schema(&opts.features);
        let id = register_schema(&opts.schema_registry, &subject, &schema).await?;
        tracing::info!(schema_id = id, subject, "registered the Avro schema");
        fleet = fleet.avro(id).map_err(|reason| GenerateError::Register {
            url: opts.schema_registry.clone(),
            reason,
        })?;
    }
    tokio::task::spawn_blocking(move || produce(&opts, fleet, &stop))
        .await
        .map_err(|e| GenerateError::Thread(e.to_string()))?
}

fn produce(
    opts: &GenerateOptions,
    mut fleet: Fleet,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<GenerateSummary, GenerateError> {
    let producer: ThreadedProducer<Deliveries> = KafkaClient::of(&opts.brokers)
        .config(&[
            ("linger.ms", "5"),
            ("queue.buffering.max.messages", "1000000"),
            ("enable.idempotence", "false"),
        ])
        .create_with_context(Deliveries::default())
        .map_err(GenerateError::Create)?;
    let mut summary = GenerateSummary::default();
    let start = Instant::now();
    let mut last_log = start;
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed)
            || opts.count.is_some_and(|c| summary.sent >= c)
            || opts.duration.is_some_and(|d| start.elapsed() >= d)
        {
            break;
        }
        if opts.rate > 0 {
            let due = Duration::from_secs_f64(summary.sent as f64 / opts.rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait.min(Duration::from_millis(50)));
                continue;
            }
        }
        let m = fleet.next(unix_ms());
        let mut record = BaseRecord::to(&opts.topic).key(&m.key).payload(&m.value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    return Err(GenerateError::Send {
                        topic: opts.topic.clone(),
                        source: e,
                    });
                }
            }
        }
        summary.sent += 1;
        summary.malformed += m.malformed as u64;
        summary.late += m.late as u64;
        if last_log.elapsed() >= Duration::from_secs(5) {
            tracing::info!(sent = summary.sent, "generating");
            last_log = Instant::now();
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(|source| GenerateError::Send {
            topic: opts.topic.clone(),
            source,
        })?;
    let ctx = producer.context();
    let failed = ctx.failed.load(std::sync::atomic::Ordering::Relaxed);
    if failed > 0 {
        return Err(GenerateError::Undelivered {
            topic: opts.topic.clone(),
            sent: summary.sent,
            failed,
            last: ctx
                .last
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default(),
        });
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, InputFormat, InputSpec, KeySource, Reject, TimeFormat};

    fn options(format: Format, late: f64) -> GenerateOptions {
        GenerateOptions {
            brokers: String::new(),
            topic: "t".into(),
            rate: 0,
            keys: 10,
            features: vec!["temp".into(), "hum".into()],
            count: None,
            duration: None,
            malformed: 0.1,
            late,
            seed: 7,
            format,
            schema_registry: String::new(),
        }
    }

    /// A decoder of the generated events in `format`.
    fn decoder(format: InputFormat, features: &[String]) -> Decoder {
        Decoder::new(InputSpec {
            format,
            key: KeySource::Field("sensor_id".into()),
            time_field: "ts".into(),
            time_format: TimeFormat::EpochMillis,
            features: features.to_vec(),
            passthrough: vec!["site".into()],
            max_ahead_ms: None,
            partition_fields: Vec::new(),
        })
    }

    #[test]
    fn generated_events_decode_and_malformed_ones_are_rejected() {
        let opts = options(Format::Json, 0.1);
        let dec = decoder(InputFormat::Json, &opts.features);
        let mut fleet = Fleet::new(&opts);
        let (mut bad, mut late) = (0, 0);
        for _ in 0..2000 {
            let m = fleet.next(1_000_000_000);
            match dec.decode(Some(m.key.as_bytes()), &m.value) {
                Ok(d) => {
                    assert!(!m.malformed);
                    assert_eq!(&*d.key, m.key);
                    late += (d.ts_ms < 1_000_000_000) as usize;
                }
                Err(r) => {
                    assert!(m.malformed);
                    assert_eq!(r, Reject::MalformedJson);
                    bad += 1;
                }
            }
        }
        assert!((100..300).contains(&bad), "{bad}");
        assert!((100..300).contains(&late), "{late}");
    }

    #[test]
    fn avro_events_decode_with_their_registered_schema() {
        let opts = options(Format::Avro, 0.0);
        let mut dec = decoder(InputFormat::AvroConfluent, &opts.features);
        let schema = avro_schema(&opts.features);
        dec.add_schema(3, crate::decode::SchemaLookup::Found(schema))
            .unwrap();
        let mut json = Fleet::new(&opts);
        let mut avro = Fleet::new(&opts).avro(3).unwrap();
        for _ in 0..500 {
            let (j, a) = (json.next(1_000_000_000), avro.next(1_000_000_000));
            match dec.decode(None, &a.value) {
                Ok(d) => {
                    assert_eq!((&*d.key, d.ts_ms), (a.key.as_str(), 1_000_000_000));
                    // The same event as the JSON one.
                    let text = String::from_utf8(j.value).unwrap();
                    let temp = match d.features[0] {
                        crate::normalize::FeatureValue::Value(x) => x,
                        _ => panic!("no temp"),
                    };
                    assert!(
                        text.contains(&format!("\"temp\":{temp:.4}")),
                        "{text} {temp}"
                    );
                }
                Err(r) => {
                    assert!(a.malformed);
                    assert_eq!(r, Reject::MalformedAvro);
                }
            }
        }
    }
}
