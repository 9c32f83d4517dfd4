//! Security identities in the store: one number per set of labels, the same on every
//! node. Two keys hold one identity, `identities/id/<n>` (its labels) and
//! `identities/labels/<hash>` (its number), written together in one transaction, so two
//! nodes racing for the same labels agree on one number and two nodes racing for
//! different labels never share one.

use crate::error::StoreError;
use crate::keys;
use crate::store::{Op, Precondition, Store};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::ops::RangeInclusive;

/// The numbers handed out to labels; those below are reserved (host 1, world 2, ...).
pub const IDENTITY_RANGE: RangeInclusive<u32> = 256..=65535;

/// An identity and whether this call created it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocatedIdentity {
    /// The number.
    pub id: u32,
    /// True when these labels had no identity before this call.
    pub created: bool,
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

/// The identity of `labels`: the existing one, or the first free number of
/// [`IDENTITY_RANGE`] claimed together with the labels' hash.
pub async fn allocate_identity<S: Store + ?Sized>(
    store: &S,
    labels: &BTreeSet<String>,
) -> Result<AllocatedIdentity, StoreError> {
    let labels_key = keys::identity_labels(&labels_hash(labels));
    let encoded = serde_json::to_vec(labels).expect("labels encode as JSON");
    let mut tried = 0;
    'fresh: loop {
        if let Some(item) = store.get(&labels_key).await? {
            return Ok(AllocatedIdentity {
                id: parse_id(&labels_key, &item.value)?,
                created: false,
            });
        }
        let taken: BTreeSet<String> = store
            .list(keys::IDENTITY_IDS)
            .await?
            .items
            .into_iter()
            .map(|item| item.key)
            .collect();
        for id in IDENTITY_RANGE {
            let id_key = keys::identity_id(id);
            if taken.contains(&id_key) {
                continue;
            }
            tried += 1;
            let claim = vec![
                Op::put(id_key.clone(), encoded.clone(), Precondition::Absent),
                Op::put(labels_key.clone(), id.to_string(), Precondition::Absent),
            ];
            match store.transaction(claim).await {
                Ok(_) => return Ok(AllocatedIdentity { id, created: true }),
                // Someone gave these labels a number first: use theirs.
                Err(StoreError::Conflict { key, .. }) if key == labels_key => continue 'fresh,
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error),
            }
        }
        return Err(StoreError::Exhausted {
            prefix: keys::IDENTITY_IDS.to_string(),
            tried,
        });
    }
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
