//! Claiming one key out of many candidates with compare-and-swap, so that two agents
//! racing for a pod CIDR or an identity number never get the same one.

use crate::error::StoreError;
use crate::store::{Precondition, Revision, Store};

/// The key an allocation claimed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The claimed key.
    pub key: String,
    /// The revision that wrote the claim (or last changed it, when reclaimed).
    pub revision: Revision,
    /// True when the key already held this claim (an agent restarting gets its own back).
    pub reclaimed: bool,
}

/// Claims the first of `candidates` (keys under `prefix`) that nobody holds, by writing
/// `claim` to it only if it is absent. A key under `prefix` that already holds exactly
/// `claim` is taken back instead, so the same claimant always gets the same key.
///
/// Candidates seen taken in one listing of `prefix` are skipped without a write; a
/// candidate taken by someone else between that listing and the write fails its
/// precondition and the next one is tried. Two claimants therefore never hold one key.
pub async fn allocate_unique<S, I>(
    store: &S,
    prefix: &str,
    candidates: I,
    claim: &[u8],
) -> Result<Claimed, StoreError>
where
    S: Store + ?Sized,
    I: IntoIterator<Item = String>,
    I::IntoIter: Send,
{
    let listing = store.list(prefix).await?;
    if let Some(mine) = listing.items.iter().find(|item| item.value == claim) {
        return Ok(Claimed {
            key: mine.key.clone(),
            revision: mine.mod_revision,
            reclaimed: true,
        });
    }
    let taken: std::collections::HashSet<&str> =
        listing.items.iter().map(|item| item.key.as_str()).collect();
    let mut tried = 0;
    for key in candidates {
        if !key.starts_with(prefix) {
            return Err(StoreError::Invalid {
                what: key,
                reason: "an allocation candidate must lie under the allocation's prefix",
            });
        }
        if taken.contains(key.as_str()) {
            continue;
        }
        tried += 1;
        match store.put(&key, claim.to_vec(), Precondition::Absent).await {
            Ok(revision) => {
                return Ok(Claimed {
                    key,
                    revision,
                    reclaimed: false,
                });
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(StoreError::Exhausted {
        prefix: prefix.to_string(),
        tried,
    })
}
