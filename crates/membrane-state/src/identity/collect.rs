//! Collecting identities nobody uses: deleted once they have had no user record for a
//! grace period, with compare-and-swap so that a user arriving meanwhile keeps them.

use crate::error::StoreError;
use crate::keys;
use crate::store::{Item, Op, Precondition, Revision, Store};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Since when an identity has been seen without users, at one revision of its key.
#[derive(Clone, Copy, Debug)]
struct Unused {
    revision: Revision,
    since: Instant,
}

/// Remembers, across passes, which identities have had no users since when.
///
/// The clock is this process's: an identity seen unused for the first time (or at a new
/// revision, which means a user came meanwhile) starts its grace period at that pass, so
/// a collector that just started never deletes anything before a whole grace period.
#[derive(Debug)]
pub struct IdentityCollector {
    grace: Duration,
    unused: HashMap<u32, Unused>,
}

impl IdentityCollector {
    /// A collector deleting identities unused for `grace`.
    pub fn new(grace: Duration) -> IdentityCollector {
        IdentityCollector {
            grace,
            unused: HashMap::new(),
        }
    }

    /// One pass: notes which identities have no users and deletes those that have had
    /// none, at an unchanged revision, for the grace period. Returns the deleted numbers.
    pub async fn collect<S: Store + ?Sized>(&mut self, store: &S) -> Result<Vec<u32>, StoreError> {
        let identities = store.list(keys::IDENTITY_IDS).await?;
        let used: BTreeSet<u32> = store
            .list(keys::IDENTITY_USERS)
            .await?
            .items
            .iter()
            .filter_map(|item| keys::parse_identity_user(&item.key))
            .collect();
        let now = Instant::now();
        let mut unused = HashMap::new();
        let mut deleted = Vec::new();
        for item in identities.items {
            let Some(id) = keys::suffix(&item.key, keys::IDENTITY_IDS).and_then(|n| n.parse().ok())
            else {
                continue;
            };
            if used.contains(&id) {
                continue;
            }
            let since = match self.unused.get(&id) {
                Some(seen) if seen.revision == item.mod_revision => seen.since,
                _ => now,
            };
            if now.duration_since(since) < self.grace {
                unused.insert(
                    id,
                    Unused {
                        revision: item.mod_revision,
                        since,
                    },
                );
            } else if delete(store, id, &item).await? {
                tracing::info!(identity = id, "collected an identity nobody uses");
                deleted.push(id);
            }
        }
        self.unused = unused;
        Ok(deleted)
    }
}

/// Deletes identity `id` (its key as `item` shows it) and its labels key, if the identity's
/// key is still at `item`'s revision. False when it changed: a user arrived.
async fn delete<S: Store + ?Sized>(store: &S, id: u32, item: &Item) -> Result<bool, StoreError> {
    let mut ops = vec![Op::delete(
        item.key.clone(),
        Precondition::Revision(item.mod_revision),
    )];
    if let Ok(labels) = serde_json::from_slice::<BTreeSet<String>>(&item.value) {
        let labels_key = keys::identity_labels(&super::labels_hash(&labels));
        if let Some(named) = store.get(&labels_key).await?
            && named.value == id.to_string().as_bytes()
        {
            ops.push(Op::delete(
                labels_key,
                Precondition::Revision(named.mod_revision),
            ));
        }
    }
    match store.transaction(ops).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{IdentityUser, allocate_identity, release_identity_use};
    use crate::{EmbeddedStore, Store};

    #[tokio::test]
    async fn a_deletion_decided_before_a_new_user_arrived_does_not_happen() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).await.unwrap();
        let user = IdentityUser {
            node: "a".to_string(),
            lease: store.grant_lease(Duration::from_secs(30)).await.unwrap(),
        };
        let labels: BTreeSet<String> = ["k8s:app=web".to_string()].into();
        let id = allocate_identity(&store, &labels, &user).await.unwrap().id;
        release_identity_use(&store, id, "a").await.unwrap();
        // The collector read the identity unused ...
        let seen = store.get(&keys::identity_id(id)).await.unwrap().unwrap();
        // ... and a user arrives before its delete.
        let again = allocate_identity(&store, &labels, &user).await.unwrap();
        assert_eq!(again.id, id);
        assert!(!delete(&store, id, &seen).await.unwrap());
        assert!(store.get(&keys::identity_id(id)).await.unwrap().is_some());
        let current = store.get(&keys::identity_id(id)).await.unwrap().unwrap();
        assert!(delete(&store, id, &current).await.unwrap());
        assert!(
            store
                .list(keys::IDENTITY_LABELS)
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }
}
