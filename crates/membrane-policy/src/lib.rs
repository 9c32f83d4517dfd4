//! Compiles NetworkPolicy, CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy into
//! per-endpoint identity rules for the datapath's policy map, and traces verdicts from
//! the same output.
//!
//! Pure: no kernel, no I/O, no async. [`compile`] takes a [`PolicyInput`] (policy
//! objects, the cluster's identities, namespace labels, pod addresses and named ports,
//! the node's endpoints, the enforcement mode) and returns, per endpoint, its
//! enforcement flags and the exact LPM entries to program ([`EndpointPolicy`]), the
//! table of rule ids and the node-local CIDR identities in use. [`trace`] replays the
//! datapath's lookups over those entries.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cidr;
mod cilium;
mod clause;
mod compile;
mod compiler;
mod entries;
mod input;
mod network_policy;
mod output;
mod parse;
mod resolve;
mod rule_ids;
mod trace;
mod universe;

pub use cidr::FIRST_CIDR_IDENTITY;
pub use clause::proto;
pub use compile::compile;
pub use compiler::{Changes, Compiler};
pub use input::{EnforcementMode, Labels, LocalEndpoint, NamedPort, PolicyInput};
pub use output::{
    Compiled, Direction, EndpointPolicy, Entry, EntryKey, PolicyKind, RuleRef, Warning,
};
pub use trace::{Decision, MatchKind, Trace, Verdict, decide, policy_port, trace};

#[cfg(test)]
mod tests;
