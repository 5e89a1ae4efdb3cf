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

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

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
}

/// Where a table lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
    table: String,
}

const HOUR_MS: i64 = 3_600_000;

impl Layout {
    /// `root` is a directory path or a `file://` URI.
    pub fn new(root: &str, table: &str) -> Layout {
        let root = root.strip_prefix("file://").unwrap_or(root);
        Layout {
            root: PathBuf::from(root),
            table: table.to_string(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn table_dir(&self) -> PathBuf {
        self.root.join(&self.table)
    }

    pub fn dead_letter_dir(&self) -> PathBuf {
        self.root.join("_dead_letter").join(&self.table)
    }

    /// The Hive partition (relative directory) of an hour bucket (`ts.div_euclid(HOUR_MS)`).
    pub fn hour_partition(hour: i64) -> String {
        match chrono::DateTime::from_timestamp_millis(hour.saturating_mul(HOUR_MS)) {
            Some(t) => t.format("dt=%Y-%m-%d/hr=%H").to_string(),
            None => "dt=__HIVE_DEFAULT_PARTITION__/hr=__HIVE_DEFAULT_PARTITION__".to_string(),
        }
    }

    /// The hour bucket of an event time in milliseconds.
    pub fn hour_of(ts_ms: i64) -> i64 {
        ts_ms.div_euclid(HOUR_MS)
    }

    /// File name for rows of `stream`/`partition` whose offsets span `first..=last`.
    pub fn file_name(stream: &str, partition: i32, first: i64, last: i64) -> String {
        format!("part-{stream}-{partition}-{first}-{last}.parquet")
    }
}

/// A file being written under a hidden temporary name in the directory it will be published in.
pub struct PendingFile {
    pub tmp: PathBuf,
    pub file: File,
}

impl PendingFile {
    /// Create `dir/.<name>.tmp`.
    pub fn create(dir: &Path, name: &str) -> Result<PendingFile, LakeError> {
        std::fs::create_dir_all(dir).map_err(|source| LakeError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let tmp = dir.join(format!(".{name}.tmp"));
        let file = File::create(&tmp).map_err(|source| LakeError::Write {
            path: tmp.clone(),
            source,
        })?;
        Ok(PendingFile { tmp, file })
    }

    /// Make the complete file durable under its temporary name.
    pub fn seal(file: File, tmp: &Path) -> Result<(), LakeError> {
        file.sync_all().map_err(|source| LakeError::Write {
            path: tmp.to_path_buf(),
            source,
        })
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

/// `CREATE EXTERNAL TABLE` for the table, with the `dt`/`hr` partition columns.
pub fn hive_ddl(table: &str, columns: &[(String, &str)], location: &str) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|(n, t)| format!("  `{n}` {t}"))
        .collect();
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{table}` (\n{}\n)\nPARTITIONED BY (`dt` STRING, `hr` STRING)\nSTORED AS PARQUET\nLOCATION '{location}';\n",
        cols.join(",\n")
    )
}

/// `ALTER TABLE … ADD PARTITION` for every partition directory holding data.
pub fn hive_add_partitions(table: &str, table_dir: &Path) -> io::Result<String> {
    let mut parts: Vec<(String, String)> = list_parquet(table_dir)?
        .iter()
        .filter_map(|f| {
            let rel = f.parent()?.strip_prefix(table_dir).ok()?;
            let mut it = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().to_string());
            let dt = it.next()?.strip_prefix("dt=")?.to_string();
            let hr = it.next()?.strip_prefix("hr=")?.to_string();
            Some((dt, hr))
        })
        .collect();
    parts.dedup();
    Ok(parts
        .iter()
        .map(|(dt, hr)| {
            format!("ALTER TABLE `{table}` ADD IF NOT EXISTS PARTITION (dt='{dt}', hr='{hr}');\n")
        })
        .collect())
}

/// Every published Parquet file under `dir`, recursively (hidden and `_` entries skipped).
pub fn list_parquet(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if name.ends_with(".parquet") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_partitions_render_in_utc() {
        let ts = 1_795_737_610_191; // 2026-11-27T00:00:10.191Z
        let p = Layout::hour_partition(Layout::hour_of(ts));
        assert_eq!(p, "dt=2026-11-27/hr=00");
        assert_eq!(
            Layout::hour_partition(Layout::hour_of(-1)),
            "dt=1969-12-31/hr=23"
        );
        assert_eq!(Layout::hour_partition(0), "dt=1970-01-01/hr=00");
    }

    #[test]
    fn file_names_carry_origin() {
        assert_eq!(
            Layout::file_name("sensors", 3, 10, 99),
            "part-sensors-3-10-99.parquet"
        );
    }

    #[test]
    fn layout_accepts_file_uris() {
        let l = Layout::new("file:///tmp/lake", "t");
        assert_eq!(l.table_dir(), PathBuf::from("/tmp/lake/t"));
        assert_eq!(
            l.dead_letter_dir(),
            PathBuf::from("/tmp/lake/_dead_letter/t")
        );
    }

    #[test]
    fn seal_then_rename_publishes_and_listing_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("dt=x");
        let p = PendingFile::create(&d, "part-a").unwrap();
        assert_eq!(list_parquet(dir.path()).unwrap().len(), 0);
        PendingFile::seal(p.file, &p.tmp).unwrap();
        rename_durably(&p.tmp, &d.join("part-a.parquet")).unwrap();
        assert_eq!(
            list_parquet(dir.path()).unwrap(),
            vec![dir.path().join("dt=x/part-a.parquet")]
        );
    }
}
