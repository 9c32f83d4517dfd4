//! Prometheus metrics of observability: flows by verdict and type, drops by reason and
//! direction, policy verdicts, per-Service traffic, lost events and map pressure. The
//! agent appends them to its own `/metrics` text.

use crate::flow::{EventKind, Flow, LostSource};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Prefix of every Membrane metric name (`membrane_...`), the observer's and the agent's.
pub const PREFIX: &str = "membrane";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabels {
    verdict: &'static str,
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: &'static str,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    verdict: &'static str,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    namespace: String,
    service: String,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LostLabels {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MapLabels {
    map: String,
}

/// The observer's metrics and their registry.
pub struct ObserveMetrics {
    registry: Registry,
    flows: Family<FlowLabels, Counter>,
    drops: Family<DropLabels, Counter>,
    policy_verdicts: Family<PolicyLabels, Counter>,
    service_packets: Family<ServiceLabels, Counter>,
    service_bytes: Family<ServiceLabels, Counter>,
    lost: Family<LostLabels, Counter>,
    map_entries: Family<MapLabels, Gauge>,
    map_capacity: Family<MapLabels, Gauge>,
}

/// Name of an event kind as a metric label (Hubble's `--type` spelling).
fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Trace(_) => "trace",
        EventKind::Drop => "drop",
        EventKind::PolicyVerdict => "policy-verdict",
        EventKind::SockTranslate => "trace-sock",
    }
}

impl Default for ObserveMetrics {
    fn default() -> Self {
        ObserveMetrics::new()
    }
}

impl ObserveMetrics {
    /// Registers every metric under [`PREFIX`].
    pub fn new() -> ObserveMetrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let metrics = ObserveMetrics {
            flows: Family::default(),
            drops: Family::default(),
            policy_verdicts: Family::default(),
            service_packets: Family::default(),
            service_bytes: Family::default(),
            lost: Family::default(),
            map_entries: Family::default(),
            map_capacity: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "flows_processed",
            "Flows observed, by verdict and event type",
            metrics.flows.clone(),
        );
        registry.register(
            "drops",
            "Dropped packets reported as flows, by reason and direction",
            metrics.drops.clone(),
        );
        registry.register(
            "policy_verdicts",
            "Policy verdicts, by verdict and direction",
            metrics.policy_verdicts.clone(),
        );
        registry.register(
            "service_packets",
            "Packets translated for a Service, by Service and verdict",
            metrics.service_packets.clone(),
        );
        registry.register(
            "service_bytes",
            "Bytes of packets translated for a Service, by Service and verdict",
            metrics.service_bytes.clone(),
        );
        registry.register(
            "lost_events",
            "Flow events lost before they reached the observer or a follower, by where",
            metrics.lost.clone(),
        );
        registry.register(
            "map_entries",
            "Entries in each datapath map at the last reading",
            metrics.map_entries.clone(),
        );
        registry.register(
            "map_capacity",
            "Capacity (max entries) of each datapath map",
            metrics.map_capacity.clone(),
        );
        ObserveMetrics {
            registry,
            ..metrics
        }
    }

    /// Counts one flow.
    pub fn record_flow(&self, flow: &Flow) {
        let verdict = flow.verdict.name();
        self.flows
            .get_or_create(&FlowLabels {
                verdict,
                r#type: kind_name(flow.kind),
            })
            .inc();
        let direction = flow.direction.map_or("unknown", |d| d.name());
        if let Some(reason) = flow.drop_reason {
            self.drops
                .get_or_create(&DropLabels {
                    reason: reason.description(),
                    direction,
                })
                .inc();
        }
        if flow.kind == EventKind::PolicyVerdict {
            self.policy_verdicts
                .get_or_create(&PolicyLabels { verdict, direction })
                .inc();
        }
        if let Some(service) = &flow.destination_service {
            let labels = ServiceLabels {
                namespace: service.namespace.clone(),
                service: service.name.clone(),
                verdict,
            };
            self.service_packets.get_or_create(&labels).inc();
            self.service_bytes
                .get_or_create(&labels)
                .inc_by(u64::from(flow.length));
        }
    }

    /// Counts lost events.
    pub fn record_lost(&self, source: LostSource, count: u64) {
        self.lost
            .get_or_create(&LostLabels {
                source: source.name(),
            })
            .inc_by(count);
    }

    /// Sets a map's fill level.
    pub fn set_map_pressure(&self, map: &str, entries: u64, capacity: u64) {
        let labels = MapLabels {
            map: map.to_string(),
        };
        self.map_entries
            .get_or_create(&labels)
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.map_capacity
            .get_or_create(&labels)
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
    }

    /// Appends the metrics in the text exposition format, without the OpenMetrics
    /// `# EOF` line, so that the agent can append them to its own text.
    pub fn encode(&self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::text::encode_registry(out, &self.registry)
    }
}
