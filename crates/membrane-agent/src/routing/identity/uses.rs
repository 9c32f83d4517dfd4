//! Keeping identities current: endpoints move to a new identity when their Pod or
//! Namespace labels change, this node's use records follow its endpoints, and identities
//! nobody has used for the grace period are collected.

use super::Identities;
use crate::agent::Agent;
use crate::cluster::Cluster;
use crate::endpoints::NodeDatapath;
use crate::node::NodeNetwork;
use membrane_model::Kind;
use membrane_state::{IdentityCollector, keys};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Runs until `token` is cancelled: after every change of the object cache that
/// changed a Pod's or Namespace's labels, `agent`'s endpoints are resolved again (those
/// whose labels changed are reprogrammed with their new identity); after every change
/// of the endpoints, and every `interval`, the use records are made to match and the
/// lease is kept alive; every quarter of `grace` (or `interval`, if longer) a
/// collection pass deletes identities unused for `grace`.
pub async fn run<D: NodeDatapath, N: NodeNetwork>(
    agent: Arc<Agent<D, N>>,
    identities: Arc<Identities>,
    grace: Duration,
    interval: Duration,
    token: CancellationToken,
) {
    let mut collector = IdentityCollector::new(grace);
    let collect_every = (grace / 4).max(interval);
    let mut collected = Instant::now();
    let mut objects = identities.cluster.objects().subscribe();
    let mut endpoints = agent.endpoint_changes().await;
    // The labels of the last refresh that resolved every endpoint: a change of other
    // objects (a policy, a Service) moves no endpoint and needs no refresh.
    let mut resolved_from = None;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let relabel = tokio::select! {
            () = token.cancelled() => return,
            _ = objects.changed() => true,
            _ = endpoints.changed() => false,
            _ = ticks.tick() => false,
        };
        if relabel {
            let sources = label_sources(&identities.cluster);
            if resolved_from.as_ref() != Some(&sources) {
                let complete = agent.refresh_identities().await;
                resolved_from = complete.then_some(sources);
            }
        }
        let stale = match sync_uses(&agent, &identities).await {
            Ok(stale) => stale,
            Err(error) => {
                tracing::warn!(error = %crate::agent::chain(&error), "cannot record this node's identity uses; retrying");
                false
            }
        };
        if stale {
            agent.refresh_identities().await;
        }
        if collected.elapsed() >= collect_every {
            collected = Instant::now();
            if let Err(error) = collector.collect(identities.cluster.store().as_ref()).await {
                tracing::warn!(error = %crate::agent::chain(&error), "identity collection failed; retrying");
            }
        }
    }
}

/// What endpoints' identity labels are made from: the labels of every Pod and
/// Namespace, by object key.
fn label_sources(cluster: &Cluster) -> Vec<(String, BTreeMap<String, String>)> {
    let objects = cluster.objects();
    [Kind::Pod, Kind::Namespace]
        .into_iter()
        .flat_map(|kind| {
            objects.filter_map_under(&keys::objects_of_kind(kind.as_str()), |key, object| {
                Some((key.to_string(), object.labels().clone()))
            })
        })
        .collect()
}

/// Keeps the use lease alive and records exactly the identities `agent`'s endpoints carry.
async fn sync_uses<D: NodeDatapath, N: NodeNetwork>(
    agent: &Agent<D, N>,
    identities: &Identities,
) -> Result<bool, crate::routing::RoutingError> {
    identities.keep_alive().await?;
    let in_use: BTreeSet<u32> = agent
        .identified_endpoints()
        .await
        .map_err(|e| crate::routing::RoutingError::Endpoints {
            source: Box::new(e),
        })?
        .into_iter()
        .map(|(_, identity)| identity)
        .collect();
    identities.record_uses(&in_use).await
}
