//! The running component: reads Services, EndpointSlices and Pods from the objects
//! cache, computes the desired state whenever the cache changes (and every resync
//! interval, which also picks up pods that came or went on the node), hands it to the
//! reconciler, and publishes the result for the local API and the metrics.

use super::datapath::ServiceDatapath;
use super::desired::{self, NodeContext, Objects, Policy};
use super::listing;
use super::model::{DesiredState, Skipped};
use super::reconciler::{Reconciler, Report};
use crate::agent::{Agent, chain};
use crate::cluster::Cluster;
use crate::cluster::reflector::Reflector;
use crate::endpoints::NodeDatapath;
use crate::metrics::CountGauge;
use crate::node::NodeNetwork;
use membrane_api::ServiceFrontend;
use membrane_model::{Kind, Object};
use membrane_state::keys;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a change waits for more changes before the pass runs (an apply of many
/// objects arrives as many watch events).
const SETTLE: Duration = Duration::from_millis(20);

/// Where the addresses of the node's own pods come from.
pub trait LocalEndpoints: Send + Sync + 'static {
    /// The addresses of the pods on this node.
    fn addresses(&self) -> impl Future<Output = Result<BTreeSet<IpAddr>, String>> + Send;
}

impl<D: NodeDatapath, N: NodeNetwork> LocalEndpoints for Agent<D, N> {
    async fn addresses(&self) -> Result<BTreeSet<IpAddr>, String> {
        let endpoints = self.endpoints().await.map_err(|e| chain(&e))?;
        Ok(endpoints
            .iter()
            .flat_map(|e| {
                [
                    e.registration.ipv4.map(IpAddr::V4),
                    e.registration.ipv6.map(IpAddr::V6),
                ]
            })
            .flatten()
            .collect())
    }
}

/// Counters of the component, for metrics (prometheus-client handles: a registered
/// clone shares the value).
#[derive(Debug, Default)]
pub struct Counters {
    /// Reconcile passes run.
    pub passes: Counter,
    /// Writes that failed because a map was full.
    pub map_full: Counter,
    /// Writes that failed for any reason (full maps included).
    pub failures: Counter,
    /// Frontends the datapath holds as desired.
    pub frontends_programmed: CountGauge,
    /// Desired frontends the datapath does not hold (their last write failed).
    pub frontends_failed: CountGauge,
    /// Backends the desired state names.
    pub backends: CountGauge,
}

impl Counters {
    /// Registers the counters as `membrane_services_*`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "services_reconcile_passes",
            "Service reconcile passes",
            self.passes.clone(),
        );
        registry.register(
            "services_map_full",
            "Service writes refused because a datapath map was full",
            self.map_full.clone(),
        );
        registry.register(
            "services_write_failures",
            "Service writes that failed (full maps included)",
            self.failures.clone(),
        );
        registry.register(
            "services_frontends",
            "Frontends programmed as desired",
            self.frontends_programmed.clone(),
        );
        registry.register(
            "services_frontends_failed",
            "Desired frontends not programmed because their last write failed",
            self.frontends_failed.clone(),
        );
        registry.register(
            "services_backends",
            "Backends of the desired frontends",
            self.backends.clone(),
        );
    }
}

/// What the component publishes: the frontends and the counters.
#[derive(Debug, Default)]
pub struct Services {
    frontends: RwLock<Arc<Vec<ServiceFrontend>>>,
    counters: Counters,
}

impl Services {
    /// The frontends of the last pass, in address order.
    pub fn frontends(&self) -> Arc<Vec<ServiceFrontend>> {
        self.frontends
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    fn publish(&self, frontends: Vec<ServiceFrontend>, desired: &DesiredState, report: &Report) {
        let c = &self.counters;
        c.passes.inc();
        let full = report.failures.iter().filter(|e| e.is_map_full()).count();
        c.map_full.inc_by(full as u64);
        c.failures.inc_by(report.failures.len() as u64);
        let programmed = frontends.iter().filter(|f| f.programmed).count();
        c.frontends_programmed.set(programmed as u64);
        c.frontends_failed
            .set((frontends.len() - programmed) as u64);
        c.backends.set(desired.backends.len() as u64);
        *self.frontends.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(frontends);
    }
}

/// Everything one node's component works with.
pub struct Component<D, L> {
    /// The reconciler, owning the datapath handle and the numbers.
    pub reconciler: Reconciler<D>,
    /// The objects cache.
    pub objects: Arc<Cluster>,
    /// The node's own pods.
    pub local: Arc<L>,
    /// The node (its local endpoints are refreshed every pass).
    pub node: NodeContext,
    /// Cluster-wide choices.
    pub policy: Policy,
    /// Time between passes when nothing changes.
    pub resync: Duration,
    /// Where results are published.
    pub published: Arc<Services>,
}

impl<D: ServiceDatapath, L: LocalEndpoints> Component<D, L> {
    /// Reconciles on every change of the objects cache and every resync interval until
    /// `token` is cancelled.
    pub async fn run(self, token: CancellationToken) {
        let Component {
            mut reconciler,
            objects,
            local,
            mut node,
            policy,
            resync,
            published,
        } = self;
        let mut changes = objects.objects().subscribe();
        // Until the cache has listed the store once it is empty, and an empty desired
        // state would remove every Service the pinned maps still serve.
        while *changes.borrow_and_update() == 0 {
            tokio::select! {
                () = token.cancelled() => return,
                _ = changes.changed() => {}
            }
        }
        let mut reported: HashSet<(String, String)> = HashSet::new();
        loop {
            changes.mark_unchanged();
            match local.addresses().await {
                Ok(addresses) => node.local_endpoints = addresses,
                Err(error) => {
                    tracing::warn!(%error, "cannot list the node's endpoints; using the last known")
                }
            }
            let snapshot = Snapshot::take(objects.objects());
            let (node_now, policy_now) = (node.clone(), policy.clone());
            let pass = tokio::task::spawn_blocking(move || {
                let desired = desired::compute(&snapshot.objects(), &node_now, &policy_now);
                let report = reconciler.reconcile(&desired);
                let frontends = listing::frontends(&desired, &reconciler);
                (reconciler, desired, report, frontends)
            })
            .await;
            let (returned, desired, report, frontends) = match pass {
                Ok(pass) => pass,
                Err(error) => {
                    tracing::error!(%error, "the services pass panicked; Services are no longer reconciled");
                    return;
                }
            };
            reconciler = returned;
            log_skipped(&desired.skipped, &mut reported);
            match report {
                Ok(report) => {
                    log_report(&report);
                    published.publish(frontends, &desired, &report);
                }
                Err(error) => {
                    tracing::warn!(error = %chain(&error), "services pass failed; retrying on the next change")
                }
            }
            // `objects` keeps the cache, and so the sender, alive: `changed` cannot fail.
            tokio::select! {
                () = token.cancelled() => return,
                _ = changes.changed() => tokio::time::sleep(SETTLE).await,
                () = tokio::time::sleep(resync) => {}
            }
        }
    }
}

/// The Services, EndpointSlices and Pods of the cache at one moment.
struct Snapshot {
    items: Vec<Object>,
}

impl Snapshot {
    fn take(cache: &Reflector<Object>) -> Snapshot {
        let mut items = Vec::new();
        for kind in [Kind::Service, Kind::EndpointSlice, Kind::Pod] {
            let prefix = keys::objects_of_kind(kind.as_str());
            items.extend(cache.under(&prefix).into_iter().map(|(_, o)| o));
        }
        Snapshot { items }
    }

    fn objects(&self) -> Objects<'_> {
        let mut objects = Objects::default();
        for item in &self.items {
            match item {
                Object::Service(s) => objects.services.push(s),
                Object::EndpointSlice(s) => objects.slices.push(s),
                Object::Pod(p) => objects.pods.push(p),
                _ => {}
            }
        }
        objects
    }
}

/// Logs what the objects ask for that is not programmed, once per distinct reason.
fn log_skipped(skipped: &[Skipped], reported: &mut HashSet<(String, String)>) {
    let now: HashSet<(String, String)> = skipped
        .iter()
        .map(|s| (s.owner.to_string(), s.reason.clone()))
        .collect();
    for (owner, reason) in now.difference(reported) {
        tracing::warn!(%owner, %reason, "not load-balanced as written");
    }
    *reported = now;
}

fn log_report(report: &Report) {
    for failure in &report.failures {
        tracing::warn!(error = %chain(failure), "Service not programmed; retrying on the next change");
    }
    if report.frontends_written
        + report.frontends_removed
        + report.backends_written
        + report.backends_removed
        > 0
    {
        tracing::info!(
            frontends_written = report.frontends_written,
            frontends_removed = report.frontends_removed,
            backends_written = report.backends_written,
            backends_removed = report.backends_removed,
            failures = report.failures.len(),
            "services reconciled"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{assert_lines, encoded};

    #[test]
    fn counters_encode_under_their_exposed_names() {
        let services = Services::default();
        services.counters.map_full.inc_by(2);
        services.counters.frontends_programmed.set(7);
        assert_lines(
            &encoded(|registry| services.counters().register(registry)),
            &[
                "# HELP membrane_services_map_full Service writes refused because a datapath map was full.",
                "# TYPE membrane_services_map_full counter",
                "membrane_services_map_full_total 2",
                "# TYPE membrane_services_frontends gauge",
                "membrane_services_frontends 7",
                "membrane_services_frontends_failed 0",
                "membrane_services_reconcile_passes_total 0",
            ],
        );
    }
}
