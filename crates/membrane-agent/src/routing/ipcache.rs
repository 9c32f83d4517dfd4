//! The ipcache shared through the kvstore: every local endpoint's addresses are published
//! under `/membrane/v1/ipcache/<ip>` with its identity and this node's underlay address,
//! attached to a lease of this node so that they vanish with it; every node programs the
//! entries of the other nodes into its datapath, writing only what changed.
//!
//! Publishing follows the endpoint manager: it runs at every change of the endpoints or
//! their identities, and otherwise every [`RESYNC_INTERVAL`] (or sooner, to keep the
//! lease alive).

use super::RoutingError;
use crate::agent::Agent;
use crate::agent::lock;
use crate::cluster::reflector::{DecodeError, Reflector};
use crate::endpoints::NodeDatapath;
use crate::node::NodeNetwork;
use ipnet::IpNet;
use membrane_datapath::Datapath;
use membrane_state::{Backoff, LeaseId, Precondition, Store, StoreError, keys};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the local endpoints are compared with what is published when nothing
/// changed: a safety net, since every change of the endpoints publishes at once.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(30);

/// What the kvstore holds for one pod address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpcacheRecord {
    /// The pod's security identity.
    pub identity: u32,
    /// The name of the node hosting it.
    pub node: String,
    /// That node's underlay address (the tunnel's remote end).
    pub host: IpAddr,
    /// The pod's namespace, when the runtime said (Cilium's `k8sNamespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The pod's name, when the runtime said (Cilium's `k8sPodName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

/// Decodes a stored record (for a [`Reflector`]).
pub fn decode(_key: &str, value: &[u8]) -> Result<IpcacheRecord, DecodeError> {
    Ok(serde_json::from_slice(value)?)
}

/// What the datapath holds for one remote prefix: identity and hosting node.
pub type Remote = (u32, IpAddr);

/// The entries of other nodes than `me`, as host prefixes.
pub fn remote_entries(records: &[(String, IpcacheRecord)], me: &str) -> BTreeMap<IpNet, Remote> {
    records
        .iter()
        .filter(|(_, record)| record.node != me)
        .filter_map(|(key, record)| {
            let ip: IpAddr = keys::suffix(key, keys::IPCACHE)?.parse().ok()?;
            Some((IpNet::from(ip), (record.identity, record.host)))
        })
        .collect()
}

/// What to write and what to remove to turn `had` into `want`.
pub fn changes<K: Ord + Clone, V: PartialEq + Clone>(
    had: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
) -> (Vec<(K, V)>, Vec<K>) {
    let writes = want
        .iter()
        .filter(|(key, value)| had.get(*key) != Some(*value))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let removals = had
        .keys()
        .filter(|key| !want.contains_key(*key))
        .cloned()
        .collect();
    (writes, removals)
}

/// Programs the other nodes' entries of `cache` into `datapath` until `token` is
/// cancelled: first after the cache's first listing (so a restart does not blank what the
/// pinned map holds), then at every change. Remote entries already in the map are
/// adopted and, when no longer in the store, removed.
pub async fn sync(
    datapath: Arc<Mutex<Datapath>>,
    cache: Arc<Reflector<IpcacheRecord>>,
    me: String,
    token: CancellationToken,
) {
    let mut changes_seen = cache.subscribe();
    let mut programmed: BTreeMap<IpNet, Remote> = match lock(&datapath).ipcache_entries() {
        Ok(entries) => entries
            .into_iter()
            .filter_map(|(prefix, identity, node)| Some((prefix, (identity, node?))))
            .collect(),
        Err(error) => {
            tracing::warn!(error = %crate::agent::chain(&error), "cannot read the pinned ipcache; rewriting it");
            BTreeMap::new()
        }
    };
    tokio::select! {
        () = token.cancelled() => return,
        _ = changes_seen.wait_for(|count| *count > 0) => {}
    }
    loop {
        let want = remote_entries(&cache.under(keys::IPCACHE), &me);
        let (writes, removals) = changes(&programmed, &want);
        if !writes.is_empty() || !removals.is_empty() {
            tracing::debug!(
                writes = writes.len(),
                removals = removals.len(),
                "ipcache changes"
            );
        }
        let mut failed = false;
        for (prefix, (identity, host)) in writes {
            match lock(&datapath).upsert_ipcache(prefix, identity, Some(host)) {
                Ok(()) => {
                    programmed.insert(prefix, (identity, host));
                }
                Err(error) => {
                    failed = true;
                    let error = RoutingError::Datapath {
                        operation: "writing",
                        prefix,
                        source: Box::new(error),
                    };
                    tracing::warn!(error = %crate::agent::chain(&error), "ipcache write failed");
                }
            }
        }
        for prefix in removals {
            match lock(&datapath).remove_ipcache(prefix) {
                Ok(()) => {
                    programmed.remove(&prefix);
                }
                Err(error) => {
                    failed = true;
                    let error = RoutingError::Datapath {
                        operation: "removing",
                        prefix,
                        source: Box::new(error),
                    };
                    tracing::warn!(error = %crate::agent::chain(&error), "ipcache removal failed");
                }
            }
        }
        let retry = if failed {
            Duration::from_secs(1)
        } else {
            Duration::MAX
        };
        tokio::select! {
            () = token.cancelled() => return,
            _ = changes_seen.changed() => {}
            () = tokio::time::sleep(retry) => {}
        }
    }
}

/// Publishes the addresses of `agent`'s endpoints as this node's (`me`, at `host`),
/// attached to a lease of `ttl` kept alive here, until `token` is cancelled: at every
/// change of the endpoints, and at least every [`RESYNC_INTERVAL`]. Only changes are
/// written; a lost lease (expired during an outage) is granted again and everything
/// republished; an unreachable store is retried with backoff.
pub async fn publish<D: NodeDatapath, N: NodeNetwork>(
    agent: Arc<Agent<D, N>>,
    store: Arc<dyn Store>,
    me: String,
    host: IpAddr,
    ttl: Duration,
    token: CancellationToken,
) {
    let mut lease: Option<(LeaseId, Instant)> = None;
    let mut published: BTreeMap<IpAddr, IpcacheRecord> = BTreeMap::new();
    let mut backoff = Backoff::new();
    let mut failing = false;
    let mut endpoints_changed = agent.endpoint_changes().await;
    loop {
        let step = publish_once(
            &agent,
            store.as_ref(),
            &me,
            host,
            ttl,
            &mut lease,
            &mut published,
        )
        .await;
        let wait = match step {
            Ok(()) => {
                if failing {
                    tracing::info!("ipcache entries are published again");
                    failing = false;
                }
                backoff.reset();
                RESYNC_INTERVAL.min(ttl / 3)
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(error = %crate::agent::chain(&error), "cannot publish the node's ipcache entries; retrying");
                    failing = true;
                }
                backoff.next_delay()
            }
        };
        tokio::select! {
            () = token.cancelled() => return,
            _ = endpoints_changed.changed(), if !failing => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

async fn publish_once<D: NodeDatapath, N: NodeNetwork>(
    agent: &Agent<D, N>,
    store: &dyn Store,
    me: &str,
    host: IpAddr,
    ttl: Duration,
    lease: &mut Option<(LeaseId, Instant)>,
    published: &mut BTreeMap<IpAddr, IpcacheRecord>,
) -> Result<(), RoutingError> {
    let failed = |operation| move |source| RoutingError::Store { operation, source };
    let id = match *lease {
        Some((id, renewed)) if renewed.elapsed() < ttl / 3 => id,
        Some((id, _)) => match store.keep_alive(id).await {
            Ok(_) => {
                *lease = Some((id, Instant::now()));
                id
            }
            Err(StoreError::LeaseNotFound { .. }) => {
                tracing::warn!(lease = %id, "the ipcache lease expired; publishing again");
                published.clear();
                grant(store, ttl, lease).await?
            }
            Err(source) => return Err(failed("keeping the ipcache lease alive")(source)),
        },
        None => {
            published.clear();
            grant(store, ttl, lease).await?
        }
    };
    let endpoints = agent
        .identified_endpoints()
        .await
        .map_err(|e| RoutingError::Endpoints {
            source: Box::new(e),
        })?;
    let mut want = BTreeMap::new();
    for (endpoint, identity) in endpoints {
        let registration = &endpoint.registration;
        let addresses = registration
            .ipv4
            .map(IpAddr::V4)
            .into_iter()
            .chain(registration.ipv6.map(IpAddr::V6));
        for ip in addresses {
            want.insert(
                ip,
                IpcacheRecord {
                    identity,
                    node: me.to_string(),
                    host,
                    namespace: registration.pod_namespace.clone(),
                    pod: registration.pod_name.clone(),
                },
            );
        }
    }
    let (writes, removals) = changes(published, &want);
    for (ip, record) in writes {
        let value = serde_json::to_vec(&record).expect("a record encodes");
        store
            .put_with_lease(&keys::ipcache(ip), value, Precondition::Any, id)
            .await
            .map_err(failed("publishing an ipcache entry"))?;
        tracing::debug!(%ip, identity = record.identity, "published");
        published.insert(ip, record);
    }
    for ip in removals {
        store
            .delete(&keys::ipcache(ip), Precondition::Any)
            .await
            .map_err(failed("withdrawing an ipcache entry"))?;
        published.remove(&ip);
    }
    Ok(())
}

async fn grant(
    store: &dyn Store,
    ttl: Duration,
    lease: &mut Option<(LeaseId, Instant)>,
) -> Result<LeaseId, RoutingError> {
    let id = store
        .grant_lease(ttl)
        .await
        .map_err(|source| RoutingError::Store {
            operation: "granting the ipcache lease",
            source,
        })?;
    *lease = Some((id, Instant::now()));
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(node: &str, identity: u32) -> IpcacheRecord {
        IpcacheRecord {
            identity,
            node: node.to_string(),
            host: "10.99.2.1".parse().unwrap(),
            namespace: None,
            pod: None,
        }
    }

    #[test]
    fn only_other_nodes_entries_become_host_prefixes() {
        let records = vec![
            (
                keys::ipcache("10.200.1.5".parse().unwrap()),
                record("me", 256),
            ),
            (
                keys::ipcache("10.200.2.5".parse().unwrap()),
                record("b", 257),
            ),
            (
                keys::ipcache("fd00:200:0:2::5".parse().unwrap()),
                record("b", 257),
            ),
        ];
        let remote = remote_entries(&records, "me");
        let prefixes: Vec<String> = remote.keys().map(|p| p.to_string()).collect();
        assert_eq!(prefixes, ["10.200.2.5/32", "fd00:200:0:2::5/128"]);
        assert_eq!(remote.values().next().unwrap().0, 257);
    }

    #[test]
    fn changes_write_only_what_differs_and_remove_what_is_gone() {
        let had = BTreeMap::from([(1, "a"), (2, "b"), (3, "c")]);
        let want = BTreeMap::from([(1, "a"), (2, "B"), (4, "d")]);
        let (writes, removals) = changes(&had, &want);
        assert_eq!(writes, [(2, "B"), (4, "d")]);
        assert_eq!(removals, [3]);
    }
}
