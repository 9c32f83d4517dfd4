//! Settings of security identities (`identity.*` in the config file): the cluster's name,
//! which labels make identities, and how long unused ones and unreachable stores are
//! waited for.

use super::labels::LabelFilter;
use crate::config::ConfigProblem;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Label rules applied when none are configured: the labels Kubernetes controllers stamp
/// on every pod of a workload, which differ between pods that policy must treat alike.
pub const DEFAULT_LABEL_RULES: &[&str] = &[
    "!k8s:pod-template-hash$",
    "!k8s:pod-template-generation$",
    "!k8s:controller-revision-hash$",
    "!k8s:controller-uid$",
    "!k8s:job-name$",
    "!k8s:statefulset\\.kubernetes\\.io/pod-name$",
    "!k8s:apps\\.kubernetes\\.io/pod-index$",
    "!k8s:batch\\.kubernetes\\.io/",
];

/// Settings of security identities.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct IdentityConfig {
    /// The cluster's name, the `k8s:io.cilium.k8s.policy.cluster` label of every identity.
    pub cluster_name: String,
    /// Which labels make identities, like Cilium's `--labels`: each rule is a regular
    /// expression matched at the start of a label's `source:key` (`k8s:app`,
    /// `k8s:io.cilium.k8s.namespace.labels.team`), `!` in front for an exclusion. The rule
    /// with the longest match decides (an exclusion on a tie); a label no rule matches is
    /// kept unless some inclusion rule is configured.
    pub labels: Vec<String>,
    /// Seconds an identity nobody uses is kept before it is deleted.
    pub gc_grace_secs: u64,
    /// Seconds a new label set waits for an unreachable store before its endpoint fails
    /// (below the CNI plugin's 30 s call timeout, so the runtime sees this error).
    pub allocation_timeout_secs: u64,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            cluster_name: "default".to_string(),
            labels: DEFAULT_LABEL_RULES.iter().map(|r| r.to_string()).collect(),
            gc_grace_secs: 15 * 60,
            allocation_timeout_secs: 20,
        }
    }
}

impl IdentityConfig {
    /// How long an unused identity is kept.
    pub fn gc_grace(&self) -> Duration {
        Duration::from_secs(self.gc_grace_secs)
    }

    /// How long a new label set waits for the store.
    pub fn allocation_timeout(&self) -> Duration {
        Duration::from_secs(self.allocation_timeout_secs)
    }
}

impl IdentityConfig {
    /// Records an invalid label rule and a zero allocation timeout in `problems`.
    pub fn validate(&self, problems: &mut Vec<ConfigProblem>) {
        if let Err(error) = LabelFilter::new(&self.labels) {
            problems.push(ConfigProblem::BadValue {
                flag: "--identity-labels",
                env: "MEMBRANE_IDENTITY_LABELS",
                value: error.rule.clone(),
                source: Box::new(error),
            });
        }
        if self.allocation_timeout_secs == 0 {
            problems.push(ConfigProblem::Zero {
                flag: "--identity-allocation-timeout-secs",
            });
        }
    }
}

/// The flags of the identity section.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct IdentityFlags {
    /// The cluster's name, a label of every identity [default: default].
    #[arg(long, env = "MEMBRANE_CLUSTER_NAME", value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// Which labels make identities, space-separated `[!]regex` rules matched at the
    /// start of `source:key` (like Cilium's --labels); replaces the default rules, which
    /// drop pod-template-hash, controller-revision-hash, job-name and the like.
    #[arg(long, env = "MEMBRANE_IDENTITY_LABELS", value_name = "RULES")]
    pub identity_labels: Option<String>,
    /// Seconds an identity nobody uses is kept before it is deleted [default: 900].
    #[arg(long, env = "MEMBRANE_IDENTITY_GC_GRACE_SECS", value_name = "SECS")]
    pub identity_gc_grace_secs: Option<String>,
    /// Seconds a new label set waits for an unreachable kvstore before its endpoint
    /// fails [default: 20].
    #[arg(
        long,
        env = "MEMBRANE_IDENTITY_ALLOCATION_TIMEOUT_SECS",
        value_name = "SECS"
    )]
    pub identity_allocation_timeout_secs: Option<String>,
}

impl IdentityFlags {
    /// Lays the flags over `config`, recording values that do not parse in `problems`.
    pub fn apply(&self, config: &mut IdentityConfig, problems: &mut Vec<ConfigProblem>) {
        if let Some(name) = &self.cluster_name {
            config.cluster_name = name.clone();
        }
        if let Some(rules) = &self.identity_labels {
            config.labels = rules.split_whitespace().map(str::to_string).collect();
        }
        let mut seconds = |value: &Option<String>, flag, env, set: &mut u64| {
            let Some(text) = value else { return };
            match text.trim().parse() {
                Ok(parsed) => *set = parsed,
                Err(error) => problems.push(ConfigProblem::BadValue {
                    flag,
                    env,
                    value: text.clone(),
                    source: Box::new(error),
                }),
            }
        };
        seconds(
            &self.identity_gc_grace_secs,
            "--identity-gc-grace-secs",
            "MEMBRANE_IDENTITY_GC_GRACE_SECS",
            &mut config.gc_grace_secs,
        );
        seconds(
            &self.identity_allocation_timeout_secs,
            "--identity-allocation-timeout-secs",
            "MEMBRANE_IDENTITY_ALLOCATION_TIMEOUT_SECS",
            &mut config.allocation_timeout_secs,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_set_the_section_and_bad_values_are_all_reported() {
        let mut config = IdentityConfig::default();
        let mut problems = Vec::new();
        IdentityFlags {
            cluster_name: Some("east".into()),
            identity_labels: Some("k8s:app !k8s:app\\.kubernetes\\.io/".into()),
            identity_gc_grace_secs: Some("5".into()),
            identity_allocation_timeout_secs: Some("soon".into()),
        }
        .apply(&mut config, &mut problems);
        assert_eq!(config.cluster_name, "east");
        assert_eq!(config.labels, ["k8s:app", "!k8s:app\\.kubernetes\\.io/"]);
        assert_eq!(config.gc_grace(), Duration::from_secs(5));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .to_string()
                .contains("--identity-allocation-timeout-secs")
        );
        config.labels = vec!["k8s:(".into()];
        config.allocation_timeout_secs = 0;
        let mut problems = Vec::new();
        config.validate(&mut problems);
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].contains("k8s:("), "{text:?}");
    }
}
