//! The routes of the local API and their handlers.

use super::error::ApiFailure;
use crate::agent::Agent;
use crate::cluster::{Cluster, objects};
use crate::endpoints::NodeDatapath;
use crate::node::NodeNetwork;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use membrane_api::{
    AgentStatus, AllocateRequest, Allocation, ApplyReport, ApplyRequest, AttachmentRef,
    DeleteReport, DeleteRequest, Endpoint, EndpointRegistration, ErrorKind, GcReport, GcRequest,
    Identity, KvstoreStatus, ListRequest, NodeInfo, paths,
};
use membrane_common::identity;
use membrane_state::keys;
use serde::de::DeserializeOwned;
use std::sync::Arc;

type Shared<D, N> = State<Arc<Agent<D, N>>>;
type Reply<T> = Result<Json<T>, ApiFailure>;

/// The API's routes over `agent` and the cluster state.
pub fn router<D: NodeDatapath, N: NodeNetwork>(
    agent: Arc<Agent<D, N>>,
    cluster: Arc<Cluster>,
) -> Router {
    let cluster_routes = Router::new()
        .route(paths::NODES, get(nodes))
        .route(paths::KVSTORE, get(kvstore))
        .route(paths::IDENTITY_LIST, get(identities))
        .route(paths::OBJECTS_APPLY, post(apply))
        .route(paths::OBJECTS_DELETE, post(delete_objects))
        .route(paths::OBJECTS_LIST, post(list_objects))
        .with_state(cluster);
    Router::new()
        .route(paths::IPAM_ALLOCATE, post(allocate::<D, N>))
        .route(paths::IPAM_RELEASE, post(delete::<D, N>))
        .route(paths::ENDPOINT_CREATE, post(create::<D, N>))
        .route(paths::ENDPOINT_DELETE, post(delete::<D, N>))
        .route(paths::ENDPOINT_GET, post(endpoint::<D, N>))
        .route(paths::ENDPOINT_LIST, get(endpoints::<D, N>))
        .route(paths::GC, post(gc::<D, N>))
        .route(paths::STATUS, get(status::<D, N>))
        .fallback(async || {
            failure(
                StatusCode::NOT_FOUND,
                ErrorKind::NotFound,
                "no such API path",
            )
        })
        .method_not_allowed_fallback(async || {
            failure(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorKind::InvalidRequest,
                "wrong method",
            )
        })
        .with_state(agent)
        .merge(cluster_routes)
}

async fn nodes(State(cluster): State<Arc<Cluster>>) -> Json<Vec<NodeInfo>> {
    Json(cluster.nodes())
}

/// Probes the kvstore with one read of this API's own node list prefix.
async fn kvstore(State(cluster): State<Arc<Cluster>>) -> Json<KvstoreStatus> {
    let store = cluster.store();
    let probe = store.get(keys::NODES).await;
    Json(KvstoreStatus {
        backend: store.describe(),
        reachable: probe.is_ok(),
        error: probe.err().map(|e| e.to_string()),
    })
}

/// The reserved identities, then every identity allocated in the kvstore, by number.
async fn identities(State(cluster): State<Arc<Cluster>>) -> Reply<Vec<Identity>> {
    let listing = cluster
        .store()
        .list(keys::IDENTITY_IDS)
        .await
        .map_err(|e| {
            failure(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Storage,
                &format!("cannot list the identities: {e}"),
            )
        })?;
    let reserved = (1..identity::FIRST_ALLOCATED).filter_map(|id| {
        identity::reserved_name(id).map(|name| Identity {
            id,
            labels: vec![format!("reserved:{name}")],
        })
    });
    let allocated = listing.items.into_iter().filter_map(|item| {
        let id = keys::suffix(&item.key, keys::IDENTITY_IDS)?.parse().ok()?;
        let mut labels: Vec<String> = serde_json::from_slice(&item.value).ok()?;
        labels.sort();
        Some(Identity { id, labels })
    });
    let mut all: Vec<Identity> = reserved.chain(allocated).collect();
    all.sort_by_key(|i| i.id);
    Ok(Json(all))
}

async fn apply(
    State(cluster): State<Arc<Cluster>>,
    Body(request): Body<ApplyRequest>,
) -> Reply<ApplyReport> {
    Ok(Json(
        objects::apply(cluster.store().as_ref(), request.objects).await?,
    ))
}

async fn delete_objects(
    State(cluster): State<Arc<Cluster>>,
    Body(request): Body<DeleteRequest>,
) -> Reply<DeleteReport> {
    Ok(Json(
        objects::delete(cluster.store().as_ref(), request.refs).await?,
    ))
}

async fn list_objects(
    State(cluster): State<Arc<Cluster>>,
    Body(request): Body<ListRequest>,
) -> Reply<Vec<serde_json::Value>> {
    Ok(Json(
        objects::list(cluster.store().as_ref(), cluster.objects(), &request).await?,
    ))
}

async fn allocate<D: NodeDatapath, N: NodeNetwork>(
    State(agent): Shared<D, N>,
    Body(request): Body<AllocateRequest>,
) -> Reply<Allocation> {
    Ok(Json(agent.allocate(&request).await?))
}

async fn create<D: NodeDatapath, N: NodeNetwork>(
    State(agent): Shared<D, N>,
    Body(registration): Body<EndpointRegistration>,
) -> Reply<Endpoint> {
    Ok(Json(agent.create_endpoint(registration).await?))
}

async fn delete<D: NodeDatapath, N: NodeNetwork>(
    State(agent): Shared<D, N>,
    Body(attachment): Body<AttachmentRef>,
) -> Reply<serde_json::Map<String, serde_json::Value>> {
    agent.delete(&attachment).await?;
    Ok(Json(serde_json::Map::new()))
}

async fn endpoint<D: NodeDatapath, N: NodeNetwork>(
    State(agent): Shared<D, N>,
    Body(attachment): Body<AttachmentRef>,
) -> Reply<Endpoint> {
    Ok(Json(agent.endpoint(&attachment).await?))
}

async fn endpoints<D: NodeDatapath, N: NodeNetwork>(
    State(agent): Shared<D, N>,
) -> Reply<Vec<Endpoint>> {
    Ok(Json(agent.endpoints().await?))
}

async fn gc<D: NodeDatapath, N: NodeNetwork>(
    State(agent): Shared<D, N>,
    Body(request): Body<GcRequest>,
) -> Reply<GcReport> {
    Ok(Json(agent.gc(&request).await?))
}

async fn status<D: NodeDatapath, N: NodeNetwork>(State(agent): Shared<D, N>) -> Reply<AgentStatus> {
    Ok(Json(agent.status().await?))
}

fn failure(status: StatusCode, kind: ErrorKind, message: &str) -> ApiFailure {
    ApiFailure::new(status, kind, message.to_string())
}

/// A JSON request body whose rejection is an [`ApiFailure`] like every other error.
struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiFailure;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiFailure> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(body)) => Ok(Body(body)),
            Err(rejection) => Err(rejected(rejection)),
        }
    }
}

fn rejected(rejection: JsonRejection) -> ApiFailure {
    ApiFailure::new(
        rejection.status(),
        ErrorKind::InvalidRequest,
        rejection.body_text(),
    )
}
