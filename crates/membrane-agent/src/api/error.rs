//! The API edge of errors: every failure becomes an HTTP status and an [`ApiErrorBody`].

use crate::agent::chain;
use crate::cluster::objects::ObjectsError;
use crate::endpoints::EndpointError;
use crate::ipam::IpamError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use membrane_api::{ApiErrorBody, ErrorKind};
use membrane_state::StoreError;

/// A failed API request.
#[derive(Debug)]
pub struct ApiFailure {
    status: StatusCode,
    body: ApiErrorBody,
}

impl ApiFailure {
    /// A failure of the given status and kind.
    pub fn new(status: StatusCode, kind: ErrorKind, message: String) -> Self {
        ApiFailure {
            status,
            body: ApiErrorBody { kind, message },
        }
    }
}

impl From<EndpointError> for ApiFailure {
    fn from(error: EndpointError) -> Self {
        let (status, kind) = classify(&error);
        if status.is_server_error() {
            tracing::warn!(error = %chain(&error), "request failed");
        }
        ApiFailure::new(status, kind, chain(&error))
    }
}

impl From<ObjectsError> for ApiFailure {
    fn from(error: ObjectsError) -> Self {
        let (status, kind) = match &error {
            ObjectsError::Invalid { .. }
            | ObjectsError::UnknownKind { .. }
            | ObjectsError::Duplicate { .. } => {
                (StatusCode::BAD_REQUEST, ErrorKind::InvalidRequest)
            }
            ObjectsError::Store {
                source: StoreError::Conflict { .. },
                ..
            } => (StatusCode::CONFLICT, ErrorKind::Storage),
            ObjectsError::Store {
                source: StoreError::Unavailable { .. },
                ..
            } => (StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Storage),
            ObjectsError::Store { .. } => (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Storage),
        };
        if status.is_server_error() {
            tracing::warn!(error = %chain(&error), "request failed");
        }
        ApiFailure::new(status, kind, chain(&error))
    }
}

fn classify(error: &EndpointError) -> (StatusCode, ErrorKind) {
    use EndpointError as E;
    match error {
        E::NotAllocated { .. }
        | E::AddressMismatch { .. }
        | E::NetnsMismatch { .. }
        | E::BadMac { .. }
        | E::NoSuchLink { .. } => (StatusCode::BAD_REQUEST, ErrorKind::InvalidRequest),
        E::AlreadyRegistered { .. } => (StatusCode::CONFLICT, ErrorKind::InvalidRequest),
        E::NotFound { .. } => (StatusCode::NOT_FOUND, ErrorKind::NotFound),
        E::IdsExhausted
        | E::Ipam {
            source: IpamError::PoolExhausted { .. },
        } => (StatusCode::INSUFFICIENT_STORAGE, ErrorKind::PoolExhausted),
        E::Ipam {
            source: IpamError::Store { .. },
        }
        | E::Store { .. } => (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Storage),
        E::Datapath { .. } | E::Conntrack { .. } => {
            (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Datapath)
        }
        E::Network { .. } => (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Internal),
        // The kvstore holds the identities: unreachable, it is a storage failure.
        E::Identity { .. } => (StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Storage),
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
