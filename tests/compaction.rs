//! `normlake compact` over a lake written by a real run: row counts and values stay identical,
//! open partitions are never touched, a kill -9 at any moment is finished by the next run, and
//! a second run changes nothing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::job;

/// Published files per partition directory (relative to the table), with their sizes.
fn files(root: &Path) -> BTreeMap<String, Vec<(String, u64)>> {
    let table = root.join("t");
    let mut out: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for f in normlake::lake::list_parquet(&table).expect("list") {
        let rel = f.strip_prefix(&table).expect("inside the table");
        let dir = rel.parent().expect("dir").display().to_string();
        let size = std::fs::metadata(&f).expect("stat").len();
        out.entry(dir)
            .or_default()
            .push((rel.display().to_string(), size));
    }
    out
}

/// Hidden files and compaction records anywhere in the table.
fn leftovers(root: &Path) -> Vec<String> {
    let store = normlake::lake::Store::local(root.to_str().expect("utf-8"));
    store
        .list("t")
        .expect("list")
        .into_iter()
        .filter(|k| k.contains("/.compact-") || k.contains("/_normlake/compact/"))
        .collect()
}

fn compact(cfg: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_normlake"));
    c.args(["compact", "--config"]).arg(cfg).args(args);
    c
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    for entry in walk(from) {
        let rel = entry.strip_prefix(from).expect("inside");
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&entry, &dest).expect("copy");
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_every_row_skips_open_partitions_and_survives_kill_9() {
    let _one_at_a_time = job::exclusive().await;
    let broker = Broker::start();
    broker.create_topic("cmp", 2).await;
    let addr = broker.addr();
    tokio::task::spawn_blocking(move || job::produce(&addr, "cmp", 200_000))
        .await
        .expect("produce");
    let dir = tempfile::tempdir().expect("tmp");
    let pristine = dir.path().join("pristine");
    // Minute partitions and small rolls: many small files per partition.
    let text = job::config(&broker.addr(), "cmp", "cmp", &pristine, "")
        .replace("max_rows = 4000", "max_rows = 400")
        + "\n[lake.partitioning]\ntime = \"dt=%Y-%m-%d/hr=%H/min=%M\"\n";
    let cfg = job::write_config(dir.path(), "cmp.toml", &text);
    job::run_to_end(&cfg, &dir.path().join("job.log"));
    let want = job::content(&pristine);
    let before = files(&pristine);
    // One partition is made open again: compaction must leave it alone.
    let open = before
        .iter()
        .find(|(_, f)| f.len() > 2)
        .map(|(d, _)| d.clone())
        .expect("a partition with several files");
    std::fs::remove_file(pristine.join("t").join(&open).join("_SUCCESS")).expect("unmark");
    let refused = compact(&cfg, &["--partition", &open])
        .output()
        .expect("run");
    assert!(!refused.status.success(), "an open partition is refused");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not complete"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let complete: Vec<String> = before
        .keys()
        .filter(|d| pristine.join("t").join(d).join("_SUCCESS").exists())
        .cloned()
        .collect();
    assert!(complete.len() > 20, "most partitions are complete");
    let files_before: usize = before.values().map(Vec::len).sum();
    eprintln!("{files_before} files in {} partitions", before.len());

    // The lake the kills happen in is a copy of the pristine one; the config names the copy.
    let lake = dir.path().join("lake");
    let kcfg = job::write_config(
        dir.path(),
        "kill.toml",
        &text.replace(&pristine.display().to_string(), &lake.display().to_string()),
    );
    copy_dir(&pristine, &lake);
    let started = Instant::now();
    let out = compact(&kcfg, &["--target-size", "1MiB"])
        .output()
        .expect("compact");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "an uninterrupted compaction took {took:?}: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    let reference = files(&lake);

    let span = took.as_millis().max(50) as u64;
    let (mut kills, mut mid_way) = (0, 0);
    copy_dir(&pristine, &lake);
    for i in 0..100u64 {
        if kills == 8 {
            break;
        }
        let mut child = compact(&kcfg, &["--target-size", "1MiB"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(10 + (i * 7_919) % span));
        if child.try_wait().expect("wait").is_some() {
            // It finished before the kill: start again from the pristine lake.
            copy_dir(&pristine, &lake);
            continue;
        }
        let _ = child.kill();
        let _ = child.wait();
        kills += 1;
        let now = files(&lake);
        if now != before && now != reference {
            mid_way += 1;
        }
    }
    eprintln!("killed {kills} times, {mid_way} of them with the lake between before and after");
    assert!(
        kills == 8 && mid_way >= 3,
        "most kills must interrupt a compaction in progress ({mid_way} of {kills})"
    );
    let out = compact(&kcfg, &["--target-size", "1MiB"])
        .output()
        .expect("compact");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leftovers(&lake), Vec::<String>::new());
    job::assert_same(&job::content(&lake), &want);
    let after = files(&lake);
    assert_eq!(
        after[&open], before[&open],
        "the open partition is untouched"
    );
    let files_after: usize = after.values().map(Vec::len).sum();
    assert!(
        files_after * 3 < files_before,
        "compaction merged the small files: {files_before} → {files_after}"
    );
    for d in &complete {
        let f = &after[d];
        {
            assert!(
                f.len() <= 3,
                "{d}: small files left: {:?}",
                f.iter().map(|x| &x.0).collect::<Vec<_>>()
            );
        }
    }
    // Idempotent: a second run finds nothing to do.
    let again = compact(&kcfg, &["--target-size", "1MiB"])
        .output()
        .expect("compact");
    assert!(String::from_utf8_lossy(&again.stdout).contains("compacted 0 partitions"));
    assert_eq!(files(&lake), after);
    // And the job itself still resumes from the compacted lake: nothing new to write.
    job::run_to_end(&kcfg, &dir.path().join("job2.log"));
    job::assert_same(&job::content(&lake), &want);
}
