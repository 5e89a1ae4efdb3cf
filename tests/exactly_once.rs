//! Exactly-once into the lake under faults. The job runs as a separate process. Each test
//! compares the lake it leaves with the lake of a fault-free bounded run of the same input:
//! the same (partition, offset) rows, none twice, bit-identical values, centers, scales,
//! counts and statuses, and the same dead letters.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::broker::{self, Broker};
use common::job::{self, Job};

/// A small deterministic generator for kill moments; the seed is printed for reproduction.
struct Lcg(u64);

impl Lcg {
    fn from_clock() -> Lcg {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        eprintln!("kill schedule seed: {seed}");
        Lcg(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Sum of the newest commit sequence numbers of a lake's partitions.
fn commits_so_far(root: &Path, topic: &str, partitions: i32) -> u64 {
    let layout = normlake::lake::Layout::new(root.to_str().expect("utf-8"), "t");
    (0..partitions)
        .filter_map(|p| {
            normlake::lake::commit::latest(&layout, topic, p)
                .ok()
                .flatten()
        })
        .map(|(_, r)| r.seq)
        .sum()
}

fn no_temp_files(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                assert!(
                    !(name.starts_with(".part-") && name.ends_with(".tmp")),
                    "uncommitted file left: {}",
                    e.path().display()
                );
            }
        }
    }
}

struct Setup {
    broker: Broker,
    dir: tempfile::TempDir,
    topic: String,
}

impl Setup {
    async fn new(topic: &str, partitions: i32, events: u64) -> Setup {
        let broker = Broker::start();
        broker.create_topic(topic, partitions).await;
        let addr = broker.addr();
        let t = topic.to_string();
        tokio::task::spawn_blocking(move || job::produce(&addr, &t, events))
            .await
            .expect("produce");
        Setup {
            broker,
            dir: tempfile::tempdir().expect("tmp"),
            topic: topic.into(),
        }
    }

    fn lake(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// A job of `workers` processor threads (the baseline has one).
    fn config_with(&self, name: &str, group: &str, workers: usize) -> std::path::PathBuf {
        let text = job::config(
            &self.broker.addr(),
            &self.topic,
            group,
            &self.lake(name),
            "",
        ) + &format!("\n[runtime]\nworkers = {workers}\n");
        job::write_config(self.dir.path(), &format!("{name}-{group}.toml"), &text)
    }

    fn config(&self, name: &str, group: &str) -> std::path::PathBuf {
        self.config_with(name, group, 1)
    }

    fn log(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// The fault-free reference: one bounded run.
    fn baseline(&self) -> (job::LakeContent, Duration) {
        let took = job::run_to_end(&self.config("baseline", "baseline"), &self.log("baseline"));
        (job::content(&self.lake("baseline")), took)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_twenty_random_moments_changes_nothing() {
    kill_9_at_twenty_random_moments(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_twenty_random_moments_changes_nothing_with_two_workers() {
    kill_9_at_twenty_random_moments(2).await;
}

/// Twenty `kill -9`s of a job of `workers` threads, then a run to the end: the lake equals
/// the one-worker, fault-free baseline.
async fn kill_9_at_twenty_random_moments(workers: usize) {
    let _one_at_a_time = job::exclusive().await;
    let s = Setup::new("crash", 4, 200_000).await;
    let (want, took) = s.baseline();
    assert!(
        want.rows["z1m"].len() > 3 * 190_000,
        "the baseline holds the events"
    );
    let cfg = s.config_with("crashed", "crashed", workers);
    let mut rng = Lcg::from_clock();
    let max_ms = (took.as_millis() as u64).max(1_000);
    eprintln!(
        "fault-free run took {took:?}; kills within 300..{} ms of each start",
        300 + max_ms
    );
    let progress = || commits_so_far(&s.lake("crashed"), "crash", 4);
    let (mut kills, mut kills_after_progress, mut attempts) = (0, 0, 0);
    while kills < 20 {
        attempts += 1;
        assert!(
            attempts < 200,
            "could not kill the job 20 times while it ran"
        );
        let before = progress();
        let mut j = Job::start(&cfg, true, &s.log("crashed"));
        std::thread::sleep(Duration::from_millis(300 + rng.below(max_ms)));
        if j.wait(Duration::ZERO).is_some() {
            // It finished before the kill: start over on a fresh lake so every kill counts.
            let _ = std::fs::remove_dir_all(s.lake("crashed"));
            continue;
        }
        j.kill9();
        kills += 1;
        if progress() > before {
            kills_after_progress += 1;
        }
    }
    eprintln!(
        "killed {kills} times, {kills_after_progress} of them after the lake had committed more"
    );
    assert!(
        kills_after_progress >= 5,
        "most kills must interrupt a run that had committed state ({kills_after_progress})"
    );
    job::run_to_end(&cfg, &s.log("crashed"));
    no_temp_files(&s.lake("crashed"));
    job::assert_same(&job::content(&s.lake("crashed")), &want);
    // And a second bounded run over the same input writes nothing more.
    job::run_to_end(&cfg, &s.log("crashed"));
    job::assert_same(&job::content(&s.lake("crashed")), &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_with_a_killed_member_and_a_late_joiner_changes_nothing() {
    rebalance_with_a_killed_member_and_a_late_joiner(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_with_a_killed_member_and_a_late_joiner_changes_nothing_with_two_workers() {
    rebalance_with_a_killed_member_and_a_late_joiner(2).await;
}

/// Three members of `workers` threads each; one is killed, one joins late; the lake equals
/// the one-worker baseline.
async fn rebalance_with_a_killed_member_and_a_late_joiner(workers: usize) {
    let _one_at_a_time = job::exclusive().await;
    let s = Setup::new("rebalance", 6, 60_000).await;
    let (want, _) = s.baseline();
    let cfg = s.config_with("group", "members", workers);
    let mut members: Vec<Job> = (0..3)
        .map(|_| Job::start(&cfg, false, &s.log("group")))
        .collect();
    std::thread::sleep(Duration::from_millis(2_500));
    members[0].kill9();
    // tansu 0.6.0 does not start a rebalance when a member's session expires; it drops the
    // expired member at the next join (a Kafka broker rebalances on expiry). So the late
    // joiner comes after the dead member's session timeout (10 s): its join moves the dead
    // member's partitions to the live members, which recover them from the lake.
    std::thread::sleep(Duration::from_secs(12));
    members.push(Job::start(&cfg, false, &s.log("group")));
    let ends = broker::end_offsets(&s.broker.addr(), &s.topic, 6);
    let waited = std::panic::catch_unwind(|| {
        job::wait_committed(&s.lake("group"), &s.topic, &ends, Duration::from_secs(240))
    });
    if let Err(e) = waited {
        keep_members_log(&s.log("group"));
        std::panic::resume_unwind(e);
    }
    for m in members.iter_mut().skip(1) {
        m.terminate();
    }
    for m in members.iter_mut().skip(1) {
        let stopped = m.wait(Duration::from_secs(60));
        if stopped != Some(true) {
            keep_members_log(&s.log("group"));
        }
        assert_eq!(
            stopped,
            Some(true),
            "a member did not stop cleanly on SIGTERM"
        );
    }
    // Long-running members keep events the watermark has not passed in their checkpoints; a
    // bounded run emits them, as the baseline did at its end.
    job::run_to_end(&cfg, &s.log("group"));
    no_temp_files(&s.lake("group"));
    job::assert_same(&job::content(&s.lake("group")), &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_run_changes_nothing() {
    let _one_at_a_time = job::exclusive().await;
    let mut s = Setup::new("restart", 4, 100_000).await;
    let (want, took) = s.baseline();
    let cfg = s.config("restarted", "restarted");
    let mut j = Job::start(&cfg, true, &s.log("restarted"));
    std::thread::sleep((took / 3).max(Duration::from_millis(300)));
    s.broker.stop();
    std::thread::sleep(Duration::from_secs(2));
    s.broker.restart();
    let ok = j
        .wait(Duration::from_secs(300))
        .expect("the job did not finish after the broker came back");
    assert!(
        ok,
        "the job must ride out a broker restart; see {}",
        s.log("restarted").display()
    );
    job::assert_same(&job::content(&s.lake("restarted")), &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_that_cannot_be_written_for_a_while_loses_and_duplicates_nothing() {
    let _one_at_a_time = job::exclusive().await;
    let s = Setup::new("unwritable", 4, 60_000).await;
    let (want, _) = s.baseline();
    let lake = s.lake("flaky");
    // A regular file where the day's partition directory must go: every write fails.
    let (_, _, day) =
        normlake::lake::partition::Partitioning::default().time_bucket(1_795_000_000_000);
    let day_dir = lake.join("t").join(day.split('/').next().expect("dt="));
    std::fs::create_dir_all(lake.join("t")).expect("mkdir");
    std::fs::write(&day_dir, b"in the way").expect("block");
    let cfg = s.config("flaky", "flaky");
    let mut j = Job::start(&cfg, false, &s.log("flaky"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        j.wait(Duration::ZERO),
        None,
        "the job must keep running through write failures"
    );
    assert!(
        normlake::lake::list_parquet(&lake.join("t"))
            .expect("list")
            .is_empty()
    );
    let log = std::fs::read_to_string(s.log("flaky")).expect("log");
    assert!(
        log.contains("writing to the lake failed"),
        "the failure is reported"
    );
    std::fs::remove_file(&day_dir).expect("unblock");
    let ends = broker::end_offsets(&s.broker.addr(), &s.topic, 4);
    let t0 = Instant::now();
    job::wait_committed(&lake, &s.topic, &ends, Duration::from_secs(240));
    eprintln!("recovered and caught up in {:?}", t0.elapsed());
    j.terminate();
    assert_eq!(j.wait(Duration::from_secs(60)), Some(true));
    job::run_to_end(&cfg, &s.log("flaky"));
    let _ = std::fs::copy(s.log("flaky"), "/tmp/flaky.log");
    no_temp_files(&lake);
    job::assert_same(&job::content(&lake), &want);
}

/// Keep the members' shared log of a failed rebalance run (the test's directory goes away) and
/// print its newest lines.
fn keep_members_log(path: &std::path::Path) {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let keep = std::env::temp_dir().join("normlake-rebalance-failure.log");
    let _ = std::fs::write(&keep, &log);
    eprintln!("full log kept at {}", keep.display());
    let tail: Vec<&str> = log.lines().rev().take(80).collect();
    eprintln!("--- members' log, newest first ---\n{}", tail.join("\n"));
}
