//! The policy component's counters, in the Prometheus text format for the agent's
//! metrics endpoint.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the policy component.
#[derive(Debug, Default)]
pub struct PolicyCounters {
    /// Endpoint updates refused because the policy map was full (nothing of them was
    /// applied: the endpoint kept its previous entries and flags).
    pub map_full: AtomicU64,
    /// Endpoint updates that failed for any reason, full map included (each retried at
    /// the next pass).
    pub failures: AtomicU64,
    /// Entries the agent holds programmed in the policy map.
    pub entries: AtomicU64,
}

impl PolicyCounters {
    /// The counters in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        for (name, kind, help, value) in [
            (
                "membrane_policy_map_full_total",
                "counter",
                "Endpoint policy updates refused whole because the policy map was full.",
                &self.map_full,
            ),
            (
                "membrane_policy_update_failures_total",
                "counter",
                "Endpoint policy updates that failed and were undone (full map included).",
                &self.failures,
            ),
            (
                "membrane_policy_entries",
                "gauge",
                "Entries programmed in the policy map.",
                &self.entries,
            ),
        ] {
            // Writing into a String cannot fail.
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let counters = PolicyCounters::default();
        counters.map_full.store(2, Ordering::Relaxed);
        let text = counters.render_metrics();
        assert!(
            text.contains(
                "# TYPE membrane_policy_map_full_total counter\nmembrane_policy_map_full_total 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("membrane_policy_entries 0"), "{text}");
    }
}
