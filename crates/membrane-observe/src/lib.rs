//! Flow observability: decodes datapath events into enriched flows, keeps the last N,
//! and serves them through the Hubble-compatible Observer gRPC API and as metrics.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod client;
pub mod decode;
pub mod directory;
pub mod error;
pub mod filter;
pub mod flow;
pub mod metrics;
pub mod pipeline;
pub mod print;
pub mod query;
pub mod queue;
pub mod request;
pub mod server;
pub mod service;
pub mod store;
