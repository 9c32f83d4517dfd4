//! The [`Store`] trait and the values it speaks in: items, preconditions, operations,
//! events and leases.

use crate::error::StoreError;
use futures::stream::BoxStream;
use std::fmt;
use std::time::Duration;

/// A store revision: it grows by one with every transaction that changes something, and
/// every key remembers the revision that last changed it.
pub type Revision = u64;

/// One key and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// The revision that created the key (since it was last absent).
    pub create_revision: Revision,
    /// The revision that last changed the key.
    pub mod_revision: Revision,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// The items under a prefix, read at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// The items, ordered by key.
    pub items: Vec<Item>,
    /// The store's revision when they were read: watch from `revision + 1` to see every
    /// later change.
    pub revision: Revision,
}

/// What must hold of a key for a write to it to happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Nothing: the write happens whatever the key holds.
    Any,
    /// The key does not exist.
    Absent,
    /// The key exists and was last changed at this revision.
    Revision(Revision),
}

impl fmt::Display for Precondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Precondition::Any => write!(f, "anything"),
            Precondition::Absent => write!(f, "it absent"),
            Precondition::Revision(revision) => write!(f, "it at revision {revision}"),
        }
    }
}

impl Precondition {
    /// Whether the precondition holds of a key last changed at `found` (`None`: absent).
    pub fn holds(&self, found: Option<Revision>) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::Absent => found.is_none(),
            Precondition::Revision(revision) => found == Some(*revision),
        }
    }
}

/// A lease: keys attached to it are deleted when it expires, that is when nobody keeps it
/// alive for its time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Sets a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// What must hold of the key first.
        precondition: Precondition,
        /// The lease the key is attached to, if any.
        lease: Option<LeaseId>,
    },
    /// Removes a key (absent keys stay absent).
    Delete {
        /// The key.
        key: String,
        /// What must hold of the key first.
        precondition: Precondition,
    },
}

impl Op {
    /// Sets `key` to `value` if `precondition` holds, with no lease.
    pub fn put(
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        precondition: Precondition,
    ) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            precondition,
            lease: None,
        }
    }

    /// Removes `key` if `precondition` holds.
    pub fn delete(key: impl Into<String>, precondition: Precondition) -> Op {
        Op::Delete {
            key: key.into(),
            precondition,
        }
    }

    /// The key the operation writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }

    /// The operation's precondition.
    pub fn precondition(&self) -> Precondition {
        match self {
            Op::Put { precondition, .. } | Op::Delete { precondition, .. } => *precondition,
        }
    }
}

/// One change of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The key was set.
    Put {
        /// The key.
        key: String,
        /// Its new value.
        value: Vec<u8>,
        /// The revision of the change.
        revision: Revision,
    },
    /// The key was deleted (or its lease expired).
    Delete {
        /// The key.
        key: String,
        /// The revision of the change.
        revision: Revision,
    },
}

impl Event {
    /// The key that changed.
    pub fn key(&self) -> &str {
        match self {
            Event::Put { key, .. } | Event::Delete { key, .. } => key,
        }
    }

    /// The revision of the change.
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { revision, .. } | Event::Delete { revision, .. } => *revision,
        }
    }
}

/// What a watch stream reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A change, in revision order, each exactly once.
    Change(Event),
    /// The store became unreachable; the stream keeps retrying and reports
    /// [`WatchEvent::Resynced`] once it has caught up again.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// The stream caught up after a disconnection, or after a re-list when the history it
    /// needed was compacted; every change up to `revision` has been reported (changes lost
    /// to compaction are reported as the difference between what the watcher had and what
    /// the store holds).
    Resynced {
        /// The revision the watcher is now at.
        revision: Revision,
    },
}

/// A watch: changes and connection states, ending with an error only when it cannot go on
/// (the starting revision is compacted).
pub type WatchStream = BoxStream<'static, Result<WatchEvent, StoreError>>;

/// A key-value store with revisions, compare-and-swap, transactions, watches and leases.
///
/// The trait is object-safe (through `async_trait`) so that the agent chooses the backend
/// at run time from its configuration and hands `Arc<dyn Store>` to every component; the
/// one allocation per call is nothing next to a disk write or a network round trip.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// A description of the backend for logs and errors, such as `etcd at http://…`.
    fn describe(&self) -> String;

    /// The item at `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Item>, StoreError>;

    /// Every item whose key starts with `prefix`, and the revision they were read at.
    async fn list(&self, prefix: &str) -> Result<Listing, StoreError>;

    /// Applies every operation, or none when one precondition fails
    /// ([`StoreError::Conflict`] names the first such key). Returns the store's revision
    /// after the transaction.
    async fn transaction(&self, ops: Vec<Op>) -> Result<Revision, StoreError>;

    /// Sets `key` if `precondition` holds; returns the new revision.
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        precondition: Precondition,
    ) -> Result<Revision, StoreError> {
        self.transaction(vec![Op::put(key, value, precondition)])
            .await
    }

    /// Sets `key`, attached to `lease`, if `precondition` holds; returns the new revision.
    async fn put_with_lease(
        &self,
        key: &str,
        value: Vec<u8>,
        precondition: Precondition,
        lease: LeaseId,
    ) -> Result<Revision, StoreError> {
        self.transaction(vec![Op::Put {
            key: key.to_string(),
            value,
            precondition,
            lease: Some(lease),
        }])
        .await
    }

    /// Removes `key` if `precondition` holds; returns the store's revision.
    async fn delete(&self, key: &str, precondition: Precondition) -> Result<Revision, StoreError> {
        self.transaction(vec![Op::delete(key, precondition)]).await
    }

    /// Every change under `prefix` from revision `from` on. The watcher is taken to know
    /// the state at `from - 1` (typically `from` is a listing's revision plus one).
    fn watch(&self, prefix: &str, from: Revision) -> WatchStream;

    /// A new lease that expires `ttl` after it was last kept alive.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError>;

    /// Keeps `lease` alive for another time to live, which it returns.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError>;

    /// Ends `lease` now, deleting the keys attached to it.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError>;
}

/// Refuses a transaction that names a key twice (etcd refuses it too, so both backends
/// behave alike), or that requires revision 0, which no key ever has (etcd would take it
/// for "absent").
pub(crate) fn check_ops(ops: &[Op]) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::new();
    for op in ops {
        if op.precondition() == Precondition::Revision(0) {
            return Err(StoreError::Invalid {
                what: op.key().to_string(),
                reason: "no key is ever at revision 0: require Absent instead",
            });
        }
        if !seen.insert(op.key()) {
            return Err(StoreError::DuplicateKey {
                key: op.key().to_string(),
            });
        }
    }
    Ok(())
}
