//! `_SUCCESS`: the marker of a complete Hive partition (Hadoop's convention, which schedulers
//! wait for). When a partition is complete is the pipeline's policy (`pipeline::markers`);
//! this is where the marker lives and how it is written and read.

use super::{LakeError, Layout};

/// The marker's file name.
pub const SUCCESS: &str = "_SUCCESS";

/// The key of a partition directory's marker (`rel_dir` relative to the table).
pub fn key(layout: &Layout, rel_dir: &str) -> String {
    format!("{}/{rel_dir}/{SUCCESS}", layout.table_key())
}

/// Mark a partition directory (relative to the table) complete with an empty `_SUCCESS`.
pub fn mark(layout: &Layout, rel_dir: &str) -> Result<(), LakeError> {
    layout.store().put(&key(layout, rel_dir), Vec::new())
}

/// Whether a partition directory (relative to the table) is marked complete.
pub fn is_marked(layout: &Layout, rel_dir: &str) -> Result<bool, LakeError> {
    layout.store().exists(&key(layout, rel_dir))
}
