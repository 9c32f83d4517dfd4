//! Writing policy rules into the shared policy LPM trie: one rule becomes one entry per
//! port prefix of its port range.

use crate::error::DatapathError;
use crate::maps::{Maps, ignore_missing};
use aya::maps::lpm_trie::Key;
use membrane_common::metrics::direction;
use membrane_common::policy::policy_action;
use membrane_common::{POLICY_FIXED_BITS, PolicyEntry, PolicyKey, map_names};
use std::ops::RangeInclusive;

/// Which way a rule applies, relative to its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Traffic the endpoint receives.
    Ingress,
    /// Traffic the endpoint sends.
    Egress,
}

/// One rule as the datapath stores it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PolicyRule {
    /// The endpoint the rule belongs to.
    pub endpoint_id: u16,
    /// Ingress or egress.
    pub direction: Direction,
    /// Peer identity; `None` for any peer.
    pub identity: Option<u32>,
    /// IP protocol and destination ports (for ICMP: types); `None` for any protocol and
    /// port.
    pub l4: Option<(u8, RangeInclusive<u16>)>,
    /// Deny instead of allow.
    pub deny: bool,
    /// Identifier of the rule that produced this entry.
    pub rule_id: u32,
}

/// The aligned power-of-two blocks covering `range`, as (first port, prefix bits).
pub fn port_prefixes(range: &RangeInclusive<u16>) -> Vec<(u16, u32)> {
    membrane_common::policy::port_prefixes(*range.start(), *range.end()).collect()
}

impl PolicyRule {
    /// The value of each of its entries.
    fn entry(&self) -> PolicyEntry {
        PolicyEntry {
            action: if self.deny {
                policy_action::DENY
            } else {
                policy_action::ALLOW
            },
            _pad: 0,
            proxy_port: 0,
            rule_id: self.rule_id,
        }
    }

    /// The trie keys of this rule.
    fn keys(&self) -> Vec<Key<PolicyKey>> {
        let dir = match self.direction {
            Direction::Ingress => direction::INGRESS,
            Direction::Egress => direction::EGRESS,
        };
        let base = PolicyKey {
            endpoint_id: self.endpoint_id,
            direction: dir,
            proto: 0,
            identity: self.identity.unwrap_or(0),
            port: 0,
            _pad: 0,
        };
        match &self.l4 {
            None => vec![Key::new(POLICY_FIXED_BITS, base)],
            Some((proto, ports)) => port_prefixes(ports)
                .into_iter()
                .map(|(first, bits)| {
                    Key::new(
                        POLICY_FIXED_BITS + bits,
                        PolicyKey {
                            proto: *proto,
                            port: first.to_be(),
                            ..base
                        },
                    )
                })
                .collect(),
        }
    }
}

impl Maps {
    /// Writes every entry of `rule`.
    pub fn write_policy(&mut self, rule: &PolicyRule) -> Result<(), DatapathError> {
        let entry = rule.entry();
        for key in rule.keys() {
            self.policy
                .insert(&key, entry, 0)
                .map_err(|source| DatapathError::Map {
                    map: map_names::POLICY,
                    operation: "insert",
                    source,
                })?;
        }
        Ok(())
    }

    /// Writes every entry of `rules`, in order, in one batch (a syscall per
    /// [`crate::batch`] chunk instead of one per entry). On failure (a full map, above
    /// all) returns the error and how many of the first rules may hold written entries:
    /// the rules before the one the batch stopped in, and that one.
    pub fn write_policies(
        &mut self,
        rules: &[PolicyRule],
    ) -> Result<(), (usize, Box<DatapathError>)> {
        crate::batch::update_owned(&self.policy, rules, |rule| (rule.keys(), rule.entry())).map_err(
            |(stopped_in, partial)| {
                let touched = (stopped_in + 1).min(rules.len());
                let error = DatapathError::Map {
                    map: map_names::POLICY,
                    operation: "insert",
                    source: partial.source,
                };
                (touched, Box::new(error))
            },
        )
    }

    /// Removes every entry of `rule`; absent entries are fine.
    pub fn remove_policy(&mut self, rule: &PolicyRule) -> Result<(), DatapathError> {
        for key in rule.keys() {
            ignore_missing(self.policy.remove(&key)).map_err(|source| DatapathError::Map {
                map: map_names::POLICY,
                operation: "remove",
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_single_port_is_one_full_prefix() {
        assert_eq!(port_prefixes(&(80..=80)), vec![(80, 16)]);
        assert_eq!(port_prefixes(&(0..=65535)), vec![(0, 0)]);
        assert_eq!(port_prefixes(&(8000..=8003)), vec![(8000, 14)]);
    }

    proptest! {
        #[test]
        fn prefixes_cover_exactly_the_range(a in 0u16..=65535, b in 0u16..=65535) {
            let (lo, hi) = (a.min(b), a.max(b));
            let blocks = port_prefixes(&(lo..=hi));
            let mut covered: Vec<u32> = Vec::new();
            for (first, bits) in &blocks {
                let size = 1u32 << (16 - bits);
                prop_assert_eq!(u32::from(*first) % size, 0, "block not aligned");
                covered.extend(u32::from(*first)..u32::from(*first) + size);
            }
            let expected: Vec<u32> = (u32::from(lo)..=u32::from(hi)).collect();
            prop_assert_eq!(covered, expected);
            prop_assert!(blocks.len() <= 30);
        }
    }
}
