//! Prometheus metrics of the agent, served as text on `GET /metrics` over TCP.

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
use membrane_observe::metrics::ObserveMetrics;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
    match agent.status().await {
        Ok(status) => {
            let mut text = render(&status, agent.counters());
            // Writing into a String cannot fail.
            let _ = observed.encode(&mut text);
            text.push_str(&services.render_metrics());
            text.push_str(&policy.render_metrics());
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                text,
            )
        }
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("{}\n", crate::agent::chain(&error)),
        ),
    }
}

/// The metrics in the Prometheus text format.
pub fn render(status: &AgentStatus, counters: &Counters) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |value: u64| vec![(String::new(), value)];
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    metric(
        "membrane_agent_healthy",
        "gauge",
        "1 when the last maintenance pass succeeded.",
        &one(status.healthy.into()),
    );
    metric(
        "membrane_endpoints",
        "gauge",
        "Endpoints on the node.",
        &one(status.endpoints as u64),
    );
    let mut pools = Vec::new();
    for (family, pool) in [("ipv4", &status.ipv4_pool), ("ipv6", &status.ipv6_pool)] {
        if let Some(PoolStatus { cidr, used, free }) = pool {
            for (state, value) in [("used", used), ("free", free)] {
                pools.push((
                    format!("{{family=\"{family}\",cidr=\"{cidr}\",state=\"{state}\"}}"),
                    *value,
                ));
            }
        }
    }
    metric(
        "membrane_ipam_addresses",
        "gauge",
        "Pod addresses by pool and state.",
        &pools,
    );
    metric(
        "membrane_conntrack_entries",
        "gauge",
        "Conntrack entries at the last collection.",
        &one(load(&counters.conntrack_entries)),
    );
    metric(
        "membrane_conntrack_expired_total",
        "counter",
        "Conntrack entries expired by the agent.",
        &one(load(&counters.conntrack_expired)),
    );
    metric(
        "membrane_leaks_released_total",
        "counter",
        "Endpoints and allocations released as leaked.",
        &one(load(&counters.leaks_released)),
    );
    metric(
        "membrane_maintenance_failures_total",
        "counter",
        "Maintenance passes that failed.",
        &one(load(&counters.maintenance_failures)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_the_prometheus_text_format() {
        let status = AgentStatus {
            node: "n".to_string(),
            healthy: true,
            endpoints: 3,
            ipv4_pool: Some(PoolStatus {
                cidr: "10.0.0.0/24".to_string(),
                used: 3,
                free: 251,
            }),
            ipv6_pool: None,
        };
        let counters = Counters::default();
        counters.leaks_released.store(2, Ordering::Relaxed);
        let text = render(&status, &counters);
        for line in [
            "# TYPE membrane_endpoints gauge",
            "membrane_endpoints 3",
            "membrane_agent_healthy 1",
            "membrane_ipam_addresses{family=\"ipv4\",cidr=\"10.0.0.0/24\",state=\"free\"} 251",
            "membrane_leaks_released_total 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from:\n{text}"
            );
        }
        assert!(!text.contains("ipv6"));
    }
}
