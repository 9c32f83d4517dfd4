//! Settings of policy enforcement (`policy.*` in the config file): the enforcement mode
//! and audit mode, with Cilium's flag names.

use crate::config::ConfigProblem;
use membrane_policy::EnforcementMode;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// When endpoints enforce policy, as Cilium's `--enable-policy` says it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforcement {
    /// A direction is enforced once a policy selects the endpoint for it.
    #[default]
    Default,
    /// Every endpoint enforces both directions.
    Always,
    /// No endpoint enforces anything.
    Never,
}

impl Enforcement {
    /// The compiler's mode.
    pub fn mode(self) -> EnforcementMode {
        match self {
            Enforcement::Default => EnforcementMode::Default,
            Enforcement::Always => EnforcementMode::Always,
            Enforcement::Never => EnforcementMode::Never,
        }
    }
}

impl fmt::Display for Enforcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Enforcement::Default => "default",
            Enforcement::Always => "always",
            Enforcement::Never => "never",
        })
    }
}

/// An enforcement mode that is not default, always or never.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an enforcement mode: default, always or never")]
pub struct BadEnforcement(String);

impl FromStr for Enforcement {
    type Err = BadEnforcement;

    fn from_str(text: &str) -> Result<Enforcement, BadEnforcement> {
        match text.trim() {
            "default" => Ok(Enforcement::Default),
            "always" => Ok(Enforcement::Always),
            "never" => Ok(Enforcement::Never),
            other => Err(BadEnforcement(other.to_string())),
        }
    }
}

/// Settings of policy enforcement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyConfig {
    /// When endpoints enforce policy.
    pub enforcement: Enforcement,
    /// Audit mode: would-be drops are reported with verdict AUDIT and let through.
    pub audit: bool,
}

/// The flags of the policy section.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct PolicyFlags {
    /// When endpoints enforce policy: default (once a policy selects them), always or
    /// never [default: default].
    #[arg(long, env = "MEMBRANE_ENABLE_POLICY", value_name = "MODE")]
    pub enable_policy: Option<String>,
    /// Audit mode: report would-be policy drops with verdict AUDIT and let them through
    /// [default: false].
    #[arg(long, env = "MEMBRANE_POLICY_AUDIT_MODE", value_name = "BOOL")]
    pub policy_audit_mode: Option<String>,
}

impl PolicyFlags {
    /// Lays the flags over `config`, recording values that do not parse in `problems`.
    pub fn apply(&self, config: &mut PolicyConfig, problems: &mut Vec<ConfigProblem>) {
        if let Some(text) = &self.enable_policy {
            match text.parse() {
                Ok(mode) => config.enforcement = mode,
                Err(error) => problems.push(ConfigProblem::BadValue {
                    flag: "--enable-policy",
                    env: "MEMBRANE_ENABLE_POLICY",
                    value: text.clone(),
                    source: Box::new(error),
                }),
            }
        }
        if let Some(text) = &self.policy_audit_mode {
            match text.trim().parse() {
                Ok(audit) => config.audit = audit,
                Err(error) => problems.push(ConfigProblem::BadValue {
                    flag: "--policy-audit-mode",
                    env: "MEMBRANE_POLICY_AUDIT_MODE",
                    value: text.clone(),
                    source: Box::new(error),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_bad_values_are_named() {
        let mut config = PolicyConfig::default();
        let mut problems = Vec::new();
        PolicyFlags {
            enable_policy: Some("always".into()),
            policy_audit_mode: Some("true".into()),
        }
        .apply(&mut config, &mut problems);
        assert!(problems.is_empty());
        assert_eq!(config.enforcement, Enforcement::Always);
        assert!(config.audit);
        PolicyFlags {
            enable_policy: Some("sometimes".into()),
            policy_audit_mode: Some("maybe".into()),
        }
        .apply(&mut config, &mut problems);
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].contains("--enable-policy"), "{text:?}");
        assert!(text[1].contains("--policy-audit-mode"), "{text:?}");
    }
}
