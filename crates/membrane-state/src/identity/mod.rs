//! Security identities in the store: one number per set of labels, the same on every
//! node, and a record of which nodes use each one so that unused ones can be collected.
//!
//! Three kinds of keys hold an identity:
//!
//! - `identities/id/<n>`: its labels, a sorted JSON array of strings (what policy reads);
//! - `identities/labels/<hash>`: its number;
//! - `identities/users/<n>/<node>`: one per node using it, attached to that node's lease.
//!
//! A new identity's two keys and its first user record are written in one transaction, so
//! two nodes racing for the same labels agree on one number and two nodes racing for
//! different labels never share one. Every later use rewrites `id/<n>` (with the same
//! value) under compare-and-swap in the same transaction as its user record: the key's
//! revision changes whenever a user arrives. [`IdentityCollector`] deletes an identity only
//! at the revision it saw unused for the whole grace period, so it never deletes one that
//! gained a user meanwhile, and a user arriving just after the deletion fails its
//! compare-and-swap and allocates again.

mod collect;

pub use collect::IdentityCollector;

use crate::error::StoreError;
use crate::keys;
use crate::store::{LeaseId, Op, Precondition, Store};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::ops::RangeInclusive;

/// The numbers handed out to labels; those below are reserved (host 1, world 2, ...).
pub const IDENTITY_RANGE: RangeInclusive<u32> = 256..=65535;

/// How often one call starts over when racing writers keep changing what it read.
const ATTEMPTS: usize = 16;

/// An identity and whether this call created it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocatedIdentity {
    /// The number.
    pub id: u32,
    /// True when these labels had no identity before this call.
    pub created: bool,
}

/// A node using identities: its use records live as long as its lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityUser {
    /// The node's name.
    pub node: String,
    /// The lease its use records are attached to.
    pub lease: LeaseId,
}

impl IdentityUser {
    /// The write recording that this user uses `id`.
    fn record(&self, id: u32) -> Op {
        Op::Put {
            key: keys::identity_user(id, &self.node),
            value: Vec::new(),
            precondition: Precondition::Any,
            lease: Some(self.lease),
        }
    }
}

/// The hash naming a set of labels in the store: SHA-256 of the labels in order, one per
/// line, in hex.
pub fn labels_hash(labels: &BTreeSet<String>) -> String {
    let mut hasher = Sha256::new();
    for label in labels {
        hasher.update(label.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The identity of `labels`, its use by `user` recorded: the existing one, or the first
/// free number of [`IDENTITY_RANGE`] claimed together with the labels' hash.
pub async fn allocate_identity<S: Store + ?Sized>(
    store: &S,
    labels: &BTreeSet<String>,
    user: &IdentityUser,
) -> Result<AllocatedIdentity, StoreError> {
    let labels_key = keys::identity_labels(&labels_hash(labels));
    let encoded = encode(labels);
    let mut tried = 0;
    for _ in 0..ATTEMPTS {
        if let Some(item) = store.get(&labels_key).await? {
            let id = parse_id(&labels_key, &item.value)?;
            if record_use(store, id, &encoded, user).await? {
                return Ok(AllocatedIdentity { id, created: false });
            }
            // Collected between the two reads: allocate afresh.
            continue;
        }
        let taken: BTreeSet<String> = store
            .list(keys::IDENTITY_IDS)
            .await?
            .items
            .into_iter()
            .map(|item| item.key)
            .collect();
        let mut labels_taken = false;
        for id in IDENTITY_RANGE {
            let id_key = keys::identity_id(id);
            if taken.contains(&id_key) {
                continue;
            }
            tried += 1;
            let claim = vec![
                Op::put(id_key.clone(), encoded.clone(), Precondition::Absent),
                Op::put(labels_key.clone(), id.to_string(), Precondition::Absent),
                user.record(id),
            ];
            match store.transaction(claim).await {
                Ok(_) => return Ok(AllocatedIdentity { id, created: true }),
                // Someone gave these labels a number first: use theirs.
                Err(StoreError::Conflict { key, .. }) if key == labels_key => {
                    labels_taken = true;
                    break;
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error),
            }
        }
        if !labels_taken {
            return Err(StoreError::Exhausted {
                prefix: keys::IDENTITY_IDS.to_string(),
                tried,
            });
        }
    }
    Err(StoreError::Contended {
        key: labels_key,
        attempts: ATTEMPTS,
    })
}

/// Records that `user` uses identity `id` of `labels` (again, after its lease was lost).
/// False when `id` no longer names these labels (it was collected): allocate instead.
pub async fn record_identity_use<S: Store + ?Sized>(
    store: &S,
    id: u32,
    labels: &BTreeSet<String>,
    user: &IdentityUser,
) -> Result<bool, StoreError> {
    record_use(store, id, &encode(labels), user).await
}

/// Removes `node`'s record of using `id`; the identity is collected once nobody has used
/// it for the collector's grace period.
pub async fn release_identity_use<S: Store + ?Sized>(
    store: &S,
    id: u32,
    node: &str,
) -> Result<(), StoreError> {
    store
        .delete(&keys::identity_user(id, node), Precondition::Any)
        .await
        .map(drop)
}

/// Writes `user`'s record of `id` together with a compare-and-swap rewrite of the
/// identity's key, while that key still holds `encoded`. False when it does not.
async fn record_use<S: Store + ?Sized>(
    store: &S,
    id: u32,
    encoded: &[u8],
    user: &IdentityUser,
) -> Result<bool, StoreError> {
    let id_key = keys::identity_id(id);
    for _ in 0..ATTEMPTS {
        let Some(item) = store.get(&id_key).await? else {
            return Ok(false);
        };
        if item.value != encoded {
            return Ok(false);
        }
        let ops = vec![
            Op::put(
                id_key.clone(),
                item.value,
                Precondition::Revision(item.mod_revision),
            ),
            user.record(id),
        ];
        match store.transaction(ops).await {
            Ok(_) => return Ok(true),
            // Another user arrived (or a collector removed it): read it again.
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(StoreError::Contended {
        key: id_key,
        attempts: ATTEMPTS,
    })
}

fn encode(labels: &BTreeSet<String>) -> Vec<u8> {
    serde_json::to_vec(labels).expect("labels encode as JSON")
}

fn parse_id(key: &str, value: &[u8]) -> Result<u32, StoreError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| StoreError::Invalid {
            what: key.to_string(),
            reason: "an identity's labels key does not hold a number",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labels_hash_depends_on_every_label_and_not_on_insertion_order() {
        let a: BTreeSet<String> = ["k8s:app=web", "k8s:ns=shop"].map(String::from).into();
        let b: BTreeSet<String> = ["k8s:ns=shop", "k8s:app=web"].map(String::from).into();
        let c: BTreeSet<String> = ["k8s:app=web"].map(String::from).into();
        assert_eq!(labels_hash(&a), labels_hash(&b));
        assert_ne!(labels_hash(&a), labels_hash(&c));
        assert_eq!(labels_hash(&a).len(), 64);
    }
}
