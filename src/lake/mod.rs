//! The table's layout on storage: where data and dead-letter files go, how they are named,
//! and how a file becomes visible atomically.
//!
//! ```text
//! <root>/<table>/dt=2026-11-26/hr=02/part-<stream>-<partition>-<first>-<last>.parquet
//! <root>/_dead_letter/<table>/part-<stream>-<partition>-<first>-<last>.parquet
//! ```
//! Dead letters live outside the table directory so that every reader's `**/*.parquet` glob
//! over the table sees table rows only. A file is written under a hidden temporary name
//! (`.part-….tmp`, which Hive, Spark, Trino, DuckDB and pyarrow all skip), synced, then renamed;
//! readers never see a partial file. Names are deterministic (stream, partition, the first and
//! last offset the file holds), so a file's origin is visible and a repeated write of the same
//! rows lands on the same name.

pub mod commit;
pub mod hive;
pub mod marker;
pub mod partition;
pub mod store;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub use hive::{HivePartition, HiveTable};
pub use store::Store;

/// Failures placing files in the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("cannot create directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot publish {from} as {to}: {source}")]
    Publish {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error("object store: cannot {op} {key}: {source}")]
    Store {
        op: &'static str,
        key: String,
        source: Box<object_store::Error>,
    },
    #[error("lake root {root}: {message}")]
    Config { root: String, message: String },
    #[error("{key} is not a readable Parquet file: {message}")]
    NotParquet { key: String, message: String },
}

/// An input partition, as the lake names its commit log and files: (stream, partition). The
/// stream is the Kafka topic.
pub type PartitionId = (std::sync::Arc<str>, i32);

/// Where a table lives: a store and the table's name, which is its directory (key prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    store: Store,
    table: String,
}

impl Layout {
    /// A table in a local directory (`root` is a path or a `file://` URI).
    pub fn new(root: &str, table: &str) -> Layout {
        Layout::with_store(Store::local(root), table)
    }

    pub fn with_store(store: Store, table: &str) -> Layout {
        Layout {
            store,
            table: table.to_string(),
        }
    }

    /// A table under `root`: a local directory, a `file://` URI or an `s3://` bucket.
    pub fn open(root: &str, table: &str, s3: &store::S3Options) -> Result<Layout, LakeError> {
        Ok(Layout::with_store(Store::open(root, s3)?, table))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The table's directory (key prefix).
    pub fn table_key(&self) -> &str {
        &self.table
    }

    /// Where dead letters of the table go (outside the table, so readers never see them).
    pub fn dead_letter_key(&self) -> String {
        format!("_dead_letter/{}", self.table)
    }

    /// The table's location as engines name it (`file:///…`, `s3://…`).
    pub fn location(&self) -> String {
        self.store.uri(&self.table)
    }

    /// Every published data file of the table, relative to the table's directory.
    pub fn table_files(&self) -> Result<Vec<String>, LakeError> {
        let prefix = format!("{}/", self.table);
        Ok(self
            .store
            .list(&self.table)?
            .into_iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
            .filter(|rel| is_published_data(rel))
            .collect())
    }

    /// Every partition directory of the table that holds data files or a marker, by its path
    /// relative to the table: one listing.
    pub fn partition_dirs(&self) -> Result<BTreeMap<String, PartitionDir>, LakeError> {
        let prefix = format!("{}/", self.table);
        let mut dirs: BTreeMap<String, PartitionDir> = BTreeMap::new();
        for (key, size) in self.store.list_sized(&self.table)? {
            let Some(rel) = key.strip_prefix(&prefix) else {
                continue;
            };
            let Some((dir, name)) = rel.rsplit_once('/') else {
                continue;
            };
            if name == marker::SUCCESS {
                dirs.entry(dir.to_string()).or_default().complete = true;
            } else if is_published_data(rel) {
                dirs.entry(dir.to_string())
                    .or_default()
                    .files
                    .push((key.clone(), size));
            }
        }
        Ok(dirs)
    }

    /// The published data files of one partition directory (relative to the table), with
    /// their sizes: (key, bytes).
    pub fn data_files_in(&self, rel_dir: &str) -> Result<Vec<(String, u64)>, LakeError> {
        let prefix = format!("{}/", self.table);
        let dir = format!("{}/{rel_dir}", self.table);
        Ok(self
            .store
            .list_sized(&dir)?
            .into_iter()
            .filter(|(key, _)| {
                key.strip_prefix(&prefix).is_some_and(|rel| {
                    rel.rsplit_once('/').is_some_and(|(d, _)| d == rel_dir)
                        && is_published_data(rel)
                })
            })
            .collect())
    }

    /// File name for rows of `stream`/`partition` whose offsets span `first..=last`. A
    /// partition's later lineage (a recreated topic read again from its start) is named in
    /// the file, so its offsets never collide with an earlier lineage's.
    pub fn file_name(stream: &str, partition: i32, lineage: u32, first: i64, last: i64) -> String {
        match lineage {
            0 => format!("part-{stream}-{partition}-{first}-{last}.parquet"),
            n => format!("part-{stream}-{partition}-l{n}-{first}-{last}.parquet"),
        }
    }
}

/// A Hive partition directory as [`Layout::partition_dirs`] finds it.
#[derive(Debug, Default)]
pub struct PartitionDir {
    /// Published data files: (key, size in bytes), in name order.
    pub files: Vec<(String, u64)>,
    /// It holds `_SUCCESS`.
    pub complete: bool,
}

/// A relative path readers take as data: a `.parquet` file, no hidden or `_` segment.
pub fn is_published_data(rel: &str) -> bool {
    rel.ends_with(".parquet")
        && rel
            .split('/')
            .all(|seg| !seg.starts_with('.') && !seg.starts_with('_'))
}

/// A file being built under a hidden temporary key in the directory it will be published in.
pub struct PendingFile {
    /// Its key in the store until it is published.
    pub key: String,
    /// Where it is written meanwhile (the key's place, or the object store's spool).
    pub path: PathBuf,
    pub file: File,
}

impl PendingFile {
    /// Create `dir/.<name>.tmp`.
    pub fn create(store: &Store, dir: &str, name: &str) -> Result<PendingFile, LakeError> {
        let key = format!("{dir}/.{name}.tmp");
        let path = store.work_path(&key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| LakeError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let file = File::create(&path).map_err(|source| LakeError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(PendingFile { key, path, file })
    }

    /// Make the complete file durable under its temporary key.
    pub fn seal(store: &Store, file: File, key: &str) -> Result<(), LakeError> {
        store.upload(file, key)
    }
}

/// Rename `tmp` to `dest` and sync the directory so the new name survives a crash.
pub fn rename_durably(tmp: &Path, dest: &Path) -> Result<(), LakeError> {
    std::fs::rename(tmp, dest).map_err(|source| LakeError::Publish {
        from: tmp.to_path_buf(),
        to: dest.to_path_buf(),
        source,
    })?;
    if let Some(dir) = dest.parent() {
        // The rename is durable only once the directory entry is.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| LakeError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    Ok(())
}

/// The number of rows of the Parquet file `key` of `size` bytes, from its footer alone.
pub fn parquet_rows(store: &Store, key: &str, size: u64) -> Result<u64, LakeError> {
    let bad = |what: &str| LakeError::NotParquet {
        key: key.to_string(),
        message: what.to_string(),
    };
    if size < 12 {
        return Err(bad("too short for a Parquet file"));
    }
    let tail = store.get_range(key, size - 8..size)?;
    if &tail[4..] != b"PAR1" {
        return Err(bad("no Parquet magic at the end"));
    }
    let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if len + 12 > size {
        return Err(bad("a footer longer than the file"));
    }
    let footer = store.get_range(key, size - 8 - len..size - 8)?;
    let meta = parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&footer)
        .map_err(|e| bad(&e.to_string()))?;
    Ok(meta.file_metadata().num_rows().max(0) as u64)
}

/// Every published Parquet file under the local directory `dir`, recursively (hidden and
/// `_` entries skipped).
pub fn list_parquet(dir: &Path) -> Result<Vec<PathBuf>, LakeError> {
    Ok(Store::local(&dir.to_string_lossy())
        .list("")?
        .into_iter()
        .filter(|k| is_published_data(k))
        .map(|k| dir.join(k))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_origin() {
        assert_eq!(
            Layout::file_name("sensors", 3, 0, 10, 99),
            "part-sensors-3-10-99.parquet"
        );
        assert_eq!(
            Layout::file_name("sensors", 3, 2, 10, 99),
            "part-sensors-3-l2-10-99.parquet"
        );
    }

    #[test]
    fn layout_accepts_file_uris() {
        let l = Layout::new("file:///tmp/lake", "t");
        assert_eq!(l.location(), "file:///tmp/lake/t");
        assert_eq!(l.dead_letter_key(), "_dead_letter/t");
    }

    #[test]
    fn seal_then_publish_and_listing_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_str().unwrap(), "t");
        let store = layout.store();
        let p = PendingFile::create(store, "t/dt=x", "part-a").unwrap();
        assert_eq!(p.key, "t/dt=x/.part-a.tmp");
        assert_eq!(layout.table_files().unwrap().len(), 0);
        PendingFile::seal(store, p.file, &p.key).unwrap();
        store.publish(&p.key, "t/dt=x/part-a.parquet").unwrap();
        store.put("t/_normlake/log/x.parquet", vec![]).unwrap();
        assert_eq!(layout.table_files().unwrap(), vec!["dt=x/part-a.parquet"]);
        assert_eq!(
            list_parquet(&dir.path().join("t")).unwrap(),
            vec![dir.path().join("t/dt=x/part-a.parquet")]
        );
    }
}
