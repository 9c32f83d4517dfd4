//! `GET /v1/services` on the local API: the node's frontends and their backends.

use super::component::Services;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use membrane_api::{ServiceFrontend, paths};
use std::sync::Arc;

/// The route, to merge into the agent's API router.
pub fn router(services: Arc<Services>) -> Router {
    Router::new()
        .route(paths::SERVICES, get(list))
        .with_state(services)
}

async fn list(State(services): State<Arc<Services>>) -> Json<Vec<ServiceFrontend>> {
    Json(services.frontends().as_ref().clone())
}
