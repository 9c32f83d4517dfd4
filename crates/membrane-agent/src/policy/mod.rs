//! Network policy: keeps the datapath's policy entries, endpoint enforcement flags and
//! CIDR identities equal to what `membrane_policy` compiles from the cluster's policies,
//! identities, namespaces and pods and this node's endpoints, writing only differences.
//!
//! [`PolicyState`] holds the last compilation and what is programmed; the endpoint
//! manager asks it (as its [`crate::endpoints::PolicyHook`]) for a new endpoint's
//! entries and flags before the endpoint's datapath entry is written, and the
//! [`Component`] loop recompiles at every change. The local API serves the compiled
//! entries and traces.

pub mod api;
pub mod component;
pub mod config;
pub mod inputs;
pub mod maps;
pub mod state;
pub mod trace;

pub use component::Component;
pub use config::{Enforcement, PolicyConfig, PolicyFlags};
pub use maps::PolicyMaps;
pub use state::{PolicyState, Settings};

#[cfg(test)]
mod tests;
