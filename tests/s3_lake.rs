//! The lake on a real S3-compatible server (s3s-fs on loopback), through `object_store`'s S3
//! client: the golden end-to-end test, the commit protocol's roll-forward without renames,
//! large (multipart) uploads, and kill -9 in the middle of runs (with credentials from the
//! standard AWS environment variables).

mod common;

use std::path::Path;
use std::time::Duration;

use common::broker::Broker;
use common::job::{self, Job};
use common::s3::S3Server;
use common::{golden, golden_config, golden_mismatch, produce_golden};
use normlake::config::Config;
use normlake::lake::Layout;
use normlake::lake::commit::{self, FileMove};
use normlake::pipeline::{self, RunOptions};

/// No object of the table or its dead letters is still under a temporary name.
fn assert_no_temporary_objects(keys: &[String]) {
    let tmp: Vec<&String> = keys
        .iter()
        .filter(|k| k.ends_with(".tmp") && !k.contains("/_normlake/"))
        .collect();
    assert!(tmp.is_empty(), "temporary objects left: {tmp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_golden_case_matches_with_the_lake_on_s3() {
    let s3 = S3Server::start(&["lake"]);
    let broker = Broker::start();
    let topic = "golden";
    broker.create_topic(topic, 2).await;
    produce_golden(&broker.addr(), topic).await;
    let mut failures = Vec::new();
    for case in golden::cases() {
        let root = format!("s3://lake/warehouse/{}", case.name);
        let text = format!(
            "{}{}",
            golden_config(
                &broker.addr(),
                topic,
                &format!("g-{}", case.name),
                Path::new(&root),
                &case
            ),
            s3.config_section()
        );
        let cfg = Config::from_toml(&text, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        let summary = pipeline::run(
            cfg,
            RunOptions {
                until_end: true,
                progress_every: Duration::from_secs(60),
                ..RunOptions::default()
            },
            std::future::pending(),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: run failed: {e}\n{}", case.name, s3.log()));
        assert_eq!(summary.consumed, 1608, "{}", case.name);
        let local = tempfile::tempdir().expect("download dir");
        let keys = s3.download(&root, &["golden", "_dead_letter/golden"], local.path());
        assert_no_temporary_objects(&keys);
        assert!(
            keys.iter().any(|k| k.starts_with("golden/_normlake/log/")),
            "{}: the commit log is in the bucket",
            case.name
        );
        failures.extend(golden_mismatch(local.path(), &case));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // Nothing is left in the spool once every file is uploaded.
    let spooled = normlake::lake::list_parquet(s3.spool.path()).expect("list spool");
    assert!(spooled.is_empty(), "{spooled:?}");
}

#[test]
fn the_commit_protocol_over_s3_publishes_rolls_forward_and_drops_uncommitted_work() {
    let s3 = S3Server::start(&["lake"]);
    let layout = Layout::with_store(s3.store("s3://lake/p"), "t");
    let store = layout.store();
    let dir = "t/dt=2026-11-26/hr=02";
    let stage = |name: &str, body: &[u8]| {
        let tmp = format!("{dir}/.{name}.tmp");
        store.put(&tmp, body.to_vec()).expect("stage");
        FileMove {
            tmp,
            dest: format!("{dir}/{name}.parquet"),
        }
    };
    let first = stage("part-s-0-0-9", b"rows 0-9");
    let draft = commit::CommitRecord {
        files: vec![first.clone()],
        rows: 10,
        committed_at_ms: 1,
        watermark_ms: Some(7),
        ..commit::CommitRecord::new("s", 0, 1, 10)
    };
    let rec = commit::commit(
        &layout,
        draft,
        commit::StateWrite::Whole { previous: None },
        &mut |w: &mut dyn std::io::Write| w.write_all(b"state-1"),
    )
    .expect("commit");
    assert_eq!(
        store.get(&first.dest).expect("get"),
        Some(b"rows 0-9".to_vec())
    );
    assert!(!store.exists(&first.tmp).expect("head"), "staging removed");
    assert_eq!(
        layout.table_files().expect("list"),
        vec!["dt=2026-11-26/hr=02/part-s-0-0-9.parquet"]
    );

    // A crash after the commit record and before the copy: the staged object is there, the
    // final one is not. Recovery copies it; staged work that no record names is deleted.
    let second = stage("part-s-0-10-19", b"rows 10-19");
    let ckpt_key = "t/_normlake/state/s-0/00000000000000000002.ckpt";
    store.put(ckpt_key, b"state-2".to_vec()).expect("ckpt");
    let rec2 = commit::CommitRecord {
        seq: 2,
        next_offset: 20,
        files: vec![second.clone()],
        checkpoint: commit::StateChain {
            whole: ckpt_key.into(),
            deltas: Vec::new(),
        },
        ..rec
    };
    store
        .put(
            "t/_normlake/log/s-0/00000000000000000002.json",
            serde_json::to_vec(&rec2).expect("json"),
        )
        .expect("record");
    let orphan = stage("part-s-0-20", b"uncommitted");
    let other = stage("part-s-1-0", b"another partition");
    let got = commit::recover(&layout, "s", 0)
        .expect("recover")
        .expect("a record");
    assert_eq!(got.record, rec2);
    assert_eq!(got.checkpoint, b"state-2");
    assert_eq!(
        store.get(&second.dest).expect("get"),
        Some(b"rows 10-19".to_vec()),
        "rolled forward"
    );
    assert!(!store.exists(&second.tmp).expect("head"));
    assert!(
        !store.exists(&orphan.tmp).expect("head"),
        "uncommitted work removed"
    );
    assert!(
        store.exists(&other.tmp).expect("head"),
        "other partitions untouched"
    );
    // Recovery is idempotent: again, nothing changes.
    commit::recover(&layout, "s", 0).expect("recover again");
    assert_eq!(layout.table_files().expect("list").len(), 2);
    assert_eq!(commit::lake_watermark(&layout).expect("watermark"), Some(7));
    layout.probe_writable().expect("probe");
}

#[test]
fn a_large_file_is_uploaded_in_parts_and_arrives_whole() {
    let s3 = S3Server::start(&["lake"]);
    let store = s3.store("s3://lake");
    let key = "t/dt=x/.part-s-0-0.tmp";
    let path = store.work_path(key);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    // 40 MiB of varied bytes: three parts of 16 MiB.
    let body: Vec<u8> = (0..40u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &body).expect("write");
    let f = std::fs::File::open(&path).expect("open");
    store.upload(f, key).expect("upload");
    assert!(!path.exists(), "the spool copy is removed after the upload");
    store
        .publish(key, "t/dt=x/part-s-0-0-9.parquet")
        .expect("publish");
    let got = store
        .get("t/dt=x/part-s-0-0-9.parquet")
        .expect("get")
        .expect("there");
    assert_eq!(got.len(), body.len());
    assert!(got == body, "the object differs from the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_runs_on_s3_loses_and_duplicates_nothing() {
    let _one_at_a_time = job::exclusive().await;
    let s3 = S3Server::start(&["lake"]);
    let broker = Broker::start();
    let topic = "s3crash";
    broker.create_topic(topic, 2).await;
    let addr = broker.addr();
    tokio::task::spawn_blocking(move || job::produce(&addr, "s3crash", 100_000))
        .await
        .expect("produce");
    let dir = tempfile::tempdir().expect("tmp");
    // The reference: one fault-free bounded run into a local lake.
    let local = dir.path().join("baseline");
    let base_cfg = job::write_config(
        dir.path(),
        "baseline.toml",
        &job::config(&broker.addr(), topic, "baseline", &local, ""),
    );
    let took = job::run_to_end(&base_cfg, &dir.path().join("baseline.log"));
    let want = job::content(&local);

    // Each round is a fresh lake (prefix); a round ends when a run reaches the end before
    // its kill, and the test goes on in a new round so that every kill counts.
    let s3_config = |round: u32| {
        let root = format!("s3://lake/crashed-{round}");
        let cfg = job::write_config(
            dir.path(),
            &format!("s3-{round}.toml"),
            &format!(
                "{}{}",
                job::config(&broker.addr(), topic, "s3", Path::new(&root), ""),
                // Credentials from the environment, as users run it.
                s3.config_section_without_keys()
            ),
        );
        (root, cfg)
    };
    let log = dir.path().join("s3.log");
    let progress = |root: &str| {
        let layout = Layout::with_store(s3.store(root), "t");
        (0..2)
            .filter_map(|p| commit::latest(&layout, topic, p).ok().flatten())
            .map(|(_, r)| r.seq)
            .sum::<u64>()
    };
    let (mut round, mut kills) = (0, 0);
    let (mut root, mut cfg) = s3_config(round);
    eprintln!("fault-free run took {took:?}");
    // Every kill lands after the run has committed more to S3 (so it interrupts real work),
    // at a varying moment after that.
    for i in 0..60u64 {
        if kills == 8 {
            break;
        }
        let before = progress(&root);
        let mut j = Job::start_env(&cfg, true, &log, &s3.env());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut finished = false;
        while progress(&root) == before {
            if j.wait(Duration::ZERO).is_some() {
                finished = true;
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the job committed nothing to S3 for a minute:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis((i * 7_919) % 400));
        if finished || j.wait(Duration::ZERO).is_some() {
            // It reached the end: go on with a fresh lake so that every kill counts.
            round += 1;
            (root, cfg) = s3_config(round);
            continue;
        }
        j.kill9();
        kills += 1;
    }
    eprintln!("killed {kills} times in {} rounds", round + 1);
    assert_eq!(kills, 8, "the job must be killed mid-run eight times");
    let started = std::time::Instant::now();
    let mut last = Job::start_env(&cfg, true, &log, &s3.env());
    assert_eq!(
        last.wait(Duration::from_secs(300)),
        Some(true),
        "the last run must finish:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    eprintln!("the last run took {:?}", started.elapsed());
    let got_dir = tempfile::tempdir().expect("download dir");
    let keys = s3.download(&root, &["t", "_dead_letter/t"], got_dir.path());
    assert_no_temporary_objects(&keys);
    job::assert_same(&job::content(got_dir.path()), &want);
}
