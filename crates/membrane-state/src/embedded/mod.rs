//! The embedded store: one redb database in the agent's state directory, transactional and
//! durable across restarts. Watches replay the persisted history and then follow an
//! in-process broadcast of every commit; leases are kept in the database with wall-clock
//! deadlines and a reaper task deletes the keys of expired ones.

mod tables;

use crate::error::StoreError;
use crate::store::{Item, LeaseId, Listing, Op, Revision, Store, WatchStream, check_ops};
use crate::watch::{self, Batch, ChangeFeed, RawChanges};
use redb::{Database, ReadableDatabase as _, ReadableTable as _};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tables::{
    COMPACTED, Change, HISTORY, KV, LEASE_SEQ, LEASES, META, REVISION, Tables, batch, db,
    decode_changes, item, undo,
};
use tokio::sync::broadcast;

/// File name of the database inside the state directory.
pub const DATABASE_FILE: &str = "kvstore.redb";

/// How often the reaper looks for expired leases.
const REAP_INTERVAL: Duration = Duration::from_millis(250);

/// Commits buffered for watchers; one that falls further behind re-reads the history.
const BROADCAST_CAPACITY: usize = 1024;

/// The embedded store; clones share one database.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    /// Held from the start of a write until its commit is broadcast, so watchers see
    /// commits in revision order.
    writer: Mutex<()>,
    commits: broadcast::Sender<Arc<Committed>>,
}

/// One committed revision, as broadcast to watchers.
struct Committed {
    revision: Revision,
    changes: Vec<Change>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, creating the directory if needed, and starts
    /// its lease reaper on the current tokio runtime.
    pub async fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DATABASE_FILE);
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || Database::create(&path))
                .await
                .map_err(|source| StoreError::Worker {
                    path: dir.join(DATABASE_FILE),
                    source,
                })?
        };
        let db = opened.map_err(db(&path, "opening the database"))?;
        let (commits, _) = broadcast::channel(BROADCAST_CAPACITY);
        let store = EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                path,
                writer: Mutex::new(()),
                commits,
            }),
        };
        store
            .blocking(|inner| inner.write("creating the tables", |_, _| Ok(None)))
            .await?;
        tokio::spawn(reap(Arc::downgrade(&store.inner)));
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|source| StoreError::Worker {
                path: self.inner.path.clone(),
                source,
            })?
    }
}

impl Inner {
    /// Runs `f` in one write transaction at the next revision. When `f` returns changes
    /// they are recorded at that revision, committed and broadcast; when it returns `None`
    /// or fails, nothing is written. Returns the revision after the transaction.
    fn write(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Tables<'_>, Revision) -> Result<Option<Vec<Change>>, StoreError>,
    ) -> Result<Revision, StoreError> {
        let path = &self.path;
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let txn = self.db.begin_write().map_err(db(path, operation))?;
        let outcome = {
            let mut tables = Tables::open(&txn, path)?;
            let current = tables.counter(REVISION, path)?;
            match f(&mut tables, current + 1) {
                Ok(Some(changes)) if !changes.is_empty() => {
                    tables.record(current + 1, &changes, path)?;
                    Ok((current + 1, Some(changes)))
                }
                Ok(_) => Ok((current, None)),
                Err(error) => Err(error),
            }
        };
        match outcome {
            Ok((revision, changes)) => {
                txn.commit().map_err(db(path, operation))?;
                if let Some(changes) = changes {
                    // No receiver is fine: nobody watches.
                    let _ = self.commits.send(Arc::new(Committed { revision, changes }));
                }
                Ok(revision)
            }
            Err(error) => {
                txn.abort().map_err(db(path, operation))?;
                Err(error)
            }
        }
    }

    fn read(&self, operation: &'static str) -> Result<redb::ReadTransaction, StoreError> {
        self.db.begin_read().map_err(db(&self.path, operation))
    }

    fn counter(&self, txn: &redb::ReadTransaction, name: &str) -> Result<u64, StoreError> {
        let path = &self.path;
        let meta = txn
            .open_table(META)
            .map_err(db(path, "opening the meta table"))?;
        Ok(meta
            .get(name)
            .map_err(db(path, "reading a counter"))?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let path = &self.path;
        let txn = self.read("listing")?;
        let kv = txn
            .open_table(KV)
            .map_err(db(path, "opening the kv table"))?;
        let mut items = Vec::new();
        for entry in kv.range(prefix..).map_err(db(path, "listing"))? {
            let (key, value) = entry.map_err(db(path, "listing"))?;
            if !key.value().starts_with(prefix) {
                break;
            }
            items.push(item(key.value(), value.value()));
        }
        Ok(Listing {
            items,
            revision: self.counter(&txn, REVISION)?,
        })
    }

    /// The keys under `prefix` at `revision`: today's keys with the history after
    /// `revision` undone.
    fn keys_at(
        &self,
        prefix: &str,
        revision: Revision,
    ) -> Result<BTreeMap<String, Revision>, StoreError> {
        let path = &self.path;
        let txn = self.read("reading keys at a revision")?;
        let current = self.counter(&txn, REVISION)?;
        let compacted = self.counter(&txn, COMPACTED)?;
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        if revision == 0 {
            return Ok(BTreeMap::new());
        }
        if revision < compacted {
            return Err(StoreError::Compacted {
                prefix: prefix.to_string(),
                requested: revision,
                oldest: compacted,
            });
        }
        let kv = txn
            .open_table(KV)
            .map_err(db(path, "opening the kv table"))?;
        let mut keys = BTreeMap::new();
        for entry in kv.range(prefix..).map_err(db(path, "listing"))? {
            let (key, value) = entry.map_err(db(path, "listing"))?;
            if !key.value().starts_with(prefix) {
                break;
            }
            keys.insert(key.value().to_string(), value.value().1);
        }
        let history = txn
            .open_table(HISTORY)
            .map_err(db(path, "opening the history table"))?;
        for entry in history
            .range(revision + 1..)
            .map_err(db(path, "reading history"))?
            .rev()
        {
            let (at, bytes) = entry.map_err(db(path, "reading history"))?;
            undo(
                &mut keys,
                &decode_changes(bytes.value(), at.value(), path)?,
                prefix,
            );
        }
        Ok(keys)
    }

    /// The batches under `prefix` from revision `from` on, from the persisted history.
    fn history(&self, prefix: &str, from: Revision) -> Result<VecDeque<Batch>, StoreError> {
        let path = &self.path;
        let txn = self.read("reading history")?;
        let current = self.counter(&txn, REVISION)?;
        let compacted = self.counter(&txn, COMPACTED)?;
        if from <= compacted {
            return Err(StoreError::Compacted {
                prefix: prefix.to_string(),
                requested: from,
                oldest: compacted + 1,
            });
        }
        if from > current + 1 {
            return Err(StoreError::FutureRevision {
                requested: from,
                current,
            });
        }
        let history = txn
            .open_table(HISTORY)
            .map_err(db(path, "opening the history table"))?;
        let mut batches = VecDeque::new();
        for entry in history.range(from..).map_err(db(path, "reading history"))? {
            let (at, bytes) = entry.map_err(db(path, "reading history"))?;
            let changes = decode_changes(bytes.value(), at.value(), path)?;
            batches.push_back(batch(at.value(), &changes, prefix));
        }
        Ok(batches)
    }

    /// Deletes every expired lease and its keys, as one revision.
    fn expire_leases(&self) -> Result<(), StoreError> {
        let now = now_ms();
        let path = &self.path;
        {
            let txn = self.read("looking for expired leases")?;
            let leases = txn
                .open_table(LEASES)
                .map_err(db(path, "opening the leases table"))?;
            let mut any = false;
            for entry in leases.iter().map_err(db(path, "reading leases"))? {
                let (_, value) = entry.map_err(db(path, "reading leases"))?;
                any |= value.value().1 <= now;
            }
            if !any {
                return Ok(());
            }
        }
        self.write("expiring leases", |tables, _| {
            let mut expired = Vec::new();
            for entry in tables.leases.iter().map_err(db(path, "reading leases"))? {
                let (id, value) = entry.map_err(db(path, "reading leases"))?;
                if value.value().1 <= now {
                    expired.push(LeaseId(id.value()));
                }
            }
            let mut changes = Vec::new();
            for lease in expired {
                tracing::debug!(%lease, "lease expired");
                changes.extend(end_lease(tables, lease, path)?);
            }
            Ok(Some(changes))
        })
        .map(drop)
    }
}

/// Removes `lease` and deletes its keys.
fn end_lease(
    tables: &mut Tables<'_>,
    lease: LeaseId,
    path: &Path,
) -> Result<Vec<Change>, StoreError> {
    let mut changes = Vec::new();
    for key in tables.lease_keys(lease, path)? {
        changes.extend(tables.delete(&key, path)?);
    }
    tables
        .leases
        .remove(lease.0)
        .map_err(db(path, "removing a lease"))?;
    Ok(changes)
}

/// Milliseconds since the Unix epoch: lease deadlines survive a restart.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Expires leases until the store is dropped.
async fn reap(store: Weak<Inner>) {
    loop {
        tokio::time::sleep(REAP_INTERVAL).await;
        let Some(inner) = store.upgrade() else { return };
        let expired = tokio::task::spawn_blocking(move || inner.expire_leases()).await;
        match expired {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "expiring leases failed"),
            Err(error) => tracing::warn!(%error, "the lease reaper's worker failed"),
        }
    }
}

#[async_trait::async_trait]
impl Store for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded store {}", self.inner.path.display())
    }

    async fn get(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let key = key.to_string();
        self.blocking(move |inner| {
            let path = &inner.path;
            let txn = inner.read("reading a key")?;
            let kv = txn
                .open_table(KV)
                .map_err(db(path, "opening the kv table"))?;
            Ok(kv
                .get(key.as_str())
                .map_err(db(path, "reading a key"))?
                .map(|value| item(&key, value.value())))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let prefix = prefix.to_string();
        self.blocking(move |inner| inner.list(&prefix)).await
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        check_ops(&ops)?;
        self.blocking(move |inner| {
            let path = inner.path.clone();
            inner.write("a transaction", |tables, revision| {
                tables.apply(&ops, revision, now_ms(), &path).map(Some)
            })
        })
        .await
    }

    fn watch(&self, prefix: &str, from: Revision) -> WatchStream {
        watch::watch(self.clone(), prefix, from)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let ttl_ms = ttl.as_millis() as u64;
        let granted = Arc::new(Mutex::new(None));
        let out = granted.clone();
        self.blocking(move |inner| {
            let path = inner.path.clone();
            inner.write("granting a lease", |tables, _| {
                let id = tables.counter(LEASE_SEQ, &path)? + 1;
                tables
                    .meta
                    .insert(LEASE_SEQ, id)
                    .map_err(db(&path, "writing the lease sequence"))?;
                tables
                    .leases
                    .insert(id as i64, (ttl_ms, now_ms() + ttl_ms))
                    .map_err(db(&path, "writing a lease"))?;
                *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(LeaseId(id as i64));
                Ok(None)
            })
        })
        .await?;
        let id = granted.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(id.expect("a committed grant set its id"))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        let ttl = Arc::new(Mutex::new(0));
        let out = ttl.clone();
        self.blocking(move |inner| {
            let path = inner.path.clone();
            inner.write("keeping a lease alive", |tables, _| {
                let now = now_ms();
                let found = tables
                    .leases
                    .get(lease.0)
                    .map_err(db(&path, "reading a lease"))?
                    .map(|v| v.value());
                match found {
                    Some((ttl_ms, deadline)) if deadline > now => {
                        tables
                            .leases
                            .insert(lease.0, (ttl_ms, now + ttl_ms))
                            .map_err(db(&path, "writing a lease"))?;
                        *out.lock().unwrap_or_else(|p| p.into_inner()) = ttl_ms;
                        Ok(None)
                    }
                    _ => Err(StoreError::LeaseNotFound { lease }),
                }
            })
        })
        .await?;
        let ttl_ms = *ttl.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Duration::from_millis(ttl_ms))
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.blocking(move |inner| {
            let path = inner.path.clone();
            inner.write("revoking a lease", |tables, _| {
                let exists = tables
                    .leases
                    .get(lease.0)
                    .map_err(db(&path, "reading a lease"))?
                    .is_some();
                if !exists {
                    return Err(StoreError::LeaseNotFound { lease });
                }
                end_lease(tables, lease, &path).map(Some)
            })
        })
        .await
        .map(drop)
    }
}

#[async_trait::async_trait]
impl ChangeFeed for EmbeddedStore {
    async fn keys_at(
        &self,
        prefix: &str,
        revision: Revision,
    ) -> Result<BTreeMap<String, Revision>, StoreError> {
        let prefix = prefix.to_string();
        self.blocking(move |inner| inner.keys_at(&prefix, revision))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        Store::list(self, prefix).await
    }

    async fn changes(&self, prefix: &str, from: Revision) -> Result<RawChanges, StoreError> {
        // Subscribe before reading the history, so no commit falls between the two.
        let commits = self.inner.commits.subscribe();
        let owned = prefix.to_string();
        let replay = self
            .blocking(move |inner| inner.history(&owned, from))
            .await?;
        let follow = Follow {
            store: self.clone(),
            prefix: prefix.to_string(),
            commits,
            pending: replay,
            next: from,
        };
        Ok(Box::pin(futures::stream::unfold(
            follow,
            |mut follow| async move { follow.next_batch().await.map(|batch| (batch, follow)) },
        )))
    }
}

/// A watcher's position in the history and the live commits.
struct Follow {
    store: EmbeddedStore,
    prefix: String,
    commits: broadcast::Receiver<Arc<Committed>>,
    pending: VecDeque<Batch>,
    /// The next revision to deliver.
    next: Revision,
}

impl Follow {
    /// The next batch: replayed history first, then live commits; after falling behind
    /// the broadcast, the history again. `None` once the store is gone.
    async fn next_batch(&mut self) -> Option<Result<Batch, StoreError>> {
        loop {
            if let Some(batch) = self.pending.pop_front() {
                if batch.revision < self.next {
                    continue;
                }
                self.next = batch.revision + 1;
                return Some(Ok(batch));
            }
            match self.commits.recv().await {
                Ok(committed) => {
                    if committed.revision >= self.next {
                        self.pending.push_back(batch(
                            committed.revision,
                            &committed.changes,
                            &self.prefix,
                        ));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let (prefix, from) = (self.prefix.clone(), self.next);
                    match self
                        .store
                        .blocking(move |inner| inner.history(&prefix, from))
                        .await
                    {
                        Ok(batches) => self.pending = batches,
                        Err(error) => return Some(Err(error)),
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
