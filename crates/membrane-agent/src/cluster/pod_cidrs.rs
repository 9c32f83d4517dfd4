//! The node's pod CIDRs: as configured, or taken from the cluster pools through the
//! kvstore with compare-and-swap (no two nodes get the same one), and kept in the state
//! directory so that a restarted node keeps its CIDRs even while the kvstore is down.

use super::ClusterError;
use crate::config::AgentConfig;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use membrane_state::{Backoff, Store, StoreError, allocate_unique, keys};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File of the allocated pod CIDRs, in the state directory.
pub const FILE: &str = "pod-cidrs.json";

/// The node's pod CIDRs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodCidrs {
    /// The IPv4 pod CIDR.
    pub ipv4: Option<Ipv4Net>,
    /// The IPv6 pod CIDR.
    pub ipv6: Option<Ipv6Net>,
}

/// What a pod CIDR key holds: who claimed it, from which pool. The same node asking again
/// from the same pool writes the same bytes and so gets its own CIDR back.
#[derive(Serialize)]
struct Claim<'a> {
    node: &'a str,
    pool: String,
}

/// The node's pod CIDRs: the configured ones, else those persisted by an earlier start
/// (when they still fit the pool), else new ones from the pools. Allocation waits, with
/// backoff, for an unreachable kvstore, saying so.
pub async fn resolve(config: &AgentConfig, store: &dyn Store) -> Result<PodCidrs, ClusterError> {
    let path = config.state.dir.join(FILE);
    let saved = read(&path)?;
    let ipam = &config.ipam;
    let node = &config.node.name;
    let ipv4 = match (ipam.ipv4_pod_cidr, ipam.cluster_pool_ipv4) {
        (Some(cidr), _) => Some(cidr),
        (None, Some(pool)) => {
            let mask = ipam.cluster_pool_ipv4_mask_size;
            match saved
                .ipv4
                .filter(|c| pool.contains(c) && c.prefix_len() == mask)
            {
                Some(cidr) => Some(cidr),
                None => match allocate(store, node, IpNet::V4(pool), mask).await? {
                    IpNet::V4(cidr) => Some(cidr),
                    IpNet::V6(_) => unreachable!("an IPv4 pool has IPv4 subnets"),
                },
            }
        }
        (None, None) => None,
    };
    let ipv6 = match (ipam.ipv6_pod_cidr, ipam.cluster_pool_ipv6) {
        (Some(cidr), _) => Some(cidr),
        (None, Some(pool)) => {
            let mask = ipam.cluster_pool_ipv6_mask_size;
            match saved
                .ipv6
                .filter(|c| pool.contains(c) && c.prefix_len() == mask)
            {
                Some(cidr) => Some(cidr),
                None => match allocate(store, node, IpNet::V6(pool), mask).await? {
                    IpNet::V6(cidr) => Some(cidr),
                    IpNet::V4(_) => unreachable!("an IPv6 pool has IPv6 subnets"),
                },
            }
        }
        (None, None) => None,
    };
    let resolved = PodCidrs { ipv4, ipv6 };
    if resolved != saved {
        write(&path, &resolved)?;
    }
    Ok(resolved)
}

/// Claims a `/mask` subnet of `pool` for `node`, retrying while the store is unreachable.
async fn allocate(
    store: &dyn Store,
    node: &str,
    pool: IpNet,
    mask: u8,
) -> Result<IpNet, ClusterError> {
    let claim = serde_json::to_vec(&Claim {
        node,
        pool: pool.to_string(),
    })
    .expect("a claim encodes");
    let bad_pool = || ClusterError::BadPool {
        pool: pool.to_string(),
        mask,
    };
    let mut backoff = Backoff::new();
    loop {
        let candidates = pool
            .subnets(mask)
            .map_err(|_| bad_pool())?
            .map(keys::pod_cidr);
        match allocate_unique(store, keys::POD_CIDRS, candidates, &claim).await {
            Ok(claimed) => {
                let text = keys::suffix(&claimed.key, keys::POD_CIDRS).unwrap_or_default();
                let cidr: IpNet = text.parse().map_err(|_| bad_pool())?;
                tracing::info!(%cidr, %pool, reclaimed = claimed.reclaimed, "pod CIDR taken from the cluster pool");
                return Ok(cidr);
            }
            Err(error @ StoreError::Unavailable { .. }) => {
                let delay = backoff.next_delay();
                tracing::warn!(%pool, error = %error, retry_in = ?delay, "cannot take a pod CIDR: the kvstore is unreachable");
                tokio::time::sleep(delay).await;
            }
            Err(source) => {
                return Err(ClusterError::Store {
                    store: store.describe(),
                    operation: "allocating a pod CIDR",
                    source,
                });
            }
        }
    }
}

fn read(path: &Path) -> Result<PodCidrs, ClusterError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|source| ClusterError::CorruptPodCidrFile {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PodCidrs::default()),
        Err(source) => Err(ClusterError::PodCidrFile {
            operation: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes the file atomically: a temporary file renamed over it.
fn write(path: &Path, cidrs: &PodCidrs) -> Result<(), ClusterError> {
    let err = |operation| {
        move |source| ClusterError::PodCidrFile {
            operation,
            path: path.to_path_buf(),
            source,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err("create the directory of"))?;
    }
    let temporary: PathBuf = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(cidrs).expect("pod CIDRs encode");
    std::fs::write(&temporary, bytes).map_err(err("write"))?;
    std::fs::rename(&temporary, path).map_err(err("replace"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;
    use clap::Parser as _;
    use membrane_state::EmbeddedStore;

    fn config(dir: &Path, node: &str, extra: &[&str]) -> AgentConfig {
        let mut args = vec![
            "membrane-agent",
            "--node-name",
            node,
            "--uplink",
            "eth0",
            "--state-dir",
            dir.to_str().unwrap(),
            "--cluster-pool-ipv4",
            "10.200.0.0/23",
            "--cluster-pool-ipv6",
            "fd00:200::/63",
        ];
        args.extend_from_slice(extra);
        AgentConfig::load(&Cli::try_parse_from(args).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn nodes_get_distinct_cidrs_and_keep_them_across_restarts() {
        let shared = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(shared.path()).await.unwrap();
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = resolve(&config(a_dir.path(), "a", &[]), &store)
            .await
            .unwrap();
        let b = resolve(&config(b_dir.path(), "b", &[]), &store)
            .await
            .unwrap();
        assert_ne!(a.ipv4, b.ipv4);
        assert_ne!(a.ipv6, b.ipv6);
        assert_eq!(a.ipv4.unwrap().prefix_len(), 24);
        assert_eq!(a.ipv6.unwrap().prefix_len(), 64);
        // Restarted with its file: the same CIDRs, without asking the store.
        assert_eq!(
            resolve(&config(a_dir.path(), "a", &[]), &store)
                .await
                .unwrap(),
            a
        );
        // Restarted without its file (a new disk): the store gives its claims back.
        let fresh = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve(&config(fresh.path(), "a", &[]), &store)
                .await
                .unwrap(),
            a
        );
        // The pools hold two of each: a third node finds them all taken.
        let c_dir = tempfile::tempdir().unwrap();
        let err = resolve(&config(c_dir.path(), "c", &[]), &store)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                ClusterError::Store {
                    source: StoreError::Exhausted { .. },
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_configured_cidr_wins_over_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).await.unwrap();
        let config = config(dir.path(), "a", &["--ipv4-pod-cidr", "10.9.0.0/24"]);
        let cidrs = resolve(&config, &store).await.unwrap();
        assert_eq!(cidrs.ipv4, Some("10.9.0.0/24".parse().unwrap()));
        let claims = store.list(keys::POD_CIDRS).await.unwrap();
        assert_eq!(claims.items.len(), 1, "only the IPv6 CIDR was claimed");
    }
}
