//! `GET /v1/policy` (the compiled policy of every local endpoint) and
//! `POST /v1/policy/trace` on the local API.

use super::maps::PolicyMaps;
use super::state::PolicyState;
use super::trace::{self, Context, TraceError};
use crate::agent::Agent;
use crate::api::ApiFailure;
use crate::cluster::Cluster;
use crate::endpoints::NodeDatapath;
use crate::node::NodeNetwork;
use crate::routing::identity::labels::LabelFilter;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use membrane_api::ErrorKind;
use membrane_api::policy::{
    CidrIdentity, EndpointPolicy, POLICY, POLICY_TRACE, PolicyEntry, PolicyListing, TraceReport,
    TraceRequest,
};
use membrane_policy::EnforcementMode;
use std::sync::Arc;

/// What the routes read.
pub struct PolicyApi<M, D, N> {
    /// The policy state.
    pub state: Arc<PolicyState<M>>,
    /// The local endpoints.
    pub agent: Arc<Agent<D, N>>,
    /// Objects and nodes.
    pub cluster: Arc<Cluster>,
    /// This node's name.
    pub node: String,
    /// The cluster's name.
    pub cluster_name: String,
    /// The identity label filter.
    pub filter: LabelFilter,
}

/// The routes, to merge into the agent's API router.
pub fn router<M: PolicyMaps, D: NodeDatapath, N: NodeNetwork>(
    api: Arc<PolicyApi<M, D, N>>,
) -> Router {
    Router::new()
        .route(POLICY, get(listing::<M, D, N>))
        .route(POLICY_TRACE, post(traced::<M, D, N>))
        .with_state(api)
}

async fn listing<M: PolicyMaps, D: NodeDatapath, N: NodeNetwork>(
    State(api): State<Arc<PolicyApi<M, D, N>>>,
) -> Json<PolicyListing> {
    let (compiled, known, _) = api.state.snapshot();
    let settings = api.state.settings();
    let endpoints = compiled
        .endpoints
        .iter()
        .map(|(id, policy)| EndpointPolicy {
            endpoint_id: *id,
            pod: known.get(id).and_then(|k| k.pod.clone()),
            identity: known.get(id).map_or(0, |k| k.endpoint.identity),
            ingress_enforced: policy.ingress_enforced,
            egress_enforced: policy.egress_enforced,
            audit: policy.audit,
            entries: policy
                .entries
                .iter()
                .map(|(key, entry)| PolicyEntry {
                    direction: key.direction.as_str().to_string(),
                    identity: key.identity,
                    protocol: key.proto,
                    first_port: *key.ports().start(),
                    last_port: *key.ports().end(),
                    deny: entry.deny,
                    rule_id: entry.rule_id,
                    rule: compiled
                        .rules
                        .get(&entry.rule_id)
                        .map_or_else(String::new, |r| r.to_string()),
                })
                .collect(),
        })
        .collect();
    Json(PolicyListing {
        enforcement: match settings.mode {
            EnforcementMode::Default => "default",
            EnforcementMode::Always => "always",
            EnforcementMode::Never => "never",
        }
        .to_string(),
        audit: settings.audit,
        endpoints,
        cidr_identities: compiled
            .cidr_identities
            .iter()
            .map(|(prefix, identity)| CidrIdentity {
                prefix: *prefix,
                identity: *identity,
            })
            .collect(),
        warnings: compiled.warnings.iter().map(|w| w.to_string()).collect(),
    })
}

async fn traced<M: PolicyMaps, D: NodeDatapath, N: NodeNetwork>(
    State(api): State<Arc<PolicyApi<M, D, N>>>,
    Json(request): Json<TraceRequest>,
) -> Result<Json<TraceReport>, ApiFailure> {
    let endpoints = api.agent.identified_endpoints().await?;
    let context = Context {
        cluster: &api.cluster,
        node: &api.node,
        cluster_name: &api.cluster_name,
        filter: &api.filter,
        endpoints: &endpoints,
    };
    trace::trace(&api.state, &context, &request)
        .map(Json)
        .map_err(|error| {
            let (status, kind) = match error {
                TraceError::NoSuchPod { .. } | TraceError::NoIdentity { .. } => {
                    (StatusCode::NOT_FOUND, ErrorKind::NotFound)
                }
                TraceError::BadProtocol(_) | TraceError::BadPeer { .. } => {
                    (StatusCode::BAD_REQUEST, ErrorKind::InvalidRequest)
                }
            };
            ApiFailure::new(status, kind, error.to_string())
        })
}
