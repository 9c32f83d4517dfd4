//! The node agent: owns the node's endpoints, IPAM and eBPF datapath, and serves the
//! local API the CNI plugin and the CLI talk to.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod endpoints;
pub mod ipam;
pub mod node;
pub mod store;
