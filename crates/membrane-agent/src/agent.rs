//! The running agent's shared state: the endpoint manager behind one lock, plus what the
//! local API, the metrics and the maintenance task read or do through it.

use crate::endpoints::{EndpointError, EndpointManager, NodeDatapath, Reconcile, ReconcileReport};
use crate::metrics::CountGauge;
use crate::node::NodeNetwork;
use membrane_api::{
    AgentStatus, AllocateRequest, Allocation, AttachmentRef, Endpoint, EndpointRegistration,
    GcReport, GcRequest,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Mutex;

/// The IPv4 gateway every pod routes through: link-local, answered by a permanent
/// neighbour entry (the host veth's MAC) that the CNI plugin installs in the pod.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// The IPv6 gateway every pod routes through, likewise.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// Counters of the agent's own work, for metrics (prometheus-client handles: a
/// registered clone shares the value).
#[derive(Debug, Default)]
pub struct Counters {
    /// Conntrack entries seen by the last collection.
    pub conntrack_entries: CountGauge,
    /// Conntrack entries expired since start.
    pub conntrack_expired: Counter,
    /// Endpoints and allocations released as leaked since start.
    pub leaks_released: Counter,
    /// Maintenance passes that failed since start.
    pub maintenance_failures: Counter,
}

impl Counters {
    /// Registers the counters as `membrane_conntrack_entries`,
    /// `membrane_conntrack_expired_total`, `membrane_leaks_released_total` and
    /// `membrane_maintenance_failures_total`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "conntrack_entries",
            "Conntrack entries at the last collection",
            self.conntrack_entries.clone(),
        );
        registry.register(
            "conntrack_expired",
            "Conntrack entries expired by the agent",
            self.conntrack_expired.clone(),
        );
        registry.register(
            "leaks_released",
            "Endpoints and allocations released as leaked",
            self.leaks_released.clone(),
        );
        registry.register(
            "maintenance_failures",
            "Maintenance passes that failed",
            self.maintenance_failures.clone(),
        );
    }
}

/// The agent: one per node.
pub struct Agent<D, N> {
    node: String,
    pod_mtu: u32,
    manager: Mutex<EndpointManager<D, N>>,
    healthy: AtomicBool,
    counters: Counters,
}

impl<D: NodeDatapath, N: NodeNetwork> Agent<D, N> {
    /// The agent of node `node`, handing out `pod_mtu` to pods.
    pub fn new(node: String, pod_mtu: u32, manager: EndpointManager<D, N>) -> Self {
        Agent {
            node,
            pod_mtu,
            manager: Mutex::new(manager),
            healthy: AtomicBool::new(true),
            counters: Counters::default(),
        }
    }

    /// Adopts the persisted endpoints and releases what leaked while the agent was away.
    pub async fn restore(&self) -> Result<ReconcileReport, EndpointError> {
        let report = self
            .manager
            .lock()
            .await
            .reconcile(Reconcile::Adopt)
            .await?;
        self.count_leaks(&report);
        Ok(report)
    }

    /// One maintenance pass: conntrack collection, then the leak check. Failures are
    /// logged and counted, and mark the agent unhealthy until a pass succeeds.
    pub async fn maintain(&self) {
        let mut manager = self.manager.lock().await;
        let conntrack = manager.collect_conntrack();
        let sweep = manager.reconcile(Reconcile::Sweep).await;
        drop(manager);
        let mut ok = true;
        match conntrack {
            Ok(stats) => {
                self.counters.conntrack_entries.set(stats.entries as u64);
                self.counters.conntrack_expired.inc_by(stats.expired as u64);
                tracing::debug!(
                    entries = stats.entries,
                    expired = stats.expired,
                    "conntrack collected"
                );
            }
            Err(error) => {
                tracing::warn!(error = %chain(&error), "conntrack collection failed");
                ok = false;
            }
        }
        match sweep {
            Ok(report) => {
                self.count_leaks(&report);
                ok &= report.failures == 0;
            }
            Err(error) => {
                tracing::warn!(error = %chain(&error), "leak check failed");
                ok = false;
            }
        }
        if !ok {
            self.counters.maintenance_failures.inc();
        }
        self.healthy.store(ok, Ordering::Relaxed);
    }

    /// Hands out addresses for an attachment (idempotent).
    pub async fn allocate(&self, request: &AllocateRequest) -> Result<Allocation, EndpointError> {
        let record = self.manager.lock().await.allocate(request)?;
        Ok(Allocation {
            ipv4: record.ipv4,
            ipv6: record.ipv6,
            gateway_v4: GATEWAY_V4,
            gateway_v6: GATEWAY_V6,
            mtu: self.pod_mtu,
        })
    }

    /// Registers an endpoint.
    pub async fn create_endpoint(
        &self,
        registration: EndpointRegistration,
    ) -> Result<Endpoint, EndpointError> {
        self.manager.lock().await.create(registration).await
    }

    /// Removes an attachment's endpoint, if it has one, and releases its addresses.
    /// Idempotent. Releasing addresses always goes through here, so no endpoint is ever
    /// left pointing at addresses IPAM could hand out again.
    pub async fn delete(&self, attachment: &AttachmentRef) -> Result<(), EndpointError> {
        self.manager.lock().await.delete(attachment).await.map(drop)
    }

    /// The endpoint of an attachment.
    pub async fn endpoint(&self, attachment: &AttachmentRef) -> Result<Endpoint, EndpointError> {
        self.manager.lock().await.get(attachment)
    }

    /// Every programmed endpoint with the identity it carries.
    pub async fn identified_endpoints(&self) -> Result<Vec<(Endpoint, u32)>, EndpointError> {
        self.manager.lock().await.identified()
    }

    /// Writes the current policy enforcement flags of the endpoints `ids` into the
    /// datapath (those programmed), under one lock of the endpoint manager; returns how
    /// many were written.
    pub async fn apply_policies(
        &self,
        ids: &std::collections::BTreeSet<u16>,
    ) -> Result<usize, EndpointError> {
        self.manager.lock().await.apply_policies(ids)
    }

    /// A receiver marked changed whenever an endpoint is programmed or deleted.
    pub async fn endpoint_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.manager.lock().await.subscribe()
    }

    /// Moves endpoints whose labels changed to their new identity, and programs those
    /// whose recovery could not resolve one (logging failures: the next change or resync
    /// tries again); returns whether every endpoint was resolved.
    /// Every endpoint's labels are resolved outside the endpoint manager's lock (which
    /// the CNI and the policy component wait for); only those that resolve to another
    /// identity are handled under it.
    pub async fn refresh_identities(&self) -> bool {
        let (identities, endpoints) = {
            let manager = self.manager.lock().await;
            (manager.identities(), manager.with_programmed_identity())
        };
        let Some(identities) = identities else {
            return true;
        };
        let endpoints = match endpoints {
            Ok(endpoints) => endpoints,
            Err(error) => {
                tracing::warn!(error = %chain(&error), "cannot list the endpoints to resolve their identities; retrying at the next change");
                return false;
            }
        };
        let mut moved = std::collections::BTreeSet::new();
        let mut first_error = None;
        for (endpoint, identity) in &endpoints {
            match identities.of(&endpoint.registration).await {
                Ok(now) if Some(now) == *identity => {}
                Ok(_) => {
                    moved.insert(endpoint.id);
                }
                Err(source) => {
                    first_error.get_or_insert(EndpointError::Identity {
                        id: endpoint.id,
                        source,
                    });
                }
            }
        }
        if !moved.is_empty() {
            match self.manager.lock().await.refresh_identities(&moved).await {
                Ok(0) => {}
                Ok(moved) => tracing::info!(moved, "endpoints moved to new identities"),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        let Some(error) = first_error else {
            return true;
        };
        tracing::warn!(error = %chain(&error), "cannot resolve every endpoint's identity; retrying at the next change");
        false
    }

    /// Every endpoint.
    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, EndpointError> {
        self.manager.lock().await.list()
    }

    /// Releases everything not in the runtime's list of valid attachments.
    pub async fn gc(&self, request: &GcRequest) -> Result<GcReport, EndpointError> {
        let released = self.manager.lock().await.gc(&request.valid).await?;
        tracing::info!(released = released.len(), "CNI garbage collection");
        Ok(GcReport { released })
    }

    /// The agent's health, endpoint count and pool usage.
    pub async fn status(&self) -> Result<AgentStatus, EndpointError> {
        let manager = self.manager.lock().await;
        let endpoints = manager.list()?.len();
        let (ipv4_pool, ipv6_pool) = manager.ipam().usage()?;
        Ok(AgentStatus {
            node: self.node.clone(),
            healthy: self.healthy.load(Ordering::Relaxed),
            endpoints,
            ipv4_pool,
            ipv6_pool,
        })
    }

    /// The agent's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    fn count_leaks(&self, report: &ReconcileReport) {
        if !report.released.is_empty() {
            tracing::info!(
                released = report.released.len(),
                "released leaked endpoints and addresses"
            );
        }
        self.counters
            .leaks_released
            .inc_by(report.released.len() as u64);
    }
}

/// An error and its sources on one line.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Locks `shared`, going on with the data a panicked holder left: every holder writes
/// whole values (a map entry, a record), so what it left is consistent.
pub fn lock<T>(shared: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
