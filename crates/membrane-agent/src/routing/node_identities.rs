//! Nodes in the ipcache: this node's addresses carry the `host` identity and every other
//! node's the `remote-node` identity, as Cilium gives them, so that the datapath (and
//! policy) sees a node's own traffic as `host` or `remote-node` rather than `world`.
//! The entries have no tunnel endpoint: node addresses are reached over the underlay.

use super::RoutingError;
use super::ipcache::changes;
use crate::agent::lock;
use ipnet::IpNet;
use membrane_api::NodeInfo;
use membrane_common::identity::{HOST, REMOTE_NODE};
use membrane_datapath::Datapath;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How soon a failed write is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The ipcache entries of the cluster's nodes, seen from node `me`: a host prefix per
/// address.
pub fn desired(nodes: &[NodeInfo], me: &str) -> BTreeMap<IpNet, u32> {
    nodes
        .iter()
        .flat_map(|node| {
            let identity = if node.name == me { HOST } else { REMOTE_NODE };
            node.addresses
                .iter()
                .map(move |address| (IpNet::from(*address), identity))
        })
        .collect()
}

/// Keeps the node entries of `datapath`'s ipcache equal to [`desired`] for the node list
/// `nodes` until `token` is cancelled: at every change of `changes`, and again after a
/// failed write. Node entries an earlier agent left in the pinned map are adopted, and
/// removed once their node is gone.
pub async fn run(
    datapath: Arc<Mutex<Datapath>>,
    me: String,
    nodes: impl Fn() -> Vec<NodeInfo> + Send,
    mut changes_seen: watch::Receiver<u64>,
    token: CancellationToken,
) {
    let mut programmed: BTreeMap<IpNet, u32> = match lock(&datapath).ipcache_entries() {
        Ok(entries) => entries
            .into_iter()
            .filter(|(_, identity, node)| node.is_none() && [HOST, REMOTE_NODE].contains(identity))
            .map(|(prefix, identity, _)| (prefix, identity))
            .collect(),
        Err(error) => {
            tracing::warn!(error = %crate::agent::chain(&error), "cannot read the pinned ipcache; rewriting the node entries");
            BTreeMap::new()
        }
    };
    loop {
        let want = desired(&nodes(), &me);
        let (writes, removals) = changes(&programmed, &want);
        let mut failed = false;
        for (prefix, identity) in writes {
            let written = lock(&datapath).upsert_ipcache(prefix, identity, None);
            failed |= !settle(written, "writing", prefix, || {
                programmed.insert(prefix, identity);
            });
        }
        for prefix in removals {
            let removed = lock(&datapath).remove_ipcache(prefix);
            failed |= !settle(removed, "removing", prefix, || {
                programmed.remove(&prefix);
            });
        }
        let retry = if failed { RETRY } else { Duration::MAX };
        tokio::select! {
            () = token.cancelled() => return,
            _ = changes_seen.changed() => {}
            () = tokio::time::sleep(retry) => {}
        }
    }
}

/// Records a successful map operation through `done`, or logs its failure; true on
/// success.
fn settle<E: std::error::Error + Send + Sync + 'static>(
    outcome: Result<(), E>,
    operation: &'static str,
    prefix: IpNet,
    done: impl FnOnce(),
) -> bool {
    match outcome {
        Ok(()) => {
            done();
            true
        }
        Err(error) => {
            let error = RoutingError::Datapath {
                operation,
                prefix,
                source: Box::new(error),
            };
            tracing::warn!(error = %crate::agent::chain(&error), "node ipcache entry failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_nodes::node;
    use super::*;

    #[test]
    fn this_nodes_addresses_are_host_and_the_others_remote_node() {
        let wanted = desired(&[node("a", 1), node("b", 2)], "a");
        let at = |s: &str| wanted[&s.parse::<IpNet>().unwrap()];
        assert_eq!(wanted.len(), 4);
        assert_eq!(at("10.99.1.1/32"), HOST);
        assert_eq!(at("fd00:99:0:1::1/128"), HOST);
        assert_eq!(at("10.99.2.1/32"), REMOTE_NODE);
        assert_eq!(at("fd00:99:0:2::1/128"), REMOTE_NODE);
    }
}
