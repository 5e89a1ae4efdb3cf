//! Running the `normlake` binary as a separate process (so it can be killed), producing a
//! deterministic synthetic load, and comparing whole lakes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use super::golden::{DeadLetters, Rows};
use super::lake;

pub const FEATURES: [&str; 3] = ["temp", "hum", "pres"];
pub const NORMS: [&str; 2] = ["z1m", "bn"];

/// A job configuration with a sliding and an expanding normalization, rolling often.
pub fn config(brokers: &str, topic: &str, group: &str, root: &Path, extra_kafka: &str) -> String {
    format!(
        r#"
[kafka]
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
[kafka.properties]
"session.timeout.ms" = "10000"
"heartbeat.interval.ms" = "1000"
{extra_kafka}

[input]
key_field = "sensor_id"
features = ["temp", "hum", "pres"]
passthrough = ["site"]

[[normalize]]
name = "z1m"
method = "zscore"
window = "sliding_time"
size = "60s"

[[normalize]]
name = "bn"
method = "zscore"
window = "expanding"
eps = 1e-5

[lake]
root = "{}"
table = "t"

[lake.rolling]
max_rows = 4000
max_age = "300ms"
"#,
        root.display()
    )
}

pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p
}

/// Produce `n` events from the crate's own generator with fixed event times (50 per second of
/// event time), some malformed and some late.
pub fn produce(brokers: &str, topic: &str, n: u64) {
    produce_keys(brokers, topic, n, 64);
}

/// `produce` over `keys` distinct keys.
pub fn produce_keys(brokers: &str, topic: &str, n: u64, keys: usize) {
    produce_from(brokers, topic, 0, n, keys);
}

/// Events `start..start + n` of the sequence (event times continue where an earlier call
/// stopped).
pub fn produce_from(brokers: &str, topic: &str, start: u64, n: u64, keys: usize) {
    produce_with(brokers, topic, start, n, keys, &[]);
}

/// `produce_from` with extra producer properties (a compression codec, say).
pub fn produce_with(
    brokers: &str,
    topic: &str,
    start: u64,
    n: u64,
    keys: usize,
    props: &[(&str, &str)],
) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "5000")
        .set("queue.buffering.max.messages", "1000000");
    for (k, v) in props {
        config.set(*k, *v);
    }
    let producer: ThreadedProducer<DefaultProducerContext> = config.create().expect("producer");
    let opts = normlake::generate::GenerateOptions {
        brokers: brokers.into(),
        topic: topic.into(),
        rate: 0,
        keys,
        features: FEATURES.iter().map(|s| s.to_string()).collect(),
        count: Some(n),
        duration: None,
        malformed: 0.002,
        late: 0.002,
        seed: 7,
        format: normlake::generate::Format::Json,
        schema_registry: String::new(),
    };
    let mut fleet = normlake::generate::Fleet::new(&opts);
    for i in start..start + n {
        let m = fleet.next(1_795_000_000_000 + i as i64 * 20);
        let mut rec = BaseRecord::to(topic).key(&m.key).payload(&m.value);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
}

/// A `normlake run` process.
pub struct Job {
    pub child: Child,
}

impl Job {
    pub fn start(config: &Path, until_end: bool, log: &Path) -> Job {
        Job::start_with(config, until_end, log, &["--metrics-listen", "off"])
    }

    /// Start with extra `run` arguments.
    pub fn start_with(config: &Path, until_end: bool, log: &Path, args: &[&str]) -> Job {
        Job::spawn(config, until_end, log, args, &[])
    }

    /// Start with extra environment variables (credentials from the environment).
    pub fn start_env(config: &Path, until_end: bool, log: &Path, env: &[(&str, &str)]) -> Job {
        Job::spawn(config, until_end, log, &["--metrics-listen", "off"], env)
    }

    fn spawn(
        config: &Path,
        until_end: bool,
        log: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Job {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_normlake"));
        cmd.args(["run", "--config"]).arg(config);
        if until_end {
            cmd.arg("--until-end");
        }
        cmd.args(args);
        cmd.envs(env.iter().copied());
        let child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start normlake");
        Job { child }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
    }

    /// Wait for exit; `Some(success)` if it exited within `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s.success());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The fault tests each run several processes; running them one at a time keeps a loaded
/// two-core machine from turning scheduling delays into group session timeouts.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Run a bounded job to completion and fail the test if it does not succeed.
pub fn run_to_end(config: &Path, log: &Path) -> Duration {
    let start = Instant::now();
    let mut job = Job::start(config, true, log);
    let ok = job
        .wait(Duration::from_secs(600))
        .expect("the bounded run did not finish");
    if !ok {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!("the bounded run failed; its log ends:\n{}", tail.join("\n"));
    }
    start.elapsed()
}

/// The whole content of a lake: every row of both normalizations, and the dead letters.
#[derive(Debug, PartialEq)]
pub struct LakeContent {
    pub rows: BTreeMap<String, Rows>,
    pub dead: DeadLetters,
}

pub fn content(root: &Path) -> LakeContent {
    let features: Vec<String> = FEATURES.iter().map(|s| s.to_string()).collect();
    let rows = NORMS
        .iter()
        .map(|n| (n.to_string(), lake::rows(&root.join("t"), &features, n)))
        .collect();
    LakeContent {
        rows,
        dead: lake::dead_letters(&root.join("_dead_letter/t")),
    }
}

/// Assert two lakes hold the same rows with bit-identical values, and the same dead letters.
pub fn assert_same(got: &LakeContent, want: &LakeContent) {
    for (norm, want_rows) in &want.rows {
        let got_rows = &got.rows[norm];
        assert_eq!(got_rows.len(), want_rows.len(), "{norm}: row count");
        let mut diffs = 0;
        for (k, w) in want_rows {
            if got_rows.get(k) != Some(w) {
                if diffs < 3 {
                    eprintln!("{norm} {k:?}: got {:?}, want {w:?}", got_rows.get(k));
                }
                diffs += 1;
            }
        }
        assert_eq!(diffs, 0, "{norm}: {diffs} rows differ");
    }
    assert_eq!(got.dead, want.dead, "dead letters differ");
}

/// Poll the lake's commit records until every partition's next offset reaches `end`.
pub fn wait_committed(root: &Path, topic: &str, ends: &[(i32, i64)], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let layout = normlake::lake::Layout::new(root.to_str().expect("utf-8"), "t");
    loop {
        let done = ends.iter().all(|(p, end)| {
            normlake::lake::commit::latest(&layout, topic, *p)
                .ok()
                .flatten()
                .is_some_and(|(_, r)| r.next_offset >= *end)
        });
        if done {
            return;
        }
        if Instant::now() >= deadline {
            let state: Vec<String> = ends
                .iter()
                .map(|(p, end)| {
                    let next = normlake::lake::commit::latest(&layout, topic, *p)
                        .ok()
                        .flatten()
                        .map(|(_, r)| r.next_offset);
                    format!("partition {p}: lake at {next:?}, end {end}")
                })
                .collect();
            panic!(
                "the lake did not reach the end offsets in time:\n{}",
                state.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every (partition, offset) the lake accounts for: in a row or in a dead letter.
pub fn accounted(content: &LakeContent) -> std::collections::BTreeSet<(i32, i64)> {
    let mut seen: std::collections::BTreeSet<(i32, i64)> = content
        .rows
        .values()
        .flat_map(|rows| rows.keys().map(|(p, o, _)| (*p, *o)))
        .collect();
    seen.extend(content.dead.keys().copied());
    seen
}

/// Every published Parquet file of the table and of its dead letters.
pub fn lake_files(root: &Path) -> Vec<PathBuf> {
    let mut files = normlake::lake::list_parquet(&root.join("t")).expect("list table");
    files.extend(normlake::lake::list_parquet(&root.join("_dead_letter/t")).expect("list dead"));
    files
}
