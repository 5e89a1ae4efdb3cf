//! `normlake demo` can be run again and again in one directory: each run replaces the lake
//! the previous one left, and the lake holds exactly that run's rows. A non-empty directory
//! the demo did not make is refused and left alone.

mod common;

use common::lake;

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_twice_in_one_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    for run in 1..=2 {
        let summary = normlake::demo::run(&root, 4000).await.expect("demo");
        assert!(summary.rows_written > 3900, "run {run}: {summary}");
        let in_lake: usize = lake::file_rows(&root.join("sensors")).values().sum();
        assert_eq!(in_lake as u64, summary.rows_written, "run {run}");
        assert!(root.join(normlake::demo::DEMO_MARKER).exists());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_refuses_a_directory_it_did_not_make() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("keep.txt"), b"mine").expect("write");
    let err = normlake::demo::run(dir.path(), 100)
        .await
        .expect_err("must refuse");
    assert!(
        err.to_string().contains("was not made by `normlake demo`"),
        "{err}"
    );
    assert!(dir.path().join("keep.txt").exists());
}
