//! Network policy: keeps the datapath's policy entries, endpoint enforcement flags and
//! CIDR identities equal to what `membrane_policy` compiles from the cluster's policies,
//! identities, namespaces and pods and this node's endpoints, writing only differences.
//!
//! [`PolicyState`] holds the incremental compiler ([`membrane_policy::Compiler`]) and
//! what is programmed; the endpoint manager asks it (as its
//! [`crate::endpoints::PolicyHook`]) for a new endpoint's entries and flags before the
//! endpoint's datapath entry is written, and the [`Component`] loop brings the
//! compilation to every change, recompiling only what the change touches. The local API serves the compiled
//! entries and traces.

pub mod api;
pub mod component;
pub mod config;
pub mod inputs;
pub mod maps;
pub mod metrics;
pub mod state;
pub mod trace;

pub use component::Component;
pub use config::{Enforcement, PolicyConfig, PolicyFlags};
pub use maps::PolicyMaps;
pub use metrics::PolicyCounters;
pub use state::{PolicyState, Settings};

#[cfg(test)]
mod tests;
