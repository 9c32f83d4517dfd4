//! The policy component's loop: after the caches' first listing, bring the incremental
//! compilation to the cluster's view and write the difference at every change of the
//! objects, identities, ipcache or local endpoints (changes arriving together are taken
//! as one pass), and at a resync interval; then rewrite the flags that changed.

use super::inputs::cluster_view;
use super::maps::PolicyMaps;
use super::state::{Known, PolicyState};
use crate::agent::Agent;
use crate::cluster::Cluster;
use crate::cluster::reflector::Reflector;
use crate::endpoints::NodeDatapath;
use crate::node::NodeNetwork;
use crate::routing::ipcache::IpcacheRecord;
use membrane_policy::Labels;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long changes are gathered before a pass (changes arriving during a pass are
/// taken by the next one anyway; a pass only recompiles what changed).
const SETTLE: Duration = Duration::from_millis(1);

/// What the loop reads and writes.
pub struct Component<M, D, N> {
    /// The shared state (also the endpoint manager's hook).
    pub state: Arc<PolicyState<M>>,
    /// Objects (policies, namespaces, pods).
    pub cluster: Arc<Cluster>,
    /// The cluster's identities (`/membrane/v1/identities/id/`).
    pub identities: Arc<Reflector<Labels>>,
    /// Every pod address's identity.
    pub ipcache: Arc<Reflector<IpcacheRecord>>,
    /// The local endpoints.
    pub agent: Arc<Agent<D, N>>,
    /// A pass at least this often.
    pub resync: Duration,
}

impl<M: PolicyMaps, D: NodeDatapath, N: NodeNetwork> Component<M, D, N> {
    /// Runs until `token` is cancelled.
    pub async fn run(self, token: CancellationToken) {
        let mut objects = self.cluster.objects().subscribe();
        let mut identities = self.identities.subscribe();
        let mut ipcache = self.ipcache.subscribe();
        let mut endpoints = self.agent.endpoint_changes().await;
        tokio::select! {
            () = token.cancelled() => return,
            _ = async {
                let _ = objects.wait_for(|n| *n > 0).await;
                let _ = identities.wait_for(|n| *n > 0).await;
            } => {}
        }
        loop {
            self.pass().await;
            tokio::select! {
                () = token.cancelled() => return,
                _ = changed(&mut objects) => {}
                _ = changed(&mut identities) => {}
                _ = changed(&mut ipcache) => {}
                _ = changed(&mut endpoints) => {}
                () = tokio::time::sleep(self.resync) => {}
            }
            tokio::time::sleep(SETTLE).await;
        }
    }

    /// One pass: gather, recompile what changed, write, then rewrite the flags that
    /// changed (all under one lock of the endpoint manager).
    async fn pass(&self) {
        let started = Instant::now();
        let view = cluster_view(&self.cluster, &self.identities, &self.ipcache);
        let endpoints = match self.agent.identified_endpoints().await {
            Ok(endpoints) => endpoints,
            Err(error) => {
                tracing::warn!(error = %crate::agent::chain(&error), "cannot list the endpoints for policy");
                return;
            }
        };
        let gathered = started.elapsed();
        let known: Vec<Known> = endpoints
            .iter()
            .map(|(endpoint, identity)| {
                let labels = view
                    .identities
                    .get(identity)
                    .cloned()
                    .or_else(|| self.state.known_labels(endpoint.id))
                    .unwrap_or_default();
                PolicyState::<M>::known(&view, endpoint, *identity, labels)
            })
            .collect();
        let (changed, failures) = self.state.reconcile(view, known);
        let reconciled = started.elapsed();
        if failures > 0 {
            tracing::warn!(
                failures,
                "some policy map writes failed; retrying at the next pass"
            );
        }
        if !changed.is_empty()
            && let Err(error) = self
                .agent
                .apply_policies(&changed.iter().copied().collect())
                .await
        {
            tracing::warn!(error = %crate::agent::chain(&error), "cannot write some endpoints' policy flags");
        }
        tracing::debug!(
            gathered_ms = gathered.as_secs_f64() * 1e3,
            reconciled_ms = reconciled.as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            flags_changed = changed.len(),
            "policy pass"
        );
    }
}

/// Waits for the next change; a closed channel never resolves.
async fn changed(receiver: &mut watch::Receiver<u64>) {
    if receiver.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
