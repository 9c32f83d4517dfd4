//! Another node's share of the cluster state: identities allocated in the shared etcd
//! the way every agent allocates them ([`membrane_state::allocate_identity`], with its
//! use recorded on a lease of its own), so that this node's agent learns them by watch.

use crate::scale;
use anyhow::{Context, ensure};
use membrane_state::{EtcdStore, IdentityUser, Store, allocate_identity};
use membrane_testbed::Netns;
use std::time::{Duration, Instant};

/// The name the peer's use records carry.
const PEER: &str = "bench-peer";

/// The peer's lease: longer than any run, so that its identities stay in use (and are
/// never collected) until etcd goes with the bench.
const LEASE_TTL: Duration = Duration::from_secs(3600);

/// How often progress is reported.
const REPORT_EVERY: u32 = 1000;

/// Allocates the identities of `count` remote pods ([`scale::remote_identity`]) in the
/// etcd at `endpoint`, from inside `netns` (where etcd listens); returns how long it took.
pub fn allocate_identities(
    netns: &Netns,
    endpoint: String,
    count: u32,
) -> anyhow::Result<Duration> {
    netns
        .block_on(|| async move {
            let started = Instant::now();
            let store = EtcdStore::connect(std::slice::from_ref(&endpoint))
                .await
                .with_context(|| format!("connecting to etcd at {endpoint}"))?;
            let lease = store
                .grant_lease(LEASE_TTL)
                .await
                .context("granting the peer's lease")?;
            let user = IdentityUser {
                node: PEER.to_string(),
                lease,
            };
            for j in 0..count {
                let labels = scale::remote_identity(j);
                let allocated = allocate_identity(&store, &labels, &user)
                    .await
                    .with_context(|| format!("allocating the identity of {labels:?}"))?;
                ensure!(
                    allocated.created,
                    "the labels {labels:?} already had identity {}",
                    allocated.id
                );
                if (j + 1) % REPORT_EVERY == 0 {
                    eprintln!(
                        "  {} identities allocated ({:.1} s)",
                        j + 1,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Ok(started.elapsed())
        })
        .context("entering the namespace etcd listens in")?
}
