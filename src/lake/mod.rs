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
pub mod partition;

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

/// `CREATE EXTERNAL TABLE` for the table with its partition columns (all `STRING`).
pub fn hive_ddl(
    table: &str,
    columns: &[(String, &str)],
    partition_columns: &[String],
    location: &str,
) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|(n, t)| format!("  `{n}` {t}"))
        .collect();
    let parts: Vec<String> = partition_columns
        .iter()
        .map(|n| format!("`{n}` STRING"))
        .collect();
    let partitioned = if parts.is_empty() {
        String::new()
    } else {
        format!("PARTITIONED BY ({})\n", parts.join(", "))
    };
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{table}` (\n{}\n)\n{partitioned}STORED AS PARQUET\nLOCATION '{location}';\n",
        cols.join(",\n")
    )
}

/// `ALTER TABLE … ADD PARTITION` for every partition directory holding data, with values
/// unescaped (Hive escapes them again for the path) and quotes doubled for SQL.
pub fn hive_add_partitions(
    table: &str,
    table_dir: &Path,
    partition_columns: &[String],
) -> io::Result<String> {
    if partition_columns.is_empty() {
        return Ok(String::new());
    }
    let mut parts: Vec<Vec<String>> = list_parquet(table_dir)?
        .iter()
        .filter_map(|f| {
            let rel = f.parent()?.strip_prefix(table_dir).ok()?;
            let segs: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .collect();
            (segs.len() == partition_columns.len()).then_some(())?;
            segs.iter()
                .zip(partition_columns)
                .map(|(seg, col)| {
                    let v = seg.strip_prefix(col.as_str())?.strip_prefix('=')?;
                    Some(partition::unescape(v).replace('\'', "''"))
                })
                .collect()
        })
        .collect();
    parts.sort();
    parts.dedup();
    Ok(parts
        .iter()
        .map(|values| {
            let spec: Vec<String> = partition_columns
                .iter()
                .zip(values)
                .map(|(c, v)| format!("`{c}`='{v}'"))
                .collect();
            format!(
                "ALTER TABLE `{table}` ADD IF NOT EXISTS PARTITION ({});\n",
                spec.join(", ")
            )
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
    fn ddl_lists_partitions_unescaped_and_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let cols = vec!["dt".to_string(), "site".to_string()];
        for d in [
            "dt=2026-11-27/site=a%2Fb",
            "dt=2026-11-27/site=o'k",
            "dt=2026-11-28/site=x",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
            std::fs::write(dir.path().join(d).join("part-t-0-0-0.parquet"), b"").unwrap();
        }
        let text = hive_add_partitions("t", dir.path(), &cols).unwrap();
        assert_eq!(
            text,
            "ALTER TABLE `t` ADD IF NOT EXISTS PARTITION (`dt`='2026-11-27', `site`='a/b');\n\
             ALTER TABLE `t` ADD IF NOT EXISTS PARTITION (`dt`='2026-11-27', `site`='o''k');\n\
             ALTER TABLE `t` ADD IF NOT EXISTS PARTITION (`dt`='2026-11-28', `site`='x');\n"
        );
        let ddl = hive_ddl("t", &[("key".into(), "STRING")], &cols, "file:///l");
        assert!(ddl.contains("PARTITIONED BY (`dt` STRING, `site` STRING)"));
        assert!(!hive_ddl("t", &[], &[], "file:///l").contains("PARTITIONED"));
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
