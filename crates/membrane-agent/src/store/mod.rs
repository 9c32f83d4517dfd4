//! The agent's persistent state: one redb database in the state directory.
//!
//! IPAM and the endpoint manager keep their tables in the same database so that one write
//! transaction can change both (deleting an endpoint and releasing its addresses is one
//! atomic step, whatever happens to the process).

mod free;

use membrane_api::AttachmentRef;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File name of the database inside the state directory.
pub const DATABASE_FILE: &str = "agent.redb";

/// Persisted allocation cursors, by name: where the next search for a free id starts, so
/// a freed address or id is not handed out again right away.
const CURSORS: TableDefinition<&str, u128> = TableDefinition::new("cursors");

/// Errors of the state database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory could not be created.
    #[error("cannot create the state directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened, read or written.
    #[error("state database: {operation} failed")]
    Database {
        /// What was being done.
        operation: &'static str,
        /// The redb error.
        #[source]
        source: redb::Error,
    },
    /// A stored record does not decode.
    #[error("state database: the record of {key} in table {table} is corrupt")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The record's key.
        key: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    /// A closure turning any redb error into [`StoreError::Database`] for `operation`.
    pub fn db<E: Into<redb::Error>>(operation: &'static str) -> impl FnOnce(E) -> StoreError {
        move |source| StoreError::Database {
            operation,
            source: source.into(),
        }
    }
}

/// The opened state database, shared by IPAM and the endpoint manager.
#[derive(Clone, Debug)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens (or creates) the database in `state_dir`, creating the directory if needed.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::CreateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let db = Database::create(state_dir.join(DATABASE_FILE))
            .map_err(StoreError::db("opening the database"))?;
        let store = Store { db: Arc::new(db) };
        store.write("creating the tables", |txn| {
            txn.open_table(CURSORS)
                .map_err(StoreError::db("opening the cursors"))?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Runs `f` in one write transaction and commits it if `f` succeeds; on error nothing
    /// `f` wrote is kept.
    pub fn write<T, E: From<StoreError>>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&WriteTransaction) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self.db.begin_write().map_err(StoreError::db(operation))?;
        let value = f(&txn)?;
        txn.commit().map_err(StoreError::db(operation))?;
        Ok(value)
    }

    /// Runs `f` on a read transaction (a consistent snapshot).
    pub fn read<T, E: From<StoreError>>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self.db.begin_read().map_err(StoreError::db(operation))?;
        f(&txn)
    }
}

pub use free::take_free_key;

/// Reads the cursor `name` (0 when never set).
fn cursor(txn: &WriteTransaction, name: &str) -> Result<u128, StoreError> {
    let table = txn
        .open_table(CURSORS)
        .map_err(StoreError::db("opening the cursors"))?;
    let value = table
        .get(name)
        .map_err(StoreError::db("reading a cursor"))?;
    Ok(value.map(|v| v.value()).unwrap_or(0))
}

/// Sets the cursor `name`.
fn set_cursor(txn: &WriteTransaction, name: &str, value: u128) -> Result<(), StoreError> {
    let mut table = txn
        .open_table(CURSORS)
        .map_err(StoreError::db("opening the cursors"))?;
    table
        .insert(name, value)
        .map_err(StoreError::db("writing a cursor"))?;
    Ok(())
}

/// Key of an attachment in the tables: `(container id, interface name)`.
pub type AttachmentKey<'a> = (&'a str, &'a str);

/// The table key of `attachment`.
pub fn attachment_key(attachment: &AttachmentRef) -> AttachmentKey<'_> {
    (attachment.container_id.as_str(), attachment.ifname.as_str())
}

/// The attachment a table key names.
pub fn attachment_from_key((container_id, ifname): AttachmentKey<'_>) -> AttachmentRef {
    AttachmentRef {
        container_id: container_id.to_string(),
        ifname: ifname.to_string(),
    }
}

/// Seconds since the Unix epoch, the timestamp kept in records.
pub fn now_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
