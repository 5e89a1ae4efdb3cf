//! Registration in the Hive Metastore as the pipeline wires it: the registrar started from the
//! configuration, told which partition directories each commit published and which became
//! complete, and reporting into the job's metrics and readiness.

use super::PipelineError;
use crate::config::Config;
use crate::lake::Layout;
use crate::metastore::{MetastoreError, Observer, Registrar};
use crate::sink::Table;
use crate::telemetry::{Metrics, unix_ms};

/// How long the end of a run waits for the metastore; what is left is registered by the next
/// start.
pub(super) const FINISH_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

struct Report(Metrics);

impl Observer for Report {
    fn registered(&self, partitions: u64) {
        self.0.metastore_registered.inc_by(partitions);
    }

    fn failed(&self, _error: &MetastoreError) {
        self.0.metastore_failures.inc();
    }

    fn backlog(&self, partitions: usize) {
        self.0.metastore_backlog.set(partitions as i64);
    }

    fn reachable(&self, ok: bool) {
        self.0.health.set_metastore_reachable(ok, unix_ms());
    }
}

/// The registrar, when the configuration has a `[lake.metastore]`.
pub(super) fn start(
    cfg: &Config,
    table: &Table,
    layout: &Layout,
    metrics: &Metrics,
) -> Result<Option<Registrar>, PipelineError> {
    let Some(m) = &cfg.lake.metastore else {
        return Ok(None);
    };
    let location = m.location.clone().unwrap_or_else(|| layout.location());
    metrics.health.watch_metastore(m.unready_after.0);
    Registrar::start(
        m.options(),
        table.hive(&location),
        layout.clone(),
        Box::new(Report(metrics.clone())),
    )
    .map(Some)
    .map_err(|e| PipelineError::Registrar(e.to_string()))
}

/// The partition directories (relative to the table) that published files went into
/// (dead-letter files are not in the table).
pub(super) fn partition_dirs(layout: &Layout, files: &[(String, String)]) -> Vec<String> {
    let prefix = format!("{}/", layout.table_key());
    let mut dirs: Vec<String> = files
        .iter()
        .filter_map(|(_, dest)| {
            let (dir, _) = dest.strip_prefix(&prefix)?.rsplit_once('/')?;
            Some(dir.to_string())
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_files_name_their_partition_directories_once() {
        let layout = Layout::new("/lake", "t");
        let files: Vec<(String, String)> = [
            "t/dt=1/hr=2/part-a.parquet",
            "t/dt=1/hr=2/part-b.parquet",
            "t/dt=1/hr=3/part-c.parquet",
            "_dead_letter/t/dt=1/part-d.parquet",
            "t/part-e.parquet",
        ]
        .iter()
        .map(|d| (String::new(), d.to_string()))
        .collect();
        assert_eq!(partition_dirs(&layout, &files), ["dt=1/hr=2", "dt=1/hr=3"]);
    }
}
