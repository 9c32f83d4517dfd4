//! The node agent: owns the node's endpoints, IPAM and eBPF datapath, and serves the
//! local API the CNI plugin and the CLI talk to.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
pub mod api;
pub mod cluster;
pub mod cni_conf;
pub mod config;
pub mod endpoints;
pub mod ipam;
pub mod maintenance;
pub mod metrics;
pub mod node;
pub mod observe;
pub mod policy;
pub mod routing;
pub mod services;
pub mod store;
pub mod telemetry;
