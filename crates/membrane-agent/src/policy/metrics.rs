//! The policy component's counters, registered into the agent's metrics registry.

use crate::metrics::CountGauge;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Counters of the policy component (prometheus-client handles: a registered clone
/// shares the value).
#[derive(Debug, Default)]
pub struct PolicyCounters {
    /// Endpoint updates refused because the policy map was full (nothing of them was
    /// applied: the endpoint kept its previous entries and flags).
    pub map_full: Counter,
    /// Endpoint updates that failed for any reason, full map included (each retried at
    /// the next pass).
    pub failures: Counter,
    /// Entries the agent holds programmed in the policy map.
    pub entries: CountGauge,
}

impl PolicyCounters {
    /// Registers the counters as `membrane_policy_map_full_total`,
    /// `membrane_policy_update_failures_total` and `membrane_policy_entries`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "policy_map_full",
            "Endpoint policy updates refused whole because the policy map was full",
            self.map_full.clone(),
        );
        registry.register(
            "policy_update_failures",
            "Endpoint policy updates that failed and were undone (full map included)",
            self.failures.clone(),
        );
        registry.register(
            "policy_entries",
            "Entries programmed in the policy map",
            self.entries.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{assert_lines, encoded};

    #[test]
    fn counters_encode_under_their_exposed_names() {
        let counters = PolicyCounters::default();
        counters.map_full.inc_by(2);
        assert_lines(
            &encoded(|registry| counters.register(registry)),
            &[
                "# HELP membrane_policy_map_full Endpoint policy updates refused whole because the policy map was full.",
                "# TYPE membrane_policy_map_full counter",
                "membrane_policy_map_full_total 2",
                "membrane_policy_update_failures_total 0",
                "# TYPE membrane_policy_entries gauge",
                "membrane_policy_entries 0",
            ],
        );
    }
}
