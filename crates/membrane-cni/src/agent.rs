//! The node agent's local API as the plugin uses it: one method per call, each bounded in
//! time and mapping failures to CNI errors.

use crate::error::CniError;
use membrane_api::{
    AgentStatus, AllocateRequest, Allocation, AttachmentRef, Client, ClientError, Endpoint,
    EndpointRegistration, ErrorKind, GcReport, GcRequest, paths,
};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// Longest the plugin waits for one answer from the agent.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The node agent, reached through its unix socket.
#[derive(Clone, Debug)]
pub struct Agent {
    client: Client,
}

impl Agent {
    /// The agent listening on `socket`.
    pub fn new(socket: &Path) -> Self {
        Agent {
            client: Client::new(socket),
        }
    }

    /// The agent's socket path.
    pub fn socket(&self) -> &Path {
        self.client.socket()
    }

    /// Allocates (or returns the existing) addresses of an attachment.
    pub async fn allocate(&self, request: &AllocateRequest) -> Result<Allocation, CniError> {
        self.post(paths::IPAM_ALLOCATE, request).await
    }

    /// Releases an attachment's addresses; releasing unknown addresses is success.
    pub async fn release(&self, attachment: &AttachmentRef) -> Result<(), CniError> {
        self.post_ignoring_not_found(paths::IPAM_RELEASE, attachment)
            .await
    }

    /// Registers the endpoint of a configured attachment.
    pub async fn create_endpoint(
        &self,
        registration: &EndpointRegistration,
    ) -> Result<Endpoint, CniError> {
        self.post(paths::ENDPOINT_CREATE, registration).await
    }

    /// Removes an endpoint and its addresses; removing an unknown one is success.
    pub async fn delete_endpoint(&self, attachment: &AttachmentRef) -> Result<(), CniError> {
        self.post_ignoring_not_found(paths::ENDPOINT_DELETE, attachment)
            .await
    }

    /// The endpoint of an attachment, `None` when the agent does not know it.
    pub async fn endpoint(&self, attachment: &AttachmentRef) -> Result<Option<Endpoint>, CniError> {
        let call = self.client.post(paths::ENDPOINT_GET, attachment);
        match self.bounded(paths::ENDPOINT_GET, call).await? {
            Ok(endpoint) => Ok(Some(endpoint)),
            Err(e) if e.kind() == Some(ErrorKind::NotFound) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Releases every attachment not in the request's valid list.
    pub async fn gc(&self, request: &GcRequest) -> Result<GcReport, CniError> {
        self.post(paths::GC, request).await
    }

    /// The agent's health and pools.
    pub async fn status(&self) -> Result<AgentStatus, CniError> {
        let call = self.client.get(paths::STATUS);
        self.bounded(paths::STATUS, call)
            .await?
            .map_err(|e| self.fail(e))
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &'static str,
        body: &B,
    ) -> Result<R, CniError> {
        let call = self.client.post(path, body);
        self.bounded(path, call).await?.map_err(|e| self.fail(e))
    }

    async fn post_ignoring_not_found<B: Serialize>(
        &self,
        path: &'static str,
        body: &B,
    ) -> Result<(), CniError> {
        let call = self.client.post::<B, IgnoredAny>(path, body);
        match self.bounded(path, call).await? {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == Some(ErrorKind::NotFound) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Runs one call under [`CALL_TIMEOUT`]; the outer error is the timeout.
    async fn bounded<R>(
        &self,
        request: &'static str,
        call: impl Future<Output = Result<R, ClientError>>,
    ) -> Result<Result<R, ClientError>, CniError> {
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| CniError::AgentTimeout {
                socket: self.socket().to_path_buf(),
                request,
                after: CALL_TIMEOUT,
            })
    }

    fn fail(&self, error: ClientError) -> CniError {
        CniError::from_agent(self.socket().to_path_buf(), error)
    }
}
