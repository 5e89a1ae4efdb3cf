//! A real Kafka-compatible broker per test: tansu 0.6.0 with its SQLite engine, on a free
//! loopback port, in a temporary directory, stopped (by process id) when dropped.
//! `scripts/test` installs tansu; a missing binary fails the test, it never skips it.
//!
//! The free functions are the tests' Kafka clients, by bootstrap address, so they serve
//! librdkafka's mock cluster too: produce, end offsets, a group's committed offsets, reading a
//! whole topic, deleting a topic.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    engine: &'static str,
}

fn tansu() -> PathBuf {
    if let Some(p) = std::env::var_os("NORMLAKE_TANSU") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidate = home.join(".cargo/bin/tansu");
    if candidate.exists() {
        candidate
    } else {
        PathBuf::from("tansu")
    }
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Broker {
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        let mut b = Broker {
            child: None,
            port: free_port(),
            dir,
            // A relative path: tansu mangles absolute ones.
            engine: "sqlite://data/broker.db",
        };
        b.spawn();
        b
    }

    /// tansu's in-memory engine: fast, but in 0.6.0 a fetch from the middle of a record batch
    /// skips to the next batch and its high watermarks are too low. Only for throughput
    /// benchmarks that read a topic from the beginning with a fresh group.
    pub fn start_memory() -> Broker {
        let mut b = Broker {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            engine: "memory://tansu/",
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))
            .expect("broker log");
        let child = Command::new(tansu())
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", self.engine])
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start tansu ({}): {e}; run scripts/test, which installs it",
                    tansu().display()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop and start again on the same port with the same (durable) data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .create()
            .expect("admin client");
        let res = admin
            .create_topics(
                &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .expect("create topics");
        for r in res {
            r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One record to produce: to a partition, with an optional key, value and Kafka timestamp.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
}

impl Record {
    pub fn value(partition: i32, value: impl Into<Vec<u8>>) -> Record {
        Record {
            partition,
            value: Some(value.into()),
            ..Record::default()
        }
    }

    pub fn keyed(partition: i32, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Record {
        Record {
            key: Some(key.into()),
            ..Record::value(partition, value)
        }
    }
}

/// A record as read back: key, value and headers (values as lossy UTF-8).
#[derive(Clone, Debug, PartialEq)]
pub struct Read {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Produce `records` in order (one in flight, acks=all) and return each one's
/// (partition, offset).
pub async fn produce(brokers: &str, topic: &str, records: &[Record]) -> Vec<(i32, i64)> {
    produce_with(brokers, topic, records, &[]).await
}

/// `produce` with extra producer properties.
pub async fn produce_with(
    brokers: &str,
    topic: &str,
    records: &[Record],
    props: &[(&str, &str)],
) -> Vec<(i32, i64)> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "1")
        .set("linger.ms", "5");
    for (k, v) in props {
        config.set(*k, *v);
    }
    let producer: FutureProducer = config.create().expect("producer");
    let mut pending = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(r.partition);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        if let Some(t) = r.timestamp {
            rec = rec.timestamp(t);
        }
        let fut = producer
            .send_result(rec)
            .unwrap_or_else(|(e, _)| panic!("enqueue record {i} to {topic}: {e}"));
        pending.push(fut);
    }
    producer.flush(TIMEOUT).expect("flush");
    let mut out = Vec::with_capacity(pending.len());
    for (i, fut) in pending.into_iter().enumerate() {
        let d = fut
            .await
            .expect("delivery report")
            .unwrap_or_else(|(e, _)| panic!("deliver record {i} to {topic}: {e}"));
        out.push((d.partition, d.offset));
    }
    out
}

fn consumer(brokers: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// Each partition's high watermark (the offset the next record will get), by partition.
pub fn end_offsets(brokers: &str, topic: &str, partitions: i32) -> Vec<(i32, i64)> {
    let c = consumer(brokers, "normlake-test-reader");
    (0..partitions)
        .map(|p| {
            let (_, hi) = c
                .fetch_watermarks(topic, p, TIMEOUT)
                .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"));
            (p, hi)
        })
        .collect()
}

/// The offsets `group` has committed for partitions `0..partitions` of `topic`; `None` where
/// it has committed none.
pub fn committed_offsets(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<Option<i64>> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer(brokers, group)
        .committed_offsets(tpl, TIMEOUT)
        .expect("committed offsets");
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// Every record of `topic` (partitions `0..partitions`, from the beginning up to the end
/// offsets at the call), by (partition, offset).
pub fn read_all(brokers: &str, topic: &str, partitions: i32) -> BTreeMap<(i32, i64), Read> {
    let ends: BTreeMap<i32, i64> = end_offsets(brokers, topic, partitions)
        .into_iter()
        .collect();
    let c = consumer(brokers, "normlake-test-reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("offset");
    }
    c.assign(&tpl).expect("assign");
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |out: &BTreeMap<(i32, i64), Read>| {
        ends.iter()
            .all(|(p, end)| *end == 0 || out.contains_key(&(*p, end - 1)))
    };
    while !done(&out) {
        assert!(Instant::now() < deadline, "could not read all of {topic}");
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("message");
        out.insert((m.partition(), m.offset()), read(&m));
    }
    out
}

fn read(m: &rdkafka::message::BorrowedMessage<'_>) -> Read {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                    (h.key.to_string(), value.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    Read {
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().unwrap_or_default().to_vec(),
        headers,
    }
}

/// Delete `topic` and wait for the broker to confirm it.
pub async fn delete_topic(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let res = admin
        .delete_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("delete topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("delete topic {t}: {e}"));
    }
}
