//! The agent's local API over its unix socket: request and response types and a client.
//!
//! The API is JSON over HTTP/1.1 on a unix socket (like Cilium's local REST API). Both
//! the CNI plugin and the `membrane` CLI talk to the agent through [`client::Client`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod policy;
pub mod services;
pub mod types;

pub use client::{Client, ClientError};
pub use services::{ServiceBackend, ServiceFrontend};
pub use types::*;

/// Default path of the agent's unix socket.
pub const DEFAULT_SOCKET: &str = "/var/run/membrane/agent.sock";

/// Request paths, spelled once for server and client.
pub mod paths {
    /// `POST` [`crate::AllocateRequest`] → [`crate::Allocation`].
    pub const IPAM_ALLOCATE: &str = "/v1/ipam/allocate";
    /// `POST` [`crate::AttachmentRef`] → `{}`; releases the attachment's addresses.
    pub const IPAM_RELEASE: &str = "/v1/ipam/release";
    /// `POST` [`crate::EndpointRegistration`] → [`crate::Endpoint`].
    pub const ENDPOINT_CREATE: &str = "/v1/endpoints/create";
    /// `POST` [`crate::AttachmentRef`] → `{}`; removes the endpoint and its addresses. Idempotent.
    pub const ENDPOINT_DELETE: &str = "/v1/endpoints/delete";
    /// `POST` [`crate::AttachmentRef`] → [`crate::Endpoint`], or 404 when unknown.
    pub const ENDPOINT_GET: &str = "/v1/endpoints/get";
    /// `GET` → `Vec<`[`crate::Endpoint`]`>`.
    pub const ENDPOINT_LIST: &str = "/v1/endpoints";
    /// `POST` [`crate::GcRequest`] → [`crate::GcReport`].
    pub const GC: &str = "/v1/gc";
    /// `GET` → [`crate::AgentStatus`].
    pub const STATUS: &str = "/v1/status";
    /// `GET` → `Vec<`[`crate::NodeInfo`]`>`: every node registered in the kvstore, this
    /// one included, sorted by name.
    pub const NODES: &str = "/v1/nodes";
    /// `GET` → [`crate::KvstoreStatus`]: the cluster state backend and whether it answers.
    pub const KVSTORE: &str = "/v1/kvstore";
    /// `POST` [`crate::ApplyRequest`] → [`crate::ApplyReport`]; all objects or none
    /// (an invalid one refuses the request with `invalid_request`).
    pub const OBJECTS_APPLY: &str = "/v1/objects/apply";
    /// `POST` [`crate::DeleteRequest`] → [`crate::DeleteReport`]; all in one transaction.
    pub const OBJECTS_DELETE: &str = "/v1/objects/delete";
    /// `POST` [`crate::ListRequest`] → `Vec<serde_json::Value>` (complete manifests).
    pub const OBJECTS_LIST: &str = "/v1/objects/list";
    /// `GET` → `Vec<`[`crate::Identity`]`>`, sorted by id.
    pub const IDENTITY_LIST: &str = "/v1/identities";
    /// `GET` → `Vec<`[`crate::ServiceFrontend`]`>`: every frontend the node
    /// load-balances, with its backends, in address order.
    pub const SERVICES: &str = "/v1/services";
}
