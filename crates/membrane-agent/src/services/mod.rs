//! Services: the kube-proxy replacement's control plane. From Service, EndpointSlice and
//! Pod objects it computes the node's frontends (cluster IPs, NodePorts, LoadBalancer
//! addresses, external IPs, hostPorts) and their backends, and a reconciler writes only
//! the difference into the datapath's load-balancing maps, numbering backends and
//! frontends stably across restarts.
//!
//! - [`desired`]: the pure computation, objects → [`model::DesiredState`];
//! - [`reconciler`]: applied state → datapath writes, failures per Service;
//! - [`allocator`]: backend ids and reverse-NAT indexes in the state database;
//! - [`component`]: the task that runs passes on changes, and what it publishes;
//! - [`api`]: `GET /v1/services`.

pub mod allocator;
pub mod api;
pub mod component;
pub mod config;
pub mod datapath;
pub mod desired;
pub mod error;
pub mod listing;
pub mod model;
pub mod reconciler;
pub mod socket_lb;

pub use component::{Component, LocalEndpoints, Services};
pub use config::{LbAlgorithm, MaglevTableSize, ServicesConfig};
pub use error::ServicesError;
