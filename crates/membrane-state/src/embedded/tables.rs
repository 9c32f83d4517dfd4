//! The embedded store's tables and the reads and writes over them; everything here runs
//! inside one redb transaction.

use crate::error::StoreError;
use crate::store::{Event, Item, LeaseId, Op, Revision};
use crate::watch::Batch;
use redb::{ReadableTable, Table, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Key → (create revision, modification revision, lease or 0, value).
pub(super) const KV: TableDefinition<&str, (u64, u64, i64, &[u8])> = TableDefinition::new("kv");
/// Counters: [`REVISION`], [`COMPACTED`], [`LEASE_SEQ`].
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Revision → the JSON list of the [`Change`]s it made.
pub(super) const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
/// Lease → (time to live in ms, deadline in ms since the Unix epoch).
pub(super) const LEASES: TableDefinition<i64, (u64, u64)> = TableDefinition::new("leases");
/// (lease, key) for every key attached to a lease.
pub(super) const LEASE_KEYS: TableDefinition<(i64, &str), ()> = TableDefinition::new("lease_keys");

/// The store's revision.
pub(super) const REVISION: &str = "revision";
/// History is kept for revisions above this one.
pub(super) const COMPACTED: &str = "compacted";
/// The last lease id handed out.
pub(super) const LEASE_SEQ: &str = "lease_seq";

/// How many revisions of history are kept for watches that resume.
pub(super) const HISTORY_REVISIONS: u64 = 10_000;

/// One key's change in the history: enough to replay it to a watcher and to undo it when
/// computing the keys of an older revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Change {
    /// The key.
    pub key: String,
    /// The new value, or `None` for a deletion.
    pub value: Option<Vec<u8>>,
    /// The key's modification revision before the change, or `None` if it was absent.
    pub prev: Option<Revision>,
}

/// A redb failure as a [`StoreError`].
pub(super) fn db<'a, E: Into<redb::Error>>(
    path: &'a Path,
    operation: &'static str,
) -> impl FnOnce(E) -> StoreError + 'a {
    move |source| StoreError::Database {
        path: path.to_path_buf(),
        operation,
        source: Box::new(source.into()),
    }
}

/// The tables a write needs, opened in one transaction.
pub(super) struct Tables<'t> {
    pub kv: Table<'t, &'static str, (u64, u64, i64, &'static [u8])>,
    pub meta: Table<'t, &'static str, u64>,
    pub history: Table<'t, u64, &'static [u8]>,
    pub leases: Table<'t, i64, (u64, u64)>,
    pub lease_keys: Table<'t, (i64, &'static str), ()>,
}

impl<'t> Tables<'t> {
    /// Opens (creating them if needed) every table in `txn`.
    pub fn open(txn: &'t redb::WriteTransaction, path: &Path) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            kv: txn
                .open_table(KV)
                .map_err(db(path, "opening the kv table"))?,
            meta: txn
                .open_table(META)
                .map_err(db(path, "opening the meta table"))?,
            history: txn
                .open_table(HISTORY)
                .map_err(db(path, "opening the history table"))?,
            leases: txn
                .open_table(LEASES)
                .map_err(db(path, "opening the leases table"))?,
            lease_keys: txn
                .open_table(LEASE_KEYS)
                .map_err(db(path, "opening the lease keys table"))?,
        })
    }

    /// A counter of the meta table (0 when never set).
    pub fn counter(&self, name: &str, path: &Path) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(name)
            .map_err(db(path, "reading a counter"))?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// The modification revision of `key`, if it exists.
    pub fn mod_revision(&self, key: &str, path: &Path) -> Result<Option<Revision>, StoreError> {
        Ok(self
            .kv
            .get(key)
            .map_err(db(path, "reading a key"))?
            .map(|v| v.value().1))
    }

    /// Checks every precondition and lease of `ops`, then applies them at revision
    /// `revision`, returning the changes (none when nothing changed).
    pub fn apply(
        &mut self,
        ops: &[Op],
        revision: Revision,
        now_ms: u64,
        path: &Path,
    ) -> Result<Vec<Change>, StoreError> {
        for op in ops {
            let found = self.mod_revision(op.key(), path)?;
            if !op.precondition().holds(found) {
                return Err(StoreError::Conflict {
                    key: op.key().to_string(),
                    expected: op.precondition(),
                    found,
                });
            }
            if let Op::Put {
                lease: Some(lease), ..
            } = op
                && !self.lease_alive(*lease, now_ms, path)?
            {
                return Err(StoreError::LeaseNotFound { lease: *lease });
            }
        }
        let mut changes = Vec::new();
        for op in ops {
            match op {
                Op::Put {
                    key, value, lease, ..
                } => changes.push(self.put(key, value, *lease, revision, path)?),
                Op::Delete { key, .. } => changes.extend(self.delete(key, path)?),
            }
        }
        Ok(changes)
    }

    fn put(
        &mut self,
        key: &str,
        value: &[u8],
        lease: Option<LeaseId>,
        revision: Revision,
        path: &Path,
    ) -> Result<Change, StoreError> {
        let before = self
            .kv
            .get(key)
            .map_err(db(path, "reading a key"))?
            .map(|v| {
                let (create, modified, lease, _) = v.value();
                (create, modified, lease)
            });
        let create = before.map_or(revision, |(create, _, _)| create);
        if let Some((_, _, old_lease)) = before
            && old_lease != 0
        {
            self.lease_keys
                .remove((old_lease, key))
                .map_err(db(path, "detaching a key from its lease"))?;
        }
        let lease = lease.map_or(0, |lease| lease.0);
        self.kv
            .insert(key, (create, revision, lease, value))
            .map_err(db(path, "writing a key"))?;
        if lease != 0 {
            self.lease_keys
                .insert((lease, key), ())
                .map_err(db(path, "attaching a key to its lease"))?;
        }
        Ok(Change {
            key: key.to_string(),
            value: Some(value.to_vec()),
            prev: before.map(|(_, modified, _)| modified),
        })
    }

    /// Deletes `key` if it exists.
    pub fn delete(&mut self, key: &str, path: &Path) -> Result<Option<Change>, StoreError> {
        let removed = self
            .kv
            .remove(key)
            .map_err(db(path, "deleting a key"))?
            .map(|v| {
                let (_, modified, lease, _) = v.value();
                (modified, lease)
            });
        let Some((modified, lease)) = removed else {
            return Ok(None);
        };
        if lease != 0 {
            self.lease_keys
                .remove((lease, key))
                .map_err(db(path, "detaching a key from its lease"))?;
        }
        Ok(Some(Change {
            key: key.to_string(),
            value: None,
            prev: Some(modified),
        }))
    }

    /// True when `lease` exists and has not passed its deadline.
    pub fn lease_alive(
        &self,
        lease: LeaseId,
        now_ms: u64,
        path: &Path,
    ) -> Result<bool, StoreError> {
        Ok(self
            .leases
            .get(lease.0)
            .map_err(db(path, "reading a lease"))?
            .is_some_and(|v| v.value().1 > now_ms))
    }

    /// The keys attached to `lease`.
    pub fn lease_keys(&self, lease: LeaseId, path: &Path) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        for entry in self
            .lease_keys
            .range((lease.0, "")..)
            .map_err(db(path, "listing a lease's keys"))?
        {
            let (key, _) = entry.map_err(db(path, "listing a lease's keys"))?;
            let (owner, key) = key.value();
            if owner != lease.0 {
                break;
            }
            keys.push(key.to_string());
        }
        Ok(keys)
    }

    /// Records `changes` as revision `revision` and forgets history older than
    /// [`HISTORY_REVISIONS`].
    pub fn record(
        &mut self,
        revision: Revision,
        changes: &[Change],
        path: &Path,
    ) -> Result<(), StoreError> {
        let encoded = serde_json::to_vec(changes).expect("changes always encode as JSON");
        self.history
            .insert(revision, encoded.as_slice())
            .map_err(db(path, "writing history"))?;
        self.meta
            .insert(REVISION, revision)
            .map_err(db(path, "writing the revision"))?;
        let keep_after = revision.saturating_sub(HISTORY_REVISIONS);
        if keep_after > self.counter(COMPACTED, path)? {
            self.history
                .retain_in(..=keep_after, |_, _| false)
                .map_err(db(path, "compacting history"))?;
            self.meta
                .insert(COMPACTED, keep_after)
                .map_err(db(path, "writing the compaction mark"))?;
        }
        Ok(())
    }
}

/// The changes recorded for one revision.
pub(super) fn decode_changes(
    bytes: &[u8],
    revision: Revision,
    path: &Path,
) -> Result<Vec<Change>, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::CorruptHistory {
        path: path.to_path_buf(),
        revision,
        source,
    })
}

/// The events of `changes` under `prefix`, as one batch of revision `revision`.
pub(super) fn batch(revision: Revision, changes: &[Change], prefix: &str) -> Batch {
    Batch {
        revision,
        events: changes
            .iter()
            .filter(|change| change.key.starts_with(prefix))
            .map(|change| match &change.value {
                Some(value) => Event::Put {
                    key: change.key.clone(),
                    value: value.clone(),
                    revision,
                },
                None => Event::Delete {
                    key: change.key.clone(),
                    revision,
                },
            })
            .collect(),
    }
}

/// An item from a kv table row.
pub(super) fn item(key: &str, (create, modified, lease, value): (u64, u64, i64, &[u8])) -> Item {
    Item {
        key: key.to_string(),
        value: value.to_vec(),
        create_revision: create,
        mod_revision: modified,
        lease: (lease != 0).then_some(LeaseId(lease)),
    }
}

/// Undoes `changes` (of one revision) on a map of keys to modification revisions.
pub(super) fn undo(keys: &mut BTreeMap<String, Revision>, changes: &[Change], prefix: &str) {
    for change in changes.iter().rev() {
        if !change.key.starts_with(prefix) {
            continue;
        }
        match change.prev {
            Some(prev) => keys.insert(change.key.clone(), prev),
            None => keys.remove(&change.key),
        };
    }
}
