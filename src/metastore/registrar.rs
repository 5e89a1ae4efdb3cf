//! The registrar thread: notices from the processor in, metastore calls out, with back-off.

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::{Client, MetastoreError};
use super::objects::{self, PartitionStats};
use super::{AddPartitions, MetastoreOptions, Observer, ops};
use crate::lake::{HiveTable, Layout};

/// The first back-off after a failure; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Partitions per `add_partitions` call.
const BATCH: usize = 100;

enum Notice {
    /// These partition directories (relative to the table) got files.
    Published(Vec<String>),
    /// This partition directory is complete (`_SUCCESS`).
    Complete(String),
    /// Register what is pending, until the deadline, then stop.
    Finish(Instant),
}

/// The handle the processor holds.
pub struct Registrar {
    tx: Sender<Notice>,
    thread: Option<JoinHandle<()>>,
}

impl Registrar {
    /// Start registering `table` (whose files `layout` lists) as `opts` say.
    pub fn start(
        opts: MetastoreOptions,
        table: HiveTable,
        layout: Layout,
        observer: Box<dyn Observer>,
    ) -> std::io::Result<Registrar> {
        let client = Client::new(opts.uris.clone(), opts.timeout)?;
        let (tx, rx) = channel();
        let worker = Worker {
            opts,
            table,
            layout,
            client,
            observer,
            ready: false,
            synced: false,
            registered: BTreeSet::new(),
            pending: BTreeSet::new(),
            stale: BTreeSet::new(),
            rows: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("metastore".into())
            .spawn(move || worker.run(rx))?;
        Ok(Registrar {
            tx,
            thread: Some(thread),
        })
    }

    /// Partition directories (relative to the table) that a commit published files into.
    pub fn published(&self, dirs: Vec<String>) {
        let _ = self.tx.send(Notice::Published(dirs));
    }

    /// A partition directory was marked complete.
    pub fn complete(&self, dir: &str) {
        let _ = self.tx.send(Notice::Complete(dir.to_string()));
    }

    /// Register what is pending for at most `within`, then stop. What is left is registered by
    /// the next start, which compares the lake with the metastore.
    pub fn finish(mut self, within: Duration) {
        let _ = self.tx.send(Notice::Finish(Instant::now() + within));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker {
    opts: MetastoreOptions,
    table: HiveTable,
    layout: Layout,
    client: Client,
    observer: Box<dyn Observer>,
    /// The database and table exist, with every column.
    ready: bool,
    /// The lake's partitions were compared with the metastore's since the last failure.
    synced: bool,
    registered: BTreeSet<String>,
    /// Partition directories to add.
    pending: BTreeSet<String>,
    /// Registered partitions whose figures changed.
    stale: BTreeSet<String>,
    /// Row counts of the files seen so far, by key.
    rows: HashMap<String, u64>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Notice>) {
        let mut backoff = FIRST_BACKOFF;
        let mut retry_at = Instant::now();
        let mut finish: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let wait = if self.idle() {
                Duration::from_secs(1)
            } else {
                retry_at.saturating_duration_since(now)
            };
            match rx.recv_timeout(wait) {
                Ok(n) => finish = self.note(n).or(finish),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => finish = finish.or(Some(now)),
            }
            while let Ok(n) = rx.try_recv() {
                finish = self.note(n).or(finish);
            }
            let now = Instant::now();
            if !self.idle() && now >= retry_at {
                match self.step() {
                    Ok(()) => backoff = FIRST_BACKOFF,
                    Err(e) => {
                        self.fail(&e, backoff);
                        retry_at = Instant::now() + backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            self.observer.backlog(self.pending.len());
            if finish.is_some_and(|at| self.idle() || Instant::now() >= at) {
                self.stopping();
                return;
            }
        }
    }

    /// Nothing to do until the next notice.
    fn idle(&self) -> bool {
        self.ready && self.synced && self.pending.is_empty() && self.stale.is_empty()
    }

    fn note(&mut self, n: Notice) -> Option<Instant> {
        match n {
            Notice::Published(dirs) => {
                for d in dirs {
                    if self.registered.contains(&d) {
                        if self.opts.statistics {
                            self.stale.insert(d);
                        }
                    } else if self.opts.add_partitions == AddPartitions::OnCommit {
                        self.pending.insert(d);
                    }
                }
                None
            }
            Notice::Complete(d) => {
                if !self.registered.contains(&d) {
                    self.pending.insert(d);
                }
                None
            }
            Notice::Finish(at) => Some(at),
        }
    }

    fn fail(&mut self, e: &MetastoreError, backoff: Duration) {
        self.observer.failed(e);
        let unreachable = matches!(e, MetastoreError::Unreachable { .. });
        self.observer.reachable(!unreachable);
        tracing::warn!(error = %e, retry_in = ?backoff, backlog = self.pending.len(), "metastore registration failed; the lake is unaffected, retrying");
        // Whatever happened (a metastore restarted with an empty catalog, say), check the
        // table and compare with the metastore again before the next attempt.
        self.ready = false;
        self.synced = false;
    }

    fn stopping(&self) {
        if !self.pending.is_empty() {
            tracing::warn!(
                backlog = self.pending.len(),
                "stopping with partitions not yet in the metastore; the next start registers them"
            );
        }
    }

    /// One attempt at everything due: the table, the comparison with the lake, the pending
    /// partitions, the changed figures.
    fn step(&mut self) -> Result<(), MetastoreError> {
        if !self.ready {
            self.prepare()?;
        }
        if !self.synced {
            self.sync()?;
        }
        while !self.pending.is_empty() {
            self.register_batch()?;
        }
        if !self.stale.is_empty() {
            self.update_statistics()?;
        }
        self.observer.reachable(true);
        Ok(())
    }

    fn prepare(&mut self) -> Result<(), MetastoreError> {
        let db = &self.opts.database;
        if self.opts.create_table {
            ops::ensure_database(&mut self.client, db)?;
        }
        let change = ops::ensure_table(
            &mut self.client,
            db,
            &self.table,
            self.opts.create_table,
            now_s(),
        )?;
        if change.created {
            tracing::info!(database = %db, table = %self.table.name, location = %self.table.location, "table created in the metastore");
        }
        if !change.added_columns.is_empty() {
            tracing::info!(database = %db, table = %self.table.name, columns = ?change.added_columns, "columns added to the metastore's table");
        }
        self.ready = true;
        Ok(())
    }

    /// Compare the lake's partitions with the metastore's: what the lake has and the
    /// metastore lacks is pending.
    fn sync(&mut self) -> Result<(), MetastoreError> {
        let names = ops::partition_names(&mut self.client, &self.opts.database, &self.table.name)?;
        let dirs = self
            .layout
            .partition_dirs()
            .map_err(|e| MetastoreError::Refused {
                op: "list the lake",
                message: e.to_string(),
            })?;
        for (dir, p) in dirs {
            let eligible = !p.files.is_empty()
                && (p.complete || self.opts.add_partitions == AddPartitions::OnCommit)
                && self.table.partition_of(&dir).is_some();
            if eligible && !names.contains(&dir) {
                self.pending.insert(dir);
            }
        }
        self.pending.retain(|d| !names.contains(d));
        self.registered = names;
        self.synced = true;
        if !self.pending.is_empty() {
            tracing::info!(
                partitions = self.pending.len(),
                "partitions in the lake and not in the metastore: registering them"
            );
        }
        Ok(())
    }

    fn register_batch(&mut self) -> Result<(), MetastoreError> {
        let batch: Vec<String> = self.pending.iter().take(BATCH).cloned().collect();
        let now = now_s();
        let parts = batch
            .iter()
            .filter_map(|d| {
                let p = self.table.partition_of(d)?;
                let stats = self.opts.statistics.then(|| self.stats(d)).flatten();
                Some(objects::partition(
                    &self.opts.database,
                    &self.table,
                    &p,
                    stats,
                    now,
                ))
            })
            .collect();
        ops::add_partitions(
            &mut self.client,
            &self.opts.database,
            &self.table.name,
            parts,
        )?;
        let added = batch.len() as u64;
        for d in batch {
            tracing::debug!(partition = %d, "partition registered in the metastore");
            self.pending.remove(&d);
            self.stale.remove(&d);
            self.registered.insert(d);
        }
        self.observer.registered(added);
        Ok(())
    }

    fn update_statistics(&mut self) -> Result<(), MetastoreError> {
        let dirs: Vec<String> = std::mem::take(&mut self.stale).into_iter().collect();
        let now = now_s();
        let parts = dirs
            .iter()
            .filter_map(|d| {
                let p = self.table.partition_of(d)?;
                let stats = self.stats(d)?;
                Some(objects::partition(
                    &self.opts.database,
                    &self.table,
                    &p,
                    Some(stats),
                    now,
                ))
            })
            .collect();
        let done = ops::alter_partitions(
            &mut self.client,
            &self.opts.database,
            &self.table.name,
            parts,
        );
        if done.is_err() {
            self.stale.extend(dirs);
        }
        done
    }

    /// A partition directory's figures, from a listing and the files' footers (each read once).
    fn stats(&mut self, dir: &str) -> Option<PartitionStats> {
        let files = match self.layout.data_files_in(dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(partition = %dir, error = %e, "cannot list a partition for its figures");
                return None;
            }
        };
        let mut stats = PartitionStats {
            files: files.len() as u64,
            bytes: files.iter().map(|(_, size)| size).sum(),
            rows: Some(0),
        };
        for (key, size) in files {
            if !self.rows.contains_key(&key) {
                match crate::lake::parquet_rows(self.layout.store(), &key, size) {
                    Ok(r) => {
                        self.rows.insert(key.clone(), r);
                    }
                    Err(e) => {
                        tracing::debug!(file = %key, error = %e, "cannot read a file's row count")
                    }
                }
            }
            let rows = self.rows.get(&key).copied();
            stats.rows = stats.rows.zip(rows).map(|(a, b)| a + b);
        }
        Some(stats)
    }
}

fn now_s() -> i32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs().min(i32::MAX as u64) as i32)
}
