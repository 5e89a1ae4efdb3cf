//! What the registrar asks of the metastore: the database and the table (created when missing,
//! new columns added), the partitions it has, partitions added (idempotently) and their
//! figures updated.

use std::collections::BTreeSet;

use hive_metastore::{
    AddPartitionsRequest, Database, EnvironmentContext, Partition,
    ThriftHiveMetastoreCreateDatabaseException as CreateDb,
    ThriftHiveMetastoreCreateTableException as CreateTable,
    ThriftHiveMetastoreGetDatabaseException as GetDb,
    ThriftHiveMetastoreGetTableException as GetTable,
};
use pilota::FastStr;

use super::client::{Answer, Client, MetastoreError, refused};
use super::objects;
use crate::lake::HiveTable;

/// Hive's `get_partition_names` takes at most this many (`-1`: all).
const ALL: i16 = -1;

fn s(v: &str) -> FastStr {
    FastStr::new(v)
}

/// Create `database` if it is missing (another instance creating it first is no error).
pub fn ensure_database(c: &mut Client, database: &str) -> Result<(), MetastoreError> {
    match c.call("get_database", |m| {
        let name = s(database);
        async move { m.get_database(name).await }
    })? {
        Answer::Ok(_) => return Ok(()),
        Answer::Exception(GetDb::O1(_)) => {}
        Answer::Exception(e) => return Err(refused("get_database", e)),
    }
    let db = Database {
        name: Some(s(database)),
        description: Some(s("created by normlake")),
        parameters: Some(Default::default()),
        ..Database::default()
    };
    match c.call("create_database", |m| {
        let db = db.clone();
        async move { m.create_database(db).await }
    })? {
        Answer::Ok(()) | Answer::Exception(CreateDb::O1(_)) => Ok(()),
        Answer::Exception(e) => Err(refused("create_database", e)),
    }
}

/// What `ensure_table` did.
#[derive(Debug, Default, PartialEq)]
pub struct TableChange {
    pub created: bool,
    pub added_columns: Vec<String>,
}

/// Create the table if it is missing (when allowed), or add the columns it lacks. The
/// partition keys of an existing table must be the lake's.
pub fn ensure_table(
    c: &mut Client,
    database: &str,
    t: &HiveTable,
    create: bool,
    now_s: i32,
) -> Result<TableChange, MetastoreError> {
    let got = c.call("get_table", |m| {
        let (db, name) = (s(database), s(&t.name));
        async move { m.get_table(db, name).await }
    })?;
    let existing = match got {
        Answer::Ok(existing) => existing,
        Answer::Exception(GetTable::O2(_)) if create => {
            let table = objects::table(database, t, now_s);
            return match c.call("create_table", |m| {
                let table = table.clone();
                async move { m.create_table(table).await }
            })? {
                Answer::Ok(()) => Ok(TableChange {
                    created: true,
                    ..TableChange::default()
                }),
                // Another instance was first.
                Answer::Exception(CreateTable::O1(_)) => ensure_table(c, database, t, false, now_s),
                Answer::Exception(e) => Err(refused("create_table", e)),
            };
        }
        Answer::Exception(GetTable::O2(_)) => {
            return Err(MetastoreError::Refused {
                op: "get_table",
                message: format!(
                    "{database}.{} does not exist, and create_table is off",
                    t.name
                ),
            });
        }
        Answer::Exception(e) => return Err(refused("get_table", e)),
    };
    check_partition_keys(database, t, &existing)?;
    add_missing_columns(c, database, t, existing)
}

fn check_partition_keys(
    database: &str,
    t: &HiveTable,
    existing: &hive_metastore::Table,
) -> Result<(), MetastoreError> {
    let keys: Vec<String> = existing
        .partition_keys
        .iter()
        .flatten()
        .filter_map(|f| f.name.as_deref().map(str::to_ascii_lowercase))
        .collect();
    let want: Vec<String> = t
        .partition_columns
        .iter()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if keys == want {
        return Ok(());
    }
    Err(MetastoreError::Refused {
        op: "get_table",
        message: format!(
            "{database}.{} is partitioned by {keys:?} in the metastore, but the lake by {want:?}",
            t.name
        ),
    })
}

fn add_missing_columns(
    c: &mut Client,
    database: &str,
    t: &HiveTable,
    mut existing: hive_metastore::Table,
) -> Result<TableChange, MetastoreError> {
    let cols = existing
        .sd
        .as_ref()
        .and_then(|sd| sd.cols.clone())
        .unwrap_or_default();
    let (missing, differing) = objects::column_changes(t, &cols);
    for d in differing {
        tracing::warn!(table = %t.name, column = %d, "a column's type differs between the metastore and the lake; left as it is");
    }
    if missing.is_empty() {
        return Ok(TableChange::default());
    }
    let added: Vec<String> = missing
        .iter()
        .filter_map(|f| f.name.as_deref().map(str::to_string))
        .collect();
    if let Some(sd) = existing.sd.as_mut() {
        sd.cols.get_or_insert_with(Vec::new).extend(missing);
    }
    // CASCADE: the partitions' own column lists get the new columns too, as
    // `ALTER TABLE … ADD COLUMNS … CASCADE` does.
    let env = EnvironmentContext {
        properties: Some([(s("CASCADE"), s("true"))].into_iter().collect()),
    };
    let answer = c.call("alter_table", |m| {
        let (db, name, table, env) = (s(database), s(&t.name), existing.clone(), env.clone());
        async move {
            m.alter_table_with_environment_context(db, name, table, env)
                .await
        }
    })?;
    match answer {
        Answer::Ok(()) => Ok(TableChange {
            created: false,
            added_columns: added,
        }),
        Answer::Exception(e) => Err(refused("alter_table", e)),
    }
}

/// The partitions the metastore has, by name (`dt=…/site=…`, escaped as directories are).
pub fn partition_names(
    c: &mut Client,
    database: &str,
    table: &str,
) -> Result<BTreeSet<String>, MetastoreError> {
    match c.call("get_partition_names", |m| {
        let (db, table) = (s(database), s(table));
        async move { m.get_partition_names(db, table, ALL).await }
    })? {
        Answer::Ok(names) => Ok(names.iter().map(|n| n.to_string()).collect()),
        Answer::Exception(e) => Err(refused("get_partition_names", e)),
    }
}

/// Add partitions; those that exist already are left as they are (no error).
pub fn add_partitions(
    c: &mut Client,
    database: &str,
    table: &str,
    parts: Vec<Partition>,
) -> Result<(), MetastoreError> {
    let req = AddPartitionsRequest {
        db_name: s(database),
        tbl_name: s(table),
        parts,
        if_not_exists: true,
        need_result: Some(false),
        cat_name: None,
    };
    match c.call("add_partitions", |m| {
        let req = req.clone();
        async move { m.add_partitions_req(req).await }
    })? {
        Answer::Ok(_) => Ok(()),
        Answer::Exception(e) => Err(refused("add_partitions", e)),
    }
}

/// Replace the partitions' descriptions (their figures).
pub fn alter_partitions(
    c: &mut Client,
    database: &str,
    table: &str,
    parts: Vec<Partition>,
) -> Result<(), MetastoreError> {
    match c.call("alter_partitions", |m| {
        let (db, table, parts) = (s(database), s(table), parts.clone());
        async move { m.alter_partitions(db, table, parts).await }
    })? {
        Answer::Ok(()) => Ok(()),
        Answer::Exception(e) => Err(refused("alter_partitions", e)),
    }
}
