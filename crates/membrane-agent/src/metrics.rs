//! Prometheus metrics of the agent, served as text on `GET /metrics` over TCP.
//!
//! Every scrape assembles one prometheus-client [`Registry`] from the agent's status at
//! that moment and the handles of the components' counters (which share their values
//! with the components), encodes it, then appends the observer's registry: the crate
//! writes the whole body, and a snapshot value (an IPAM pool that went away) cannot
//! linger from an earlier scrape.

use crate::agent::{Agent, Counters};
use crate::endpoints::NodeDatapath;
use crate::node::NodeNetwork;
use crate::policy::PolicyCounters;
use crate::services::Services;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use membrane_api::{AgentStatus, PoolStatus};
use membrane_observe::metrics::{ObserveMetrics, PREFIX};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A gauge of a count: never negative, set from the `u64`/`usize` the components keep.
pub type CountGauge = Gauge<u64, AtomicU64>;

/// Serves `/metrics` (the agent's, the observer's, the Services' and policy's) on
/// `listener` until `token` is cancelled.
pub async fn serve<D: NodeDatapath, N: NodeNetwork>(
    listener: TcpListener,
    agent: Arc<Agent<D, N>>,
    observed: Arc<ObserveMetrics>,
    services: Arc<Services>,
    policy: Arc<PolicyCounters>,
    token: CancellationToken,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/metrics", get(metrics::<D, N>))
        .with_state((agent, observed, services, policy));
    axum::serve(listener, router)
        .with_graceful_shutdown(token.cancelled_owned())
        .await
}

/// What the handler reads: the agent, the observer's metrics, the Services' and
/// policy's counters.
type Measured<D, N> = (
    Arc<Agent<D, N>>,
    Arc<ObserveMetrics>,
    Arc<Services>,
    Arc<PolicyCounters>,
);

async fn metrics<D: NodeDatapath, N: NodeNetwork>(
    State((agent, observed, services, policy)): State<Measured<D, N>>,
) -> impl IntoResponse {
    let encoded = match agent.status().await {
        Ok(status) => encode(&status, agent.counters(), &services, &policy, &observed)
            .map_err(|error| format!("cannot encode the metrics: {error}")),
        Err(error) => Err(crate::agent::chain(&error)),
    };
    match encoded {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            text,
        ),
        Err(message) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("{message}\n"),
        ),
    }
}

/// The whole `/metrics` body in the text exposition format (without the OpenMetrics
/// `# EOF` line): the agent's status and counters, the Services' and policy's counters,
/// then the observer's metrics.
pub fn encode(
    status: &AgentStatus,
    counters: &Counters,
    services: &Services,
    policy: &PolicyCounters,
    observed: &ObserveMetrics,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix(PREFIX);
    register_status(&mut registry, status);
    counters.register(&mut registry);
    services.counters().register(&mut registry);
    policy.register(&mut registry);
    let mut text = String::new();
    encode_registry(&mut text, &registry)?;
    observed.encode(&mut text)?;
    Ok(text)
}

/// Labels of `membrane_ipam_addresses`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    family: &'static str,
    cidr: String,
    state: &'static str,
}

/// Registers the agent's status as gauges of this scrape.
fn register_status(registry: &mut Registry, status: &AgentStatus) {
    registry.register(
        "agent_healthy",
        "1 when the last maintenance pass succeeded",
        ConstGauge::new(u64::from(status.healthy)),
    );
    registry.register(
        "endpoints",
        "Endpoints on the node",
        ConstGauge::new(status.endpoints as u64),
    );
    let pools = Family::<PoolLabels, CountGauge>::default();
    for (family, pool) in [("ipv4", &status.ipv4_pool), ("ipv6", &status.ipv6_pool)] {
        if let Some(PoolStatus { cidr, used, free }) = pool {
            for (state, value) in [("used", used), ("free", free)] {
                let labels = PoolLabels {
                    family,
                    cidr: cidr.clone(),
                    state,
                };
                pools.get_or_create(&labels).set(*value);
            }
        }
    }
    registry.register("ipam_addresses", "Pod addresses by pool and state", pools);
}

/// Test support: the text of what `register` registers under the agent's prefix.
#[cfg(test)]
pub(crate) fn encoded(register: impl FnOnce(&mut Registry)) -> String {
    let mut registry = Registry::with_prefix(PREFIX);
    register(&mut registry);
    let mut text = String::new();
    encode_registry(&mut text, &registry).unwrap();
    text
}

/// Test support: asserts that each of `lines` is one of `text`'s lines.
#[cfg(test)]
pub(crate) fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "{line:?} missing from:\n{text}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use membrane_observe::flow::LostSource;

    fn status() -> AgentStatus {
        AgentStatus {
            node: "n".to_string(),
            healthy: true,
            endpoints: 3,
            ipv4_pool: Some(PoolStatus {
                cidr: "10.0.0.0/24".to_string(),
                used: 3,
                free: 251,
            }),
            ipv6_pool: None,
        }
    }

    #[test]
    fn status_encodes_as_gauges_with_only_the_configured_pools() {
        let text = encoded(|registry| register_status(registry, &status()));
        assert_lines(
            &text,
            &[
                "# HELP membrane_endpoints Endpoints on the node.",
                "# TYPE membrane_endpoints gauge",
                "membrane_endpoints 3",
                "membrane_agent_healthy 1",
                "# TYPE membrane_ipam_addresses gauge",
                "membrane_ipam_addresses{family=\"ipv4\",cidr=\"10.0.0.0/24\",state=\"used\"} 3",
                "membrane_ipam_addresses{family=\"ipv4\",cidr=\"10.0.0.0/24\",state=\"free\"} 251",
            ],
        );
        assert!(!text.contains("ipv6"), "{text}");
    }

    #[test]
    fn the_body_holds_every_part_under_its_exposed_name_and_no_eof() {
        let counters = Counters::default();
        counters.leaks_released.inc_by(2);
        counters.conntrack_entries.set(5);
        let services = Services::default();
        let policy = PolicyCounters::default();
        policy.entries.set(4);
        let observed = ObserveMetrics::new();
        observed.record_lost(LostSource::EventsQueue, 6);
        let text = encode(&status(), &counters, &services, &policy, &observed).unwrap();
        assert_lines(
            &text,
            &[
                "membrane_agent_healthy 1",
                "membrane_conntrack_entries 5",
                "# TYPE membrane_leaks_released counter",
                "membrane_leaks_released_total 2",
                "membrane_maintenance_failures_total 0",
                "membrane_services_reconcile_passes_total 0",
                "membrane_policy_entries 4",
                "membrane_lost_events_total{source=\"events_queue\"} 6",
            ],
        );
        assert!(!text.contains("# EOF"), "{text}");
    }
}
